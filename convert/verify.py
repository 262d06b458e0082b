"""Check a converted detector the way its users will load it.

:func:`inspect_model` gathers the facts (input dtype/shape and quantization,
the four outputs bound through the post-process op, op-by-op dtypes,
metadata); :func:`check_model` turns them into problems for a conversion
mode; :func:`task_library_check` runs the TFLite Task Library's
ObjectDetector on a rendered card in a subprocess (tflite-support's task
bindings crash in a process that imported TensorFlow) and compares it with
the interpreter, class by class (the Task Library once dropped a whole class
with ``use_regular_nms=true``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ktp_tflite.convert.detector import (
    POSTPROCESS_OP,
    ModelLoadError,
    OpInfo,
    TensorInfo,
    TfliteDetector,
    postprocess_outputs,
    read_ops,
)
from ktp_tflite.train.errors import KtpError

INT8_TENSOR_TYPES = ("int8", "int32")  # int32: biases and shapes
PROBE_TIMEOUT_S = 120


class VerificationError(KtpError, RuntimeError):
    """The converted model is broken for its users; lists what failed."""


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """Facts about a detector .tflite (all JSON-ready through ``to_dict``)."""

    source: str
    size_bytes: int
    input: TensorInfo
    input_quantization: tuple[float, int]
    outputs: dict[str, TensorInfo]
    output_order: tuple[str, ...]
    op_counts: dict[str, int]
    op_dtypes: list[dict]
    float_compute_ops: list[str]
    postprocess: dict
    metadata: dict | None

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dataclasses.asdict(self)


def _signature(op: OpInfo) -> str:
    ins = ",".join(t.dtype for t in op.inputs)
    outs = ",".join(t.dtype for t in op.outputs)
    return f"{op.code}({ins})->({outs})"


def _float_compute_ops(ops: list[OpInfo]) -> list[str]:
    """Ops that compute in float, except the post-process op and the DEQUANTIZE ops feeding it."""
    post_inputs = {t.index for op in ops if op.code == POSTPROCESS_OP for t in op.inputs}
    consumers: dict[int, set[str]] = collections.defaultdict(set)
    for op in ops:
        for t in op.inputs:
            consumers[t.index].add(op.code)
    found = []
    for op in ops:
        if op.code == POSTPROCESS_OP:
            continue
        if op.code == "DEQUANTIZE" and all(t.index in post_inputs for t in op.outputs):
            continue
        if op.code == "QUANTIZE" and all(t.dtype in INT8_TENSOR_TYPES for t in op.outputs):
            continue  # float/uint8 input -> int8
        if any(t.dtype not in INT8_TENSOR_TYPES for t in (*op.inputs, *op.outputs)):
            found.append(f"{_signature(op)} -> {op.outputs[0].name if op.outputs else '?'}")
    return found


def inspect_model(model: bytes, source: str = "model") -> ModelReport:
    """Load ``model`` in the LiteRT interpreter and gather its facts.

    Raises:
      ModelLoadError: not loadable, or not an SSD with the post-process op.
    """
    ops = read_ops(model, source)
    detector = TfliteDetector(model, source)
    roles = postprocess_outputs(ops, source)
    details = detector.interpreter.get_input_details()[0]
    input_info = TensorInfo(
        int(details["index"]), details["name"], np.dtype(details["dtype"]).name,
        tuple(int(d) for d in details["shape"]),
    )
    outputs = {}
    for role, tensor in roles.items():
        shape = tuple(int(d) for d in detector.interpreter.get_tensor(tensor.index).shape)
        outputs[role] = dataclasses.replace(tensor, shape=shape)
    by_index = {t.index: role for role, t in roles.items()}
    order = tuple(by_index[d["index"]] for d in detector.interpreter.get_output_details())
    signatures = collections.Counter(_signature(op) for op in ops)
    postprocess = next(op.options for op in ops if op.code == POSTPROCESS_OP)
    metadata = None
    try:
        from ktp_tflite.convert.metadata import read_metadata

        metadata = read_metadata(model)
    except KtpError:
        metadata = None
    return ModelReport(
        source=source,
        size_bytes=len(model),
        input=input_info,
        input_quantization=(float(details["quantization"][0]), int(details["quantization"][1])),
        outputs=outputs,
        output_order=order,
        op_counts=dict(sorted(collections.Counter(op.code for op in ops).items())),
        op_dtypes=[{"op": sig, "count": n} for sig, n in sorted(signatures.items())],
        float_compute_ops=_float_compute_ops(ops),
        postprocess={k: v for k, v in sorted(postprocess.items())},
        metadata=metadata,
    )


def check_model(
    report: ModelReport,
    *,
    mode: str | None = None,
    input_type: str | None = None,
    input_size: tuple[int, int] | None = None,
    expect_metadata: bool = False,
    kept_float: tuple[str, ...] = (),
) -> list[str]:
    """Problems of ``report`` for what the conversion asked; empty when fine.

    ``kept_float`` layers (and the QUANTIZE/DEQUANTIZE ops around them) may
    compute in float in an int8 model.
    """
    problems = []
    if input_type is not None and report.input.dtype != input_type:
        problems.append(f"input dtype is {report.input.dtype}, asked {input_type}")
    if input_size is not None and report.input.shape[1:3] != input_size:
        problems.append(f"input shape is {list(report.input.shape)}, "
                        f"expected [1, {input_size[0]}, {input_size[1]}, 3]")
    if report.input.shape[-1:] != (3,):
        problems.append(f"input shape {list(report.input.shape)} is not [1, H, W, 3]")
    for role, tensor in report.outputs.items():
        if tensor.dtype != "float32":
            problems.append(f"output {role} ({tensor.name}) is {tensor.dtype}; outputs must stay float32")
    if report.op_counts.get(POSTPROCESS_OP, 0) != 1:
        problems.append(f"{report.op_counts.get(POSTPROCESS_OP, 0)} {POSTPROCESS_OP} ops, expected 1")
    float_ops = [
        op for op in report.float_compute_ops
        if not (kept_float and (op.split(" -> ")[-1] in kept_float
                                or op.startswith(("QUANTIZE(", "DEQUANTIZE("))))
    ]
    if mode == "int8" and float_ops:
        problems.append(
            f"{len(float_ops)} op(s) compute in float in an int8 model: " + "; ".join(float_ops[:5])
        )
    if mode in ("float", "float16", "dynamic") and report.input.dtype != "float32":
        problems.append(f"{mode} model input is {report.input.dtype}, expected float32")
    if expect_metadata:
        if report.metadata is None:
            problems.append("no TFLite metadata (the Task Library and MediaPipe need it)")
        elif report.postprocess.get("num_classes") not in (None, len(report.metadata["labels"])):
            problems.append(
                f"{len(report.metadata['labels'])} labels for {report.postprocess['num_classes']} classes"
            )
    return problems


@dataclasses.dataclass(frozen=True)
class TaskLibraryReport:
    """Task Library vs interpreter on the same rendered card, per class."""

    task_library_per_class: dict[str, int]
    interpreter_per_class: dict[str, int]
    num_detections: int
    problems: list[str]

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dataclasses.asdict(self)


def run_task_library(model_path: str | Path, image_paths: list[str | Path]) -> list[list[dict]]:
    """ObjectDetector detections per image, from a subprocess without TensorFlow.

    Raises:
      VerificationError: the Task Library cannot load the model or crashed.
    """
    command = [sys.executable, "-m", "ktp_tflite.convert.task_library_probe", str(model_path),
               *(str(p) for p in image_paths)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired as error:
        raise VerificationError(f"{model_path}: Task Library probe timed out") from error
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise VerificationError(
            f"{model_path}: Task Library probe crashed (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}"
        )
    result = json.loads(lines[-1])
    if "error" in result:
        raise VerificationError(f"{model_path}: the Task Library cannot use the model: {result['error']}")
    return [image["detections"] for image in result["images"]]


def task_library_check(model: bytes, labels: list[str], seed: int = 0) -> TaskLibraryReport:
    """Run the Task Library and the interpreter on one rendered card; compare per class.

    The card is stretched to the model's input size first, so both see the
    same pixels. A problem is: no detection at all, or a class the
    interpreter finds that the Task Library never reports.
    """
    from PIL import Image

    from ktp_tflite.train.preprocess import resize_rgb
    from ktp_tflite.train.synth import render_card

    detector = TfliteDetector(model, "model")
    pixels = resize_rgb(render_card(seed, 0).image, detector.height, detector.width)
    detector.feed(pixels)
    raw = detector.raw()
    count = int(round(float(np.ravel(raw["count"])[0])))
    interpreter_classes = [int(round(c)) for c in raw["classes"][0][:count]]

    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.tflite"
        model_path.write_bytes(model)
        image_path = Path(folder) / "card.png"
        Image.fromarray(pixels).save(image_path)
        detections = run_task_library(model_path, [image_path])[0]

    def name(index: int) -> str:
        return labels[index] if 0 <= index < len(labels) else f"class_{index}"

    task_counts = collections.Counter(name(d["index"]) for d in detections)
    interp_counts = collections.Counter(name(c) for c in interpreter_classes)
    problems = []
    if not detections:
        problems.append("the Task Library returned no detection on a rendered card")
    missing = sorted(set(interp_counts) - set(task_counts))
    if missing:
        problems.append(
            f"the Task Library drops class(es) {', '.join(missing)} that the interpreter detects "
            "(seen with use_regular_nms=true; export with fast NMS)"
        )
    return TaskLibraryReport(dict(sorted(task_counts.items())), dict(sorted(interp_counts.items())),
                             len(detections), problems)


def verify_model(
    model: bytes,
    *,
    source: str = "model",
    mode: str | None = None,
    input_type: str | None = None,
    input_size: tuple[int, int] | None = None,
    task_library: bool = True,
    kept_float: tuple[str, ...] = (),
) -> tuple[ModelReport, TaskLibraryReport | None]:
    """Inspect, check and (with metadata) run the Task Library; raise when broken.

    Raises:
      VerificationError: listing every problem found.
    """
    try:
        report = inspect_model(model, source)
    except ModelLoadError as error:
        raise VerificationError(str(error)) from error
    problems = check_model(report, mode=mode, input_type=input_type, input_size=input_size,
                           expect_metadata=task_library, kept_float=kept_float)
    task_report = None
    if task_library and report.metadata is not None:
        task_report = task_library_check(model, report.metadata["labels"])
        problems.extend(task_report.problems)
    if problems:
        raise VerificationError(f"{source}: verification failed: " + "; ".join(problems))
    return report, task_report
