"""Synthetic KTP photos with exact field boxes.

Each sample is an e-KTP front (header, the thirteen rows, photo, signature,
blue guilloche background) with a fake but structurally valid identity
(:mod:`ktp_tflite.train.identity`), photographed: perspective warp (roll up
to 15 degrees, tilt up to 25), card width 30-95 % of the frame, a varied
background that may hold distracting documents, shadows, glare, blur, noise,
exposure and colour casts, JPEG quality 40-95. Never mirrored.

Ground truth: one box per field per card, the axis-aligned extent of the
value's ink (pixels of the value text with coverage >= 50 %, the label and
colon excluded) mapped through the same homography as the pixels.

Sample ``i`` of seed ``s`` depends only on ``(s, i)``: results are identical
whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.identity import Identity, make_identity
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Box, Dataset, Example

CARD_W, CARD_H = 856, 540  # 10 px per mm of the ISO/IEC 7810 ID-1 card (85.6 x 54 mm)
TODAY = datetime.date(2026, 1, 1)  # fixed so that a seed gives the same cards every year
INK_COVERAGE = 128  # an anti-aliased pixel counts as ink at >= 50 % coverage

_FONT_DIRS = (
    Path("/usr/share/fonts/truetype/ocr-a"),
    Path("/usr/share/fonts/truetype/liberation2"),
    Path("/usr/share/fonts/truetype/liberation"),
    Path("/usr/share/fonts/truetype/croscore"),
)
_OCR_FONTS = ("OCRA.ttf", "OCRABold.ttf")
_SANS_REGULAR = ("LiberationSans-Regular.ttf", "Arimo-Regular.ttf")
_SANS_BOLD = ("LiberationSans-Bold.ttf", "Arimo-Bold.ttf")


class FontError(KtpError):
    """A font the renderer needs is not installed."""


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What the renderer varies, and by how much."""

    width: int = 640
    height: int = 480
    min_card_fraction: float = 0.30  # card width / frame width
    max_card_fraction: float = 0.95
    max_roll_deg: float = 15.0
    max_tilt_deg: float = 25.0
    jpeg_quality: tuple[int, int] = (40, 95)
    photometric: bool = True  # shadows, glare, blur, noise, exposure, colour cast
    distractors: bool = True  # other text documents in the background


@dataclasses.dataclass(frozen=True)
class RenderedCard:
    """One rendered photo: pixels, boxes and the printed field texts."""

    image: np.ndarray  # uint8 [H, W, 3], before JPEG
    jpeg: bytes
    boxes: tuple[Box, ...]
    texts: dict[str, str]
    card_quad: np.ndarray  # [4, 2] corners of the card in the frame (x, y), clockwise from top-left


# --------------------------------------------------------------------------- fonts


def _find_font(candidates: tuple[str, ...], package: str) -> Path:
    for name in candidates:
        for folder in _FONT_DIRS:
            if (folder / name).exists():
                return folder / name
    raise FontError(
        f"font {candidates[0]} not found in {', '.join(str(d) for d in _FONT_DIRS)}; "
        f"install it with: apt-get install {package}"
    )


@functools.lru_cache(maxsize=None)
def _font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    if kind == "ocr":
        path = _find_font(_OCR_FONTS[:1], "fonts-ocr-a")
    elif kind == "ocr-bold":
        path = _find_font(_OCR_FONTS[1:], "fonts-ocr-a")
    elif kind == "bold":
        path = _find_font(_SANS_BOLD, "fonts-liberation2 fonts-croscore")
    else:
        path = _find_font(_SANS_REGULAR, "fonts-liberation2 fonts-croscore")
    return ImageFont.truetype(str(path), size)


def check_fonts() -> None:
    """Raise FontError naming the Debian package when a needed font is missing."""
    for kind in ("ocr", "ocr-bold", "bold", "regular"):
        _font(kind, 20)


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


@dataclasses.dataclass
class _Layout:
    """Card-space positions drawn for one card (in CARD_W x CARD_H pixels)."""

    ink: dict[str, np.ndarray]  # element name -> [N, 2] (x, y) ink pixel coordinates


class _CardPainter:
    """Draws text on the card and remembers where each element's ink is."""

    def __init__(self, canvas: Image.Image, ink_color: tuple[int, int, int], omit: frozenset[str]):
        self.canvas = canvas
        self.ink_color = ink_color
        self.omit = omit
        self.ink: dict[str, np.ndarray] = {}

    def text(self, name: str, xy: tuple[float, float], text: str, font, anchor: str = "ls") -> float:
        """Draw ``text`` with its baseline-left (or ``anchor``) at xy; returns the right edge x."""
        left, top, right, bottom = font.getbbox(text, anchor=anchor)
        x0, y0 = int(math.floor(xy[0] + left)) - 1, int(math.floor(xy[1] + top)) - 1
        w, h = int(right - left) + 3, int(bottom - top) + 3
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).text((xy[0] - x0, xy[1] - y0), text, font=font, fill=255, anchor=anchor)
        if name not in self.omit:
            self.canvas.paste(self.ink_color, (x0, y0), mask)
            alpha = np.asarray(mask)
            ys, xs = np.nonzero(alpha >= INK_COVERAGE)
            self.ink[name] = np.stack([xs + x0, ys + y0], axis=1).astype(np.float32)
        return xy[0] + right


def _fit_font(kind: str, size: int, text: str, max_width: float) -> ImageFont.FreeTypeFont:
    font = _font(kind, size)
    while size > 10 and font.getlength(text) > max_width:
        size -= 1
        font = _font(kind, size)
    return font


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
    identity: Identity, rng: np.random.Generator, omit: frozenset[str]
) -> tuple[Image.Image, dict[str, np.ndarray]]:
    """Render the card face (RGB, CARD_W x CARD_H) and the ink coordinates of every text element."""
    background = _guilloche(int(rng.integers(4)))
    tint = rng.uniform(0.93, 1.05, size=3).astype(np.float32)
    card = Image.fromarray((np.clip(background * tint, 0, 1) * 255).astype(np.uint8))
    ink_color = tuple(int(c) for c in rng.integers(0, 45, size=3))
    painter = _CardPainter(card, ink_color, omit)

    # header, centred over the text area
    header_size = int(rng.integers(24, 29))
    centre_x = CARD_W * rng.uniform(0.47, 0.53)
    painter.text("header:provinsi", (centre_x, 40), f"PROVINSI {identity.province}",
                 _fit_font("bold", header_size, f"PROVINSI {identity.province}", 780), anchor="ms")
    painter.text("header:kota", (centre_x, 40 + header_size + 6), identity.regency,
                 _fit_font("bold", header_size, identity.regency, 780), anchor="ms")

    # NIK row: larger, label bold, value in OCR-A
    label_x = int(rng.integers(22, 38))
    colon_x = label_x + int(rng.integers(150, 175))
    nik_y = 40 + 2 * header_size + int(rng.integers(30, 42))
    nik_label_font = _font("bold", int(rng.integers(28, 34)))
    painter.text("label:nik", (label_x, nik_y), "NIK", nik_label_font)
    painter.text("colon:nik", (colon_x, nik_y), ":", nik_label_font)
    nik_font = _font("ocr-bold" if rng.random() < 0.5 else "ocr", int(rng.integers(30, 36)))
    painter.text("value:nik", (colon_x + 18, nik_y), identity.nik, nik_font)

    # the other rows
    row_size = int(rng.integers(17, 21))
    label_font = _font("regular", row_size)
    bold_values = rng.random() < 0.3
    value_kind = "bold" if bold_values else "regular"
    row_colon_x = label_x + int(rng.integers(170, 190))
    value_x = row_colon_x + int(rng.integers(10, 16))
    value_right = 622  # the photo starts to the right
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
    for name, label, value, level in rows:
        painter.text(f"label:{name}", (label_x + indent * level, y), label, label_font)
        painter.text(f"colon:{name}", (row_colon_x, y), ":", label_font)
        if name == "jenis_kelamin":
            value_font = _font(value_kind, row_size)
            painter.text(f"value:{name}", (value_x, y), value, value_font)
            blood_x = value_x + int(rng.integers(150, 175))
            right = painter.text("label:gol_darah", (blood_x, y), "Gol. Darah", label_font)
            painter.text("colon:gol_darah", (right + 6, y), ":", label_font)
            painter.text("value:gol_darah", (right + 18, y), identity.gol_darah, value_font)
        else:
            value_font = _fit_font(value_kind, row_size, value, value_right - value_x)
            painter.text(f"value:{name}", (value_x, y), value, value_font)
        y += spacing

    # right column: photo, place and date of issue, signature
    draw = ImageDraw.Draw(card)
    scratch = ImageDraw.Draw(Image.new("RGB", (CARD_W, CARD_H)))  # same random draws when omitted
    photo_x0 = int(rng.integers(640, 660))
    photo_y0 = nik_y - int(rng.integers(20, 30))
    photo_box = (photo_x0, photo_y0, photo_x0 + 170, photo_y0 + 215)
    _draw_photo(None if "photo" in omit else card, photo_box, rng)
    small = _font("regular", int(rng.integers(15, 18)))
    right_centre = (photo_box[0] + photo_box[2]) / 2
    painter.text("issue:city", (right_centre, photo_box[3] + 26), identity.issue_city,
                 _fit_font("regular", small.size, identity.issue_city, 200), anchor="ms")
    painter.text("issue:date", (right_centre, photo_box[3] + 48), f"{identity.issue_date:%d-%m-%Y}", small, anchor="ms")
    signature_box = (photo_box[0] + 10, photo_box[3] + 56, photo_box[2] - 10, photo_box[3] + 100)
    _draw_signature(scratch if "signature" in omit else draw, signature_box, rng)
    return card, painter.ink


# --------------------------------------------------------------------------- geometry


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 H with dst ~ H @ src for four point pairs (x, y)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(rows, dtype=np.float64))
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map [N, 2] (x, y) points through H."""
    ones = np.ones((points.shape[0], 1), dtype=np.float64)
    mapped = np.concatenate([points.astype(np.float64), ones], axis=1) @ h.T
    return mapped[:, :2] / mapped[:, 2:3]


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rz @ rx @ ry


def _card_quad(rng: np.random.Generator, config: SynthConfig, card_w: float, card_h: float) -> np.ndarray:
    """Where the card's corners land in the frame: a pinhole view of a tilted, rolled card."""
    roll = math.radians(rng.uniform(-config.max_roll_deg, config.max_roll_deg))
    tilt = math.radians(rng.uniform(0, config.max_tilt_deg))
    direction = rng.uniform(0, 2 * math.pi)  # which way the card leans away from the camera
    pitch, yaw = tilt * math.sin(direction), tilt * math.cos(direction)
    corners = np.array(
        [[-card_w / 2, -card_h / 2, 0], [card_w / 2, -card_h / 2, 0], [card_w / 2, card_h / 2, 0], [-card_w / 2, card_h / 2, 0]]
    )
    distance = card_w * rng.uniform(1.2, 2.5)  # closer means stronger perspective
    cam = corners @ _rotation(roll, pitch, yaw).T + np.array([0, 0, distance])
    quad = cam[:, :2] / cam[:, 2:3]
    quad -= quad.min(axis=0)
    span = quad.max(axis=0)
    fraction = rng.uniform(config.min_card_fraction, config.max_card_fraction)
    scale = fraction * config.width / span[0]
    scale = min(scale, 0.98 * config.height / span[1], 0.99 * config.width / span[0])
    quad *= scale
    span = quad.max(axis=0)
    offset = np.array(
        [rng.uniform(0, config.width - span[0]), rng.uniform(0, config.height - span[1])]
    )
    return quad + offset


# --------------------------------------------------------------------------- scene


def _background(rng: np.random.Generator, width: int, height: int, distractors: bool) -> Image.Image:
    """A table, cloth or paper-like surface, sometimes with other documents on it."""
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
            font = _font("regular", int(rng.integers(8, 14)))
            line_y = y0 + 12
            while line_y < y0 + h - 8:
                words = " ".join(
                    "".join(chr(65 + int(c)) for c in rng.integers(0, 26, size=int(rng.integers(2, 9))))
                    for _ in range(int(rng.integers(2, 7)))
                )
                draw.text((x0 + 8, line_y), words, font=font, fill=(30, 30, 30))
                line_y += font.size + 5
    return scene


@functools.lru_cache(maxsize=2)
def _noise_field(height: int, width: int) -> np.ndarray:
    """Unit Gaussian noise, [2H, 2W, 3] float32, made once per process and frame size."""
    return np.random.default_rng(7).standard_normal(size=(2 * height, 2 * width, 3), dtype=np.float32)


def _photometric(scene: Image.Image, rng: np.random.Generator, quad: np.ndarray) -> Image.Image:
    """Lighting and camera effects: shadow, glare, exposure, colour cast, gamma, sensor noise."""
    width, height = scene.size
    yy, xx = np.ogrid[0:height, 0:width]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    frame = None
    if rng.random() < 0.4:  # shadow: a soft-edged half plane
        angle = rng.uniform(0, 2 * np.pi)
        through = quad[int(rng.integers(4))] * rng.uniform(0.8, 1.2)
        d = (xx - through[0]) * math.cos(angle) + (yy - through[1]) * math.sin(angle)
        soft = rng.uniform(5, 60)
        strength = rng.uniform(0.2, 0.55)
        shade = 1 - strength / (1 + np.exp(-np.clip(d / soft, -30, 30)))
        frame = np.asarray(scene, dtype=np.float32) * shade[..., None]
    if rng.random() < 0.3:  # glare: a bright elliptic spot
        cx, cy = quad.mean(axis=0) + rng.normal(0, 1, size=2) * (quad.max(axis=0) - quad.min(axis=0)) / 3
        rx, ry = rng.uniform(0.03, 0.15) * width, rng.uniform(0.03, 0.12) * height
        spot = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
        if frame is None:
            frame = np.asarray(scene, dtype=np.float32)
        frame = frame + (255 * rng.uniform(0.2, 0.6)) * spot[..., None]
    if frame is not None:
        scene = Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8))
    # exposure, colour cast and gamma through one lookup table per channel
    gain = rng.uniform(0.65, 1.3)
    cast = rng.uniform(0.88, 1.12, size=3)
    gamma = rng.uniform(0.8, 1.25)
    levels = np.arange(256) / 255.0
    lut = np.concatenate([np.clip(levels * gain * c, 0, 1) ** gamma for c in cast])
    scene = scene.point((lut * 255 + 0.5).astype(np.int32).tolist())
    sigma = rng.uniform(0, 0.035) if rng.random() < 0.7 else 0.0
    if sigma > 0:  # sensor noise: a random window of a fixed noise field
        field = _noise_field(height, width)
        oy, ox = int(rng.integers(0, height + 1)), int(rng.integers(0, width + 1))
        noise = field[oy : oy + height, ox : ox + width]
        noisy = np.asarray(scene, dtype=np.float32) + (255 * sigma) * noise
        scene = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return scene


# --------------------------------------------------------------------------- public API


def render_card(
    seed: int,
    index: int,
    config: SynthConfig = SynthConfig(),
    omit: frozenset[str] = frozenset(),
) -> RenderedCard:
    """Render sample ``index`` of ``seed``.

    Args:
      seed: data set seed.
      index: sample number; (seed, index) fixes every random choice.
      config: frame size and variation ranges.
      omit: element names to leave out (``"value:nik"``, ``"label:nama"``,
        ``"photo"``...); tests use it to find where an element's ink is.
        Random choices do not depend on ``omit``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    identity = make_identity(rng, TODAY)
    card, ink = _render_card(identity, rng, omit)
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

    src = np.array([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]], dtype=np.float64)
    h_card = homography(src, quad)  # card pixels -> frame pixels
    src_small = src * np.array([sx, sy])
    h_small = homography(src_small, quad)
    inverse = np.linalg.inv(h_small)
    inverse /= inverse[2, 2]
    coeffs = inverse.flatten()[:8].tolist()
    size = (config.width, config.height)
    warped = card_small.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    warped_alpha = alpha.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
    scene = _background(rng, config.width, config.height, config.distractors)
    scene.paste(warped, (0, 0), warped_alpha)

    if config.photometric:
        scene = _photometric(scene, rng, quad)
        blur = rng.uniform(0.0, 1.3) if rng.random() < 0.6 else 0.0
        if blur > 0.15:
            scene = scene.filter(ImageFilter.GaussianBlur(blur))
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    buffer = io.BytesIO()
    scene.save(buffer, format="JPEG", quality=quality)

    boxes = []
    for label in CLASSES:
        points = ink.get(f"value:{label}")
        if points is None:
            continue
        # every ink pixel is a unit square: map all four corners
        corners = np.concatenate(
            [points, points + [1, 0], points + [0, 1], points + [1, 1]], axis=0
        )
        mapped = apply_homography(h_card, corners)
        x0, y0 = np.clip(mapped.min(axis=0), 0, [config.width, config.height])
        x1, y1 = np.clip(mapped.max(axis=0), 0, [config.width, config.height])
        boxes.append(
            Box(
                ymin=float(y0 / config.height),
                xmin=float(x0 / config.width),
                ymax=float(y1 / config.height),
                xmax=float(x1 / config.width),
                label=label,
            )
        )
    return RenderedCard(
        image=np.asarray(scene),
        jpeg=buffer.getvalue(),
        boxes=tuple(boxes),
        texts=identity.field_texts(),
        card_quad=quad.astype(np.float32),
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
    config: SynthConfig = SynthConfig(),
    workers: int = 1,
    progress=None,
    start: int = 0,
) -> Dataset:
    """Render ``count`` photos (samples ``start`` .. ``start + count - 1`` of ``seed``) in memory.

    Args:
      count: number of photos.
      seed: data set seed; the same seed and index give the same photo.
      config: frame size and variation.
      workers: processes to render with (the output does not depend on it).
      progress: optional callable taking the number of photos just finished.
      start: index of the first sample.
    """
    check_fonts()
    jobs = [(seed, i, config) for i in range(start, start + count)]
    examples: list[Example] = []
    texts: dict[str, dict[str, str]] = {}
    if workers > 1 and count > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for example, fields in pool.imap(_render_example, jobs, chunksize=4):
                examples.append(example)
                texts[example.image_id] = fields
                if progress is not None:
                    progress(1)
    else:
        for job in jobs:
            example, fields = _render_example(job)
            examples.append(example)
            texts[example.image_id] = fields
            if progress is not None:
                progress(1)
    return Dataset(examples=examples, source=f"synth:seed={seed}", format="synth", texts=texts)
