"""Training throughput and the input-pipeline split.

Measures, for a preset (default: coco-parity, 300x300, width 1.0) and batch
size (default 8), on synthetic 640x480 photos:

- ``pipeline_images_per_second``: the tf.data pipeline alone (decode,
  augment, resize, target assignment), consumed as fast as possible;
- ``step_images_per_second``: the training step alone on one cached batch
  (forward, loss, backward, optimizer);
- ``end_to_end_images_per_second``: both together, as ``ktpconvert train``
  runs them (pipeline prefetching in parallel with the step).

The pipeline is not the bottleneck when its rate is well above the step rate
and end-to-end is close to step-only. Run::

    python -m ktp_tflite.benchmarks.tools.train_throughput --steps 30 > throughput.json

JSON goes to stdout, progress to stderr. The issue's target: at least 3.8
images/s end to end for 300x300 width 1.0 batch 8 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _rate(function, count: int, batch: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        function()
    return count * batch / (time.perf_counter() - start)


def measure(preset_name: str, batch_size: int, steps: int, images: int, seed: int = 0) -> dict:
    """Images/s of the pipeline, the step, and both; see the module docstring."""
    import tensorflow as tf

    from ktp_tflite.train import config as config_lib
    from ktp_tflite.train.input_pipeline import train_dataset
    from ktp_tflite.train.model import build_model
    from ktp_tflite.train.synth import render_dataset
    from ktp_tflite.train.trainer import make_optimizer, make_train_step

    config = config_lib.with_overrides(config_lib.preset(preset_name), batch_size=batch_size, steps=steps * 3)
    print(f"rendering {images} synthetic photos", file=sys.stderr)
    data = render_dataset(images, seed=seed)
    dataset = train_dataset(data, config.model, config.train)
    iterator = iter(dataset)
    next(iterator)
    pipeline = _rate(lambda: next(iterator), steps, batch_size)
    print(f"pipeline only: {pipeline:.1f} images/s", file=sys.stderr)

    strategy = tf.distribute.get_strategy()
    model = build_model(config.model)
    optimizer, _ = make_optimizer(config.train)
    step = make_train_step(model, optimizer, config.train, strategy)
    fixed = next(iterator)
    step(fixed)  # trace
    step_only = _rate(lambda: step(fixed)["loss"].numpy(), steps, batch_size)
    print(f"train step only: {step_only:.2f} images/s", file=sys.stderr)
    end_to_end = _rate(lambda: step(next(iterator))["loss"].numpy(), steps, batch_size)
    print(f"end to end: {end_to_end:.2f} images/s", file=sys.stderr)
    return {
        "preset": preset_name,
        "input_size": list(config.model.input_size),
        "width_multiplier": config.model.width_multiplier,
        "batch_size": batch_size,
        "steps_timed": steps,
        "pipeline_images_per_second": pipeline,
        "step_images_per_second": step_only,
        "end_to_end_images_per_second": end_to_end,
        "pipeline_is_bottleneck": end_to_end < 0.9 * step_only and pipeline < 1.2 * step_only,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="coco-parity", choices=("ktp", "coco-parity", "tiny"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--images", type=int, default=64, help="synthetic photos to cycle")
    args = parser.parse_args(argv)
    result = measure(args.preset, args.batch_size, args.steps, args.images)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
