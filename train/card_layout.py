"""Where the card is, from its field boxes; and when and where to take a second, zoomed look.

The renderer (:func:`ktp_tflite.train.synth._render_card`) prints each field
value at a fixed template position on the 856 x 540 px card, jittered by a
few pixels. :data:`TEMPLATE` holds, per field, the left edge, top and bottom
of the value's ink in card pixels, worked out from the renderer's layout
draws (the means of its uniform draws, below). The right edge of a value
depends on its text, so it is not used.

Card from fields (:func:`card_from_fields`), in photo pixels (square pixels):

1. Scale ``s`` (photo px per card px): the least-squares line through the
   (template y, photo y) pairs of the tops and bottoms of the fields given;
   with one field, its height over its template height. If the fit is not
   positive (boxes out of the template's row order), the mean of the
   per-field height ratios.
2. The enclosing box of the fields, expanded by the template's margins times
   ``s``: left by the template's left edge of the leftmost field given, top by
   the template top of the topmost, bottom by the card height below the
   template bottom of the lowest; the right edge is ``s * CARD_W`` right of
   the card's left edge (or the enclosing box's right edge, if further).

The estimate is the card's own size, not the extent of a rolled card: on
rendered photos with roll up to 15 degrees it is 7 % narrower than the
card's bounding box on average (measured: tests/test_card_layout.py).

Zoom crop (:func:`zoom_crop`): when the estimated card width is below
``threshold`` (:data:`DEFAULT_ZOOM_THRESHOLD`) of the frame width, the crop
is the card box grown by ``margin`` (:data:`DEFAULT_ZOOM_MARGIN`) card
widths on every side, clipped to the frame, grown (centred, shifted back
into the frame) to the frame's aspect ratio as far as the frame allows, and
rounded outwards to whole pixels. Otherwise, or when the crop would be the
whole frame, there is no crop. The frame's aspect ratio, not the model
input's: a runtime stretches any image to the input, so a crop shaped like
the frame shows pass 2 the card as pass 1 saw it, only larger, and the
detector was trained on frames so stretched. (The model input's square
stretched the card a third wider than any training card: on 400 photos of
seed 6000, MediaPipe, presized x4, cards read 0.950 -> 0.963, under 45 %
of the width 0.890 -> 0.932, mAP@[.5:.95] 74.29 -> 76.03.)

Card fit (:func:`card_fit_choice`): which of a field's detections is the
card's. A detector's top box of a field is sometimes the value one row off
(Agama or Pekerjaan for Status Perkawinan), with the right box a close
second. Each field's first :data:`FIT_CANDIDATES` detections (best first)
scoring at least :data:`FIT_MIN_SCORE_RATIO` of its best are candidates;
every combination of one candidate per field is scored by

    cost = sum over fields of (rx^2 + ry^2) / (2 * FIT_SIGMA^2) - ln(score)

where (rx, ry) is the field's residual, in card pixels, after the least-
squares similarity (scale, rotation, shift: x' = a x - c y + tx,
y' = c x + a y + ty) from the template onto the boxes. A box gives two
equations from its value's left end (the right end depends on the text):
for a card rolled clockwise (the line falls to the right, c >= 0) its left
edge is the template's bottom-left corner's x and its top the top-left's y;
rolled the other way, its left edge is the top-left's x and its bottom the
bottom-left's y. Both branches are fitted (a branch whose rotation has the
other sign, beyond :data:`FIT_BRANCH_SLACK` of the scale, or with a <= 0,
is skipped); the cheaper counts. The cheapest combination wins (ties: the
first in candidate order, so the top boxes on a tie). With fewer than
:data:`FIT_MIN_FIELDS` fields, or no fit, every field keeps its top box. The
fit is in closed form (centred 2x2 normal equations), plain floats, in the
same operation order as the Kotlin twin.

ktp-core's ``CardLayout`` is the Kotlin twin (shared vectors:
tests/vectors/ktp_vectors.json, "card_layout"): change them together.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.synth import CARD_H, CARD_W

# (left, top, right, bottom) in pixels of one frame.
PixelBox = tuple[float, float, float, float]

# The means of _render_card's layout draws (rng.integers(low, high): low..high-1).
HEADER_SIZE = 26.0  # header_size = integers(24, 29)
LABEL_X = 29.5  # label_x = integers(22, 38)
NIK_BASELINE = 40 + 2 * HEADER_SIZE + 35.5  # nik_y = 40 + 2 * header_size + integers(30, 42)
NIK_VALUE_X = LABEL_X + 162.0 + 18  # colon_x = label_x + integers(150, 175); nik_x = colon_x + 18
NIK_SIZE = 32.5  # NIK font size integers(30, 36)
ROW_VALUE_X = LABEL_X + 179.5 + 12.5  # row_colon_x = label_x + integers(170, 190); value_x = + integers(10, 16)
FIRST_ROW_BASELINE = NIK_BASELINE + 35.5  # y = nik_y + integers(32, 40)
ROW_SIZE = 18.5  # row_size = integers(17, 21)
ROW_SPACING = ROW_SIZE + 7.5  # spacing = row_size + integers(6, 10)
ROW_NUMBER = {"nama": 0, "jenis_kelamin": 2, "status_perkawinan": 8, "kewarganegaraan": 10}
# Ink height of upper-case text and digits over the font size (values are printed
# in upper case, so the ink ends at the baseline); measured on frontal renders.
CAP_HEIGHT = 0.72


def _template() -> dict[str, tuple[float, float, float]]:
    rows = {
        name: (ROW_VALUE_X, baseline - CAP_HEIGHT * ROW_SIZE, baseline)
        for name, number in ROW_NUMBER.items()
        for baseline in [FIRST_ROW_BASELINE + number * ROW_SPACING]
    }
    return {"nik": (NIK_VALUE_X, NIK_BASELINE - CAP_HEIGHT * NIK_SIZE, NIK_BASELINE), **rows}


# Field -> (left, top, bottom) of its value's ink on the template card, card pixels.
TEMPLATE: dict[str, tuple[float, float, float]] = _template()

# The card fit (module docstring), tuned on 400 photos of seed 6000 (no evaluation seed):
# cards read through LiteRT 0.865 -> 0.918, flat for sigmas of 6-10 and 3 or 5 candidates.
FIT_CANDIDATES = 3  # detections per field tried, best first
FIT_MIN_SCORE_RATIO = 0.1  # of the field's best score
FIT_SIGMA = 8.0  # card pixels (a third of the row spacing)
FIT_MIN_FIELDS = 3  # the similarity has 4 unknowns; 2 equations per field
FIT_BRANCH_SLACK = 0.02  # a roll branch takes rotations down to this share of the scale the other way
_FIT_MIN_SCORE = 1e-6  # ln() floor of a score

DEFAULT_ZOOM_THRESHOLD = 0.45  # zoom when the card is narrower than this share of the frame
DEFAULT_ZOOM_MARGIN = 0.1  # card widths added on every side of the card for the crop


class CardLayoutError(KtpError, ValueError):
    """Field boxes or a frame the card rule cannot work with."""


def _check_fields(fields: Mapping[str, PixelBox]) -> None:
    if not fields:
        raise CardLayoutError("card from fields: no field box given; at least one is needed")
    for name, box in fields.items():
        if name not in TEMPLATE:
            raise CardLayoutError(f"card from fields: unknown field {name!r}; use {', '.join(CLASSES)}")
        left, top, right, bottom = box
        if not (right > left and bottom > top):
            raise CardLayoutError(f"card from fields: the {name} box {tuple(box)} is empty")


def card_scale(fields: Mapping[str, PixelBox]) -> float:
    """Photo pixels per card pixel, from the fields' tops and bottoms (module docstring, step 1).

    Raises:
      CardLayoutError: no field, an unknown field or an empty box.
    """
    _check_fields(fields)
    template_y, photo_y = [], []
    for name, (_, top, _, bottom) in fields.items():
        _, template_top, template_bottom = TEMPLATE[name]
        template_y += [template_top, template_bottom]
        photo_y += [top, bottom]
    n = len(template_y)
    mean_t, mean_p = sum(template_y) / n, sum(photo_y) / n
    spread = sum((t - mean_t) ** 2 for t in template_y)
    scale = sum((t - mean_t) * (p - mean_p) for t, p in zip(template_y, photo_y)) / spread
    if scale > 0:
        return scale
    ratios = [(box[3] - box[1]) / (TEMPLATE[name][2] - TEMPLATE[name][1]) for name, box in fields.items()]
    return sum(ratios) / len(ratios)


def card_from_fields(fields: Mapping[str, PixelBox]) -> PixelBox:
    """The card's box in the photo from any of its field boxes (module docstring).

    Args:
      fields: field name (of ``CLASSES``) -> (left, top, right, bottom) in
        photo pixels; at least one.

    Raises:
      CardLayoutError: no field, an unknown field or an empty box.
    """
    scale = card_scale(fields)
    lefts, tops, rights, bottoms = zip(*fields.values())
    template_left = min(TEMPLATE[name][0] for name in fields)
    template_top = min(TEMPLATE[name][1] for name in fields)
    template_bottom = max(TEMPLATE[name][2] for name in fields)
    left = min(lefts) - scale * template_left
    top = min(tops) - scale * template_top
    bottom = max(bottoms) + scale * (CARD_H - template_bottom)
    right = max(max(rights), left + scale * CARD_W)
    return (left, top, right, bottom)


def card_width_fraction(fields: Mapping[str, PixelBox], frame_width: float) -> float:
    """The estimated card width over the frame width.

    Raises:
      CardLayoutError: as :func:`card_from_fields`, or a frame width <= 0.
    """
    if frame_width <= 0:
        raise CardLayoutError(f"card width fraction: frame width must be positive, got {frame_width}")
    left, _, right, _ = card_from_fields(fields)
    return (right - left) / frame_width


def zoom_crop(
    card: PixelBox,
    frame_size: tuple[int, int],
    *,
    threshold: float = DEFAULT_ZOOM_THRESHOLD,
    margin: float = DEFAULT_ZOOM_MARGIN,
) -> tuple[int, int, int, int] | None:
    """The second-pass crop (left, top, right, bottom) in whole frame pixels, or None.

    Args:
      card: the card box in frame pixels (:func:`card_from_fields`).
      frame_size: (width, height) of the frame; the crop takes its aspect ratio.
      threshold: zoom only when the card width is below this share of the frame width.
      margin: card widths added on every side.

    Raises:
      CardLayoutError: a non-positive size, an empty card box, or a threshold or
        margin below 0.
    """
    frame_w, frame_h = frame_size
    if min(frame_w, frame_h) <= 0:
        raise CardLayoutError(f"zoom crop: the frame size must be positive, got {frame_size}")
    if threshold < 0 or margin < 0:
        raise CardLayoutError(f"zoom crop: threshold {threshold} and margin {margin} must be >= 0")
    left, top, right, bottom = card
    card_w = right - left
    if not (card_w > 0 and bottom > top):
        raise CardLayoutError(f"zoom crop: the card box {tuple(card)} is empty")
    if card_w >= threshold * frame_w:
        return None
    pad = margin * card_w
    left, top = max(0.0, left - pad), max(0.0, top - pad)
    right, bottom = min(float(frame_w), right + pad), min(float(frame_h), bottom + pad)
    if right <= left or bottom <= top:
        return None  # the card lies outside the frame
    aspect = frame_w / frame_h
    width, height = right - left, bottom - top
    if width < aspect * height:
        left, right = _grow(left, right, min(float(frame_w), aspect * height), frame_w)
    else:
        top, bottom = _grow(top, bottom, min(float(frame_h), width / aspect), frame_h)
    crop = (max(0, _floor(left)), max(0, _floor(top)), min(frame_w, _ceil(right)), min(frame_h, _ceil(bottom)))
    return None if crop == (0, 0, frame_w, frame_h) else crop


def _grow(low: float, high: float, length: float, limit: int) -> tuple[float, float]:
    """[low, high] grown to ``length`` about its centre, shifted back inside [0, limit]."""
    centre = (low + high) / 2
    low, high = centre - length / 2, centre + length / 2
    if low < 0:
        low, high = 0.0, length
    elif high > limit:
        low, high = limit - length, float(limit)
    return low, high


def _floor(value: float) -> int:
    return int(value // 1)


def _ceil(value: float) -> int:
    return int(-(-value // 1))


def card_fit_choice(candidates: Mapping[str, Sequence[tuple[PixelBox, float]]]) -> dict[str, int]:
    """For each field, the index of its detection the card fit picks (module docstring).

    Args:
      candidates: field name (of ``CLASSES``) -> its detections as ((left,
        top, right, bottom) pixels of a frame with square pixels, score),
        best first. Fields with no detection may be left out.

    Returns:
      Field -> index into its list (0, the top box, unless the fit says otherwise).

    Raises:
      CardLayoutError: an unknown field or an empty box among the candidates.
    """
    choice = {name: 0 for name, found in candidates.items() if found}
    names = list(choice)
    for name in names:
        if name not in TEMPLATE:
            raise CardLayoutError(f"card fit: unknown field {name!r}; use {', '.join(CLASSES)}")
        for (left, top, right, bottom), _ in candidates[name]:
            if not (right > left and bottom > top):
                raise CardLayoutError(f"card fit: a {name} box {(left, top, right, bottom)} is empty")
    if len(names) < FIT_MIN_FIELDS:
        return choice
    options = []
    for name in names:
        found = candidates[name]
        floor = FIT_MIN_SCORE_RATIO * found[0][1]
        options.append([i for i, (_, score) in enumerate(found[:FIT_CANDIDATES]) if i == 0 or score >= floor])
    best_cost, best = math.inf, None
    for combo in itertools.product(*options):
        picked = [candidates[name][i] for name, i in zip(names, combo)]
        geometric = _fit_cost([TEMPLATE[name] for name in names], [box for box, _ in picked])
        if geometric is None:
            continue
        cost = geometric
        for _, score in picked:
            cost -= math.log(max(score, _FIT_MIN_SCORE))
        if cost < best_cost:
            best_cost, best = cost, combo
    return choice if best is None else dict(zip(names, best))


def _fit_cost(template: Sequence[tuple[float, float, float]], boxes: Sequence[PixelBox]) -> float | None:
    """The geometric cost of the cheaper roll branch, or None when neither branch fits."""
    best = None
    for branch in (1.0, -1.0):
        cost = _branch_cost(template, boxes, branch)
        if cost is not None and (best is None or cost < best):
            best = cost
    return best


def _branch_cost(
    template: Sequence[tuple[float, float, float]], boxes: Sequence[PixelBox], branch: float
) -> float | None:
    """sum((rx^2 + ry^2) / (2 sigma^2)) in card pixels of one roll branch's similarity fit, or None."""
    # Per field: the x equation's template point (u, q) -> left; the y equation's (u, r) -> the y observation.
    us, qs, rs, xs, ys = [], [], [], [], []
    for (u, t, b), (left, top, _, bottom) in zip(template, boxes):
        us.append(u)
        qs.append(b if branch > 0 else t)
        rs.append(t if branch > 0 else b)
        xs.append(left)
        ys.append(top if branch > 0 else bottom)
    us, qs, rs, xs, ys = (_centred(v) for v in (us, qs, rs, xs, ys))
    suu = sur = squ = sqq = srr = sxu = syr = syu = sxq = 0.0
    for u, q, r, x, y in zip(us, qs, rs, xs, ys):
        suu += u * u
        srr += r * r
        sqq += q * q
        sur += u * r
        squ += q * u
        sxu += x * u
        syr += y * r
        syu += y * u
        sxq += x * q
    a11, a12, a22 = suu + srr, sur - squ, sqq + suu
    b1, b2 = sxu + syr, syu - sxq
    det = a11 * a22 - a12 * a12
    if not det > 0:
        return None
    a = (b1 * a22 - a12 * b2) / det
    c = (a11 * b2 - a12 * b1) / det
    scale2 = a * a + c * c
    if not a > 0 or branch * c < -FIT_BRANCH_SLACK * math.sqrt(scale2):
        return None
    total = 0.0
    for u, q, r, x, y in zip(us, qs, rs, xs, ys):
        rx = a * u - c * q - x
        ry = a * r + c * u - y
        total += rx * rx + ry * ry
    return total / scale2 / (2.0 * FIT_SIGMA * FIT_SIGMA)


def _centred(values: Sequence[float]) -> list[float]:
    """Values minus their mean, the sum left to right as Kotlin adds (``sum()`` compensates from Python 3.12)."""
    total = 0.0
    for value in values:
        total += value
    mean = total / len(values)
    return [value - mean for value in values]
