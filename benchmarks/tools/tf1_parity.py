r"""Check `import-tf1` against the TF1 OD API's own export of the same checkpoint.

Usage::

    python -m ktp_tflite.benchmarks.tools.tf1_parity --checkpoint path/model.ckpt-N \
        --pipeline-config path/pipeline.config --tflite-graph path/tflite_graph.pb \
        [--images DATA | --images synth:20] [--tolerance 1e-4] [--json OUT]

``tflite_graph.pb`` is what ``object_detection/export_tflite_ssd_graph.py``
(TF 1.15) wrote for that checkpoint and config. Both sides become float
.tflite files: ours through ``import_checkpoint`` and the export of
``ktpconvert export`` (same post-process settings as the TF1 graph), theirs
through the flow of ``ktpconvert quantize --mode float``
(:func:`~ktp_tflite.convert.quantize_flow.quantize_detector`, without
metadata). Each image then runs through both, and the raw outputs, the two
tensors the post-process op reads (box codes [1, anchors, 4] and sigmoid
scores [1, anchors, classes + 1]), are compared element by element; the
detections after the op too. The issue's
bar: raw boxes and scores equal to 1e-4. Exit code 0 when every image is
within ``--tolerance``, 1 otherwise; one JSON document on stdout. No image
content goes into the output.

This needs a TF1 checkpoint and its tflite_graph.pb, which cannot be made in
this project's environment (no TF 1.15); ``compare_raw_outputs`` is tested on
graphs the tests build.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def _interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _raw_tensor_indices(model: bytes) -> tuple[int, int]:
    """(box codes, scores): the first two inputs of the post-process op."""
    from ktp_tflite.convert.detector import POSTPROCESS_OP, read_ops

    post = [op for op in read_ops(model) if op.code == POSTPROCESS_OP]
    if len(post) != 1:
        raise ValueError(f"model has {len(post)} {POSTPROCESS_OP} ops, expected 1")
    return post[0].inputs[0].index, post[0].inputs[1].index


def _run(interpreter, raw: tuple[int, int], image: np.ndarray) -> dict[str, np.ndarray]:
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
    interpreter.invoke()
    out = {"box_codes": interpreter.get_tensor(raw[0]).copy(), "scores": interpreter.get_tensor(raw[1]).copy()}
    for position, output in enumerate(interpreter.get_output_details()):
        out[f"output_{position}"] = interpreter.get_tensor(output["index"]).copy()
    return out


def compare_raw_outputs(model_a: bytes, model_b: bytes, images: list[np.ndarray]) -> dict:
    """Largest absolute differences between two SSD .tflite models on ``images``.

    Both models must take the same float input and hold one post-process op.
    Detections (outputs after the op) are compared by the op's output order
    (boxes, classes, scores, count), which both TF1 and our exports keep.

    Returns:
      {"images": n, "box_codes": max |a - b|, "scores": ..., "detections": ...,
      "shapes": ...}; a shape mismatch is reported instead of differences.
    """
    a, b = _interpreter(model_a), _interpreter(model_b)
    raw_a, raw_b = _raw_tensor_indices(model_a), _raw_tensor_indices(model_b)
    worst = {"box_codes": 0.0, "scores": 0.0, "detections": 0.0}
    for image in images:
        out_a, out_b = _run(a, raw_a, image), _run(b, raw_b, image)
        for key in ("box_codes", "scores"):
            if out_a[key].shape != out_b[key].shape:
                return {"images": len(images), "shapes": {key: [list(out_a[key].shape), list(out_b[key].shape)]}}
            worst[key] = max(worst[key], float(np.abs(out_a[key] - out_b[key]).max()))
        for key in sorted(k for k in out_a if k.startswith("output_")):
            if key in out_b and out_a[key].shape == out_b[key].shape:
                worst["detections"] = max(worst["detections"], float(np.abs(out_a[key] - out_b[key]).max()))
    return {"images": len(images), **worst}


def _our_tflite(checkpoint: str, pipeline_config: Path, source, work: Path) -> bytes:
    """import-tf1 + export with the TF1 graph's post-process settings."""
    from ktp_tflite.train.export import ExportConfig, float_tflite, save_serving
    from ktp_tflite.train.run_folder import ExportFolder
    from ktp_tflite.train.tf1_import import import_checkpoint
    from ktp_tflite.train.trainer import restore_model

    import_checkpoint(checkpoint, pipeline_config, work / "run")
    config, model = restore_model(work / "run")
    post = source.postprocess
    export = ExportConfig(
        max_detections=int(post["max_detections"]),
        score_threshold=float(post["nms_score_threshold"]),
        iou_threshold=float(post["nms_iou_threshold"]),
        max_classes_per_detection=int(post.get("max_classes_per_detection", 1)),
        detections_per_class=int(post.get("detections_per_class", 100)),
        use_regular_nms=bool(post.get("use_regular_nms", False)),
    )
    return float_tflite(save_serving(model, config.model, export, ExportFolder(work).saved_model))


def _images(spec: str, count: int, height: int, width: int) -> list[np.ndarray]:
    from ktp_tflite.convert.representative import calibration_inputs, load_representative

    samples = calibration_inputs(load_representative(spec, count), height, width, progress=False)
    return [inputs[0] for inputs in samples()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="TF1 checkpoint prefix (model.ckpt-N)")
    parser.add_argument("--pipeline-config", type=Path, required=True)
    parser.add_argument(
        "--tflite-graph",
        type=Path,
        required=True,
        help="tflite_graph.pb from export_tflite_ssd_graph.py for that checkpoint",
    )
    parser.add_argument("--images", default="synth:20", help="data set or synth:N")
    parser.add_argument("--count", type=int, default=20, help="images to compare")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)

    from ktp_tflite.convert.quantize import QuantizeConfig
    from ktp_tflite.convert.quantize_flow import quantize_detector

    # The graph's own post-process attrs on both sides (no pipeline.config
    # overrides): the raw outputs do not depend on them, the detections do.
    converted = quantize_detector(args.tflite_graph, QuantizeConfig(mode="float"))
    source, theirs = converted.source, converted.model
    with tempfile.TemporaryDirectory() as folder:
        ours = _our_tflite(args.checkpoint, args.pipeline_config, source, Path(folder))
    images = _images(args.images, args.count, source.height, source.width)
    result = compare_raw_outputs(ours, theirs, images)
    result["tolerance"] = args.tolerance
    result["equal"] = (
        "shapes" not in result and result["box_codes"] <= args.tolerance and result["scores"] <= args.tolerance
    )
    text = json.dumps(result, indent=2)
    if args.json:
        from ktp_tflite.train.atomic_files import atomic_write_bytes

        atomic_write_bytes(args.json, (text + "\n").encode())
    print(text)
    return 0 if result["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
