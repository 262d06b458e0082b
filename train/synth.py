"""Synthetic KTP photos with exact field boxes.

Each sample is an e-KTP front (header, the thirteen rows, photo, signature,
blue guilloche background) with a fake but structurally valid identity
(:mod:`ktp_tflite.train.identity`), photographed: perspective warp, a varied
background that may hold distracting documents, occluders (a thumb over the
card's edge, other cards, coins, pens), lighting, motion and focus blur,
down-then-up resampling, noise, exposure and colour, JPEG. Never mirrored.
:class:`SynthConfig` holds every range and share; :data:`PRESETS` holds the
``train`` recipe (the defaults) and the ``stress`` recipe, whose fonts and
harsher ranges the training recipe never draws.

Ground truth: one box per field per card, the axis-aligned extent of the
value's ink (pixels of the value text with coverage >= 50 %, the label and
colon excluded) mapped through the same homography as the pixels. Occluders
never cover a value box, so every box holds fully visible ink.

Sample ``i`` of seed ``s`` depends only on ``(s, i)`` and the config: results
are identical whatever the number of worker processes.

Why one file: one render flow (:func:`render_card`) whose stages all draw from one generator in
a fixed order, so a draw added to one stage changes every later one, in every sample. If it
grows, the camera effects (``_lighting``, ``_motion_blur``, ``_sensor_noise``, ``_camera``) could
go to synth_camera.py and the occluders (``_thumb``, ``_object``, ...) to synth_occluders.py.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.identity import Identity, make_identity
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Box, Dataset, Example

CARD_W, CARD_H = 856, 540  # 10 px per mm of the ISO/IEC 7810 ID-1 card (85.6 x 54 mm)
TODAY = datetime.date(2026, 1, 1)  # fixed so that a seed gives the same cards every year
INK_COVERAGE = 128  # an anti-aliased pixel counts as ink at >= 50 % coverage
VALUE_MARGIN = 2  # occluders keep this many frame pixels away from every value box

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/ocr-a"),
    Path("/usr/share/fonts/truetype/liberation2"),
    Path("/usr/share/fonts/truetype/liberation"),
    Path("/usr/share/fonts/truetype/croscore"),
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/truetype/freefont"),
)
# font key -> (file name, Debian package that installs it)
FONT_FILES: dict[str, tuple[str, str]] = {
    "ocr-a": ("OCRA.ttf", "fonts-ocr-a"),
    "ocr-a-bold": ("OCRABold.ttf", "fonts-ocr-a"),
    "liberation-sans": ("LiberationSans-Regular.ttf", "fonts-liberation2"),
    "liberation-sans-bold": ("LiberationSans-Bold.ttf", "fonts-liberation2"),
    "arimo": ("Arimo-Regular.ttf", "fonts-croscore"),
    "arimo-bold": ("Arimo-Bold.ttf", "fonts-croscore"),
    "dejavu-sans": ("DejaVuSans.ttf", "fonts-dejavu-core"),
    "dejavu-sans-bold": ("DejaVuSans-Bold.ttf", "fonts-dejavu-core"),
    "noto-sans": ("NotoSans-Regular.ttf", "fonts-noto-core"),
    "noto-sans-bold": ("NotoSans-Bold.ttf", "fonts-noto-core"),
    "freesans": ("FreeSans.ttf", "fonts-freefont-ttf"),
    "freesans-bold": ("FreeSansBold.ttf", "fonts-freefont-ttf"),
    "dejavu-sans-mono-bold": ("DejaVuSansMono-Bold.ttf", "fonts-dejavu-core"),
    "liberation-mono-bold": ("LiberationMono-Bold.ttf", "fonts-liberation2"),
    "noto-sans-mono-bold": ("NotoSansMono-Bold.ttf", "fonts-noto-mono"),
    "freemono-bold": ("FreeMonoBold.ttf", "fonts-freefont-ttf"),
}
TEXT_FAMILIES = ("liberation-sans", "arimo", "dejavu-sans", "noto-sans", "freesans")  # bold: key + "-bold"
TEXT_BOLD = "text-bold"  # a NIK font choice: the card's text family in bold
NIK_FONTS = (
    "ocr-a",
    "ocr-a-bold",
    "dejavu-sans-mono-bold",
    "liberation-mono-bold",
    "noto-sans-mono-bold",
    "freemono-bold",
    TEXT_BOLD,
)


class FontError(KtpError):
    """A font the renderer needs is not installed."""


class SynthConfigError(KtpError):
    """A renderer config names an unknown font, preset or an impossible range."""


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What the renderer varies, and by how much. The defaults are the ``train`` recipe.

    A share is the probability that a photo gets the effect; a range
    ``(low, high)`` is drawn uniformly. Train defaults in brackets; the
    ``stress`` preset (:data:`STRESS`) changes only what its comment says.

    Attributes:
      width: frame width in pixels.
      height: frame height in pixels.
      min_card_fraction: card width / frame width, lowest (0.30).
      max_card_fraction: card width / frame width, highest (0.95).
      max_roll_deg: in-plane rotation, uniform in +-this (15).
      max_tilt_deg: tilt away from the camera, uniform 0-this (25), in a uniform direction.
      jpeg_quality: JPEG quality range, inclusive (40-95).
      photometric: master switch of shadow, lighting, glare, exposure, colour,
        motion blur, noise, blur and resampling (True).
      distractors: other text documents on the background (half the photos, 1-2).
      text_fonts: the card's text family (header, labels, values), one per card
        with equal shares; keys of :data:`TEXT_FAMILIES`, drawn regular and bold
        (Liberation Sans, Arimo, DejaVu Sans, Noto Sans: 1/4 each).
      bold_value_share: share of cards whose row values are bold (0.3).
      nik_fonts: (font key, weight) pairs for the NIK value, weights normalised;
        ``"text-bold"`` is the card's text family in bold (OCR-A 0.3, OCR-A Bold
        0.3, DejaVu Sans Mono Bold, Liberation Mono Bold, Noto Sans Mono Bold and
        text bold 0.1 each).
      layout_jitter_px: each row's baseline and its label, colon and value x move
        by uniform +-this many card pixels (of 856) from the card template,
        independently (3).
      thumb_share: share of photos with a thumb or finger over a card edge (0.25),
        0.28-0.42 card heights wide, reaching 0.05-0.25 card heights into the card.
      object_share: share of photos with 1 to ``max_objects`` other objects over the
        scene: another card, a coin or a pen, equal shares (0.3).
      max_objects: most objects per photo (2).
      light_gradient_share: share of photos with a directional light ramp that
        darkens the frame towards one side (0.3).
      light_gradient: darkening at the dark side, fraction of the light (0.1-0.4).
      colour_temperature: white balance t: red gain 1 + t, blue gain 1 - t, with
        |t| in this range and a random sign, every photo (0-0.1).
      motion_blur_share: share of photos with linear motion blur at a uniform angle (0.2).
      motion_blur_px: motion blur length in frame pixels (2-5).
      blur_share: share of photos with Gaussian (focus) blur (0.6).
      blur_sigma: Gaussian blur sigma in frame pixels (0-1.3; below 0.15 no blur).
      resample_share: share of photos taken at a lower resolution: scaled down by a
        factor and back up (0.25).
      resample_factor: that factor (0.55-0.9).

    Never both occluders and a value box on the same pixel: occluders are placed
    clear of every value box (by :data:`VALUE_MARGIN` pixels) or dropped.
    """

    width: int = 640
    height: int = 480
    min_card_fraction: float = 0.30
    max_card_fraction: float = 0.95
    max_roll_deg: float = 15.0
    max_tilt_deg: float = 25.0
    jpeg_quality: tuple[int, int] = (40, 95)
    photometric: bool = True
    distractors: bool = True
    text_fonts: tuple[str, ...] = ("liberation-sans", "arimo", "dejavu-sans", "noto-sans")
    bold_value_share: float = 0.3
    nik_fonts: tuple[tuple[str, float], ...] = (
        ("ocr-a", 0.3),
        ("ocr-a-bold", 0.3),
        ("dejavu-sans-mono-bold", 0.1),
        ("liberation-mono-bold", 0.1),
        ("noto-sans-mono-bold", 0.1),
        (TEXT_BOLD, 0.1),
    )
    layout_jitter_px: float = 3.0
    thumb_share: float = 0.25
    object_share: float = 0.3
    max_objects: int = 2
    light_gradient_share: float = 0.3
    light_gradient: tuple[float, float] = (0.1, 0.4)
    colour_temperature: tuple[float, float] = (0.0, 0.1)
    motion_blur_share: float = 0.2
    motion_blur_px: tuple[float, float] = (2.0, 5.0)
    blur_share: float = 0.6
    blur_sigma: tuple[float, float] = (0.0, 1.3)
    resample_share: float = 0.25
    resample_factor: tuple[float, float] = (0.55, 0.9)

    def __post_init__(self):
        unknown = [f for f in self.text_fonts if f not in TEXT_FAMILIES]
        unknown += [f for f, _ in self.nik_fonts if f not in NIK_FONTS]
        if unknown or not self.text_fonts or not self.nik_fonts:
            raise SynthConfigError(
                f"SynthConfig: unknown or no fonts {unknown}; text fonts are {', '.join(TEXT_FAMILIES)}, "
                f"NIK fonts {', '.join(NIK_FONTS)}"
            )
        if any(w <= 0 for _, w in self.nik_fonts):
            raise SynthConfigError("SynthConfig.nik_fonts: every weight must be positive")
        shares = (
            "bold_value_share",
            "thumb_share",
            "object_share",
            "light_gradient_share",
            "motion_blur_share",
            "blur_share",
            "resample_share",
        )
        for name in shares:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynthConfigError(f"SynthConfig.{name} = {getattr(self, name)}: a share must be 0-1")
        ranges = (
            "jpeg_quality",
            "light_gradient",
            "colour_temperature",
            "motion_blur_px",
            "blur_sigma",
            "resample_factor",
        )
        for name in ranges:
            low, high = getattr(self, name)
            if low > high or low < 0:
                raise SynthConfigError(f"SynthConfig.{name} = {(low, high)}: expected 0 <= low <= high")
        if not 0 < self.min_card_fraction <= self.max_card_fraction <= 1:
            raise SynthConfigError("SynthConfig: expected 0 < min_card_fraction <= max_card_fraction <= 1")
        if not (0 < self.resample_factor[0] and self.resample_factor[1] <= 1):
            raise SynthConfigError("SynthConfig.resample_factor must lie in (0, 1]")

    def font_keys(self) -> tuple[str, ...]:
        """Every font key a card of this config may draw, NIK fonts first."""
        keys = [f for f, _ in self.nik_fonts if f != TEXT_BOLD]
        for family in self.text_fonts:
            keys += [family, family + "-bold"]
        return tuple(dict.fromkeys(keys))


TRAIN = SynthConfig()
# The stress recipe: only fonts and ranges the train recipe never draws, to measure generalisation.
STRESS = SynthConfig(
    min_card_fraction=0.20,  # train 0.30-0.95: 0.20-0.30 held out
    max_card_fraction=0.70,
    jpeg_quality=(30, 70),  # train 40-95: 30-39 held out
    text_fonts=("freesans",),  # held out of train
    nik_fonts=(("freemono-bold", 0.7), (TEXT_BOLD, 0.3)),  # FreeMono Bold, FreeSans Bold: held out
    thumb_share=0.6,  # train 0.25
    object_share=0.7,  # train 0.3
    max_objects=3,  # train 2
    light_gradient_share=0.6,  # train 0.3
    light_gradient=(0.4, 0.6),  # train 0.1-0.4: held out
    colour_temperature=(0.1, 0.18),  # train |t| 0-0.1: held out
    motion_blur_share=0.4,  # train 0.2
    motion_blur_px=(5.0, 8.0),  # train 2-5: held out
    resample_share=0.4,  # train 0.25
    resample_factor=(0.4, 0.55),  # train 0.55-0.9: held out
)
PRESETS: dict[str, SynthConfig] = {"train": TRAIN, "stress": STRESS}


def preset_config(name: str, width: int = 640, height: int = 480) -> SynthConfig:
    """The recipe ``name`` (``train`` or ``stress``) at a frame size."""
    if name not in PRESETS:
        raise SynthConfigError(f"unknown synth preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], width=width, height=height)


@dataclasses.dataclass(frozen=True)
class RenderedCard:
    """One rendered photo: pixels, boxes, the printed field texts and what was drawn."""

    image: np.ndarray  # uint8 [H, W, 3], before JPEG
    jpeg: bytes
    boxes: tuple[Box, ...]
    texts: dict[str, str]
    card_quad: np.ndarray  # [4, 2] corners of the card in the frame (x, y), clockwise from top-left
    # field -> [4, 2] frame corners (TL, TR, BR, BL) of the rectangle around the value's ink on the
    # card, through the card's perspective: the value's own tilted line, for the reader's crops
    value_quads: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    fonts: frozenset[str] = frozenset()  # font keys of every text drawn (card and scene)
    occluders: tuple[str, ...] = ()  # "thumb", "card", "coin", "pen": the occluders placed


# --------------------------------------------------------------------------- fonts


def _find_font(key: str) -> Path:
    name, package = FONT_FILES[key]
    for folder in _FONT_DIRS:
        if (folder / name).exists():
            return folder / name
    raise FontError(
        f"font {name} not found in {', '.join(str(d) for d in _FONT_DIRS) or 'no font folder'}; "
        f"install it with: apt-get install {package}"
    )


@functools.cache
def _unhinted_font_file(key: str) -> bytes:
    """The font file of ``key`` without its TrueType hinting programs.

    A printed card has no hinting, and FreeType renders the unhinted outlines
    of heavily hinted fonts (Arimo, Noto) 2-3 times faster.
    """
    from fontTools.ttLib import TTFont  # a dependency of matplotlib

    font = TTFont(str(_find_font(key)), lazy=True)
    for tag in ("fpgm", "prep", "cvt "):
        if tag in font:
            del font[tag]
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


@functools.cache
def _font(key: str, size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(io.BytesIO(_unhinted_font_file(key)), size)
    font.key = key  # type: ignore[attr-defined]  # which FONT_FILES entry, for RenderedCard.fonts
    return font


def check_fonts(config: SynthConfig = TRAIN) -> None:
    """Raise FontError naming the Debian package when a font of ``config`` is missing."""
    for key in config.font_keys():
        _font(key, 20)


def _fit_font(key: str, size: int, text: str, max_width: float) -> ImageFont.FreeTypeFont:
    font = _font(key, size)
    while size > 10 and font.getlength(text) > max_width:
        size -= 1
        font = _font(key, size)
    return font


def _choose(rng: np.random.Generator, weighted: tuple[tuple[str, float], ...]) -> str:
    weights = np.array([w for _, w in weighted], dtype=np.float64)
    return weighted[int(rng.choice(len(weighted), p=weights / weights.sum()))][0]


# --------------------------------------------------------------------------- card


@functools.lru_cache(maxsize=8)
def _guilloche(variant: int) -> np.ndarray:
    """A blue guilloche-like security background, float32 [CARD_H, CARD_W, 3] in 0-1."""
    rng = np.random.default_rng(1000 + variant)
    yy, xx = np.mgrid[0:CARD_H, 0:CARD_W].astype(np.float32)
    cx, cy = CARD_W * rng.uniform(0.3, 0.7), CARD_H * rng.uniform(0.3, 0.7)
    r = np.hypot(xx - cx, yy - cy)
    theta = np.arctan2(yy - cy, xx - cx)
    waves = np.zeros_like(r)
    for k in range(3):
        freq = rng.uniform(0.05, 0.12)
        lobes = int(rng.integers(5, 14))
        phase = rng.uniform(0, 2 * np.pi)
        waves += np.sin(r * freq + (k + 1) * np.sin(theta * lobes + phase) * 2.0)
    lines = np.exp(-(waves**2) * 6.0)  # thin bright lines where the waves cross zero
    diag = 0.5 + 0.5 * np.sin((xx * 0.7 + yy) * rng.uniform(0.02, 0.05))
    base = np.stack(
        [
            0.72 + 0.10 * diag - 0.10 * lines,
            0.84 + 0.06 * diag - 0.05 * lines,
            0.94 + 0.04 * diag - 0.02 * lines,
        ],
        axis=-1,
    )
    # a faint emblem-like ring pattern in the middle of the card
    ring = np.exp(-((np.hypot(xx - CARD_W * 0.45, yy - CARD_H * 0.55) % 22 - 11) ** 2) / 8.0)
    ring *= np.exp(-(np.hypot(xx - CARD_W * 0.45, yy - CARD_H * 0.55) ** 2) / (2 * 120.0**2))
    base -= 0.05 * ring[..., None]
    return np.clip(base, 0.0, 1.0).astype(np.float32)


class _CardPainter:
    """Draws text on the card and remembers where each element's ink is.

    The ink of an omitted element is measured but not pasted, so the layout
    (and everything placed around the value boxes) does not depend on ``omit``.
    """

    def __init__(self, canvas: Image.Image, ink_color: tuple[int, int, int], omit: frozenset[str]):
        self.canvas = canvas
        self.ink_color = ink_color
        self.omit = omit
        self.ink: dict[str, np.ndarray] = {}
        self.fonts: set[str] = set()  # keys of the fonts pasted
        self.family = ""  # the card's text family (regular key)

    def text(self, name: str, xy: tuple[float, float], text: str, font, anchor: str = "ls") -> float:
        """Draw ``text`` with its baseline-left (or ``anchor``) at xy (rounded to pixels); returns the right edge x."""
        x, y = round(xy[0]), round(xy[1])
        mask, ink, left, top, right = _text_mask(font, text, anchor)
        x0, y0 = x + left, y + top
        self.ink[name] = ink + np.array([x0, y0], dtype=np.float32)
        if name not in self.omit:
            self.canvas.paste(self.ink_color, (x0, y0), mask)
            self.fonts.add(font.key)
        return x + right


@functools.lru_cache(maxsize=4096)
def _text_mask(font: ImageFont.FreeTypeFont, text: str, anchor: str) -> tuple[Image.Image, np.ndarray, int, int, int]:
    """Coverage mask of ``text``, its ink pixels (x, y) in the mask, and the mask's offset from the anchor.

    Returns (mask, ink, left, top, right): the mask's top-left corner lies at
    (left, top) from the anchor point; ``right`` is the text's right edge.
    """
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    x0, y0 = math.floor(left) - 1, math.floor(top) - 1
    w, h = int(right - left) + 3, int(bottom - top) + 3
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).text((-x0, -y0), text, font=font, fill=255, anchor=anchor)
    ys, xs = np.nonzero(np.asarray(mask) >= INK_COVERAGE)
    return mask, np.stack([xs, ys], axis=1).astype(np.float32), x0, y0, int(right)


def _draw_photo(card: Image.Image | None, box: tuple[int, int, int, int], rng: np.random.Generator):
    """A privacy-free stand-in for the holder's photo: a head-and-shoulders silhouette."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    photo = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(photo)
    backdrop = [(200, 40, 40), (40, 90, 200), (180, 30, 30), (60, 110, 210)][int(rng.integers(4))]
    draw.rectangle([0, 0, w, h], fill=backdrop)
    skin = tuple(int(c) for c in rng.integers([150, 100, 70], [235, 190, 150]))
    cloth = tuple(int(c) for c in rng.integers(0, 90, size=3))
    cx = w * rng.uniform(0.45, 0.55)
    draw.ellipse([cx - w * 0.48, h * 0.68, cx + w * 0.48, h * 1.35], fill=cloth)
    draw.rectangle([cx - w * 0.1, h * 0.5, cx + w * 0.1, h * 0.72], fill=skin)
    draw.ellipse([cx - w * 0.24, h * 0.16, cx + w * 0.24, h * 0.62], fill=skin)
    hair = tuple(int(c) for c in rng.integers(0, 50, size=3))
    if rng.random() < 0.35:  # headscarf
        scarf = tuple(int(c) for c in rng.integers(20, 230, size=3))
        draw.ellipse([cx - w * 0.3, h * 0.1, cx + w * 0.3, h * 0.75], outline=scarf, width=int(w * 0.09))
        draw.chord([cx - w * 0.27, h * 0.12, cx + w * 0.27, h * 0.5], 180, 360, fill=scarf)
    else:
        draw.chord([cx - w * 0.25, h * 0.12, cx + w * 0.25, h * 0.45], 180, 360, fill=hair)
    if card is not None:
        card.paste(photo, (x0, y0))


def _draw_signature(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: np.random.Generator):
    x0, y0, x1, y1 = box
    t = np.linspace(0, 1, 80)
    for _ in range(int(rng.integers(1, 3))):
        freq = rng.uniform(2, 6)
        xs = x0 + (x1 - x0) * (0.05 + 0.9 * t)
        ys = y0 + (y1 - y0) * (0.5 + 0.35 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6)) * np.sin(np.pi * t))
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(20, 20, 40), width=2)


def _render_card(
    identity: Identity, rng: np.random.Generator, omit: frozenset[str], config: SynthConfig
) -> tuple[Image.Image, _CardPainter]:
    """Render the card face (RGB, CARD_W x CARD_H); the painter holds each text element's ink."""
    background = _guilloche(int(rng.integers(4)))
    tint = rng.uniform(0.93, 1.05, size=3).astype(np.float32)
    card = Image.fromarray((np.clip(background * tint, 0, 1) * 255).astype(np.uint8))
    red, green, blue = (int(c) for c in rng.integers(0, 45, size=3))
    painter = _CardPainter(card, (red, green, blue), omit)
    regular = config.text_fonts[int(rng.integers(len(config.text_fonts)))]
    bold = regular + "-bold"
    painter.family = regular
    nik_key = _choose(rng, config.nik_fonts)
    nik_key = bold if nik_key == TEXT_BOLD else nik_key
    jitter_px = config.layout_jitter_px

    def jitter() -> float:
        return float(rng.uniform(-jitter_px, jitter_px))

    # header, centred over the text area
    header_size = int(rng.integers(24, 29))
    centre_x = CARD_W * rng.uniform(0.47, 0.53)
    painter.text(
        "header:provinsi",
        (centre_x, 40),
        f"PROVINSI {identity.province}",
        _fit_font(bold, header_size, f"PROVINSI {identity.province}", 780),
        anchor="ms",
    )
    painter.text(
        "header:kota",
        (centre_x, 40 + header_size + 6),
        identity.regency,
        _fit_font(bold, header_size, identity.regency, 780),
        anchor="ms",
    )

    # NIK row: larger, label bold, value in a NIK font
    value_right = 622  # the photo starts to the right
    label_x = int(rng.integers(22, 38))
    colon_x = label_x + int(rng.integers(150, 175))
    nik_y = 40 + 2 * header_size + int(rng.integers(30, 42))
    nik_label_font = _font(bold, int(rng.integers(28, 34)))
    row_y = nik_y + jitter()
    painter.text("label:nik", (label_x + jitter(), row_y), "NIK", nik_label_font)
    painter.text("colon:nik", (colon_x + jitter(), row_y), ":", nik_label_font)
    nik_x = colon_x + 18 + jitter()
    nik_font = _fit_font(nik_key, int(rng.integers(30, 36)), identity.nik, value_right - nik_x)
    painter.text("value:nik", (nik_x, row_y), identity.nik, nik_font)

    # the other rows
    row_size = int(rng.integers(17, 21))
    value_kind = bold if rng.random() < config.bold_value_share else regular
    row_colon_x = label_x + int(rng.integers(170, 190))
    value_x = row_colon_x + int(rng.integers(10, 16))
    spacing = row_size + int(rng.integers(6, 10))
    y = nik_y + int(rng.integers(32, 40))
    birth = f"{identity.birth_place}, {identity.birth_date:%d-%m-%Y}"
    rows = [
        ("nama", "Nama", identity.nama, 0),
        ("lahir", "Tempat/Tgl Lahir", birth, 0),
        ("jenis_kelamin", "Jenis Kelamin", identity.jenis_kelamin, 0),
        ("alamat", "Alamat", identity.alamat, 0),
        ("rt_rw", "RT/RW", identity.rt_rw, 1),
        ("kel_desa", "Kel/Desa", identity.kel_desa, 1),
        ("kecamatan", "Kecamatan", identity.kecamatan, 1),
        ("agama", "Agama", identity.agama, 0),
        ("status_perkawinan", "Status Perkawinan", identity.status_perkawinan, 0),
        ("pekerjaan", "Pekerjaan", identity.pekerjaan, 0),
        ("kewarganegaraan", "Kewarganegaraan", identity.kewarganegaraan, 0),
        ("berlaku", "Berlaku Hingga", identity.berlaku_hingga, 0),
    ]
    indent = int(rng.integers(24, 36))
    # one label size for the card, small enough that the widest label ends before its colon
    longest = max((label for _, label, _, level in rows if level == 0), key=_font(regular, row_size).getlength)
    label_font = _fit_font(regular, row_size, longest, row_colon_x - label_x - 2 * jitter_px - 6)
    for name, label, value, level in rows:
        row_y = y + jitter()
        painter.text(f"label:{name}", (label_x + indent * level + jitter(), row_y), label, label_font)
        painter.text(f"colon:{name}", (row_colon_x + jitter(), row_y), ":", label_font)
        x = value_x + jitter()
        if name == "jenis_kelamin":
            value_font = _font(value_kind, row_size)
            value_end = painter.text(f"value:{name}", (x, row_y), value, value_font)
            blood_x = max(value_x + int(rng.integers(150, 175)), value_end + 14)
            right = painter.text("label:gol_darah", (blood_x, row_y), "Gol. Darah", label_font)
            painter.text("colon:gol_darah", (right + 6, row_y), ":", label_font)
            painter.text("value:gol_darah", (right + 18, row_y), identity.gol_darah, value_font)
        else:
            value_font = _fit_font(value_kind, row_size, value, value_right - x)
            painter.text(f"value:{name}", (x, row_y), value, value_font)
        y += spacing

    # right column: photo, place and date of issue, signature
    draw = ImageDraw.Draw(card)
    scratch = ImageDraw.Draw(Image.new("RGB", (CARD_W, CARD_H)))  # same random draws when omitted
    photo_x0 = int(rng.integers(640, 660))
    photo_y0 = nik_y - int(rng.integers(20, 30))
    photo_box = (photo_x0, photo_y0, photo_x0 + 170, photo_y0 + 215)
    _draw_photo(None if "photo" in omit else card, photo_box, rng)
    small_size = int(rng.integers(15, 18))
    small = _font(regular, small_size)
    right_centre = (photo_box[0] + photo_box[2]) / 2
    painter.text(
        "issue:city",
        (right_centre, photo_box[3] + 26),
        identity.issue_city,
        _fit_font(regular, small_size, identity.issue_city, 200),
        anchor="ms",
    )
    painter.text("issue:date", (right_centre, photo_box[3] + 48), f"{identity.issue_date:%d-%m-%Y}", small, anchor="ms")
    signature_box = (photo_box[0] + 10, photo_box[3] + 56, photo_box[2] - 10, photo_box[3] + 100)
    _draw_signature(scratch if "signature" in omit else draw, signature_box, rng)
    return card, painter


# --------------------------------------------------------------------------- geometry


def rect_to_quad(width: float, height: float, quad: np.ndarray) -> np.ndarray:
    """3x3 H (H[2, 2] = 1) mapping the rectangle [0, width] x [0, height] onto ``quad`` (TL, TR, BR, BL).

    Heckbert's closed form (unit square to quad, then scaled), in plain float
    arithmetic in a fixed order: no LAPACK, so the same bits on every CPU.
    An SVD of the 8x9 point system (what this was) goes through OpenBLAS,
    whose kernels differ by CPU (OPENBLAS_CORETYPE=SkylakeX moved rendered
    boxes by 3e-10 px and crop pixels by 1), and is ill-conditioned in pixel
    units. ktp-core's ``Perspective.rectToQuad`` (Kotlin) does the same
    operations in the same order, so both give the same coefficients.

    Raises:
      ValueError: ``width`` or ``height`` is not positive, or the quad is degenerate.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f"rectangle of {width} x {height} has no area")
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = ((float(x), float(y)) for x, y in quad)
    sx = x0 - x1 + x2 - x3
    sy = y0 - y1 + y2 - y3
    if sx == 0.0 and sy == 0.0:  # a parallelogram: affine
        unit = [x1 - x0, x2 - x1, x0, y1 - y0, y2 - y1, y0, 0.0, 0.0]
    else:
        dx1, dx2, dy1, dy2 = x1 - x2, x3 - x2, y1 - y2, y3 - y2
        den = dx1 * dy2 - dx2 * dy1
        if den == 0.0:
            raise ValueError(f"quadrilateral {[[x0, y0], [x1, y1], [x2, y2], [x3, y3]]} is degenerate")
        g = (sx * dy2 - dx2 * sy) / den
        h = (dx1 * sy - sx * dy1) / den
        unit = [x1 - x0 + g * x1, x3 - x0 + h * x3, x0, y1 - y0 + g * y1, y3 - y0 + h * y3, y0, g, h]
    width, height = float(width), float(height)
    return np.array(
        [
            [unit[0] / width, unit[1] / height, unit[2]],
            [unit[3] / width, unit[4] / height, unit[5]],
            [unit[6] / width, unit[7] / height, 1.0],
        ]
    )


def invert_homography(h: np.ndarray) -> np.ndarray:
    """The inverse of the 3x3 homography ``h``, scaled so its [2, 2] is 1 (adjugate, plain floats).

    Raises:
      ValueError: ``h`` is singular, or its inverse sends the origin to infinity.
    """
    (a, b, c), (d, e, f), (g, k, m) = (tuple(float(v) for v in row) for row in h)
    adjugate = [
        [e * m - f * k, c * k - b * m, b * f - c * e],
        [f * g - d * m, a * m - c * g, c * d - a * f],
        [d * k - e * g, b * g - a * k, a * e - b * d],
    ]
    if a * adjugate[0][0] + b * adjugate[1][0] + c * adjugate[2][0] == 0.0:  # the determinant
        raise ValueError("the homography is singular")
    scale = adjugate[2][2]
    if scale == 0.0:
        raise ValueError("the homography has no inverse with a finite origin")
    return np.array([[v / scale for v in row] for row in adjugate])


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map [N, 2] (x, y) points through H, element by element (no BLAS: the same bits on every CPU)."""
    points = np.asarray(points, dtype=np.float64)
    x, y = points[:, 0], points[:, 1]
    (a, b, c), (d, e, f), (g, k, m) = (tuple(float(v) for v in row) for row in h)
    w = g * x + k * y + m
    return np.stack([(a * x + b * y + c) / w, (d * x + e * y + f) / w], axis=1)


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]]
    rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]]
    ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]]
    return np.array(_matmul3(_matmul3(rz, rx), ry))


def _matmul3(p: list[list[float]], q: list[list[float]]) -> list[list[float]]:
    """3x3 product in plain floats (NumPy's ``@`` goes through OpenBLAS, whose kernels differ by CPU)."""
    return [[p[i][0] * q[0][j] + p[i][1] * q[1][j] + p[i][2] * q[2][j] for j in range(3)] for i in range(3)]


def _card_quad(rng: np.random.Generator, config: SynthConfig, card_w: float, card_h: float) -> np.ndarray:
    """Where the card's corners land in the frame: a pinhole view of a tilted, rolled card."""
    roll = math.radians(rng.uniform(-config.max_roll_deg, config.max_roll_deg))
    tilt = math.radians(rng.uniform(0, config.max_tilt_deg))
    direction = rng.uniform(0, 2 * math.pi)  # which way the card leans away from the camera
    pitch, yaw = tilt * math.sin(direction), tilt * math.cos(direction)
    corners = np.array(
        [
            [-card_w / 2, -card_h / 2, 0],
            [card_w / 2, -card_h / 2, 0],
            [card_w / 2, card_h / 2, 0],
            [-card_w / 2, card_h / 2, 0],
        ]
    )
    distance = card_w * rng.uniform(1.2, 2.5)  # closer means stronger perspective
    r = _rotation(roll, pitch, yaw)
    # corners @ r.T + (0, 0, distance), element by element (see _matmul3)
    cam = corners[:, 0:1] * r[:, 0] + corners[:, 1:2] * r[:, 1] + corners[:, 2:3] * r[:, 2] + [0.0, 0.0, distance]
    quad = cam[:, :2] / cam[:, 2:3]
    quad -= quad.min(axis=0)
    span = quad.max(axis=0)
    fraction = rng.uniform(config.min_card_fraction, config.max_card_fraction)
    scale = fraction * config.width / span[0]
    scale = min(scale, 0.98 * config.height / span[1], 0.99 * config.width / span[0])
    quad *= scale
    span = quad.max(axis=0)
    offset = np.array([rng.uniform(0, config.width - span[0]), rng.uniform(0, config.height - span[1])])
    return quad + offset


# --------------------------------------------------------------------------- scene


def _background(
    rng: np.random.Generator, width: int, height: int, distractors: bool, font_key: str, fonts: set[str]
) -> Image.Image:
    """A table, cloth or paper-like surface, sometimes with other documents (text in ``font_key``) on it."""
    yy, xx = np.ogrid[0:height, 0:width]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    kind = int(rng.integers(4))
    c0 = rng.uniform(0.1, 0.9, size=3).astype(np.float32)
    c1 = rng.uniform(0.1, 0.9, size=3).astype(np.float32)
    if kind == 0:  # gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle)) / (width + height) + 0.5
        img = c0 + (c1 - c0) * t[..., None]
    elif kind == 1:  # wood grain
        t = np.sin(yy * rng.uniform(0.02, 0.08) + 3 * np.sin(xx * rng.uniform(0.003, 0.01)))
        img = c0 * 0.8 + (c1 * 0.3) * (0.5 + 0.5 * t)[..., None]
    elif kind == 2:  # woven cloth
        t = np.sin(xx * rng.uniform(0.3, 0.8)) * np.sin(yy * rng.uniform(0.3, 0.8))
        img = c0 + 0.08 * t[..., None]
    else:  # flat surface with soft vignette
        r = np.hypot(xx - width / 2, yy - height / 2) / max(width, height)
        img = c0 * (1.0 - 0.6 * r[..., None] ** 2)
    grain = 0.02 * rng.standard_normal(size=(height // 4 + 1, width // 4 + 1, 1), dtype=np.float32)
    img = img + grain.repeat(4, 0).repeat(4, 1)[:height, :width]
    scene = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    if distractors and rng.random() < 0.5:
        draw = ImageDraw.Draw(scene)
        for _ in range(int(rng.integers(1, 3))):
            w = rng.uniform(0.2, 0.6) * width
            h = w * rng.uniform(0.6, 1.4)
            x0 = rng.uniform(-0.2 * width, width * 0.9)
            y0 = rng.uniform(-0.2 * height, height * 0.9)
            paper = tuple(int(c) for c in rng.integers(200, 256, size=3))
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=paper)
            font = _font(font_key, int(rng.integers(8, 14)))
            fonts.add(font_key)
            line_y = y0 + 12
            while line_y < y0 + h - 8:
                words = " ".join(
                    "".join(chr(65 + int(c)) for c in rng.integers(0, 26, size=int(rng.integers(2, 9))))
                    for _ in range(int(rng.integers(2, 7)))
                )
                draw.text((x0 + 8, line_y), words, font=font, fill=(30, 30, 30))
                line_y += font.size + 5
    return scene


# --------------------------------------------------------------------------- occluders


@dataclasses.dataclass
class _Occluder:
    """One object over the scene: its colour layer and soft mask, both cropped to ``offset``."""

    kind: str
    offset: tuple[int, int]
    layer: Image.Image
    mask: Image.Image


def _capsule(draw: ImageDraw.ImageDraw, a: np.ndarray, b: np.ndarray, width: float, fill) -> None:
    """A stroke from a to b with round ends."""
    r = width / 2
    draw.line([tuple(a), tuple(b)], fill=fill, width=max(1, round(width)))
    for p in (a, b):
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=fill)


def _ellipse_polygon(centre: np.ndarray, axis: np.ndarray, along: float, across: float) -> list[tuple]:
    """Corners of an ellipse with semi-axes ``along`` (in direction ``axis``) and ``across``."""
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)[:, None]
    normal = np.array([-axis[1], axis[0]])
    points = centre + np.cos(t) * along * axis + np.sin(t) * across * normal
    return [tuple(p) for p in points.tolist()]


def _shape_canvas(points: np.ndarray, pad: float, size: tuple[int, int]):
    """A crop of the frame around ``points`` (+ pad), or None when it lies outside the frame."""
    x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size[0]), min(y1, size[1])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return (x0, y0), (x1 - x0, y1 - y0)


def _thumb(rng: np.random.Generator, quad: np.ndarray, size) -> tuple | None:
    """A thumb or finger from outside the card over one of its edges; (offset, layer, mask)."""
    k = int(rng.integers(4))
    a, b = quad[k].astype(np.float64), quad[(k + 1) % 4].astype(np.float64)
    at = a + rng.uniform(0.1, 0.9) * (b - a)
    edge = (b - a) / max(np.linalg.norm(b - a), 1e-6)
    inward = np.array([-edge[1], edge[0]])
    if np.dot(quad.mean(axis=0) - at, inward) < 0:
        inward = -inward
    turn = rng.uniform(-0.45, 0.45)
    direction = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]) @ inward
    card_h = 0.5 * float(np.linalg.norm(quad[2] - quad[1]) + np.linalg.norm(quad[0] - quad[3]))
    width = rng.uniform(0.28, 0.42) * card_h
    tip = at + direction * (rng.uniform(0.05, 0.25) * card_h - width / 2)  # centre of the round tip
    base = at - direction * 1.5 * card_h
    tone = rng.uniform(0, 1)  # dark to light skin, with a little per-channel variation
    skin = np.array([105, 70, 50]) + tone * np.array([135, 125, 115]) + rng.uniform(-8, 8, size=3)
    light = rng.uniform(1.05, 1.2)
    canvas = _shape_canvas(np.stack([tip, base]), width, size)
    if canvas is None:
        return None
    (ox, oy), crop = canvas
    o = np.array([ox, oy], dtype=np.float64)
    layer = Image.new("RGB", crop, tuple(int(c) for c in skin * 0.85))
    mask = Image.new("L", crop, 0)
    _capsule(ImageDraw.Draw(mask), tip - o, base - o, width, 255)
    draw = ImageDraw.Draw(layer)
    side = np.array([-direction[1], direction[0]]) * width * 0.1
    _capsule(draw, tip - o + side, base - o + side, width * 0.65, tuple(int(min(255, c)) for c in skin))
    nail = tuple(int(min(255, c * light + 12)) for c in skin)
    draw.polygon(_ellipse_polygon(tip - o - direction * width * 0.08, direction, width * 0.26, width * 0.2), fill=nail)
    return (ox, oy), layer, mask


def _object(rng: np.random.Generator, kind: str, card_w: float, size) -> tuple | None:
    """Another card, a coin or a pen at a uniform place in the frame; (offset, layer, mask)."""
    centre = rng.uniform([0, 0], size)
    angle = rng.uniform(0, 2 * math.pi)
    axis = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-axis[1], axis[0]])
    colour = rng.integers(20, 256, size=3)
    if kind == "card":
        w, h = card_w * rng.uniform(0.9, 1.1) / 2, card_w * 0.63 * rng.uniform(0.9, 1.1) / 2
        corners = np.stack(
            [centre + sx * w * axis + sy * h * normal for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        )
        points, pad = corners, 2.0
    elif kind == "coin":
        r = card_w * rng.uniform(0.1, 0.16)
        points, pad = np.stack([centre - r, centre + r]), 2.0
    else:  # pen
        length, width = card_w * rng.uniform(1.0, 1.7), card_w * rng.uniform(0.06, 0.11)
        ends = np.stack([centre - axis * length / 2, centre + axis * length / 2])
        points, pad = ends, width
    stripes = [rng.uniform(0.1, 0.9, size=2) for _ in range(int(rng.integers(2, 6)))]
    canvas = _shape_canvas(points, pad, size)
    if canvas is None:
        return None
    (ox, oy), crop = canvas
    o = np.array([ox, oy], dtype=np.float64)
    mask = Image.new("L", crop, 0)
    mask_draw = ImageDraw.Draw(mask)
    layer = Image.new("RGB", crop, tuple(int(c) for c in colour))
    draw = ImageDraw.Draw(layer)
    dark = tuple(int(c * 0.55) for c in colour)
    if kind == "card":
        local = [tuple(p) for p in (points - o).tolist()]
        mask_draw.polygon(local, fill=255)
        for start, length in stripes:  # printed lines across the other card
            a = corners[0] + (corners[3] - corners[0]) * start + (corners[1] - corners[0]) * 0.08
            draw.line(
                [tuple(a - o), tuple(a - o + (corners[1] - corners[0]) * 0.84 * length)],
                fill=dark,
                width=max(1, round(card_w * 0.02)),
            )
    elif kind == "coin":
        c = centre - o
        mask_draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=255)
        metal = tuple(int(v) for v in (rng.uniform(0.55, 0.9) * np.array([1.0, 0.9, 0.7]) ** rng.uniform(0, 2) * 255))
        draw.rectangle([0, 0, *crop], fill=metal)
        rim = tuple(int(v * 0.75) for v in metal)
        draw.ellipse(
            [c[0] - r * 0.85, c[1] - r * 0.85, c[0] + r * 0.85, c[1] + r * 0.85],
            outline=rim,
            width=max(1, round(r * 0.08)),
        )
    else:
        a, b = points[0] - o, points[1] - o
        _capsule(mask_draw, a, b, width, 255)
        cap = a + (b - a) * stripes[0][0] * 0.4
        _capsule(draw, a, cap, width, dark)
        _capsule(
            draw,
            a + normal * width * 0.2,
            b + normal * width * 0.2,
            width * 0.25,
            tuple(int(min(255, v * 1.3 + 30)) for v in colour),
        )
    return (ox, oy), layer, mask


def _clear_of(mask: Image.Image, offset: tuple[int, int], keep_out: list[tuple[int, int, int, int]]) -> bool:
    """True when the mask (at offset) has no pixel in any keep-out rectangle."""
    ox, oy = offset
    right, bottom = ox + mask.width, oy + mask.height
    near = [r for r in keep_out if r[0] < right and r[2] > ox and r[1] < bottom and r[3] > oy]
    if not near:
        return True
    alpha = np.asarray(mask)
    for x0, y0, x1, y1 in near:
        if alpha[max(y0 - oy, 0) : max(y1 - oy, 0), max(x0 - ox, 0) : max(x1 - ox, 0)].any():
            return False
    return True


def _occluders(
    rng: np.random.Generator, config: SynthConfig, quad: np.ndarray, keep_out: list[tuple[int, int, int, int]]
) -> list[_Occluder]:
    """Draw the thumb and the scene objects, each placed clear of ``keep_out`` (up to 6 tries) or dropped."""
    size = (config.width, config.height)
    card_w = float(np.max(np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)))
    kinds = []
    if rng.random() < config.thumb_share:
        kinds.append("thumb")
    if config.max_objects > 0 and rng.random() < config.object_share:
        count = int(rng.integers(1, config.max_objects + 1))
        kinds += [("card", "coin", "pen")[int(rng.integers(3))] for _ in range(count)]
    # the soft edge (Gaussian, sigma 0.7) spreads under 3 px: keep the hard shape that much further out
    keep_out_hard = [(x0 - 3, y0 - 3, x1 + 3, y1 + 3) for x0, y0, x1, y1 in keep_out]
    placed = []
    for kind in kinds:
        for _ in range(6):
            shape = _thumb(rng, quad, size) if kind == "thumb" else _object(rng, kind, card_w, size)
            if shape is None:
                continue
            offset, layer, mask = shape
            if _clear_of(mask, offset, keep_out_hard):
                mask = mask.filter(ImageFilter.GaussianBlur(0.7))
                placed.append(_Occluder(kind, offset, layer, mask))
                break
    return placed


# --------------------------------------------------------------------------- camera


@functools.lru_cache(maxsize=2)
def _noise_field(height: int, width: int) -> np.ndarray:
    """Unit Gaussian noise, [2H, 2W, 3] float32, made once per process and frame size."""
    return np.random.default_rng(7).standard_normal(size=(2 * height, 2 * width, 3), dtype=np.float32)


def _lighting(scene: Image.Image, rng: np.random.Generator, quad: np.ndarray, config: SynthConfig) -> Image.Image:
    """Shadow, directional light, glare, exposure, colour temperature and cast, gamma."""
    width, height = scene.size
    yy, xx = np.ogrid[0:height, 0:width]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    gain = None  # [H, W] multiplicative light, 0-1
    if rng.random() < 0.4:  # shadow: a soft-edged half plane
        angle = rng.uniform(0, 2 * np.pi)
        through = quad[int(rng.integers(4))] * rng.uniform(0.8, 1.2)
        d = (xx - through[0]) * math.cos(angle) + (yy - through[1]) * math.sin(angle)
        soft = rng.uniform(5, 60)
        strength = rng.uniform(0.2, 0.55)
        gain = 1 - strength / (1 + np.exp(-np.clip(d / soft, -30, 30)))
    if rng.random() < config.light_gradient_share:  # directional light: a ramp across the frame
        angle = rng.uniform(0, 2 * np.pi)
        strength = rng.uniform(*config.light_gradient)
        d = xx * math.cos(angle) + yy * math.sin(angle)
        corners = [x * math.cos(angle) + y * math.sin(angle) for x in (0, width) for y in (0, height)]
        ramp = 1 - strength * (d - min(corners)) / (max(corners) - min(corners))
        gain = ramp if gain is None else gain * ramp
    if gain is not None:  # in 8 bits through PIL: a third of the float work
        light = Image.fromarray((gain * 255 + 0.5).astype(np.uint8))
        scene = ImageChops.multiply(scene, Image.merge("RGB", (light, light, light)))
    if rng.random() < 0.3:  # glare: a bright elliptic spot
        cx, cy = quad.mean(axis=0) + rng.normal(0, 1, size=2) * (quad.max(axis=0) - quad.min(axis=0)) / 3
        rx, ry = rng.uniform(0.03, 0.15) * width, rng.uniform(0.03, 0.12) * height
        spot = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
        glare = Image.fromarray((np.minimum(255 * rng.uniform(0.2, 0.6) * spot, 255) + 0.5).astype(np.uint8))
        scene = ImageChops.add(scene, Image.merge("RGB", (glare, glare, glare)))
    # exposure, colour cast, colour temperature and gamma through one lookup table per channel
    exposure = rng.uniform(0.65, 1.3)
    temperature = rng.uniform(*config.colour_temperature) * (1 if rng.random() < 0.5 else -1)
    cast = rng.uniform(0.88, 1.12, size=3) * np.array([1 + temperature, 1.0, 1 - temperature])
    gamma = rng.uniform(0.8, 1.25)
    levels = np.arange(256) / 255.0
    lut = np.concatenate([np.clip(levels * exposure * c, 0, 1) ** gamma for c in cast])
    return scene.point((lut * 255 + 0.5).astype(np.int32).tolist())


def _motion_blur(scene: Image.Image, length: float, angle: float) -> Image.Image:
    """Average of ``length`` copies shifted along ``angle``: a linear motion blur."""
    arr = np.asarray(scene)
    height, width = arr.shape[:2]
    n = max(2, round(length))
    steps = np.arange(n) - (n - 1) / 2
    shifts = {(round(s * math.cos(angle)), round(s * math.sin(angle))) for s in steps}
    pad = max(max(abs(dx), abs(dy)) for dx, dy in shifts)
    padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    total = np.zeros(arr.shape, dtype=np.uint16)
    for dx, dy in sorted(shifts):
        total += padded[pad + dy : pad + dy + height, pad + dx : pad + dx + width]
    return Image.fromarray(((total + len(shifts) // 2) // len(shifts)).astype(np.uint8))


def _sensor_noise(scene: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian sensor noise in 70 % of photos: a random window of a fixed noise field."""
    width, height = scene.size
    sigma = rng.uniform(0, 0.035) if rng.random() < 0.7 else 0.0
    if sigma > 0:
        field = _noise_field(height, width)
        oy, ox = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
        noise = field[oy : oy + height, ox : ox + width]
        noisy = np.asarray(scene, dtype=np.float32) + (255 * sigma) * noise
        scene = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return scene


def _camera(scene: Image.Image, rng: np.random.Generator, quad: np.ndarray, config: SynthConfig) -> Image.Image:
    """Everything between the scene and the sensor's pixels, in the order a phone applies it."""
    scene = _lighting(scene, rng, quad, config)
    if rng.random() < config.motion_blur_share:
        length, angle = rng.uniform(*config.motion_blur_px), rng.uniform(0, math.pi)
        scene = _motion_blur(scene, length, angle)
    scene = _sensor_noise(scene, rng)
    blur = rng.uniform(*config.blur_sigma) if rng.random() < config.blur_share else 0.0
    if blur > 0.15:
        scene = scene.filter(ImageFilter.GaussianBlur(blur))
    if rng.random() < config.resample_share:  # a lower-resolution camera, upscaled to the frame size
        factor = rng.uniform(*config.resample_factor)
        low = (max(8, round(scene.width * factor)), max(8, round(scene.height * factor)))
        scene = scene.resize(low, Image.Resampling.BOX).resize(scene.size, Image.Resampling.BILINEAR)
    return scene


# --------------------------------------------------------------------------- public API


def _value_boxes(ink: dict[str, np.ndarray], h_card: np.ndarray, size: tuple[int, int]) -> dict[str, tuple]:
    """Frame-pixel (x0, y0, x1, y1) around each field value's ink, through the card's homography."""
    boxes = {}
    for label in CLASSES:
        points = ink[f"value:{label}"]
        # every ink pixel is a unit square: map all four corners
        corners = np.concatenate([points, points + [1, 0], points + [0, 1], points + [1, 1]], axis=0)
        mapped = apply_homography(h_card, corners)
        (x0, y0), (x1, y1) = mapped.min(axis=0).tolist(), mapped.max(axis=0).tolist()
        clip_x, clip_y = (lambda v: min(max(v, 0.0), size[0])), (lambda v: min(max(v, 0.0), size[1]))
        boxes[label] = (clip_x(x0), clip_y(y0), clip_x(x1), clip_y(y1))
    return boxes


def _value_quads(ink: dict[str, np.ndarray], h_card: np.ndarray) -> dict[str, np.ndarray]:
    """Frame quadrilaterals (TL, TR, BR, BL) of the card rectangle around each field value's ink."""
    quads = {}
    for label in CLASSES:
        points = ink[f"value:{label}"]
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0) + 1  # ink pixels are unit squares
        rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        quads[label] = apply_homography(h_card, rect).astype(np.float32)
    return quads


def render_card(
    seed: int,
    index: int,
    config: SynthConfig = TRAIN,
    omit: frozenset[str] = frozenset(),
) -> RenderedCard:
    """Render sample ``index`` of ``seed``.

    Args:
      seed: data set seed.
      index: sample number; (seed, index) fixes every random choice.
      config: frame size and variation ranges.
      omit: element names to leave out (``"value:nik"``, ``"label:nama"``,
        ``"photo"``, ``"occluders"``...); tests use it to find where an
        element's pixels are. Random choices and placements do not depend on
        ``omit``; an omitted value has no box.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    identity = make_identity(rng, TODAY)
    card, painter = _render_card(identity, rng, omit, config)
    quad = _card_quad(rng, config, CARD_W, CARD_H)

    # Shrink the card to about its size in the frame first (antialiased), so the
    # perspective warp, which does not filter, does not alias the small text.
    card_width_in_frame = float(np.max(np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)))
    shrink = min(1.0, 1.5 * card_width_in_frame / CARD_W)
    small_w, small_h = max(8, round(CARD_W * shrink)), max(8, round(CARD_H * shrink))
    sx, sy = small_w / CARD_W, small_h / CARD_H
    card_small = card.resize((small_w, small_h), Image.Resampling.BILINEAR, reducing_gap=None)
    alpha = Image.new("L", (small_w, small_h), 0)
    radius = int(28 * sx)
    ImageDraw.Draw(alpha).rounded_rectangle([0, 0, small_w - 1, small_h - 1], radius=radius, fill=255)

    h_card = rect_to_quad(CARD_W, CARD_H, quad)  # card pixels -> frame pixels
    h_small = rect_to_quad(CARD_W * sx, CARD_H * sy, quad)
    coeffs = invert_homography(h_small).flatten()[:8].tolist()
    size = (config.width, config.height)
    warped = card_small.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    warped_alpha = alpha.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    fonts = set(painter.fonts)
    scene = _background(rng, config.width, config.height, config.distractors, painter.family, fonts)
    scene.paste(warped, (0, 0), warped_alpha)

    value_boxes = _value_boxes(painter.ink, h_card, size)
    keep_out = [
        (
            math.floor(x0) - VALUE_MARGIN,
            math.floor(y0) - VALUE_MARGIN,
            math.ceil(x1) + VALUE_MARGIN,
            math.ceil(y1) + VALUE_MARGIN,
        )
        for x0, y0, x1, y1 in value_boxes.values()
    ]
    occluders = _occluders(rng, config, quad, keep_out)
    if "occluders" not in omit:
        for occluder in occluders:
            scene.paste(occluder.layer, occluder.offset, occluder.mask)

    if config.photometric:
        scene = _camera(scene, rng, quad, config)
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    buffer = io.BytesIO()
    scene.save(buffer, format="JPEG", quality=quality)

    boxes = tuple(
        Box(
            ymin=y0 / config.height,
            xmin=x0 / config.width,
            ymax=y1 / config.height,
            xmax=x1 / config.width,
            label=label,
        )
        for label, (x0, y0, x1, y1) in value_boxes.items()
        if f"value:{label}" not in omit
    )
    return RenderedCard(
        image=np.asarray(scene),
        jpeg=buffer.getvalue(),
        boxes=boxes,
        texts=identity.field_texts(),
        card_quad=quad.astype(np.float32),
        value_quads={k: v for k, v in _value_quads(painter.ink, h_card).items() if f"value:{k}" not in omit},
        fonts=frozenset(fonts),
        occluders=tuple(o.kind for o in occluders),
    )


def _render_example(args: tuple[int, int, SynthConfig]) -> tuple[Example, dict[str, str]]:
    seed, index, config = args
    card = render_card(seed, index, config)
    image_id = f"ktp_{seed}_{index:06d}.jpg"
    example = Example(
        image_id=image_id,
        width=config.width,
        height=config.height,
        boxes=card.boxes,
        image_bytes=card.jpeg,
        image_format="jpeg",
    )
    return example, card.texts


def render_dataset(
    count: int,
    seed: int = 0,
    config: SynthConfig = TRAIN,
    workers: int = 1,
    progress=None,
    start: int = 0,
) -> Dataset:
    """Render ``count`` photos (samples ``start`` .. ``start + count - 1`` of ``seed``) in memory.

    Args:
      count: number of photos.
      seed: data set seed; the same seed and index give the same photo.
      config: frame size and variation (a preset of :data:`PRESETS` or your own).
      workers: processes to render with (the output does not depend on it).
      progress: optional callable taking the number of photos just finished.
      start: index of the first sample.

    Raises:
      FontError: a font of ``config`` is not installed (names the Debian package).
      WorkerError: a rendering process died (:mod:`ktp_tflite.train.processes`).
    """
    check_fonts(config)
    jobs = [(seed, i, config) for i in range(start, start + count)]
    examples: list[Example] = []
    texts: dict[str, dict[str, str]] = {}
    from ktp_tflite.train.processes import process_map

    with process_map(workers if count > 1 else 1) as mapper:
        for example, fields in mapper(_render_example, jobs, 4):
            examples.append(example)
            texts[example.image_id] = fields
            if progress is not None:
                progress(1)
    return Dataset(examples=examples, source=f"synth:seed={seed}", format="synth", texts=texts)
