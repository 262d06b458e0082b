"""The in-memory representation of a labelled KTP data set.

Every reader (TFRecord, COCO JSON, Pascal VOC, plain image folders, the
synthetic renderer) produces :class:`Dataset`; every writer and the
``tf.data`` view consume it. Boxes are normalised to [0, 1] and carry the
canonical class name from :mod:`ktp_tflite.train.labels`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES


class DatasetError(KtpError, ValueError):
    """A data set file or record is unusable; the message names it and the fix."""


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two boxes given as (min, min, max, max) of the same two axes.

    Either order works, (ymin, xmin, ymax, xmax) or pixel (left, top, right,
    bottom), as long as both boxes use the same one.
    """
    inter_h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class Box:
    """One labelled box, normalised coordinates in [0, 1], (ymin, xmin, ymax, xmax)."""

    ymin: float
    xmin: float
    ymax: float
    xmax: float
    label: str  # one of CLASSES

    @property
    def class_index(self) -> int:
        """0-based index in CLASSES (the TFLite post-process class id)."""
        return CLASSES.index(self.label)

    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in pixels."""
        return (self.xmin * width, self.ymin * height, self.xmax * width, self.ymax * height)


def field_pixel_boxes(boxes: Iterable[Box], width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
    """Each field's first box as (left, top, right, bottom) pixels of a ``width`` x ``height`` image."""
    found: dict[str, tuple[float, float, float, float]] = {}
    for box in boxes:
        found.setdefault(box.label, box.to_pixels(width, height))
    return found


@dataclasses.dataclass(frozen=True)
class Example:
    """One image and its boxes.

    Exactly one of ``image_path`` and ``image_bytes`` (encoded JPEG or PNG) is
    set. ``image_id`` is the file name a writer uses for the image.
    """

    image_id: str
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    image_path: Path | None = None
    image_bytes: bytes | None = None
    image_format: str = "jpeg"  # "jpeg" or "png"

    def encoded(self) -> bytes:
        """The encoded image file content."""
        if self.image_bytes is not None:
            return self.image_bytes
        if self.image_path is None:
            raise DatasetError(f"{self.image_id}: example has neither image bytes nor a path")
        return self.image_path.read_bytes()

    def load_rgb(self, max_pixels: int | None = None) -> np.ndarray:
        """Decode to a uint8 [H, W, 3] RGB array of the stored pixels (boxes are in them).

        Through :func:`ktp_tflite.train.images.load_image`: the pixel limit is
        checked before decoding (``max_pixels``, else ``KTP_MAX_PIXELS``, else
        50 megapixels).

        Raises:
          DatasetError: the image cannot be decoded or is too large (names the file).
        """
        from ktp_tflite.train.images import load_image

        where = str(self.image_path) if self.image_path is not None else self.image_id
        source = self.image_bytes if self.image_bytes is not None else self.image_path
        if source is None:
            raise DatasetError(f"{self.image_id}: example has neither image bytes nor a path")
        return load_image(source, where=where, max_pixels=max_pixels, upright=False)


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something wrong with one file or record: where, and what to do about it."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclasses.dataclass
class Dataset:
    """A labelled (or, for representative data, unlabelled) set of images.

    Attributes:
      examples: the usable examples, in a deterministic order.
      source: where it was read from (a file or folder), or a description.
      format: "tfrecord", "coco", "voc", "images" or "synth".
      skipped: problems of records left out (only with ``skip_bad=True``).
      texts: for synthetic data, the printed field texts per image_id
        (kept out of every report; used by the renderer's side file).
    """

    examples: list[Example]
    source: str
    format: str
    skipped: list[Problem] = dataclasses.field(default_factory=list)
    texts: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)
