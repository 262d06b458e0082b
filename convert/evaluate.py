"""Accuracy of .tflite detectors on a labelled set, and what quantization cost.

Each model runs in the LiteRT interpreter on every image (stretched to its
input size, as apps feed it); COCO metrics come from
:mod:`ktp_tflite.train.coco_eval`. The first float model is the baseline;
every other model's drop is reported in points (1 point = 0.01 mAP).
Reports hold metrics and counts only: no image content, file names or
field text.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ktp_tflite.convert.detector import TfliteDetector
from ktp_tflite.train.coco_eval import CocoMetrics, coco_metrics
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.records import Dataset


class EvaluateError(KtpError, ValueError):
    """The models or the data cannot be evaluated together."""


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """One model's metrics."""

    model: str
    precision: str  # "int8" when no op computes in float, else "float"
    input_dtype: str
    size_bytes: int
    metrics: CocoMetrics

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {**dataclasses.asdict(self), "metrics": self.metrics.to_dict()}


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """All models on one data set, with drops versus the baseline in points."""

    data: str
    num_images: int
    num_boxes: int
    baseline: str
    models: list[ModelEvaluation]
    drops: dict[str, dict[str, float]]

    def max_map_drop(self) -> float:
        """Largest mAP@[.5:.95] drop (points) of any model versus the baseline."""
        return max((d["map"] for d in self.drops.values()), default=0.0)

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {
            "data": self.data, "num_images": self.num_images, "num_boxes": self.num_boxes,
            "baseline": self.baseline, "models": [m.to_dict() for m in self.models],
            "drops_points": self.drops,
        }


def evaluate_model(model_path: str | Path, dataset: Dataset, *, progress: bool = True) -> ModelEvaluation:
    """Run one .tflite over ``dataset`` and compute COCO metrics.

    Raises:
      ModelLoadError: the file is not a loadable SSD detector.
      DatasetError: an image cannot be decoded.
    """
    import click

    from ktp_tflite.convert.verify import inspect_model

    path = Path(model_path)
    model = path.read_bytes()
    report = inspect_model(model, str(path))
    detector = TfliteDetector(model, str(path))
    detections = []
    with click.progressbar(dataset.examples, label=f"evaluating {path.name}", file=sys.stderr,
                           hidden=not progress) as examples:
        for example in examples:
            detections.append(detector.detect(example.load_rgb(), example.image_id))
    return ModelEvaluation(
        model=str(path),
        precision="float" if report.float_compute_ops else "int8",
        input_dtype=report.input.dtype,
        size_bytes=len(model),
        metrics=coco_metrics(dataset, detections),
    )


def evaluate_models(
    model_paths: list[str | Path], dataset: Dataset, *, progress: bool = True
) -> EvaluationReport:
    """Evaluate every model on ``dataset``; the first float model is the baseline.

    Raises:
      EvaluateError: no model, or a data set without labelled boxes.
    """
    if not model_paths:
        raise EvaluateError("no model to evaluate")
    if not any(example.boxes for example in dataset.examples):
        raise EvaluateError(
            f"{dataset.source}: no labelled boxes; evaluation needs a labelled set "
            "(TFRecord, COCO or VOC), not a plain image folder"
        )
    results = [evaluate_model(path, dataset, progress=progress) for path in model_paths]
    baseline = next((r for r in results if r.precision == "float"), results[0])
    drops = {
        r.model: {
            "map": round(100 * (baseline.metrics.map - r.metrics.map), 3),
            "map50": round(100 * (baseline.metrics.map50 - r.metrics.map50), 3),
            "map75": round(100 * (baseline.metrics.map75 - r.metrics.map75), 3),
        }
        for r in results if r is not baseline
    }
    return EvaluationReport(
        data=dataset.source, num_images=len(dataset),
        num_boxes=sum(len(e.boxes) for e in dataset.examples),
        baseline=baseline.model, models=results, drops=drops,
    )


def format_table(report: EvaluationReport) -> str:
    """Side-by-side table: one column per model, drops versus the baseline."""
    names = [Path(m.model).name for m in report.models]
    width = max(12, *(len(n) for n in names))
    rows = [("", names), ("precision", [m.precision for m in report.models]),
            ("input", [m.input_dtype for m in report.models]),
            ("size (KB)", [f"{m.size_bytes / 1024:.1f}" for m in report.models])]

    def metric(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    rows.append(("mAP@[.5:.95]", [metric(m.metrics.map) for m in report.models]))
    rows.append(("mAP@.5", [metric(m.metrics.map50) for m in report.models]))
    rows.append(("mAP@.75", [metric(m.metrics.map75) for m in report.models]))
    for name in report.models[0].metrics.per_class_ap50:
        rows.append((f"AP@.5 {name}", [metric(m.metrics.per_class_ap50[name]) for m in report.models]))
    for key, label in (("map", "drop mAP"), ("map50", "drop mAP@.5")):
        rows.append((label, [
            "baseline" if m.model == report.baseline else f"{report.drops[m.model][key]:+.2f}"
            for m in report.models
        ]))
    lines = [f"{report.num_images} images, {report.num_boxes} boxes; metrics in points (x100)"]
    for label, cells in rows:
        lines.append(f"{label:<26}" + "".join(f"{c:>{width + 2}}" for c in cells))
    return "\n".join(lines)
