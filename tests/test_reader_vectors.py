"""The reader's crop shared with Kotlin: sections "reader_crop", "reader_deskew", "reader_crop_file" of the vectors.

The vectors: tests/vectors/ktp_vectors.json.

The Kotlin ``ReaderCropTest``, ``DeskewTest`` and ``CropFileTest`` (android_demo/ktp-core) read the same cases.

Section "reader_crop" (``box_crop`` without deskew):
Each case is a synthetic image made by a rule both sides implement (channel
``c`` of pixel ``(x, y)`` is ``(ax * x + ay * y + axy * x * y + b) % 256``
with the case's ``[ax, ay, axy, b]`` for ``c``), a pixel box, a crop config,
and what :func:`ktp_tflite.train.reader_crops.box_crop` makes of them: the
source quadrilateral (box plus margins), the content width, the eight
perspective coefficients it handed to PIL's ``Image.transform``, the padding
colour and the crop's pixels (zlib, then base64, of the uint8
``[height, width, 3]`` array).

Section "reader_deskew" (``box_crop(..., deskew=True)``): small images stored
as pixels (synthetic text lines drawn by :func:`line_image`, and regions of
rendered cards around one field's box), a box, and what the Python code makes
of them: the 80th percentile and the candidate scores inside
:func:`ktp_tflite.train.reader_crops.line_angle` (recorded from its numpy
calls), the angle, :func:`ktp_tflite.train.reader_crops.slanted_quad` (or
null), and the deskewed crop as above, with the default :class:`CropConfig`.

Section "reader_crop_file" (the reader's packed crop.txt): texts and what
:func:`ktp_tflite.convert.reader.parse_crop` makes of them, named as the
reader names them (``ktp_reader_int8.tflite: crop.txt``): the
:class:`CropConfig` of a valid text, or for an invalid one the kind of
refusal ("line", "missing", or "value": a number or a config it cannot
be), its message, and the words every refusal of it must contain (ktp-core's
``ReaderModel.parseCropConfig`` words a "value" refusal its own way).

Regenerate after a deliberate change of a rule (rewrites those sections in
place, every other byte of the file stays):
``.venv/bin/python tests/test_reader_vectors.py --write [reader_crop|reader_deskew|reader_crop_file]``
(all without a name).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ktp_tflite.convert.reader import CROP_FILE, CROP_KEYS, INT8_FILE, ReaderModelError, crop_txt, parse_crop
from ktp_tflite.train import reader_crops
from ktp_tflite.train.images import load_image
from ktp_tflite.train.reader_crops import (
    CropConfig,
    CropError,
    box_crop,
    expand_quad,
    line_angle,
    slanted_quad,
)
from ktp_tflite.train.synth import render_card

vector_file = sys.modules.get("ktp_tests_vector_file") or importlib.import_module("vector_file")  # see vector_file.py
VECTORS_PATH = vector_file.VECTORS_PATH
rule_image, encode_pixels, decode_pixels = vector_file.rule_image, vector_file.encode_pixels, vector_file.decode_pixels
format_section, write_section = vector_file.format_section, vector_file.write_section
SECTION = "reader_crop"
DESKEW_SECTION = "reader_deskew"
# Quads and coefficients are plain float arithmetic (train/synth.py rect_to_quad, no BLAS or
# LAPACK, whose kernels differ by CPU), the same bits on every machine here and in ktp-core,
# except that Kotlin's sin/cos/tan are StrictMath's: geometry is compared to this tolerance;
# content widths and pixels exactly.
GEOMETRY_TOLERANCE = 1e-9

IMAGE_A = {"width": 40, "height": 30, "channels": [[7, 13, 0, 0], [3, 5, 1, 50], [11, 2, 0, 200]]}
IMAGE_B = {"width": 120, "height": 90, "channels": [[2, 1, 0, 10], [1, 3, 0, 0], [0, 0, 1, 0]]}
IMAGE_C = {"width": 16, "height": 8, "channels": [[1, 0, 0, 0], [3, 0, 0, 1], [5, 7, 0, 2]]}
DEFAULT = {"height": 32, "width": 256, "margin": 0.2, "side_margin": 0.1}

# The inputs of the cases; the expected values are what box_crop makes of them.
CASE_SPECS = [
    {"about": "whole-pixel box inside the image, text upscaled (8 px high), padded",
     "image": IMAGE_A, "box": [5.0, 10.0, 29.0, 18.0], "config": DEFAULT},
    {"about": "fractional box as a detector gives it",
     "image": IMAGE_A, "box": [3.25, 4.6, 24.7, 13.35], "config": DEFAULT},
    {"about": "box over the left and bottom edges: samples outside the image are black, in the median too",
     "image": IMAGE_A, "box": [-2.0, 22.0, 20.0, 31.5], "config": DEFAULT},
    {"about": "long line: squeezed to the full width (a 16 x 128 config keeps the vector small), no padding",
     "image": IMAGE_B, "box": [2.0, 40.0, 118.0, 44.0],
     "config": {"height": 16, "width": 128, "margin": 0.2, "side_margin": 0.1}},
    {"about": "tall text (55 px): downscaled",
     "image": IMAGE_B, "box": [10.0, 5.0, 110.0, 60.0], "config": DEFAULT},
    {"about": "other config (9 x 40, margin 0.5, no side margin): an odd pixel count for the median",
     "image": IMAGE_A, "box": [10.0, 10.0, 30.0, 16.0],
     "config": {"height": 9, "width": 40, "margin": 0.5, "side_margin": 0.0}},
    {"about": "scale 1, no margins: samples on pixel centres, the median of an even count between two values",
     "image": IMAGE_C, "box": [0.0, 0.0, 16.0, 8.0],
     "config": {"height": 8, "width": 32, "margin": 0.0, "side_margin": 0.0}},
    {"about": "box outside the image: all black",
     "image": IMAGE_A, "box": [50.0, 40.0, 62.0, 44.0], "config": DEFAULT},
    {"about": "the 384 px wide crop with side margin 0.4 (the next reference reader's): 263 columns, more than 256",
     "image": IMAGE_B, "box": [1.0, 2.0, 16.0, 3.4],
     "config": {"height": 32, "width": 384, "margin": 0.2, "side_margin": 0.4}},
]


@contextlib.contextmanager
def recorded_transforms():
    """Record the arguments of every ``Image.transform`` call (what PIL is asked to do)."""
    calls = []
    original = Image.Image.transform

    def recording(self, size, method, data=None, resample=Image.Resampling.NEAREST, *args, **kwargs):
        calls.append({"size": tuple(size), "method": method, "data": list(data), "resample": resample})
        return original(self, size, method, data, resample, *args, **kwargs)

    Image.Image.transform = recording
    try:
        yield calls
    finally:
        Image.Image.transform = original


def crop_case(spec: dict) -> dict:
    """What the Python code makes of one case spec (the expected values of the vectors)."""
    config = CropConfig(**spec["config"])
    x0, y0, x1, y1 = spec["box"]
    with recorded_transforms() as calls:
        crop = box_crop(rule_image(spec["image"]), tuple(spec["box"]), config, "nama")
    assert len(calls) == 1, calls
    call = calls[0]
    # The Kotlin twin implements exactly this PIL call; a change here needs a change there.
    assert call["method"] == Image.Transform.PERSPECTIVE and call["resample"] == Image.Resampling.BILINEAR
    assert call["size"] == (crop.content_width, config.height)
    # box_crop keeps the quad as float32; the float64 one is the same call it makes.
    quad = expand_quad(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64),
                       config.margin, config.side_margin)
    np.testing.assert_allclose(crop.quad, quad, atol=1e-4)
    pad = crop.pixels[0, -1].tolist() if crop.content_width < config.width else None
    return {"source_quad": quad.tolist(), "content_width": crop.content_width, "coefficients": call["data"],
            "pad_rgb": pad, "pixels": crop.pixels}


def _content_ratio(spec: dict) -> float:
    """The value box_crop rounds to the content width (config.height * width / height of the quad)."""
    config = spec["config"]
    x0, y0, x1, y1 = spec["box"]
    h = y1 - y0
    return config["height"] * (x1 - x0 + 2 * config["side_margin"] * h) / (h + 2 * config["margin"] * h)


def build_section() -> dict:
    cases = []
    for spec in CASE_SPECS:
        ratio = _content_ratio(spec)
        # A ratio near x.5 would make the content width depend on the last bits of the geometry.
        assert abs(ratio - np.floor(ratio) - 0.5) > 1e-3, (spec["about"], ratio)
        expected = crop_case(spec)
        cases.append({**spec, **{k: v for k, v in expected.items() if k != "pixels"},
                      "pixels_zlib_base64": encode_pixels(expected["pixels"])})
    return {
        "about": ("The reader's crop of an axis-aligned pixel box (ktp_tflite.train.reader_crops.box_crop; Kotlin "
                  "ReaderCrop in :ktp-core). image: channel c of pixel (x, y) is (ax*x + ay*y + axy*x*y + b) % 256 "
                  "with channels[c] = [ax, ay, axy, b]. box: left, top, right, bottom pixels. source_quad: TL, TR, "
                  "BR, BL corners of the box plus margins. coefficients: the 8 PIL PERSPECTIVE coefficients (output "
                  "pixel centre -> image) box_crop passed to Image.transform with BILINEAR. pad_rgb: the median "
                  "colour padding the columns after content_width (null when there are none). "
                  "pixels_zlib_base64: the crop, uint8 [height, width, 3] row-major RGB, zlib-compressed, base64. "
                  "Regenerate: python tests/test_reader_vectors.py --write."),
        "cases": cases,
    }


VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
CASES = VECTORS.get(SECTION, {}).get("cases", [])


def test_vector_inputs_are_the_generators():
    assert [{k: case[k] for k in ("about", "image", "box", "config")} for case in CASES] == CASE_SPECS


def test_rule_image_values():
    image = rule_image(IMAGE_A)
    assert image.shape == (30, 40, 3)
    # (7*3 + 13*2) % 256, (3*3 + 5*2 + 3*2 + 50) % 256, (11*3 + 2*2 + 200) % 256
    assert image[2, 3].tolist() == [47, 75, 237]
    assert image[29, 39].tolist() == [(7 * 39 + 13 * 29) % 256, (3 * 39 + 5 * 29 + 39 * 29 + 50) % 256,
                                      (11 * 39 + 2 * 29 + 200) % 256]


@pytest.mark.parametrize("case", CASES, ids=[case["about"] for case in CASES])
def test_box_crop_reproduces_the_vectors(case):
    expected = crop_case(case)
    config = case["config"]
    assert expected["content_width"] == case["content_width"]
    np.testing.assert_allclose(expected["source_quad"], case["source_quad"], rtol=0, atol=GEOMETRY_TOLERANCE)
    np.testing.assert_allclose(expected["coefficients"], case["coefficients"], rtol=0, atol=GEOMETRY_TOLERANCE)
    assert expected["pad_rgb"] == case["pad_rgb"]
    stored = decode_pixels(case["pixels_zlib_base64"], config["height"], config["width"])
    np.testing.assert_array_equal(expected["pixels"], stored)


def test_vectors_cover_padding_squeezing_the_frame_edge_and_the_odd_median():
    assert len(CASES) == len(CASE_SPECS)
    widths = [(case["content_width"], case["config"]["width"]) for case in CASES]
    assert any(c == w for c, w in widths) and any(c < w for c, w in widths)
    crops = [decode_pixels(c["pixels_zlib_base64"], c["config"]["height"], c["config"]["width"]) for c in CASES]
    # Black from outside the image inside the content, and an all-black crop.
    assert any(crop[:, :case["content_width"]].min() == 0 for crop, case in zip(crops, CASES))
    assert any(not crop.any() for crop in crops)
    assert any((c["content_width"] * c["config"]["height"]) % 2 == 1 for c in CASES)
    # An even count whose two middle values differ by an odd amount: the mean is truncated.
    middles = []
    for crop, case in zip(crops, CASES):
        content = np.sort(crop[:, :case["content_width"]].reshape(-1, 3).astype(int), axis=0)
        if len(content) % 2 == 0:
            middles += (content[len(content) // 2 - 1] + content[len(content) // 2]).tolist()
    assert any(total % 2 == 1 for total in middles)
    # Upscaled and downscaled text.
    heights = [(c["box"][3] - c["box"][1]) * (1 + 2 * c["config"]["margin"]) / c["config"]["height"] for c in CASES]
    assert min(heights) < 1 < max(heights)


def test_padding_is_the_median_colour_of_the_content():
    for case in CASES:
        if case["pad_rgb"] is None:
            continue
        config = case["config"]
        crop = decode_pixels(case["pixels_zlib_base64"], config["height"], config["width"])
        content = crop[:, :case["content_width"]].reshape(-1, 3)
        assert np.median(content, axis=0).astype(np.uint8).tolist() == case["pad_rgb"]
        assert (crop[:, case["content_width"]:] == case["pad_rgb"]).all()


def test_an_empty_box_is_refused():
    with pytest.raises(CropError, match="is empty"):
        box_crop(rule_image(IMAGE_A), (5.0, 10.0, 5.0, 18.0), CropConfig(), "nik")


# --- Section "reader_deskew": box_crop(..., deskew=True) -------------------------------------------------

DESKEW_CONFIG = CropConfig()  # the app's crop
# Real fields: a region of the card's decoded photo around the box (box margins and slant included).
REGION_PAD = (0.35, 2.0)  # times the box height, plus pixels
PHOTO_SIZE = (640, 480)  # ktp_tflite.train.synth.TRAIN's frame


def _line(width, height, slope, through, thickness, length, gap=9):
    return {"rule": "line", "width": width, "height": height, "slope": slope, "through": through,
            "thickness": thickness, "length": length, "gap": gap}


TIE_POINTS = [[20, 7], [40, 9], [20, 13], [40, 11]]
DESKEW_SPECS = [
    {"about": "falling line (slope 2/15, 7.6 degrees)",
     "image": _line(52, 28, [2, 15], [6, 8], 8, 40), "box": [5.6, 7.7, 46.7, 22.6]},
    {"about": "rising line (slope -1/6, -9.5 degrees)",
     "image": _line(52, 30, [-1, 6], [6, 16], 8, 40), "box": [5.6, 8.7, 46.7, 24.6]},
    {"about": "level line: angle 0, the box itself",
     "image": _line(52, 20, [0, 1], [6, 6], 8, 40), "box": [5.6, 5.7, 46.7, 14.6]},
    {"about": "tall box, thick line at 14 degrees: over 128 profile rows (numpy's pairwise sum splits)",
     "image": _line(210, 110, [1, 4], [8, 10], 30, 192, 24), "box": [7.6, 9.7, 199.7, 88.6]},
    {"about": "box too thin for any slant: 3 x 347 pixels, atan(3/347) < 0.5 degrees, only 0 is tried",
     "image": _line(360, 8, [1, 120], [6, 2], 2, 340, 341), "box": [4.3, 2.2, 350.1, 4.9]},
    {"about": "a 1 px stroke at 10.2 degrees: the slant is found but no line fits the box (no slanted quad)",
     "image": _line(96, 24, [9, 50], [8, 3], 1, 80, 81), "box": [7.6, 2.7, 88.7, 18.2]},
    {"about": "tie: -3 and +3 degrees score the same and beat 0; the negative one is tried first and kept",
     "image": {"rule": "points", "width": 60, "height": 20, "background": 200, "ink": 100, "points": TIE_POINTS},
     "box": [10.0, 4.0, 50.0, 16.0]},
    {"about": "box over the left and bottom edges: the angle from the pixels inside, black samples in the crop",
     "image": _line(36, 22, [1, 10], [0, 12], 8, 30), "box": [-3.5, 11.7, 30.7, 23.5]},
    {"about": "no ink (a flat box): angle 0 without a profile",
     "image": {"rule": "points", "width": 40, "height": 20, "background": 180, "ink": 180, "points": []},
     "box": [4.0, 3.0, 36.0, 15.0]},
    {"about": "box under 4 pixels wide: angle 0 without reading it",
     "image": _line(20, 30, [0, 1], [4, 5], 20, 10), "box": [6.2, 4.5, 8.9, 26.0]},
    {"about": "rendered card 1/1, status_perkawinan: a falling line (true slant 5.4 degrees)",
     "card": [1, 1], "field": "status_perkawinan"},
    {"about": "rendered card 2/3, kewarganegaraan: a rising line (true slant -13.7 degrees)",
     "card": [2, 3], "field": "kewarganegaraan"},
]


def line_image(spec: dict) -> np.ndarray:
    """The uint8 RGB image [height, width, 3] of an image rule (integer arithmetic only).

    "line": ink where ``0 <= q (y - y0) - p (x - x0) < q thickness`` (slope p/q
    through (x0, y0)), ``x0 <= x < x0 + length``, except every ``gap``-th column
    (letter gaps); ink (40, 42, 58) on (202, 196, 181).
    "points": ``background`` grey with the listed pixels at grey ``ink``.
    """
    height, width = spec["height"], spec["width"]
    if spec["rule"] == "points":
        image = np.full((height, width, 3), spec["background"], dtype=np.uint8)
        for x, y in spec["points"]:
            image[y, x] = spec["ink"]
        return image
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    (p, q), (x0, y0) = spec["slope"], spec["through"]
    offset = q * (y - y0) - p * (x - x0)
    ink = ((offset >= 0) & (offset < q * spec["thickness"]) & (x >= x0) & (x < x0 + spec["length"])
           & ((x - x0) % spec["gap"] != spec["gap"] - 1))
    return np.where(ink[..., None], np.array([40, 42, 58]), np.array([202, 196, 181])).astype(np.uint8)


def card_region(seed: int, index: int, field: str) -> tuple[np.ndarray, dict, list[float]]:
    """A region of rendered card (seed, index)'s photo around ``field``'s box: (pixels, where, shifted box)."""
    card = render_card(seed, index)
    photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
    box = next(b for b in card.boxes if b.label == field).to_pixels(*PHOTO_SIZE)
    pad = REGION_PAD[0] * (box[3] - box[1]) + REGION_PAD[1]
    left, top = max(0, math.floor(box[0] - pad)), max(0, math.floor(box[1] - pad))
    right = min(photo.shape[1], math.ceil(box[2] + pad))
    bottom = min(photo.shape[0], math.ceil(box[3] + pad))
    where = {"card": [seed, index], "field": field, "region": [left, top, right, bottom]}
    shifted = [box[0] - left, box[1] - top, box[2] - left, box[3] - top]
    return np.ascontiguousarray(photo[top:bottom, left:right]), where, shifted


def deskew_input(spec: dict) -> tuple[np.ndarray, dict, list[float]]:
    """(image, how it was made, box) of a deskew case spec."""
    if "card" in spec:
        return card_region(*spec["card"], spec["field"])
    return line_image(spec["image"]), spec["image"], list(spec["box"])


class _RecordingNumpy:
    """numpy as reader_crops sees it during one line_angle call, recording what the Kotlin twin must match."""

    def __init__(self):
        self.percentiles: list[float] = []
        self.scores: list[float] = []
        self.profile_rows: list[int] = []
        self.half_distance = math.inf  # the sheared rows' closest approach to a rounding half

    def __getattr__(self, name):
        return getattr(np, name)

    def percentile(self, a, q, *args, **kwargs):
        value = np.percentile(a, q, *args, **kwargs)
        assert q == 80 and value.dtype == np.float32, (q, value.dtype)
        self.percentiles.append(float(value))
        return value

    def round(self, a, *args, **kwargs):
        self.half_distance = min(self.half_distance, float(np.abs(np.abs(a - np.floor(a)) - 0.5).min()))
        return np.round(a, *args, **kwargs)

    def bincount(self, *args, **kwargs):
        profile = np.bincount(*args, **kwargs)
        self.profile_rows.append(len(profile))
        return profile

    def sum(self, a, *args, **kwargs):
        value = np.sum(a, *args, **kwargs)
        self.scores.append(float(value))
        return value


@contextlib.contextmanager
def recorded_line_angle():
    """Run reader_crops with a recording numpy (the 80th percentile, each candidate's score, in order)."""
    recording = _RecordingNumpy()
    original = reader_crops.np
    reader_crops.np = recording
    try:
        yield recording
    finally:
        reader_crops.np = original


def deskew_case(image: np.ndarray, box: list[float], field: str = "nama") -> dict:
    """What the Python code makes of one deskew input (the expected values of the vectors)."""
    with recorded_line_angle() as recording:
        angle = line_angle(image, tuple(box))
    assert len(recording.percentiles) <= 1
    slanted = slanted_quad(tuple(box), angle) if angle else None
    config = DESKEW_CONFIG
    with recorded_transforms() as calls:
        crop = box_crop(image, tuple(box), config, field, deskew=True)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["method"] == Image.Transform.PERSPECTIVE and call["resample"] == Image.Resampling.BILINEAR
    x0, y0, x1, y1 = box
    line = slanted if slanted is not None else np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    quad = expand_quad(line, config.margin, config.side_margin)
    np.testing.assert_allclose(crop.quad, quad, atol=1e-4)  # box_crop took the crop along this quad
    pad = crop.pixels[0, -1].tolist() if crop.content_width < config.width else None
    return {"percentile_80": recording.percentiles[0] if recording.percentiles else None,
            "scores": recording.scores, "angle": float(angle) + 0.0,  # drops the sign of a zero
            "slanted_quad": None if slanted is None else slanted.tolist(), "source_quad": quad.tolist(),
            "content_width": crop.content_width, "coefficients": call["data"], "pad_rgb": pad,
            "pixels": crop.pixels, "profile_rows": recording.profile_rows,
            "half_distance": recording.half_distance}


def build_deskew_section() -> dict:
    cases = []
    for spec in DESKEW_SPECS:
        image, made_by, box = deskew_input(spec)
        expected = deskew_case(image, box, spec.get("field", "nama"))
        # np.tan is SVML's on AVX-512 (1 ulp off libm at 3 degrees): no sheared row may sit that close to a half.
        assert expected["half_distance"] > 1e-9, (spec["about"], expected["half_distance"])
        width, height = reader_crops.quad_sides(np.array(expected["source_quad"]))
        ratio = DESKEW_CONFIG.height * width / height
        assert abs(ratio - np.floor(ratio) - 0.5) > 1e-3, (spec["about"], ratio)  # content width not at a tie
        cases.append({
            "about": spec["about"],
            "image": {"made_by": made_by, "width": image.shape[1], "height": image.shape[0],
                      "pixels_zlib_base64": encode_pixels(image)},
            "box": box,
            **{k: expected[k] for k in ("percentile_80", "scores", "angle", "slanted_quad", "source_quad",
                                        "content_width", "coefficients", "pad_rgb")},
            "pixels_zlib_base64": encode_pixels(expected["pixels"]),
        })
    return {
        "about": ("The reader's deskewed crop of an axis-aligned pixel box (ktp_tflite.train.reader_crops.box_crop "
                  "with deskew=True: line_angle, slanted_quad, expand_quad, crop_quad; Kotlin Deskew and "
                  "ReaderCrop.deskewedCrop in :ktp-core), default crop config (32 x 256, margins 0.2 and 0.1). "
                  "image: the frame, uint8 [height, width, 3] row-major RGB, zlib, base64; made_by: the rule of "
                  "tests/test_reader_vectors.py line_image, or the region [left, top, right, bottom] of rendered "
                  "card [seed, index]'s decoded photo (box shifted into it). box: left, top, right, bottom pixels. "
                  "percentile_80: line_angle's 80th percentile of the box's grey (float32; null when it returns "
                  "before). scores: the sum of squares of the row profile of each candidate angle, in the order "
                  "tried (0, -step, +step, -2 step, ...). angle: the slant found, degrees (y down; the sign of a "
                  "zero dropped). slanted_quad: TL, TR, BR, BL of the slanted line (null: the box is used). "
                  "source_quad, content_width, coefficients, pad_rgb, pixels_zlib_base64: as in reader_crop. "
                  "Regenerate: python tests/test_reader_vectors.py --write reader_deskew."),
        "cases": cases,
    }


DESKEW_CASES = VECTORS.get(DESKEW_SECTION, {}).get("cases", [])


def _stored_image(case: dict) -> np.ndarray:
    image = case["image"]
    return decode_pixels(image["pixels_zlib_base64"], image["height"], image["width"])


def _stored_crop(case: dict) -> np.ndarray:
    return decode_pixels(case["pixels_zlib_base64"], DESKEW_CONFIG.height, DESKEW_CONFIG.width)


def test_deskew_inputs_are_the_generators():
    assert [case["about"] for case in DESKEW_CASES] == [spec["about"] for spec in DESKEW_SPECS]
    for case, spec in zip(DESKEW_CASES, DESKEW_SPECS):
        image, made_by, box = deskew_input(spec)
        assert case["image"]["made_by"] == made_by and case["box"] == box, spec["about"]
        np.testing.assert_array_equal(_stored_image(case), image, err_msg=spec["about"])


def test_line_image_values():
    image = line_image(_line(20, 10, [1, 2], [2, 3], 2, 12, 6))
    # (x, y) = (4, 4): offset 2 * 1 - 1 * 2 = 0 -> ink; (7, 4): column 5 of the line is a letter gap.
    assert image[4, 4].tolist() == [40, 42, 58] and image[4, 7].tolist() == [202, 196, 181]
    assert image[5, 4].tolist() == [40, 42, 58] and image[6, 4].tolist() == [202, 196, 181]


@pytest.mark.parametrize("case", DESKEW_CASES, ids=[case["about"] for case in DESKEW_CASES])
def test_deskew_reproduces_the_vectors(case):
    field = case["image"]["made_by"].get("field", "nama")
    expected = deskew_case(_stored_image(case), case["box"], field)
    assert expected["percentile_80"] == case["percentile_80"]
    assert expected["scores"] == case["scores"]  # exact: the Kotlin twin sums the same way
    assert expected["angle"] == case["angle"]
    if case["slanted_quad"] is None:
        assert expected["slanted_quad"] is None
    else:
        np.testing.assert_allclose(expected["slanted_quad"], case["slanted_quad"], rtol=0, atol=GEOMETRY_TOLERANCE)
    np.testing.assert_allclose(expected["source_quad"], case["source_quad"], rtol=0, atol=GEOMETRY_TOLERANCE)
    assert expected["content_width"] == case["content_width"]
    np.testing.assert_allclose(expected["coefficients"], case["coefficients"], rtol=0, atol=GEOMETRY_TOLERANCE)
    assert expected["pad_rgb"] == case["pad_rgb"]
    np.testing.assert_array_equal(expected["pixels"], _stored_crop(case))


def test_deskew_vectors_cover_the_rule():
    by_kind = {}
    for case in DESKEW_CASES:
        angle, quad, scores = case["angle"], case["slanted_quad"], case["scores"]
        real = "card" in case["image"]["made_by"]
        by_kind.setdefault("falling", []).append(angle > 0 and quad is not None)
        by_kind.setdefault("rising", []).append(angle < 0 and quad is not None)
        by_kind.setdefault("level", []).append(angle == 0 and len(scores) > 1 and quad is None)
        by_kind.setdefault("thin", []).append(len(scores) == 1)  # the box leaves only angle 0
        by_kind.setdefault("no quad", []).append(angle != 0 and quad is None)
        by_kind.setdefault("no profile", []).append(case["percentile_80"] is not None and not scores)
        by_kind.setdefault("not read", []).append(case["percentile_80"] is None)
        by_kind.setdefault("real falling", []).append(real and angle > 0 and quad is not None)
        by_kind.setdefault("real rising", []).append(real and angle < 0 and quad is not None)
        by_kind.setdefault("padded", []).append(case["pad_rgb"] is not None)
        by_kind.setdefault("squeezed", []).append(case["pad_rgb"] is None)
        # The best score first reached by a negative angle and equalled by its positive twin: the first is kept.
        first = scores.index(max(scores)) if scores else 0
        by_kind.setdefault("tie", []).append(first % 2 == 1 and scores[first + 1] == scores[first] and angle < 0)
    assert {kind: any(flags) for kind, flags in by_kind.items()} == {kind: True for kind in by_kind}
    rows = [n for spec in DESKEW_SPECS for n in deskew_case(*deskew_input(spec)[::2])["profile_rows"]]
    assert min(rows) < 8 and max(rows) > 128  # numpy's pairwise sum: its short, unrolled and split cases
    section = format_section(VECTORS[DESKEW_SECTION])
    assert len(section.encode("utf-8")) < 60_000


def test_real_regions_crop_like_the_whole_photo():
    """The stored region holds every pixel the crop reads: the same angle, the same crop."""
    for spec in DESKEW_SPECS:
        if "card" not in spec:
            continue
        seed, index = spec["card"]
        card = render_card(seed, index)
        photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
        box = next(b for b in card.boxes if b.label == spec["field"]).to_pixels(*PHOTO_SIZE)
        region, _, shifted = card_region(seed, index, spec["field"])
        assert line_angle(photo, box) == line_angle(region, tuple(shifted)) != 0
        whole = box_crop(photo, box, DESKEW_CONFIG, spec["field"], deskew=True)
        part = box_crop(region, tuple(shifted), DESKEW_CONFIG, spec["field"], deskew=True)
        assert whole.content_width == part.content_width
        assert np.abs(whole.pixels.astype(int) - part.pixels.astype(int)).max() <= 1


# --- Section "reader_crop_file": the reader's packed crop.txt (parse_crop) -----------------------------------

CROP_FILE_SECTION = "reader_crop_file"
CROP_FILE_SOURCE = f"{INT8_FILE}: {CROP_FILE}"  # as TfliteReader names it; ktp-core parseCropConfig's default
NEXT_READER = {"width": 384, "side_margin": 0.4}
_LINES = "height=32\nwidth=384\nmargin=0.2\nside_margin=0.4\n"  # the next reader's crop.txt
DIGITS_4300 = "0" * 4298 + "32"


def _with(key: str, value: str) -> str:
    """The next reader's crop.txt with ``key``'s value text replaced."""
    return "".join(f"{k}={value if k == key else v}\n" for k, v in (line.split("=") for line in _LINES.splitlines()))


# "written": the CropConfig fields crop_txt writes the text of; "text": a text by hand.
# An invalid case names its kind and words that every refusal of it must contain.
CROP_FILE_SPECS = [
    {"about": "the default crop, as crop_txt writes it", "written": {}},
    {"about": "the next reference reader's crop (384 px wide, side margin 0.4), as crop_txt writes it",
     "written": NEXT_READER},
    {"about": "the keys in another order, no line break at the end",
     "text": "side_margin=0.4\nmargin=0.2\nwidth=384\nheight=32"},
    {"about": "Windows and old Mac line ends", "text": "height=32\r\nwidth=384\rmargin=0.2\r\nside_margin=0.4\r\n"},
    {"about": "other line breaks of str.splitlines: vertical tab, form feed, file and group separators",
     "text": "height=32\x0bwidth=384\x0cmargin=0.2\x1cside_margin=0.4\x1d"},
    {"about": "other line breaks of str.splitlines: record separator, NEL, line and paragraph separators",
     "text": "margin=0.2\x1eheight=32\x85width=384\u2028side_margin=0.4\u2029"},
    {"about": "whitespace around the values: spaces, a tab, a no-break space, an em and an ideographic space",
     "text": "height= 32 \nwidth=\t384\u00a0\nmargin=\u3000 0.2\nside_margin=0.4\u2003\n"},
    {"about": "int() and float() syntax: a sign, leading zeros, _ between digits, an exponent, no leading digit",
     "text": "height=+0_32\nwidth=03_84\nmargin=2e-1\nside_margin=.4\n"},
    {"about": "float() syntax: no digit after the point, _ in the mantissa, a capital E with a sign",
     "text": "height=32\nwidth=384\nmargin=1.\nside_margin=4_0E-2\n"},
    {"about": "Unicode decimal digits: fullwidth, Arabic-Indic, a mathematical bold digit (outside the BMP)",
     "text": "height=\uff13\uff12\nwidth=\u0663\u0668\u0664\nmargin=0.\U0001d7d0\nside_margin=0.4\n"},
    {"about": "the limits: width = height = 8, margins 0 (written -0) and 2",
     "text": "height=8\nwidth=8\nmargin=-0\nside_margin=2\n"},
    {"about": "an exponent below the smallest double: margin 0", "text": _with("margin", "1e-400")},
    {"about": "a height of 4300 digits (leading zeros): as many as Python's int() reads",
     "text": _with("height", DIGITS_4300)},
    # Invalid: the line rules.
    {"about": "an empty file", "text": "", "kind": "missing", "names": "missing height, width, margin, side_margin"},
    {"about": "a key missing", "text": "height=32\nwidth=384\nmargin=0.2\n", "kind": "missing",
     "names": "missing side_margin"},
    {"about": "a key twice", "text": _LINES + "margin=0.3\n", "kind": "line", "names": "line 5"},
    {"about": "an unknown key", "text": _LINES + "depth=3\n", "kind": "line", "names": "line 5"},
    {"about": "a line without =", "text": "height=32\nwidth 384\nmargin=0.2\nside_margin=0.4\n", "kind": "line",
     "names": "line 2"},
    {"about": "an empty line between two", "text": "height=32\n\nwidth=384\nmargin=0.2\nside_margin=0.4\n",
     "kind": "line", "names": "line 2"},
    {"about": "an empty last line (two line breaks at the end)", "text": _LINES + "\n", "kind": "line",
     "names": "line 5"},
    {"about": "a space before the =", "text": _LINES.replace("width=", "width ="), "kind": "line", "names": "line 2"},
    {"about": "a key in capitals", "text": _LINES.replace("height", "HEIGHT"), "kind": "line", "names": "line 1"},
    {"about": "a byte-order mark before the first key", "text": "\ufeff" + _LINES, "kind": "line",
     "names": "line 1"},
    # Invalid: values that are not int() or float() syntax.
    {"about": "a height with a point", "text": _with("height", "32.0"), "kind": "value", "names": "'32.0'"},
    {"about": "a height in hex", "text": _with("height", "0x20"), "kind": "value", "names": "'0x20'"},
    {"about": "a width with two underscores in a row", "text": _with("width", "3__84"), "kind": "value",
     "names": "'3__84'"},
    {"about": "a width with an underscore first", "text": _with("width", "_384"), "kind": "value",
     "names": "'_384'"},
    {"about": "a width with a space inside", "text": _with("width", "3 84"), "kind": "value", "names": "'3 84'"},
    {"about": "a height followed by a unit separator (a space to str.isspace, not to int)",
     "text": _with("height", "32\x1f"), "kind": "value", "names": "'32"},
    {"about": "a height of 4301 digits: more than Python's int() reads", "text": _with("height", "0" + DIGITS_4300),
     "kind": "value", "names": "height"},
    {"about": "an empty margin", "text": _with("margin", ""), "kind": "value", "names": "''"},
    {"about": "a second = in a value", "text": _with("margin", "0.2=0.3"), "kind": "value", "names": "'0.2=0.3'"},
    {"about": "a float suffix (Java reads it, Python does not)", "text": _with("margin", "0.2f"), "kind": "value",
     "names": "'0.2f'"},
    {"about": "a hex float (Java reads it, Python does not)", "text": _with("side_margin", "0x1p-2"),
     "kind": "value", "names": "'0x1p-2'"},
    {"about": "a decimal comma", "text": _with("margin", "0,2"), "kind": "value", "names": "'0,2'"},
    {"about": "an underscore next to the point", "text": _with("margin", "0_.2"), "kind": "value",
     "names": "'0_.2'"},
    {"about": "an exponent without digits", "text": _with("side_margin", "4e"), "kind": "value", "names": "'4e'"},
    {"about": "a point alone", "text": _with("side_margin", "."), "kind": "value", "names": "'.'"},
    {"about": "infinity misspelt", "text": _with("margin", "infinit"), "kind": "value", "names": "'infinit'"},
    # Invalid: numbers a CropConfig cannot have.
    {"about": "a height under 8", "text": _with("height", "7"), "kind": "value", "names": "crop size 384x7"},
    {"about": "a negative height", "text": _with("height", "-32"), "kind": "value", "names": "crop size 384x-32"},
    {"about": "a width under the height", "text": _with("width", "31"), "kind": "value", "names": "crop size 31x32"},
    {"about": "a margin over 2", "text": _with("margin", "2.5"), "kind": "value", "names": "crop margin 2.5"},
    {"about": "a negative side margin", "text": _with("side_margin", "-0.1"), "kind": "value",
     "names": "crop side_margin -0.1"},
    {"about": "a margin just over 2", "text": _with("margin", "2.0000001"), "kind": "value",
     "names": "crop margin 2.0000001"},
    {"about": "a margin nan (float() reads it)", "text": _with("margin", "NaN"), "kind": "value",
     "names": "crop margin"},
    {"about": "a margin inf (float() reads it)", "text": _with("margin", "inf"), "kind": "value",
     "names": "crop margin"},
    {"about": "a side margin -Infinity (float() reads it)", "text": _with("side_margin", "-Infinity"),
     "kind": "value", "names": "crop side_margin"},
    {"about": "a margin that overflows to inf", "text": _with("margin", "1e400"), "kind": "value",
     "names": "crop margin"},
]


def _changed_key(text: str) -> str | None:
    """The key whose value alone ``text`` changes in the next reader's crop.txt (:func:`_with`), else None."""
    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key in CROP_KEYS and text == _with(key, value) != _LINES:
            return key
    return None


def crop_file_case(spec: dict) -> dict:
    """What parse_crop makes of one crop-file spec (the expected values of the vectors)."""
    text = spec["text"] if "text" in spec else crop_txt(CropConfig(**spec["written"]))
    case = {"about": spec["about"], "text": text}
    if "kind" not in spec:
        return {**case, "config": dataclasses.asdict(parse_crop(text, CROP_FILE_SOURCE))}
    with pytest.raises(ReaderModelError) as refused:
        parse_crop(text, CROP_FILE_SOURCE)
    error = str(refused.value)
    # "value": parse_crop re-raised int()'s, float()'s or CropConfig's error; "line" and "missing" are its own.
    assert (refused.value.__context__ is not None) == (spec["kind"] == "value"), (spec["about"], error)
    assert spec["names"] in error and error.startswith(f"{CROP_FILE_SOURCE}: "), (spec["about"], error)
    return {**case, "kind": spec["kind"], "names": spec["names"], "error": error}


def build_crop_file_section() -> dict:
    return {
        "about": ("The reader's packed crop.txt (ktp_tflite.convert.reader.parse_crop; Kotlin "
                  "ReaderModel.parseCropConfig in :ktp-core), read as the reader names it: 'ktp_reader_int8.tflite: "
                  "crop.txt'. text: the file. config: the CropConfig of a valid one (height, width, margin, "
                  "side_margin). An invalid one has kind: line (a line not KEY=VALUE with one of the four keys, or "
                  "a key again), missing (a key not there) or value (not int()/float() syntax, or a crop no "
                  "CropConfig can be); error: Python's message; names: words every refusal of it contains. "
                  "Regenerate: python tests/test_reader_vectors.py --write reader_crop_file."),
        "cases": [crop_file_case(spec) for spec in CROP_FILE_SPECS],
    }


SECTION_BUILDERS: dict[str, Callable[[], dict]] = {SECTION: build_section, DESKEW_SECTION: build_deskew_section,
                                                   CROP_FILE_SECTION: build_crop_file_section}
CROP_FILE_CASES = VECTORS.get(CROP_FILE_SECTION, {}).get("cases", [])


def test_crop_file_vectors_are_parse_crops():
    assert VECTORS[CROP_FILE_SECTION] == build_crop_file_section()


@pytest.mark.parametrize("case", CROP_FILE_CASES, ids=[case["about"] for case in CROP_FILE_CASES])
def test_parse_crop_reproduces_the_crop_file_vectors(case):
    if "config" in case:
        config = parse_crop(case["text"], CROP_FILE_SOURCE)
        assert json.dumps(dataclasses.asdict(config)) == json.dumps(case["config"])  # -0.0 too
        assert parse_crop(crop_txt(config)) == config
    else:
        with pytest.raises(ReaderModelError) as refused:
            parse_crop(case["text"], CROP_FILE_SOURCE)
        assert str(refused.value) == case["error"]


def test_crop_file_vectors_cover_the_rules():
    valid = [case for case in CROP_FILE_CASES if "config" in case]
    invalid = [case for case in CROP_FILE_CASES if "config" not in case]
    texts = [case["text"] for case in valid]
    assert crop_txt(CropConfig()) in texts and crop_txt(CropConfig(**NEXT_READER)) in texts
    assert {case["kind"] for case in invalid} == {"line", "missing", "value"}
    # Each key refused for a value of its own: not its syntax (int() for the sizes, float() for the
    # margins), and a number no crop can have.
    for key in CROP_KEYS:
        refused = [case for case in invalid if case["kind"] == "value" and _changed_key(case["text"]) == key]
        assert any("crop " in case["error"] for case in refused), key
        assert any("crop " not in case["error"] for case in refused), key
    # Python accepts, and the vectors keep, syntax Java's parsers read otherwise: both ways.
    assert any("\u3000" in text or "\u00a0" in text for text in texts)
    assert any(case["config"]["margin"] == 0.0 and math.copysign(1, case["config"]["margin"]) < 0 for case in valid)


if __name__ == "__main__":
    names = sys.argv[2:] or list(SECTION_BUILDERS)
    if sys.argv[1:2] != ["--write"] or any(name not in SECTION_BUILDERS for name in names):
        sys.exit(f"usage: python {Path(__file__).name} --write [{'|'.join(SECTION_BUILDERS)} ...]   "
                 f"(rewrites those sections of {VECTORS_PATH}, all without a name)")
    for name in names:
        write_section(name, SECTION_BUILDERS[name]())
        print(f"wrote section {name!r} of {VECTORS_PATH}", file=sys.stderr)


# --- The vectors hold on every CPU -----------------------------------------------------------------------


def test_the_vectors_hold_whichever_blas_kernel_runs():
    # OpenBLAS picks its kernels by CPU (Haswell or Zen on AVX2, SkylakeX on Intel AVX-512, ...). The
    # geometry once went through its SVD, and three of these tests failed on machines whose kernel
    # differed from the one the vectors were written on. Sandybridge's kernels (AVX) run on every
    # machine of ours and differ from the one OpenBLAS picks there: the vectors must still hold.
    import os
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "not blas_kernel"],
        env={**os.environ, "OPENBLAS_CORETYPE": "Sandybridge"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
