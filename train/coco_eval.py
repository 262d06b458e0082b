"""COCO detection metrics (pycocotools) for a labelled KTP data set.

Used by training evaluation and by ``ktpconvert evaluate``. Categories are the
five canonical classes (COCO category id = class index + 1). pycocotools
prints its summary to stdout; here it goes to stderr so that stdout stays
machine-readable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Dataset


class EvaluationError(KtpError, ValueError):
    """Detections that do not fit the data set they are evaluated on."""


@dataclasses.dataclass(frozen=True)
class Detections:
    """Detections on one image.

    Attributes:
      image_id: the data set example's image_id.
      boxes: [N, 4] float, normalised (ymin, xmin, ymax, xmax).
      classes: [N] int, 0-based index into CLASSES.
      scores: [N] float.
    """

    image_id: str
    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


@dataclasses.dataclass(frozen=True)
class CocoMetrics:
    """COCO box metrics; per-class AP is None for a class without ground truth."""

    map: float
    map50: float
    map75: float
    per_class_ap: dict[str, float | None]
    per_class_ap50: dict[str, float | None]
    num_images: int
    num_boxes: int

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)


def _ground_truth(dataset: Dataset) -> dict:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for number, example in enumerate(dataset.examples, start=1):
        images.append({"id": number, "width": example.width, "height": example.height})
        for box in example.boxes:
            x0, y0, x1, y1 = box.to_pixels(example.width, example.height)
            w, h = max(0.0, x1 - x0), max(0.0, y1 - y0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": box.class_index + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _results(dataset: Dataset, detections: Sequence[Detections]) -> list[dict]:
    numbers = {example.image_id: (n, example) for n, example in enumerate(dataset.examples, start=1)}
    results = []
    for det in detections:
        if det.image_id not in numbers:
            raise EvaluationError(f"detections for image {det.image_id!r}, which is not in {dataset.source}")
        number, example = numbers[det.image_id]
        boxes = np.asarray(det.boxes).reshape(-1, 4)
        for box, cls, score in zip(boxes, det.classes, det.scores, strict=True):
            cls = int(cls)
            if not 0 <= cls < len(CLASSES):
                raise EvaluationError(
                    f"detection class {cls} on {det.image_id!r} is outside 0..{len(CLASSES) - 1}; "
                    "the model's classes do not match the five KTP fields"
                )
            ymin, xmin, ymax, xmax = (float(v) for v in box)
            x0, y0 = xmin * example.width, ymin * example.height
            w = max(0.0, (xmax - xmin) * example.width)
            h = max(0.0, (ymax - ymin) * example.height)
            results.append({"image_id": number, "category_id": cls + 1, "bbox": [x0, y0, w, h], "score": float(score)})
    return results


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def coco_metrics(dataset: Dataset, detections: Sequence[Detections]) -> CocoMetrics:
    """mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP of ``detections`` on ``dataset``.

    Images without detections count as missed; boxes are compared in pixels.

    Raises:
      EvaluationError: a detection names an unknown image or class, or the
        data set holds no boxes.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = _ground_truth(dataset)
    if not truth["annotations"]:
        raise EvaluationError(f"{dataset.source}: no labelled boxes to evaluate against")
    results = _results(dataset, detections)
    num_boxes = len(truth["annotations"])
    present = {a["category_id"] for a in truth["annotations"]}
    if not results:
        per_class = {name: (0.0 if i + 1 in present else None) for i, name in enumerate(CLASSES)}
        return CocoMetrics(0.0, 0.0, 0.0, per_class, dict(per_class), len(dataset), num_boxes)

    with contextlib.redirect_stdout(sys.stderr):
        gt = COCO()
        gt.dataset = truth
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, max_dets]
    per_class_ap: dict[str, float | None] = {}
    per_class_ap50: dict[str, float | None] = {}
    for k, name in enumerate(CLASSES):
        per_class_ap[name] = _mean_valid(precision[:, :, k, 0, -1])
        per_class_ap50[name] = _mean_valid(precision[0, :, k, 0, -1])
    stats = evaluator.stats
    return CocoMetrics(
        map=max(0.0, float(stats[0])),
        map50=max(0.0, float(stats[1])),
        map75=max(0.0, float(stats[2])),
        per_class_ap=per_class_ap,
        per_class_ap50=per_class_ap50,
        num_images=len(dataset),
        num_boxes=num_boxes,
    )
