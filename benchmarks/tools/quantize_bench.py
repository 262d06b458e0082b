"""Where `ktpconvert quantize` spends its time: graph conversion vs calibration.

Usage: python -m ktp_tflite.benchmarks.tools.quantize_bench MODEL [--representative synth:300]
       [--num-samples 300] [--pipeline-config pipeline.config] [--val DATA] [--json OUT]

MODEL is a ``tflite_graph.pb`` or a SavedModel. Steps, each timed:

1. ``quantize`` end to end as the CLI runs it (the calibration images are
   drawn, and synthetic cards rendered, in worker processes while the graph
   converts), split by the converter run into graph conversion, calibration
   (the few samples TF's calibrator sees), range refinement (the one pass
   over all samples, waiting for any not yet rendered) and MLIR
   quantization, then metadata and verification (interpreter + Task Library
   subprocess);
2. a float conversion, for the int8/float file size ratio (target <= 30 %),
   with what the int8 file holds besides int8 weights, and the graph
   conversion time the end-to-end time is compared with;
3. with ``--val``: an int8 conversion with plain min/max ranges too, and COCO
   mAP of float, int8 refined and int8 min/max on that labelled set, with the
   drops in points (targets: mAP@[.5:.95] within 1.0 of float, mAP@.5 0.5).

The issue's target: the whole `quantize` (300 calibration images, SSD
MobileNet v2 300x300) under 2 minutes on 2 cores. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any


def size_breakdown(model: bytes) -> dict[str, int]:
    """Bytes of a .tflite by content: tensor data by dtype, quantization parameters."""
    from ktp_tflite.convert.tflite_model import parse_model

    sizes: dict[str, int] = {"file": len(model)}
    for tensor in parse_model(model, "model").tensors:
        if tensor.data_bytes:
            key = f"{tensor.dtype}_data"
            sizes[key] = sizes.get(key, 0) + tensor.data_bytes
        if tensor.quantization is not None:
            sizes["quant_scales"] = sizes.get("quant_scales", 0) + 4 * len(tensor.quantization.scale)
            sizes["quant_zero_points_int64"] = sizes.get("quant_zero_points_int64", 0) + 8 * len(
                tensor.quantization.zero_point
            )
    return sizes


def accuracy(models: dict[str, bytes], val: str) -> dict:
    """COCO metrics of each model on the labelled set ``val``, drops vs "float"."""
    import tempfile
    from pathlib import Path

    from ktp_tflite.convert.evaluate import evaluate_models
    from ktp_tflite.train.datasets import read_dataset

    dataset = read_dataset(val)
    with tempfile.TemporaryDirectory() as folder:
        paths: list[str | Path] = []
        for name, content in models.items():
            path = Path(folder) / f"{name}.tflite"
            path.write_bytes(content)
            paths.append(path)
        report = evaluate_models(paths, dataset, progress=False)
    result: dict[str, Any] = {"data": val, "images": report.num_images, "boxes": report.num_boxes}
    for evaluation in report.models:
        name = Path(evaluation.model).stem
        m = evaluation.metrics
        result[name] = {
            "map": round(100 * m.map, 2),
            "map50": round(100 * m.map50, 2),
            "map75": round(100 * m.map75, 2),
        }
        if evaluation.model in report.drops:
            result[name]["drop_points"] = report.drops[evaluation.model]
    return result


def measure(
    model: str,
    representative: str,
    num_samples: int,
    pipeline_config: str | None,
    seed: int = 0,
    val: str | None = None,
) -> dict:
    """Run the quantize pipeline once and time each step."""
    from ktp_tflite.benchmarks.report import cpu_name
    from ktp_tflite.convert.metadata import ModelInfo
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.convert.quantize_flow import quantize_detector
    from ktp_tflite.convert.representative import calibration_inputs
    from ktp_tflite.train.pipeline_config import load_ssd_config

    pipeline = load_ssd_config(pipeline_config) if pipeline_config else None
    source = detect_model_source(model, pipeline)
    seconds: dict[str, float] = {}

    # The flow as `ktpconvert quantize` runs it: the calibration images (synthetic cards are
    # rendered) are loaded in worker processes while the graph converts (representative.Prefetch).
    start = time.perf_counter()
    result = quantize_detector(
        source, QuantizeConfig(), representative=representative, num_samples=num_samples, seed=seed, info=ModelInfo()
    )
    seconds["quantize_end_to_end"] = time.perf_counter() - start
    seconds["int8_total"] = result.seconds["convert"]
    seconds.update({f"int8_{k}": v for k, v in result.conversion.seconds.items()})
    seconds["metadata_and_verify"] = result.seconds["metadata_and_verify"]
    model_bytes = result.model

    # The converter alone, not the flow: the graph conversion time that the
    # end-to-end figure is compared with, and (with --val) plain min/max ranges.
    start = time.perf_counter()
    float_model = convert_model(source, QuantizeConfig(mode="float")).model
    seconds["float_conversion"] = time.perf_counter() - start
    extra = {}
    if val and result.samples is not None:  # int8 with representative data: always here
        start = time.perf_counter()
        minmax = convert_model(
            source,
            QuantizeConfig(ranges="minmax"),
            calibration_inputs(result.samples, source.height, source.width, progress=False, cache=result.cache),
        ).model
        seconds["int8_minmax_total"] = time.perf_counter() - start
        extra["accuracy"] = accuracy(
            {"float": float_model, "int8_refined": result.conversion.model, "int8_minmax": minmax}, val
        )
    return {
        "model": str(model),
        "kind": source.kind,
        "input": [source.height, source.width],
        "calibration_images": num_samples,
        "representative": representative,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "int8_bytes": len(model_bytes),
        "float_bytes": len(float_model),
        "int8_over_float": round(len(model_bytes) / len(float_model), 3),
        "int8_contents": size_breakdown(model_bytes),
        "ranges": {
            change.rule: {
                "recorded": [round(v, 3) for v in change.recorded],
                "chosen": [round(v, 3) for v in change.chosen],
            }
            for change in reversed(result.conversion.range_changes)
            if change.rule != "mse"
        },
        **extra,
        "cpus": os.cpu_count(),
        "machine": cpu_name(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="tflite_graph.pb or SavedModel folder")
    parser.add_argument("--representative", default="synth:300")
    parser.add_argument("--num-samples", type=int, default=300)
    parser.add_argument("--pipeline-config", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--val", default=None, help="labelled set: also compare float, int8 refined and int8 min/max mAP"
    )
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    result = measure(args.model, args.representative, args.num_samples, args.pipeline_config, args.seed, args.val)
    text = json.dumps(result, indent=2)
    if args.json:
        from ktp_tflite.train.atomic_files import atomic_write_bytes

        atomic_write_bytes(args.json, (text + "\n").encode())
    print(text)
    print(f"quantize end to end: {result['seconds']['quantize_end_to_end']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
