"""Renderer throughput: synthetic KTP photos per second, by worker count.

Usage: python -m ktp_tflite.benchmarks.tools.synth_throughput [--count 200] [--size 640x480]
           [--workers 1 2] [--preset train|stress]

Prints one JSON line per worker count with images/s (rendering, photometric
effects and JPEG encoding included; no file IO). The issue's target is at
least 25 images/s on 2 cores at 640x480.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ktp_tflite.benchmarks.report import cpu_name
from ktp_tflite.train.synth import PRESETS, preset_config, render_dataset


def measure(count: int, width: int, height: int, workers: int, seed: int = 0, preset: str = "train") -> dict:
    """Render ``count`` photos of recipe ``preset`` with ``workers`` processes; images/s and the setting."""
    config = preset_config(preset, width, height)
    render_dataset(4, seed=seed + 1, config=config, workers=1)  # warm caches (fonts, backgrounds)
    start = time.perf_counter()
    render_dataset(count, seed=seed, config=config, workers=workers)
    seconds = time.perf_counter() - start
    return {
        "preset": preset,
        "workers": workers,
        "count": count,
        "size": f"{width}x{height}",
        "seconds": round(seconds, 2),
        "images_per_s": round(count / seconds, 1),
        "cpus": os.cpu_count(),
        "machine": cpu_name(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="train")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    for workers in args.workers:
        print(json.dumps(measure(args.count, width, height, workers, preset=args.preset)), flush=True)


if __name__ == "__main__":
    main()
