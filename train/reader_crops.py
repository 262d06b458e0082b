"""Field crops for the reader: one geometry for rendered quadrilaterals and detector boxes.

A crop is a quadrilateral of the photo (corners top-left, top-right,
bottom-right, bottom-left, in frame pixels) warped onto an upright strip:

- margins first: the quadrilateral is taken as the image of a text
  rectangle whose height is the quad's mean side height ``h``; it grows by
  ``margin * h`` above and below and ``side_margin * h`` left and right,
  through the same perspective, so a tilted line gets tilted margins;
- then a perspective warp (bilinear) to :attr:`CropConfig.height` pixels
  (32) and the width that keeps the line's aspect ratio, at most
  :attr:`CropConfig.width` (256): a longer line is squeezed horizontally to
  that width, a shorter one is padded on the right with the crop's median
  colour. :attr:`FieldCrop.content_width` says how many columns are the line.

Two kinds of crop use that one function (:func:`crop_quad`):

- **rectified** (:func:`render_value_crops`): the value's own quadrilateral
  on a rendered card. The renderer does not hand out value quadrilaterals
  (only the card's corners and axis-aligned value boxes), so it is found
  from the renderer's documented ``omit`` switch: the card is rendered again
  without the value, the changed pixels are the value's ink (changes above
  a quarter of the largest); they are mapped
  to card coordinates through the card's homography, their bounding
  rectangle there is mapped back. That costs one extra render per field.
- **box** (:func:`box_crop`, :func:`crops_from_boxes`): the axis-aligned
  pixel box a detector returns, with the same margins; this is what the app
  reads from, so the reader is trained on those too.

Pixels are taken from the decoded JPEG of the photo (what the detector sees).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.images import load_image
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.synth import (
    CARD_H,
    CARD_W,
    TRAIN,
    SynthConfig,
    apply_homography,
    homography,
    render_card,
)
from PIL import Image

# A pixel is the value's ink when omitting the value changes a channel by more than
# INK_SHARE of the largest change on the card (dim, blurred photos change little)
# and by more than INK_FLOOR levels.
INK_SHARE = 0.25
INK_FLOOR = 3
CROP_KINDS = ("rectified", "box")


class CropError(KtpError, ValueError):
    """A crop that cannot be made: bad geometry or settings (says which)."""


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """Crop geometry.

    Attributes:
      height: crop height in pixels (32).
      width: crop width in pixels (256): longer lines are squeezed to it,
        shorter ones padded.
      margin: added above and below, as a fraction of the line's height (0.2).
      side_margin: added left and right, as a fraction of the line's height
        (0.1: the NIK's colon can be 4 card pixels from its first digit).
    """

    height: int = 32
    width: int = 256
    margin: float = 0.2
    side_margin: float = 0.1

    def __post_init__(self):
        if self.height < 8 or self.width < self.height:
            raise CropError(f"crop size {self.width}x{self.height}: height must be >= 8 and width >= height")
        for name in ("margin", "side_margin"):
            if not 0.0 <= getattr(self, name) <= 2.0:
                raise CropError(f"crop {name} {getattr(self, name)} must lie in 0..2 (a fraction of the text height)")


@dataclasses.dataclass(frozen=True)
class FieldCrop:
    """One field's crop.

    Attributes:
      field: class name.
      kind: "rectified" or "box".
      pixels: uint8 [height, width, 3].
      content_width: columns holding the line (the rest is padding).
      quad: [4, 2] frame corners the crop was taken from, margins included.
      text: the printed value when known (rendered cards), else None.
    """

    field: str
    kind: str
    pixels: np.ndarray
    content_width: int
    quad: np.ndarray
    text: str | None = None


def _sides(quad: np.ndarray) -> tuple[float, float]:
    """Mean width (top and bottom edges) and mean height (left and right edges) of a quad."""
    tl, tr, br, bl = quad
    width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    return float(width), float(height)


def expand_quad(quad: np.ndarray, margin: float, side_margin: float) -> np.ndarray:
    """Grow ``quad`` by ``margin`` (top, bottom) and ``side_margin`` (left, right) times its height.

    The growth follows the quad's own perspective.

    Raises:
      CropError: the quad is degenerate (a side shorter than 0.5 px).
    """
    quad = np.asarray(quad, dtype=np.float64)
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        raise CropError(f"a quadrilateral is 4 finite (x, y) corners, got shape {quad.shape}")
    width, height = _sides(quad)
    if width < 0.5 or height < 0.5:
        raise CropError(f"quadrilateral of {width:.1f} x {height:.1f} px is too small to crop")
    rect = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    to_frame = homography(rect, quad)
    m, side = margin * height, side_margin * height
    grown = np.array([[-side, -m], [width + side, -m], [width + side, height + m], [-side, height + m]])
    return apply_homography(to_frame, grown)


def crop_quad(image: np.ndarray, quad: np.ndarray, config: CropConfig) -> tuple[np.ndarray, int]:
    """Warp the frame quadrilateral ``quad`` (margins included) to a [height, width, 3] strip.

    Returns:
      (pixels uint8 [config.height, config.width, 3], content_width).
    """
    quad = np.asarray(quad, dtype=np.float64)
    width, height = _sides(quad)
    content = int(min(config.width, max(1, round(config.height * width / max(height, 1e-6)))))
    out = np.array([[0, 0], [content, 0], [content, config.height], [0, config.height]], dtype=np.float64)
    coefficients = homography(out, quad).flatten()[:8].tolist()  # output pixel -> frame pixel
    line = Image.fromarray(image).transform(
        (content, config.height), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR)
    line_pixels = np.asarray(line, dtype=np.uint8)
    pixels = np.empty((config.height, config.width, 3), dtype=np.uint8)
    pixels[:] = np.median(line_pixels.reshape(-1, 3), axis=0).astype(np.uint8)
    pixels[:, :content] = line_pixels
    return pixels, content


def box_crop(image: np.ndarray, box: tuple[float, float, float, float], config: CropConfig,
             field: str, text: str | None = None) -> FieldCrop:
    """The crop of an axis-aligned pixel box (left, top, right, bottom), as a detector gives it."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise CropError(f"{field}: box {box} is empty; expected (left, top, right, bottom) pixels")
    quad = expand_quad(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), config.margin, config.side_margin)
    pixels, content = crop_quad(image, quad, config)
    return FieldCrop(field, "box", pixels, content, quad.astype(np.float32), text)


def crops_from_boxes(image: np.ndarray, boxes: Mapping[str, tuple[float, float, float, float]],
                     config: CropConfig = CropConfig()) -> dict[str, FieldCrop]:
    """Crops of detector boxes on a photo: ``{field: (left, top, right, bottom) pixels}``.

    Raises:
      CropError: an unknown field or an empty box (names it).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise CropError(f"expected a uint8 RGB photo [H, W, 3], got {image.dtype} {image.shape}")
    crops = {}
    for field, box in boxes.items():
        if field not in CLASSES:
            raise CropError(f"unknown field {field!r}; use one of {', '.join(CLASSES)}")
        crops[field] = box_crop(image, box, config, field)
    return crops


def value_quads(seed: int, index: int, config: SynthConfig = TRAIN, card=None) -> dict[str, np.ndarray]:
    """Frame quadrilaterals (TL, TR, BR, BL) of the five values' ink on rendered card ``(seed, index)``.

    Args:
      seed, index, config: the card, as for :func:`ktp_tflite.train.synth.render_card`.
      card: that card already rendered (saves one render), or None.

    Raises:
      CropError: a value left no ink (cannot happen on the renderer's cards).
    """
    card = card if card is not None else render_card(seed, index, config)
    full = card.image.astype(np.int16)
    src = np.array([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]], dtype=np.float64)
    to_frame = homography(src, card.card_quad.astype(np.float64))
    to_card = np.linalg.inv(to_frame)
    quads = {}
    for field in CLASSES:
        without = render_card(seed, index, config, omit=frozenset({f"value:{field}"})).image.astype(np.int16)
        change = np.abs(full - without).max(axis=2)
        ys, xs = np.nonzero(change > max(INK_FLOOR, INK_SHARE * int(change.max())))
        if len(xs) == 0:
            raise CropError(f"card {seed}/{index}: the {field} value left no ink in the photo")
        points = np.stack([xs, ys], axis=1).astype(np.float64)
        corners = np.concatenate([points, points + [1, 0], points + [0, 1], points + [1, 1]])
        on_card = apply_homography(to_card, corners)
        (cx0, cy0), (cx1, cy1) = on_card.min(axis=0), on_card.max(axis=0)
        rect = np.array([[cx0, cy0], [cx1, cy0], [cx1, cy1], [cx0, cy1]])
        quads[field] = apply_homography(to_frame, rect)
    return quads


def render_value_crops(seed: int, index: int, synth_config: SynthConfig = TRAIN,
                       crop: CropConfig = CropConfig(), kinds: tuple[str, ...] = CROP_KINDS) -> list[FieldCrop]:
    """The five fields of rendered card ``(seed, index)`` as crops with their printed texts.

    Args:
      kinds: "rectified" (the value's quadrilateral) and/or "box" (its
        axis-aligned ground-truth box, as a perfect detector would give it).

    Returns:
      One crop per field and kind, in CLASSES order (rectified first).
    """
    bad = [k for k in kinds if k not in CROP_KINDS]
    if bad or not kinds:
        raise CropError(f"crop kinds {kinds}: use one or both of {', '.join(CROP_KINDS)}")
    card = render_card(seed, index, synth_config)
    photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
    crops = []
    if "rectified" in kinds:
        for field, quad in value_quads(seed, index, synth_config, card).items():
            grown = expand_quad(quad, crop.margin, crop.side_margin)
            pixels, content = crop_quad(photo, grown, crop)
            crops.append(FieldCrop(field, "rectified", pixels, content, grown.astype(np.float32),
                                   card.texts[field]))
    if "box" in kinds:
        for box in card.boxes:
            pixel_box = box.to_pixels(synth_config.width, synth_config.height)
            crops.append(box_crop(photo, pixel_box, crop, box.label, card.texts[box.label]))
    return crops
