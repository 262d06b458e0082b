"""From raw SSD detection outputs to one box per KTP field, in image pixels.

The TFLite detection post-process gives four outputs: boxes ``[N, 4]``
(ymin, xmin, ymax, xmax, normalised to the model input), classes ``[N]``
(float class ids), scores ``[N]`` and the number of valid rows. This module
turns them into at most one detection per field. The Kotlin twin lives in
``android_demo/ktp-core`` (``DetectionSelector``, ``BoxMapper``); both are
tested against ``tests/vectors/ktp_vectors.json``.

Selection rule:
  1. Only the first ``count`` rows count (clamped to [0, N]).
  2. Drop rows with ``score < threshold``, a class id that does not round to
     an index of ``labels``, or an empty box after clipping to [0, 1].
  3. The card fit (:func:`ktp_tflite.train.card_layout.card_fit_choice`, on
     the rest, in upright-image pixels) picks one row per field: the top
     row, unless another of the field's best rows fits the card's layout
     with the other fields so much better that it outweighs the scores (a
     top box one row off the value).
  4. Visit the picked rows, then the others, each by score, highest first
     (ties: lower row first). Accept a row unless its field already has a
     detection, or its IoU with an accepted detection of another field is
     above ``overlap_iou``. So each field keeps its picked box, and when two
     fields claim the same region the higher score wins and the other field
     takes its next best box.

Geometry: the model sees the upright image (the camera buffer rotated
clockwise by ``rotation_degrees``, as CameraX ``imageInfo.rotationDegrees``
says) stretched to its input size, so normalised model coordinates are
normalised upright-image coordinates. ``box`` is in upright-image pixels
(what a viewer shows), ``box_sensor`` in pixels of the unrotated buffer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.records import iou

if TYPE_CHECKING:
    import numpy as np  # annotations only: this module runs on plain sequences too

ROTATIONS = (0, 90, 180, 270)
# Minimum score of a field box: the app's default (runtime score threshold and selection), scan's and
# the zoom's. Chosen on 400 photos of seed 6000 (no evaluation seed), LiteRT int8, with the card fit:
# cards read 0.777 at 0.3, 0.897 at 0.2, 0.910 at 0.15, 0.917 at 0.1; on 286 regions of those photos
# outside the card, a field was reported on 6.6 % / 11.5 % / 16.8 % / 25.5 %, three or more fields on
# 0 / 0.3 / 1.0 / 7.0 %, all five never but once at 0.1.
DEFAULT_THRESHOLD = 0.15
DEFAULT_OVERLAP_IOU = 0.5

# (ymin, xmin, ymax, xmax) normalised / (left, top, right, bottom) pixels
NormBox = tuple[float, float, float, float]
PixelBox = tuple[float, float, float, float]


class DetectionOutputError(KtpError, ValueError):
    """The raw detection outputs or the geometry arguments are inconsistent."""


@dataclasses.dataclass(frozen=True)
class FieldDetection:
    """The chosen detection of one field."""

    label: str
    class_id: int
    score: float
    box_model: NormBox  # ymin, xmin, ymax, xmax in [0, 1], model/upright space
    box: PixelBox  # left, top, right, bottom in upright-image pixels
    box_sensor: PixelBox  # left, top, right, bottom in camera-buffer pixels

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 6),
            "box_model": [round(v, 6) for v in self.box_model],
            "box": [round(v, 3) for v in self.box],
            "box_sensor": [round(v, 3) for v in self.box_sensor],
        }


@dataclasses.dataclass(frozen=True)
class FieldResult:
    """Best detection per field for one image."""

    fields: tuple[FieldDetection, ...]  # in ``labels`` order, found fields only
    missing: tuple[str, ...]  # labels with no accepted detection
    sensor_width: int
    sensor_height: int
    rotation_degrees: int

    @property
    def image_width(self) -> int:
        """Width of the upright image."""
        return self.sensor_height if self.rotation_degrees in (90, 270) else self.sensor_width

    @property
    def image_height(self) -> int:
        """Height of the upright image."""
        return self.sensor_width if self.rotation_degrees in (90, 270) else self.sensor_height

    def get(self, label: str) -> FieldDetection | None:
        """The detection of ``label``, or None."""
        return next((f for f in self.fields if f.label == label), None)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "image": {
                "width": self.image_width,
                "height": self.image_height,
                "sensor_width": self.sensor_width,
                "sensor_height": self.sensor_height,
                "rotation_degrees": self.rotation_degrees,
            },
            "fields": {f.label: f.to_dict() for f in self.fields},
            "missing": list(self.missing),
        }


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def model_to_sensor(box: NormBox, rotation_degrees: int) -> NormBox:
    """Map a normalised upright-space box into normalised camera-buffer space.

    Args:
      box: (ymin, xmin, ymax, xmax) in the upright image.
      rotation_degrees: clockwise rotation that turns the buffer upright.
    """
    ymin, xmin, ymax, xmax = box
    if rotation_degrees == 0:
        return box
    if rotation_degrees == 90:
        return (1.0 - xmax, ymin, 1.0 - xmin, ymax)
    if rotation_degrees == 180:
        return (1.0 - ymax, 1.0 - xmax, 1.0 - ymin, 1.0 - xmin)
    if rotation_degrees == 270:
        return (xmin, 1.0 - ymax, xmax, 1.0 - ymin)
    raise DetectionOutputError(f"rotation must be one of {ROTATIONS}, got {rotation_degrees}")


def to_pixels(box: NormBox, width: int, height: int) -> PixelBox:
    """A normalised (ymin, xmin, ymax, xmax) box as (left, top, right, bottom) pixels of a width x height image."""
    ymin, xmin, ymax, xmax = box
    return (xmin * width, ymin * height, xmax * width, ymax * height)


def select_fields(
    boxes: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[float] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    count: float,
    labels: Sequence[str],
    *,
    sensor_width: int,
    sensor_height: int,
    rotation_degrees: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    overlap_iou: float = DEFAULT_OVERLAP_IOU,
) -> FieldResult:
    """Pick the best detection per field and map it to image pixels.

    Args:
      boxes, classes, scores, count: the four post-process outputs of one
        image (batch dimension removed; numpy arrays are fine).
      labels: class names in class-id order (from the model metadata).
      sensor_width, sensor_height: size of the camera buffer (for a photo
        file: the stored pixels).
      rotation_degrees: 0, 90, 180 or 270, clockwise, to make it upright.
      threshold: minimum score.
      overlap_iou: two different fields may not overlap more than this.

    Returns:
      The selection; see the module docstring for the rule.

    Raises:
      DetectionOutputError: shapes disagree or an argument is out of range.
    """
    if rotation_degrees not in ROTATIONS:
        raise DetectionOutputError(f"rotation must be one of {ROTATIONS}, got {rotation_degrees}")
    if sensor_width <= 0 or sensor_height <= 0:
        raise DetectionOutputError(f"image size must be positive, got {sensor_width}x{sensor_height}")
    if not 0.0 <= threshold <= 1.0:
        raise DetectionOutputError(f"score threshold must be in [0, 1], got {threshold}")
    rows = [[float(v) for v in row] for row in boxes]
    if any(len(row) != 4 for row in rows):
        raise DetectionOutputError("detection boxes must have shape [N, 4]")
    if not len(rows) == len(classes) == len(scores):
        raise DetectionOutputError(
            f"detection outputs disagree: {len(rows)} boxes, {len(classes)} classes, {len(scores)} scores"
        )
    valid = min(len(rows), max(0, int(float(count))))
    candidates = []
    for index in range(valid):
        score = float(scores[index])
        class_id = round(float(classes[index]))
        ymin, xmin, ymax, xmax = (_clip(v) for v in rows[index])
        if score < threshold or not 0 <= class_id < len(labels):
            continue
        if ymax <= ymin or xmax <= xmin:
            continue
        candidates.append((-score, index, class_id, (ymin, xmin, ymax, xmax)))
    candidates.sort()
    upright_w = sensor_height if rotation_degrees in (90, 270) else sensor_width
    upright_h = sensor_width if rotation_degrees in (90, 270) else sensor_height
    picked = _card_fit_rows(candidates, labels, upright_w, upright_h)
    candidates.sort(key=lambda c: (c[1] not in picked, c))
    accepted: dict[int, tuple[float, NormBox]] = {}
    for negative_score, _, class_id, box in candidates:
        if class_id in accepted:
            continue
        if any(iou(box, other) > overlap_iou for _, other in accepted.values()):
            continue
        accepted[class_id] = (-negative_score, box)
    fields = tuple(
        FieldDetection(
            label=labels[class_id],
            class_id=class_id,
            score=score,
            box_model=box,
            box=to_pixels(box, upright_w, upright_h),
            box_sensor=to_pixels(model_to_sensor(box, rotation_degrees), sensor_width, sensor_height),
        )
        for class_id, (score, box) in sorted(accepted.items())
    )
    missing = tuple(label for i, label in enumerate(labels) if i not in accepted)
    return FieldResult(fields, missing, sensor_width, sensor_height, rotation_degrees)


def _card_fit_rows(
    candidates: Sequence[tuple[float, int, int, NormBox]], labels: Sequence[str], width: int, height: int
) -> set[int]:
    """The rows the card fit picks from (-score, row, class id, box) sorted best first (rule step 3).

    Labels the card layout does not know (a model with other classes) take no part.
    """
    from ktp_tflite.train.card_layout import TEMPLATE, card_fit_choice  # NumPy, via the renderer's sizes

    rows: dict[str, list[int]] = {}
    found: dict[str, list[tuple[PixelBox, float]]] = {}
    for negative_score, row, class_id, box in candidates:
        label = labels[class_id]
        if label in TEMPLATE:
            rows.setdefault(label, []).append(row)
            found.setdefault(label, []).append((to_pixels(box, width, height), -negative_score))
    return {rows[label][index] for label, index in card_fit_choice(found).items()}
