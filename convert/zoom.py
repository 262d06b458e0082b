"""Two-pass zoom: a second look at a small card, through the same detector.

Pass 1 runs the detector on the whole photo. The top detection of each class
scoring at least ``min_score`` gives the card's box
(:func:`ktp_tflite.train.card_layout.card_from_fields`); when that card is
narrower than the zoom threshold, :func:`ktp_tflite.train.card_layout.zoom_crop`
gives a crop, pass 2 runs the same detector on the cropped pixels (resized
to the model input by whoever runs the model, as any photo), and its boxes
are mapped back to the photo. The final detections are pass 2's, plus pass
1's detections of every class that pass 2 found no box of at ``min_score``
or more. Without a crop the final detections are pass 1's.

Detect functions take decoded uint8 RGB images and return
:class:`~ktp_tflite.train.coco_eval.Detections` normalised to the image they
were given: :meth:`TfliteDetector.detect`, or a runtime's detections
(:func:`ktp_tflite.convert.runtimes.detect_images` on a batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.fields import DEFAULT_THRESHOLD, FieldResult, select_fields
from ktp_tflite.train.card_layout import (
    DEFAULT_ZOOM_MARGIN,
    DEFAULT_ZOOM_THRESHOLD,
    PixelBox,
    card_from_fields,
    zoom_crop,
)
from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.labels import CLASSES

Crop = tuple[int, int, int, int]  # left, top, right, bottom in whole photo pixels


@dataclasses.dataclass(frozen=True)
class ZoomSettings:
    """When to zoom: card width share below ``threshold``; crop ``margin``; boxes from ``min_score``."""

    threshold: float = DEFAULT_ZOOM_THRESHOLD
    margin: float = DEFAULT_ZOOM_MARGIN
    min_score: float = DEFAULT_THRESHOLD


@dataclasses.dataclass(frozen=True)
class ZoomResult:
    """Final detections of one photo (normalised to the photo) and the crop pass 2 ran on, if any."""

    detections: Detections
    crop: Crop | None

    @property
    def second_pass(self) -> bool:
        """Whether a second inference ran."""
        return self.crop is not None


def field_boxes(
    detections: Detections,
    frame_size: tuple[int, int],
    *,
    min_score: float = DEFAULT_THRESHOLD,
    labels: Sequence[str] = CLASSES,
) -> dict[str, PixelBox]:
    """The top-scoring box of each field scoring at least ``min_score``, in pixels of the frame."""
    width, height = frame_size
    best: dict[str, tuple[float, PixelBox]] = {}
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    for (ymin, xmin, ymax, xmax), cls, score in zip(boxes, detections.classes, detections.scores, strict=True):
        index = int(cls)
        if score < min_score or not 0 <= index < len(labels) or labels[index] not in CLASSES:
            continue
        if xmax <= xmin or ymax <= ymin:
            continue
        name = labels[index]
        if name not in best or score > best[name][0]:
            best[name] = (float(score), (xmin * width, ymin * height, xmax * width, ymax * height))
    return {name: box for name, (_, box) in best.items()}


def plan_crop(
    first: Detections,
    frame_size: tuple[int, int],
    settings: ZoomSettings = ZoomSettings(),
    labels: Sequence[str] = CLASSES,
) -> Crop | None:
    """The crop for pass 2 from pass 1's detections, or None (no field found, or the card is large)."""
    fields = field_boxes(first, frame_size, min_score=settings.min_score, labels=labels)
    if not fields:
        return None
    card = card_from_fields(fields)
    return zoom_crop(card, frame_size, threshold=settings.threshold, margin=settings.margin)


def crop_image(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop's pixels (a contiguous copy, as an app hands a bitmap)."""
    left, top, right, bottom = crop
    return np.ascontiguousarray(image[top:bottom, left:right])


def to_photo(detections: Detections, crop: Crop, frame_size: tuple[int, int]) -> Detections:
    """Detections normalised to ``crop`` as detections normalised to the whole frame."""
    left, top, right, bottom = crop
    width, height = frame_size
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    scale = np.array([(bottom - top) / height, (right - left) / width] * 2)
    offset = np.array([top / height, left / width] * 2)
    return dataclasses.replace(detections, boxes=boxes * scale + offset)


def merge(first: Detections, second: Detections, min_score: float = DEFAULT_THRESHOLD) -> Detections:
    """Pass 2's detections (photo coordinates) plus pass 1's of classes pass 2 found none of at ``min_score``."""
    found = {int(c) for c, s in zip(second.classes, second.scores, strict=True) if s >= min_score}
    keep = np.array([int(c) not in found for c in first.classes], dtype=bool)
    return Detections(
        image_id=first.image_id,
        boxes=np.concatenate(
            [
                np.asarray(second.boxes, np.float64).reshape(-1, 4),
                np.asarray(first.boxes, np.float64).reshape(-1, 4)[keep],
            ]
        ),
        classes=np.concatenate([np.asarray(second.classes, np.int64), np.asarray(first.classes, np.int64)[keep]]),
        scores=np.concatenate([np.asarray(second.scores, np.float32), np.asarray(first.scores, np.float32)[keep]]),
    )


def finish(
    first: Detections,
    second: Detections | None,
    crop: Crop | None,
    frame_size: tuple[int, int],
    settings: ZoomSettings = ZoomSettings(),
) -> ZoomResult:
    """The final detections of one photo from pass 1 and, when a crop ran, pass 2 (normalised to the crop)."""
    if crop is None or second is None:
        return ZoomResult(first, None)
    return ZoomResult(merge(first, to_photo(second, crop, frame_size), settings.min_score), crop)


def two_pass_many(
    detect_many: Callable[[list[np.ndarray]], Sequence[Detections]],
    images: Sequence[np.ndarray],
    settings: ZoomSettings = ZoomSettings(),
    labels: Sequence[str] = CLASSES,
) -> list[ZoomResult]:
    """Two-pass zoom over a batch: one pass-1 call on every image, one pass-2 call on the crops.

    Args:
      detect_many: images -> their detections, one per image, in order.
      images: uint8 RGB [H, W, 3] photos.
      settings: threshold, margin and minimum score.
      labels: the model's class names by class id (for the card rule).
    """
    first = list(detect_many(list(images)))
    sizes = [(image.shape[1], image.shape[0]) for image in images]
    crops = [plan_crop(found, size, settings, labels) for found, size in zip(first, sizes, strict=True)]
    planned = [(i, crop) for i, crop in enumerate(crops) if crop is not None]
    second = list(detect_many([crop_image(images[i], crop) for i, crop in planned])) if planned else []
    by_image = dict(zip([i for i, _ in planned], second, strict=True))
    return [finish(first[i], by_image.get(i), crops[i], sizes[i], settings) for i in range(len(images))]


def two_pass(
    detect: Callable[[np.ndarray], Detections],
    image: np.ndarray,
    settings: ZoomSettings = ZoomSettings(),
    labels: Sequence[str] = CLASSES,
) -> ZoomResult:
    """Two-pass zoom of one photo with ``detect`` (image -> Detections, e.g. ``TfliteDetector.detect``)."""
    return two_pass_many(lambda batch: [detect(i) for i in batch], [image], settings, labels)[0]


def scan_image_zoomed(
    model_path: Path,
    image_path: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    settings: ZoomSettings = ZoomSettings(),
):
    """``ktpconvert scan --zoom``: :func:`ktp_tflite.convert.scan.scan_image` with the two-pass zoom.

    The card rule takes pass-1 fields scoring at least ``threshold``.

    Returns:
      (FieldResult, OutputBinding, crop or None, upright photo), the crop in
      upright-photo pixels.
    """
    from ktp_tflite.convert.scan import open_scan, run_detector

    spec, stored, rotation, upright = open_scan(model_path, image_path)

    def detect(image: np.ndarray) -> Detections:
        raw = run_detector(spec, image)
        count = max(0, min(len(raw["scores"]), round(float(np.ravel(raw["count"])[0]))))
        return Detections(
            "",
            np.asarray(raw["boxes"][:count], np.float64).reshape(-1, 4),
            np.round(raw["classes"][:count]).astype(np.int64),
            raw["scores"][:count],
        )

    settings = dataclasses.replace(settings, min_score=threshold)
    zoomed = two_pass(detect, upright, settings, spec.labels)
    final = zoomed.detections
    result: FieldResult = select_fields(
        final.boxes,
        final.classes.astype(np.float64),
        final.scores,
        float(len(final.scores)),
        spec.labels,
        sensor_width=stored.shape[1],
        sensor_height=stored.shape[0],
        rotation_degrees=rotation,
        threshold=threshold,
    )
    return result, spec, zoomed.crop, upright
