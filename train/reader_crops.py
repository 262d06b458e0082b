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
  on a rendered card (:attr:`ktp_tflite.train.synth.RenderedCard.value_quads`:
  the rectangle around the value's ink on the card, through the card's
  perspective), so a tilted line is straightened.
- **box** (:func:`box_crop`, :func:`crops_from_boxes`): the axis-aligned
  pixel box a detector returns, with the same margins; this is what the app
  reads from, so the reader is trained on those too;
- **detector** (:func:`detector_value_crops`): a real detector's box on a
  rendered photo (through the app's runtime: the caller runs it), so the
  reader also learns that detector's box errors.

Pixels are taken from the decoded JPEG of the photo (what the detector sees).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.images import load_image
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import field_pixel_boxes, iou
from ktp_tflite.train.synth import (
    TRAIN,
    RenderedCard,
    SynthConfig,
    apply_homography,
    rect_to_quad,
    render_card,
)

CROP_KINDS = ("rectified", "box")
DETECTOR_KIND = "detector"  # a detector's own box on a rendered photo (:func:`detector_value_crops`)
DETECTOR_MIN_IOU = 0.5
DESKEW_MAX_DEG = 16.0  # the renderer rolls cards up to 15 degrees; a phone held by hand, less
DESKEW_STEP_DEG = 0.5
MIN_LINE_HEIGHT = 2.0  # px: a slanted rectangle thinner than this is no text line (the box is kept)


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
      text_height: height in frame pixels of the line the crop was taken
        from (the box's or the value quad's, before margins).
    """

    field: str
    kind: str
    pixels: np.ndarray
    content_width: int
    quad: np.ndarray
    text: str | None = None
    text_height: float = 0.0


def quad_sides(quad: np.ndarray) -> tuple[float, float]:
    """Mean width (top, bottom edges) and height (left, right) of a quad: ktp-core's ``Quad`` float for float."""
    (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = ((float(x), float(y)) for x, y in quad)
    width = (_distance(tlx, tly, trx, try_) + _distance(blx, bly, brx, bry)) / 2
    return width, (_distance(tlx, tly, blx, bly) + _distance(trx, try_, brx, bry)) / 2


def _distance(ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    return math.sqrt(dx * dx + dy * dy)


def _rect_to_quad(width: float, height: float, quad: np.ndarray) -> np.ndarray:
    try:
        return rect_to_quad(width, height, quad)
    except ValueError as error:  # a degenerate quad
        raise CropError(str(error)) from None


def expand_quad(quad: np.ndarray, margin: float, side_margin: float) -> np.ndarray:
    """Grow ``quad`` by ``margin`` (top, bottom) and ``side_margin`` (left, right) times its height.

    The growth follows the quad's own perspective.

    Raises:
      CropError: the quad is degenerate (a side shorter than 0.5 px).
    """
    quad = np.asarray(quad, dtype=np.float64)
    if quad.shape != (4, 2) or not np.all(np.isfinite(quad)):
        raise CropError(f"a quadrilateral is 4 finite (x, y) corners, got shape {quad.shape}")
    width, height = quad_sides(quad)
    if width < 0.5 or height < 0.5:
        raise CropError(f"quadrilateral of {width:.1f} x {height:.1f} px is too small to crop")
    to_frame = _rect_to_quad(width, height, quad)
    m, side = margin * height, side_margin * height
    grown = np.array([[-side, -m], [width + side, -m], [width + side, height + m], [-side, height + m]])
    return apply_homography(to_frame, grown)


def crop_quad(image: np.ndarray, quad: np.ndarray, config: CropConfig) -> tuple[np.ndarray, int]:
    """Warp the frame quadrilateral ``quad`` (margins included) to a [height, width, 3] strip.

    Returns:
      (pixels uint8 [config.height, config.width, 3], content_width).
    """
    quad = np.asarray(quad, dtype=np.float64)
    width, height = quad_sides(quad)
    content = int(min(config.width, max(1, round(config.height * width / max(height, 1e-6)))))
    coefficients = _rect_to_quad(content, config.height, quad).flatten()[:8].tolist()  # output px -> frame px
    line = Image.fromarray(image).transform(
        (content, config.height), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
    )
    line_pixels = np.asarray(line, dtype=np.uint8)
    pixels = np.empty((config.height, config.width, 3), dtype=np.uint8)
    pixels[:] = np.median(line_pixels.reshape(-1, 3), axis=0).astype(np.uint8)
    pixels[:, :content] = line_pixels
    return pixels, content


def line_angle(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    max_angle_deg: float = DESKEW_MAX_DEG,
    step_deg: float = DESKEW_STEP_DEG,
) -> float:
    """The slant (degrees, y down: positive = the line falls to the right) of the text line in a box.

    Projection-profile deskew: the box's ink (darker than the box's 80th
    percentile of brightness) is sheared by each candidate angle and summed
    per row; the angle whose row profile is most concentrated (largest sum of
    squares) wins. Candidates are limited to the angles a line could have and
    still fit the box (|tan a| < height / width); ties go to the smaller angle.
    """
    x0, y0, x1, y1 = box
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(image.shape[1], int(np.ceil(x1))), min(image.shape[0], int(np.ceil(y1)))
    if ix1 - ix0 < 4 or iy1 - iy0 < 3:
        return 0.0
    gray = image[iy0:iy1, ix0:ix1].astype(np.float32).mean(axis=2)
    ink = np.clip(np.percentile(gray, 80) - gray, 0, None)
    if not ink.any():
        return 0.0
    h, w = gray.shape
    ys, xs = np.nonzero(ink)
    weights = ink[ys, xs]
    limit = min(max_angle_deg, math.degrees(math.atan(h / w)))
    angles = np.arange(0.0, limit + 1e-9, step_deg)
    angles = np.unique(np.concatenate([-angles, angles]))
    angles = angles[np.argsort(np.abs(angles), kind="stable")]  # ties to the smaller angle
    best, best_score = 0.0, -1.0
    for angle in angles:
        rows = np.round(ys - math.tan(math.radians(angle)) * (xs - w / 2)).astype(np.int64)
        rows -= rows.min()
        score = float(np.sum(np.bincount(rows, weights=weights) ** 2))
        if score > best_score * (1 + 1e-6):
            best, best_score = float(angle), score
    return best


def slanted_quad(box: tuple[float, float, float, float], angle_deg: float) -> np.ndarray | None:
    """The rectangle at ``angle_deg`` whose axis-aligned bounding box is ``box`` (TL, TR, BR, BL), or None.

    A text line of width ``w`` and height ``h`` slanted by ``a`` fills a box of
    ``w cos a + h sin a`` by ``w sin a + h cos a``; solved for ``w`` and ``h``.
    None when that leaves no line (narrower than 1 px or lower than
    :data:`MIN_LINE_HEIGHT`: the box is too thin for the angle).
    """
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    a = math.radians(abs(angle_deg))
    c, s = math.cos(a), math.sin(a)
    det = c * c - s * s
    if det <= 1e-6:
        return None
    w, h = (bw * c - bh * s) / det, (bh * c - bw * s) / det
    if w <= 1 or h < MIN_LINE_HEIGHT:
        return None
    sin, cos = math.sin(math.radians(angle_deg)), math.cos(math.radians(angle_deg))
    direction, down = np.array([cos, sin]), np.array([-sin, cos])
    # the top-left corner lies on the box's top edge when the line falls, on its left edge when it rises
    tl = np.array([x0 + h * sin, y0]) if angle_deg >= 0 else np.array([x0, y0 - w * sin])
    return np.array([tl, tl + w * direction, tl + w * direction + h * down, tl + h * down])


def box_crop(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    config: CropConfig,
    field: str,
    text: str | None = None,
    deskew: bool = False,
) -> FieldCrop:
    """The crop of an axis-aligned pixel box (left, top, right, bottom), as a detector gives it.

    With ``deskew``, the line's slant in the box (:func:`line_angle`) is
    undone: the crop is taken along the slanted rectangle the box bounds
    (:func:`slanted_quad`), as a rectified crop is (kind "box" still).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise CropError(f"{field}: box {box} is empty; expected (left, top, right, bottom) pixels")
    line = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    height = y1 - y0
    if deskew:
        angle = line_angle(image, (x0, y0, x1, y1))
        slanted = slanted_quad((x0, y0, x1, y1), angle) if angle else None
        if slanted is not None:
            line, height = slanted, quad_sides(slanted)[1]
    quad = expand_quad(line, config.margin, config.side_margin)
    pixels, content = crop_quad(image, quad, config)
    return FieldCrop(field, "box", pixels, content, quad.astype(np.float32), text, height)


def crops_from_boxes(
    image: np.ndarray,
    boxes: Mapping[str, tuple[float, float, float, float]],
    config: CropConfig = CropConfig(),
    deskew: bool = False,
) -> dict[str, FieldCrop]:
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
        crops[field] = box_crop(image, box, config, field, deskew=deskew)
    return crops


def jitter_box(
    box: tuple[float, float, float, float], amount: float, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Move each edge of a pixel box by up to ``amount`` x its height (uniform), kept inside the frame.

    A detector's boxes miss the ink by a pixel or two (more on small text):
    the reader learns from boxes jittered like that.
    """
    x0, y0, x1, y1 = box
    h = y1 - y0
    dx0, dy0, dx1, dy1 = rng.uniform(-amount, amount, size=4) * h
    x0, x1 = min(max(0.0, x0 + dx0), size[0]), min(max(0.0, x1 + dx1), size[0])
    y0, y1 = min(max(0.0, y0 + dy0), size[1]), min(max(0.0, y1 + dy1), size[1])
    if x1 - x0 < 1 or y1 - y0 < 1:
        return box
    return x0, y0, x1, y1


def render_value_crops(
    seed: int,
    index: int,
    synth_config: SynthConfig = TRAIN,
    crop: CropConfig = CropConfig(),
    kinds: tuple[str, ...] = CROP_KINDS,
    box_jitter: float = 0.0,
    deskew: bool = False,
) -> list[FieldCrop]:
    """The five fields of rendered card ``(seed, index)`` as crops with their printed texts.

    Args:
      kinds: "rectified" (the value's quadrilateral) and/or "box" (its
        axis-aligned ground-truth box, as a perfect detector would give it).
      box_jitter: move each edge of the "box" crops by up to this many box
        heights (:func:`jitter_box`; 0 = the exact box). The draws depend on
        (seed, index) only.
      deskew: "box" crops are deskewed (:func:`box_crop`), as ``scan --reader``
        and the app crop a detector's box.

    Returns:
      One crop per field and kind, in CLASSES order (rectified first).
    """
    card = render_card(seed, index, synth_config)
    photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
    return card_value_crops(card, photo, (seed, index), crop, kinds, box_jitter, deskew)


def card_value_crops(
    card: RenderedCard,
    photo: np.ndarray,
    key: tuple[int, int],
    crop: CropConfig,
    kinds: tuple[str, ...],
    box_jitter: float,
    deskew: bool,
) -> list[FieldCrop]:
    """:func:`render_value_crops` of an already rendered card (``photo``: its decoded JPEG).

    ``key`` (seed, index) seeds the box jitter.
    """
    bad = [k for k in kinds if k not in CROP_KINDS]
    if bad or not kinds:
        raise CropError(f"crop kinds {kinds}: use one or both of {', '.join(CROP_KINDS)}")
    crops = []
    if "rectified" in kinds:
        for field, quad in card.value_quads.items():
            grown = expand_quad(quad, crop.margin, crop.side_margin)
            pixels, content = crop_quad(photo, grown, crop)
            crops.append(
                FieldCrop(
                    field,
                    "rectified",
                    pixels,
                    content,
                    grown.astype(np.float32),
                    card.texts[field],
                    quad_sides(quad.astype(np.float64))[1],
                )
            )
    if "box" in kinds:
        rng = np.random.default_rng([*key, 7])
        size = (photo.shape[1], photo.shape[0])
        for box in card.boxes:
            pixel_box = box.to_pixels(*size)
            if box_jitter > 0:
                pixel_box = jitter_box(pixel_box, box_jitter, rng, size)
            crops.append(box_crop(photo, pixel_box, crop, box.label, card.texts[box.label], deskew=deskew))
    return crops


def detector_value_crops(
    card: RenderedCard, photo: np.ndarray, found: Mapping[str, tuple[float, float, float, float]], crop: CropConfig
) -> list[FieldCrop]:
    """Deskewed crops of a detector's boxes on a rendered card, with the printed texts (kind "detector").

    ``found``: the detector's top box per field, (left, top, right, bottom)
    pixels of ``photo``. A box whose IoU with its field's ground-truth box is
    under :data:`DETECTOR_MIN_IOU` is left out: the value is not in it, and a
    reader taught to "read" it would learn to make text up. So is a field
    the detector did not find. In CLASSES order.
    """
    truth = field_pixel_boxes(card.boxes, photo.shape[1], photo.shape[0])
    crops = []
    for field in CLASSES:
        box = found.get(field)
        if box is None or field not in truth or iou(box, truth[field]) < DETECTOR_MIN_IOU:
            continue
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        made = box_crop(photo, box, crop, field, card.texts[field], deskew=True)
        crops.append(dataclasses.replace(made, kind=DETECTOR_KIND))
    return crops
