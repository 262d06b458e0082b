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
import tempfile
from pathlib import Path

import numpy as np

from ktp_tflite.convert.detector import TfliteDetector
from ktp_tflite.convert.tflite_model import ModelLoadError, TensorInfo, TfliteModel, parse_model
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP


class VerificationError(KtpError, RuntimeError):
    """The converted model is broken for its users; lists what failed."""


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """What ``ktpconvert inspect`` reports of a detector .tflite (JSON through ``to_dict``).

    The facts come from :class:`TfliteModel`; the output shapes are the
    interpreter's (the file leaves the post-process outputs' shapes to the
    runtime).
    """

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
        """Plain dict for JSON output (tensors as index, name, dtype, shape)."""
        data = dataclasses.asdict(self)
        data["input"] = self.input.summary()
        data["outputs"] = {role: tensor.summary() for role, tensor in self.outputs.items()}
        return data


def inspect_model(model: bytes | TfliteModel, source: str = "model") -> ModelReport:
    """Load ``model`` in the LiteRT interpreter and gather its facts.

    Raises:
      ModelLoadError: not loadable, or not an SSD with the post-process op.
    """
    tflite = model if isinstance(model, TfliteModel) else parse_model(model, source)
    detector = TfliteDetector(tflite)
    roles = tflite.detection_outputs()
    outputs = {}
    for role, tensor in roles.items():
        shape = tuple(int(d) for d in detector.interpreter.get_tensor(tensor.index).shape)
        outputs[role] = dataclasses.replace(tensor, shape=shape)
    by_index = {t.index: role for role, t in roles.items()}
    order = tuple(by_index.get(t.index, t.name) for t in tflite.outputs)
    signatures = collections.Counter(op.signature for op in tflite.ops)
    return ModelReport(
        source=tflite.source,
        size_bytes=tflite.size_bytes,
        input=tflite.input,
        input_quantization=tflite.input_quantization,
        outputs=outputs,
        output_order=order,
        op_counts=dict(sorted(collections.Counter(op.code for op in tflite.ops).items())),
        op_dtypes=[{"op": sig, "count": n} for sig, n in sorted(signatures.items())],
        float_compute_ops=[
            f"{op.signature} -> {op.outputs[0].name if op.outputs else '?'}" for op in tflite.float_compute_ops
        ],
        postprocess=tflite.postprocess_options,
        metadata=tflite.metadata_document(),
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
        problems.append(f"input shape is {list(report.input.shape)}, expected [1, {input_size[0]}, {input_size[1]}, 3]")
    if report.input.shape[-1:] != (3,):
        problems.append(f"input shape {list(report.input.shape)} is not [1, H, W, 3]")
    for role, tensor in report.outputs.items():
        if tensor.dtype != "float32":
            problems.append(f"output {role} ({tensor.name}) is {tensor.dtype}; outputs must stay float32")
    if report.op_counts.get(POSTPROCESS_OP, 0) != 1:
        problems.append(f"{report.op_counts.get(POSTPROCESS_OP, 0)} {POSTPROCESS_OP} ops, expected 1")
    float_ops = [
        op
        for op in report.float_compute_ops
        if not (kept_float and (op.split(" -> ")[-1] in kept_float or op.startswith(("QUANTIZE(", "DEQUANTIZE("))))
    ]
    if mode == "int8" and float_ops:
        problems.append(f"{len(float_ops)} op(s) compute in float in an int8 model: " + "; ".join(float_ops[:5]))
    if mode in ("float", "float16", "dynamic") and report.input.dtype != "float32":
        problems.append(f"{mode} model input is {report.input.dtype}, expected float32")
    if expect_metadata:
        if report.metadata is None:
            problems.append("no TFLite metadata (the Task Library and MediaPipe need it)")
        elif report.postprocess.get("num_classes") not in (None, len(report.metadata["labels"])):
            problems.append(f"{len(report.metadata['labels'])} labels for {report.postprocess['num_classes']} classes")
    return problems


@dataclasses.dataclass(frozen=True)
class TaskLibraryReport:
    """Task Library vs interpreter on the same rendered card, per class.

    ``agreement``: every app runtime against LiteRT on rendered photos
    (:func:`runtime_agreement`), filled in by :func:`verify_model`.
    """

    task_library_per_class: dict[str, int]
    interpreter_per_class: dict[str, int]
    num_detections: int
    problems: list[str]
    agreement: RuntimeAgreement | None = None

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dataclasses.asdict(self)


def run_task_library(model_path: str | Path, images: list[np.ndarray]) -> list[list[dict]]:
    """ObjectDetector detections per uint8 RGB image, from a subprocess without TensorFlow.

    Raises:
      VerificationError: the Task Library cannot load the model or crashed.
    """
    from ktp_tflite.convert.runtimes import RuntimeUnavailableError, run_probe

    try:
        return run_probe("task-library", model_path, images)
    except RuntimeUnavailableError as error:
        raise VerificationError(str(error)) from error


def task_library_check(model: bytes | TfliteModel, labels: list[str], seed: int = 0) -> TaskLibraryReport:
    """Run the Task Library and the interpreter on one rendered card; compare per class.

    The card is stretched to the model's input size first, so both see the
    same pixels. A problem is: no detection at all, or a class the
    interpreter finds that the Task Library never reports.
    """
    from ktp_tflite.train.preprocess import resize_rgb
    from ktp_tflite.train.synth import render_card

    detector = TfliteDetector(model)
    pixels = resize_rgb(render_card(seed, 0).image, detector.height, detector.width)
    detector.feed(pixels)
    raw = detector.raw()
    count = round(float(np.ravel(raw["count"])[0]))
    interpreter_classes = [round(float(c)) for c in raw["classes"][0][:count]]

    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.tflite"
        model_path.write_bytes(detector.model.data)
        detections = run_task_library(model_path, [pixels])[0]

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
    return TaskLibraryReport(
        dict(sorted(task_counts.items())), dict(sorted(interp_counts.items())), len(detections), problems
    )


OFFSET_WARN_PX = 1.0  # larger box offsets between runtimes are printed as warnings
AGREEMENT_SEEDS = (0, 1, 2)  # rendered photos of seed 7, as apps see them (not pre-resized)
AGREEMENT_MIN_SCORE = 0.3


@dataclasses.dataclass(frozen=True)
class RuntimeAgreement:
    """The same rendered photos through LiteRT, the Task Library and MediaPipe.

    ``max_offset_px[runtime]``: the largest difference, in photo pixels, of any
    box edge of the top detection of a class between that runtime and LiteRT
    (our resize, float boxes), as the runtime returned it (``returned``),
    after ktp-core's mapping (``ktp_core``, :func:`~ktp_tflite.convert.runtimes.photo_box`),
    and as android_demo runs it (``app``: the runtime handed a presized frame,
    :data:`~ktp_tflite.convert.runtimes.APP_PRESIZE`, ktp-core's mapping);
    ``*_mean_edges``: the mean signed offset of the top, left, bottom and right
    edges (the bias that ktp-core's mapping removes). Warnings are of the
    app's path beyond :data:`OFFSET_WARN_PX`.
    """

    photos: int
    photo_size: tuple[int, int]
    runtimes: tuple[str, ...]
    max_offset_px: dict[str, dict]
    missing: dict[str, list[str]]  # runtime -> classes LiteRT finds and it does not
    warnings: list[str]

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dataclasses.asdict(self)


def _top_boxes(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> dict[int, np.ndarray]:
    top: dict[int, tuple[float, np.ndarray]] = {}
    for box, cls, score in zip(boxes, classes, scores, strict=True):
        if score >= AGREEMENT_MIN_SCORE and (int(cls) not in top or score > top[int(cls)][0]):
            top[int(cls)] = (float(score), box)
    return {cls: box for cls, (_, box) in top.items()}


def runtime_agreement(model_path: str | Path, labels: list[str]) -> RuntimeAgreement:
    """Run rendered photos through every installed app runtime and LiteRT; measure box offsets.

    Raises:
      VerificationError: an installed runtime cannot load or run the model.
    """
    from ktp_tflite.convert.runtimes import APP_PRESIZE, RuntimeUnavailableError, detect_images, installed_runtimes
    from ktp_tflite.train.synth import render_card

    photos = [render_card(7, index).image for index in AGREEMENT_SEEDS]
    ids = [str(index) for index in AGREEMENT_SEEDS]
    height, width = photos[0].shape[:2]
    scale = np.array([height, width, height, width], dtype=np.float64)
    reference = detect_images("litert", model_path, photos, ids).returned
    runtimes = tuple(r for r in installed_runtimes() if r != "litert")
    offsets: dict[str, dict[str, float | list[float]]] = {}  # edge -> px; *_mean_edges -> 4 px
    missing: dict[str, list[str]] = {}
    warnings = []
    for runtime in runtimes:
        try:
            found = detect_images(runtime, model_path, photos, ids)
            presized = detect_images(runtime, model_path, photos, ids, presize=APP_PRESIZE)
        except RuntimeUnavailableError as error:
            raise VerificationError(str(error)) from error
        worst = {"returned": 0.0, "ktp_core": 0.0, "app": 0.0}
        edges: dict[str, list[np.ndarray]] = {"returned": [], "ktp_core": [], "app": []}
        lost: set[str] = set()
        for ours, returned, mapped, app in zip(reference, found.returned, found.app, presized.app, strict=True):
            want = _top_boxes(ours.boxes, ours.classes, ours.scores)
            for key, theirs in (("returned", returned), ("ktp_core", mapped), ("app", app)):
                got = _top_boxes(theirs.boxes, theirs.classes, theirs.scores)
                for cls, box in want.items():
                    if cls not in got:
                        lost.add(labels[cls] if 0 <= cls < len(labels) else f"class_{cls}")
                        continue
                    # LiteRT's detect() clips boxes to the photo; the runtimes do not
                    difference = (np.clip(got[cls], 0.0, 1.0) - box) * scale
                    worst[key] = max(worst[key], float(np.abs(difference).max()))
                    edges[key].append(difference)
        offsets[runtime] = {k: round(v, 2) for k, v in worst.items()}
        for key, found_edges in edges.items():
            # mean signed offset per edge (top, left, bottom, right): the bias ktp-core removes
            mean = np.mean(found_edges, axis=0) if found_edges else np.zeros(4)
            offsets[runtime][f"{key}_mean_edges"] = [round(float(v), 2) for v in mean]
        missing[runtime] = sorted(lost)
        if worst["app"] > OFFSET_WARN_PX:
            warnings.append(
                f"{runtime} boxes differ from LiteRT's by up to {worst['app']:.1f} px as android_demo runs it "
                f"(presized frame x{APP_PRESIZE}, ktp-core boxes; {worst['returned']:.1f} px as returned "
                f"for the photo) on {width}x{height} photos; see convert/RUNTIMES.md"
            )
        if lost:
            warnings.append(f"{runtime} does not find {', '.join(sorted(lost))} where LiteRT does")
    if "mediapipe" not in runtimes:
        warnings.append("mediapipe is not installed: MediaPipe Tasks not checked (pip install mediapipe==1.2.2)")
    return RuntimeAgreement(len(photos), (width, height), runtimes, offsets, missing, warnings)


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
        tflite = parse_model(model, source)
        report = inspect_model(tflite)
    except ModelLoadError as error:
        raise VerificationError(str(error)) from error
    problems = check_model(
        report,
        mode=mode,
        input_type=input_type,
        input_size=input_size,
        expect_metadata=task_library,
        kept_float=kept_float,
    )
    task_report = None
    if task_library and report.metadata is not None:
        task_report = task_library_check(tflite, report.metadata["labels"])
        problems.extend(task_report.problems)
        if not problems:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.tflite"
                path.write_bytes(model)
                task_report = dataclasses.replace(
                    task_report, agreement=runtime_agreement(path, report.metadata["labels"])
                )
    if problems:
        raise VerificationError(f"{source}: verification failed: " + "; ".join(problems))
    return report, task_report
