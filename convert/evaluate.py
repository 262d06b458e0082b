"""Accuracy of .tflite detectors on a labelled set, through the runtimes apps use.

Each model runs through each runtime of :mod:`ktp_tflite.convert.runtimes`
(LiteRT fed by this toolkit, the TFLite Task Library, MediaPipe Tasks) on
every image, with the boxes taken exactly as the runtime returns them; COCO
metrics come from :mod:`ktp_tflite.train.coco_eval`. Within each runtime the
first float model is the baseline and every other model's drop is reported
in points (1 point = 0.01 mAP); each runtime's gap to LiteRT is reported for
the same model. Beside mAP, :func:`cards_read`: the share of images whose
five fields are all found (the box of each field a scan and the app keep,
:func:`card_boxes`: the app's score threshold, the card fit, one box per
field; at IoU >= 0.5, and >= 0.7, with that field's ground-truth box), overall and by card
width (from the ground-truth boxes through
:func:`ktp_tflite.train.card_layout.card_width_fraction`). With ``zoom``,
every model runs the two-pass zoom of :mod:`ktp_tflite.convert.zoom` through
its runtime (the crops go through the runtime as photos of their own) and
every metric is of the final detections. Reports hold metrics and counts
only: no image content, file names or field text.

Why one file: one evaluation flow (run each model through each runtime, score, compare)
whose report every runtime shares; the cards-read metric could move to its own module.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.fields import DEFAULT_THRESHOLD, iou, select_fields
from ktp_tflite.convert.runtimes import RUNTIMES, detect_images
from ktp_tflite.convert.zoom import ZoomSettings, crop_image, finish, plan_crop
from ktp_tflite.train.card_layout import card_width_fraction
from ktp_tflite.train.coco_eval import CocoMetrics, Detections, coco_metrics
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Dataset


class EvaluateError(KtpError, ValueError):
    """The models or the data cannot be evaluated together."""


CARDS_READ_IOUS = (0.5, 0.7)
# Card width / frame width bins: (key, low, high), low inclusive.
CARD_WIDTH_BINS = (("under_45", 0.0, 0.45), ("45_to_65", 0.45, 0.65), ("65_and_over", 0.65, float("inf")))


@dataclasses.dataclass(frozen=True)
class CardsRead:
    """Share of images whose every field is found, overall and by card width.

    ``images[bin]``: images in the bin ("all" and the keys of
    :data:`CARD_WIDTH_BINS`); ``read[iou][bin]``: the share read at that IoU
    (as a string, "0.5" and "0.7"), None for an empty bin.
    """

    images: dict[str, int]
    read: dict[str, dict[str, float | None]]

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {"num_images": self.images, "read": self.read}


def cards_read(
    dataset: Dataset, detections: Sequence[Detections], ious: Sequence[float] = CARDS_READ_IOUS
) -> CardsRead:
    """Cards read of ``detections`` on ``dataset`` (module docstring).

    An image counts when, for every class with a ground-truth box on it, the
    field's :func:`card_boxes` box (the app's) overlaps one of its boxes at
    IoU >= the threshold. Images without boxes are left out. The card width
    bin comes from the ground-truth field boxes.

    Raises:
      EvaluateError: detections of an image that is not in ``dataset``.
    """
    by_id = {d.image_id: d for d in detections}
    unknown = set(by_id) - {e.image_id for e in dataset.examples}
    if unknown:
        raise EvaluateError(
            f"detections for {len(unknown)} image(s) not in {dataset.source}, e.g. {sorted(unknown)[0]!r}"
        )
    keys = ["all"] + [key for key, _, _ in CARD_WIDTH_BINS]
    images = dict.fromkeys(keys, 0)
    hits = {f"{t:g}": dict.fromkeys(keys, 0) for t in ious}
    for example in dataset.examples:
        if not example.boxes:
            continue
        fields = {b.label: b.to_pixels(example.width, example.height) for b in example.boxes}
        fraction = card_width_fraction(fields, example.width)
        width_bin = next(key for key, low, high in CARD_WIDTH_BINS if low <= fraction < high)
        best = card_boxes(by_id.get(example.image_id), example.width, example.height)
        overlap = {}
        for label in {b.label for b in example.boxes}:
            found = best.get(label)
            overlap[label] = (
                0.0
                if found is None
                else max(iou(found, (b.ymin, b.xmin, b.ymax, b.xmax)) for b in example.boxes if b.label == label)
            )
        for key in ("all", width_bin):
            images[key] += 1
            for t in ious:
                hits[f"{t:g}"][key] += all(v >= t for v in overlap.values())
    read = {
        t: {key: (count / images[key] if images[key] else None) for key, count in per_bin.items()}
        for t, per_bin in hits.items()
    }
    return CardsRead(images=images, read=read)


def card_boxes(
    found: Detections | None, width: int, height: int, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, tuple[float, float, float, float]]:
    """Each field's (ymin, xmin, ymax, xmax) as a scan and the app keep it, at the app's default threshold.

    :func:`ktp_tflite.convert.fields.select_fields` on the detections (the
    ``width`` x ``height`` photo; scores under ``threshold`` are no field, the
    card fit picks among the rest, two fields may not claim one box). Classes
    outside ``CLASSES`` are ignored.
    """
    if found is None:
        return {}
    boxes = np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4)
    result = select_fields(
        boxes,
        np.asarray(found.classes, dtype=np.float64),
        np.asarray(found.scores, dtype=np.float64),
        len(boxes),
        CLASSES,
        sensor_width=width,
        sensor_height=height,
        threshold=threshold,
    )
    return {field.label: field.box_model for field in result.fields}


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """One model's metrics through one runtime."""

    model: str
    runtime: str
    precision: str  # "int8" when no op computes in float, else "float"
    input_dtype: str
    size_bytes: int
    metrics: CocoMetrics  # boxes exactly as the runtime returned them
    app_metrics: CocoMetrics  # boxes mapped as ktp-core maps them (runtimes.photo_box)
    cards_read: CardsRead  # of the returned boxes
    app_cards_read: CardsRead  # of the ktp-core boxes
    second_pass_share: float | None = None  # share of images zoomed (None without zoom)

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {
            **dataclasses.asdict(self),
            "metrics": self.metrics.to_dict(),
            "app_metrics": self.app_metrics.to_dict(),
            "cards_read": self.cards_read.to_dict(),
            "app_cards_read": self.app_cards_read.to_dict(),
        }


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """All models x runtimes on one data set, with drops in points.

    ``drops[runtime][model]``: the model's drop versus the baseline (the
    first float model) in the same runtime. ``runtime_gaps[runtime][model]``:
    LiteRT's metric minus this runtime's, same model.
    """

    data: str
    num_images: int
    num_boxes: int
    baseline: str
    runtimes: tuple[str, ...]
    models: list[ModelEvaluation]
    drops: dict[str, dict[str, dict[str, float]]]
    runtime_gaps: dict[str, dict[str, dict[str, float]]]
    zoom: ZoomSettings | None = None
    presize: int | None = None  # the Task Library and MediaPipe were handed pre-sized frames of this factor

    def max_map_drop(self) -> float:
        """Largest mAP@[.5:.95] drop (points) of any model versus the baseline, in any runtime."""
        return max((d["map"] for per_model in self.drops.values() for d in per_model.values()), default=0.0)

    def worst_runtime(self) -> str:
        """The runtime where some model's drop is largest (the first runtime when none drops)."""
        drops = {r: max((d["map"] for d in per_model.values()), default=0.0) for r, per_model in self.drops.items()}
        return max(self.runtimes, key=lambda r: drops.get(r, 0.0))

    def to_dict(self) -> dict:
        """Plain dict for JSON output; each entry of ``models`` names its runtime."""
        return {
            "data": self.data,
            "num_images": self.num_images,
            "num_boxes": self.num_boxes,
            "baseline": self.baseline,
            "runtimes": list(self.runtimes),
            "models": [m.to_dict() for m in self.models],
            "drops_points": self.drops,
            "runtime_gaps_points": self.runtime_gaps,
            "zoom": None if self.zoom is None else dataclasses.asdict(self.zoom),
            "presize": self.presize,
        }


def _points(better: CocoMetrics, worse: CocoMetrics) -> dict[str, float]:
    return {
        "map": round(100 * (better.map - worse.map), 3),
        "map50": round(100 * (better.map50 - worse.map50), 3),
        "map75": round(100 * (better.map75 - worse.map75), 3),
    }


EVAL_CHUNK = 100  # images decoded and sent to a runtime at a time


@dataclasses.dataclass(frozen=True)
class ChunkDetections:
    """Detections of a chunk of images: as the runtime returned them, through ktp-core, second passes run."""

    returned: list[Detections]
    app: list[Detections]
    second_passes: int


def detect_chunk(
    runtime: str,
    path: Path,
    images: Sequence[np.ndarray],
    ids: Sequence[str],
    zoom: ZoomSettings | None = None,
    presize: int | None = None,
) -> ChunkDetections:
    """One chunk of images through ``runtime``, with the two-pass zoom when ``zoom`` is given.

    ``presize``: whole-pixel runtimes are handed pre-sized frames
    (:func:`ktp_tflite.convert.runtimes.presized_frame`), in both passes.

    With ``zoom``, pass 1 runs through the runtime, the crops are planned from
    pass 1's ktp-core boxes (what the app sees), pass 2 runs through the same
    runtime on the crops, and both box views are mapped back
    (:mod:`ktp_tflite.convert.zoom`).
    """
    found = detect_images(runtime, path, images, ids, presize=presize)
    if zoom is None:
        return ChunkDetections(list(found.returned), list(found.app), 0)
    sizes = [(image.shape[1], image.shape[0]) for image in images]
    crops = [plan_crop(first, size, zoom) for first, size in zip(found.app, sizes, strict=True)]
    planned = [(i, crop) for i, crop in enumerate(crops) if crop is not None]
    todo = [i for i, _ in planned]
    second = (
        detect_images(
            runtime,
            path,
            [crop_image(images[i], crop) for i, crop in planned],
            [ids[i] for i in todo],
            presize=presize,
        )
        if planned
        else None
    )
    second_returned = dict(zip(todo, second.returned if second else [], strict=True))
    second_app = dict(zip(todo, second.app if second else [], strict=True))
    returned, app = [], []
    for i, size in enumerate(sizes):
        returned.append(finish(found.returned[i], second_returned.get(i), crops[i], size, zoom).detections)
        app.append(finish(found.app[i], second_app.get(i), crops[i], size, zoom).detections)
    return ChunkDetections(returned, app, len(planned))


def detect_in_chunks(
    runtime: str,
    path: Path,
    examples: Sequence,
    zoom: ZoomSettings | None,
    label: str,
    progress: bool = True,
    presize: int | None = None,
):
    """Yield (examples, their RGB images, :class:`ChunkDetections`) chunk by chunk, with a progress bar."""
    import click

    chunks = range(0, len(examples), EVAL_CHUNK)
    with click.progressbar(chunks, label=label, file=sys.stderr, hidden=not progress) as starts:
        for start in starts:
            chunk = examples[start : start + EVAL_CHUNK]
            images = [e.load_rgb() for e in chunk]
            yield chunk, images, detect_chunk(runtime, path, images, [e.image_id for e in chunk], zoom, presize)


def evaluate_model(
    model_path: str | Path,
    dataset: Dataset,
    runtime: str = "litert",
    *,
    progress: bool = True,
    zoom: ZoomSettings | None = None,
    presize: int | None = None,
) -> ModelEvaluation:
    """Run one .tflite through ``runtime`` over ``dataset``: COCO metrics and cards read.

    With ``zoom``, each chunk of images runs through :func:`detect_chunk`'s two passes;
    with ``presize``, a whole-pixel runtime is handed pre-sized frames.

    Raises:
      ModelLoadError: the file is not a loadable SSD detector.
      RuntimeUnavailableError: the runtime is missing or cannot run the model.
      DatasetError: an image cannot be decoded.
    """
    from ktp_tflite.convert.scan import bind_outputs, check_field_labels
    from ktp_tflite.convert.tflite_model import read_model

    path = Path(model_path)
    model = read_model(path)
    check_field_labels(bind_outputs(model))
    examples = dataset.examples
    returned, app = [], []
    zoomed = 0
    label = f"evaluating {path.name} ({runtime}{', zoom' if zoom else ''})"
    for _, _, found in detect_in_chunks(runtime, path, examples, zoom, label, progress, presize):
        returned.extend(found.returned)
        app.extend(found.app)
        zoomed += found.second_passes
    return ModelEvaluation(
        model=str(path),
        runtime=runtime,
        precision=model.precision,
        input_dtype=model.input.dtype,
        size_bytes=model.size_bytes,
        metrics=coco_metrics(dataset, returned),
        app_metrics=coco_metrics(dataset, app),
        cards_read=cards_read(dataset, returned),
        app_cards_read=cards_read(dataset, app),
        second_pass_share=None if zoom is None else zoomed / max(1, len(examples)),
    )


def evaluate_models(
    model_paths: list[str | Path],
    dataset: Dataset,
    runtimes: tuple[str, ...] = ("litert",),
    *,
    progress: bool = True,
    zoom: ZoomSettings | None = None,
    presize: int | None = None,
) -> EvaluationReport:
    """Evaluate every model through every runtime; the first float model is each runtime's baseline.

    ``zoom``: run the two-pass zoom (:func:`evaluate_model`) with these settings.
    ``presize``: hand the Task Library and MediaPipe pre-sized frames of this factor.

    Raises:
      EvaluateError: no model or runtime, or a data set without labelled boxes.
    """
    if not model_paths:
        raise EvaluateError("no model to evaluate")
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if not runtimes or unknown:
        raise EvaluateError(f"unknown runtime(s) {', '.join(unknown) or '(none)'}; use {', '.join(RUNTIMES)}")
    if not any(example.boxes for example in dataset.examples):
        raise EvaluateError(
            f"{dataset.source}: no labelled boxes; evaluation needs a labelled set "
            "(TFRecord, COCO or VOC), not a plain image folder"
        )
    results = [
        evaluate_model(path, dataset, runtime, progress=progress, zoom=zoom, presize=presize)
        for runtime in runtimes
        for path in model_paths
    ]
    first_float = next((r.model for r in results if r.precision == "float"), results[0].model)
    by_key = {(r.runtime, r.model): r for r in results}
    drops = {
        runtime: {
            str(path): _points(by_key[(runtime, first_float)].metrics, by_key[(runtime, str(path))].metrics)
            for path in model_paths
            if str(path) != first_float
        }
        for runtime in runtimes
    }
    gaps = {
        runtime: {
            str(path): _points(by_key[("litert", str(path))].metrics, by_key[(runtime, str(path))].metrics)
            for path in model_paths
        }
        for runtime in runtimes
        if runtime != "litert" and "litert" in runtimes
    }
    return EvaluationReport(
        data=dataset.source,
        num_images=len(dataset),
        num_boxes=sum(len(e.boxes) for e in dataset.examples),
        baseline=first_float,
        runtimes=tuple(runtimes),
        models=results,
        drops=drops,
        runtime_gaps=gaps,
        zoom=zoom,
        presize=presize,
    )


def format_table(report: EvaluationReport) -> str:
    """Side-by-side table: one column per model x runtime, drops versus each runtime's baseline."""
    names = [f"{Path(m.model).name} {m.runtime}" for m in report.models]
    width = max(12, *(len(n) for n in names))
    rows = [
        ("", names),
        ("precision", [m.precision for m in report.models]),
        ("input", [m.input_dtype for m in report.models]),
        ("size (KB)", [f"{m.size_bytes / 1024:.1f}" for m in report.models]),
    ]

    def metric(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    rows.append(("mAP@[.5:.95]", [metric(m.metrics.map) for m in report.models]))
    rows.append(("mAP@.5", [metric(m.metrics.map50) for m in report.models]))
    rows.append(("mAP@.75", [metric(m.metrics.map75) for m in report.models]))
    rows.append(("mAP, ktp-core boxes", [metric(m.app_metrics.map) for m in report.models]))
    for name in report.models[0].metrics.per_class_ap50:
        rows.append((f"AP@.5 {name}", [metric(m.metrics.per_class_ap50[name]) for m in report.models]))
    bin_names = {"all": "", "under_45": " <45%", "45_to_65": " 45-65%", "65_and_over": " >=65%"}
    for threshold in (f"{t:g}" for t in CARDS_READ_IOUS):
        short = threshold.lstrip("0")
        for key, name in bin_names.items():
            rows.append(
                (f"cards read@{short}{name}", [metric(m.cards_read.read[threshold][key]) for m in report.models])
            )
        rows.append(
            (f"cards read@{short} ktp-core", [metric(m.app_cards_read.read[threshold]["all"]) for m in report.models])
        )
    counts = report.models[0].cards_read.images
    if report.zoom is not None:
        rows.append(("second pass (% images)", [metric(m.second_pass_share) for m in report.models]))
    for key, label in (("map", "drop mAP"), ("map50", "drop mAP@.5")):
        rows.append(
            (
                label,
                [
                    "baseline" if m.model == report.baseline else f"{report.drops[m.runtime][m.model][key]:+.2f}"
                    for m in report.models
                ],
            )
        )
    if report.runtime_gaps:
        rows.append(
            (
                "below LiteRT mAP",
                [
                    f"{report.runtime_gaps[m.runtime][m.model]['map']:+.2f}"
                    if m.runtime in report.runtime_gaps
                    else "-"
                    for m in report.models
                ],
            )
        )
    zoom = (
        ""
        if report.zoom is None
        else f"; two-pass zoom for cards under {100 * report.zoom.threshold:g} % of the frame width"
    )
    if report.presize:
        zoom += f"; Task Library and MediaPipe handed pre-sized frames (x{report.presize})"
    lines = [
        (
            f"{report.num_images} images, {report.num_boxes} boxes; metrics in points (x100); "
            f"boxes as each runtime returns them{zoom}"
        ),
        (
            "cards read: % of images with all fields found (the app's box per field at IoU >= 0.5 / 0.7); "
            f"card width bins <45% / 45-65% / >=65%: {counts['under_45']} / {counts['45_to_65']} / "
            f"{counts['65_and_over']} images"
        ),
    ]
    for label, cells in rows:
        lines.append(f"{label:<26}" + "".join(f"{c:>{width + 2}}" for c in cells))
    return "\n".join(lines)
