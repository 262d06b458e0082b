"""The detector input for runtimes that resize by themselves, shared with Kotlin: section "model_input".

The vectors: tests/vectors/ktp_vectors.json. ktp-core's ``ModelInputTest``
(android_demo) reads the same cases.

Each case is an image made by the rule of :func:`vector_file.rule_image`, an
output size, and what this toolkit makes of it:
:func:`ktp_tflite.train.preprocess.resize_rgb` (PIL's BILINEAR, antialiased
when shrinking: the training and LiteRT resize), and for a case with
``factor``, :func:`ktp_tflite.convert.runtimes.presized_frame` of it: the
frame an app hands MediaPipe or the Task Library. Pixels are stored (zlib,
base64), or, for a camera-sized case, their SHA-256.

Regenerate after a deliberate change of the rule (rewrites that section in
place, every other byte of the file stays):
``.venv/bin/python tests/test_model_input.py --write``
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys

import numpy as np
import pytest

from ktp_tflite.convert.runtimes import PRESIZE_FACTORS, presized_frame
from ktp_tflite.train.preprocess import resize_rgb

vector_file = sys.modules.get("ktp_tests_vector_file") or importlib.import_module("vector_file")  # see vector_file.py
SECTION = "model_input"

# The inputs of the cases; the expected values are what resize_rgb / presized_frame make of them.
CASE_SPECS = [
    {"about": "shrink by 2 x 1.5 (horizontal pass first, as PIL orders it)",
     "image": {"width": 64, "height": 48, "channels": [[7, 13, 0, 0], [3, 5, 1, 50], [11, 2, 0, 200]]},
     "size": [32, 32]},
    {"about": "height shrinks more than twice the width does: PIL runs the vertical pass first",
     "image": {"width": 30, "height": 90, "channels": [[2, 1, 0, 10], [1, 3, 0, 0], [0, 0, 1, 0]]},
     "size": [20, 20]},
    {"about": "a scale that is not a whole number in either axis (33/16, 25/16)",
     "image": {"width": 33, "height": 25, "channels": [[5, 9, 1, 3], [13, 1, 0, 7], [1, 11, 2, 0]]},
     "size": [16, 16]},
    {"about": "upscale (no antialiasing: the triangle's support stays 1)",
     "image": {"width": 10, "height": 8, "channels": [[29, 3, 0, 0], [1, 31, 0, 100], [7, 7, 3, 0]]},
     "size": [32, 24]},
    {"about": "width kept, height halved: one pass",
     "image": {"width": 12, "height": 40, "channels": [[3, 17, 0, 5], [19, 2, 1, 0], [0, 23, 0, 9]]},
     "size": [12, 20]},
    {"about": "the presized frame of a small model input, factor 3",
     "image": {"width": 64, "height": 48, "channels": [[7, 13, 0, 0], [3, 5, 1, 50], [11, 2, 0, 200]]},
     "size": [16, 12], "factor": 3},
    {"about": "the app's case: a 640x480 frame to the 320x320 model, and its presized frame (factor 4), as SHA-256",
     "image": {"width": 640, "height": 480, "channels": [[7, 13, 1, 0], [3, 5, 3, 50], [11, 2, 7, 200]]},
     "size": [320, 320], "factor": 4, "hash_only": True},
]


def _digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def model_input_case(spec: dict) -> dict:
    image = vector_file.rule_image(spec["image"])
    width, height = spec["size"]
    resized = resize_rgb(image, height, width)
    case = dict(spec)
    if spec.get("hash_only"):
        case["resized_sha256"] = _digest(resized)
    else:
        case["resized_zlib_base64"] = vector_file.encode_pixels(resized)
    if "factor" in spec:
        frame = presized_frame(image, (width, height), spec["factor"])
        key = "frame_sha256" if spec.get("hash_only") else "frame_zlib_base64"
        case[key] = _digest(frame) if spec.get("hash_only") else vector_file.encode_pixels(frame)
    return case


def build_section() -> dict:
    return {
        "about": ("The detector input made as this toolkit makes it (ktp_tflite.train.preprocess.resize_rgb: PIL "
                  "BILINEAR, antialiased when shrinking; ktp_tflite.convert.runtimes.presized_frame; Kotlin "
                  "ModelInput in :ktp-core). image: channel c of pixel (x, y) is (ax*x + ay*y + axy*x*y + b) % 256 "
                  "with channels[c] = [ax, ay, axy, b]. size: output [width, height]. resized_zlib_base64: the "
                  "resized uint8 [height, width, 3] row-major RGB, zlib-compressed, base64 (or resized_sha256: its "
                  "SHA-256). factor: the presized frame's pixel repeat; frame_zlib_base64 / frame_sha256 likewise. "
                  "Regenerate: python tests/test_model_input.py --write."),
        "cases": [model_input_case(spec) for spec in CASE_SPECS],
    }


VECTORS = json.loads(vector_file.VECTORS_PATH.read_text(encoding="utf-8"))
CASES = VECTORS.get(SECTION, {}).get("cases", [])


def test_vectors_are_what_the_code_makes():
    assert [{k: v for k, v in case.items() if k in CASE_SPECS[0] or k in ("factor", "hash_only")} for case in CASES] \
        == CASE_SPECS
    assert VECTORS[SECTION] == build_section()


@pytest.mark.parametrize("case", [c for c in CASES if not c.get("hash_only")], ids=lambda c: c["about"])
def test_stored_pixels_decode_to_the_resize(case):
    width, height = case["size"]
    image = vector_file.rule_image(case["image"])
    stored = vector_file.decode_pixels(case["resized_zlib_base64"], height, width)
    np.testing.assert_array_equal(stored, resize_rgb(image, height, width))
    if "factor" in case:
        factor = case["factor"]
        frame = vector_file.decode_pixels(case["frame_zlib_base64"], height * factor, width * factor)
        # each model pixel repeated factor x factor times, nothing else
        np.testing.assert_array_equal(frame[::factor, ::factor], stored)
        np.testing.assert_array_equal(frame, np.kron(stored, np.ones((factor, factor, 1), np.uint8)))


def test_the_resize_is_antialiased_not_a_two_tap_bilinear():
    # The cases must tell PIL's antialiased filter from a 2-tap bilinear (what Android's
    # createScaledBitmap does), or the Kotlin twin could be either. Halving the height: the
    # 2-tap mean of rows 2y and 2y + 1 against PIL's 1/8, 3/8, 3/8, 1/8 over rows 2y - 1 .. 2y + 2.
    case = next(c for c in CASES if c["about"].startswith("width kept, height halved"))
    image = vector_file.rule_image(case["image"]).astype(np.float64)
    two_tap = np.floor((image[0::2] + image[1::2]) / 2 + 0.5)
    stored = vector_file.decode_pixels(case["resized_zlib_base64"], 20, 12).astype(np.float64)
    assert np.abs(stored - two_tap).max() >= 8
    inner = image[1:36:2] / 8 + 3 * image[2:37:2] / 8 + 3 * image[3:38:2] / 8 + image[4:39:2] / 8  # rows 1 .. 18
    assert np.abs(stored[1:-1] - inner).max() <= 1.0


def test_presized_frame_refuses_a_factor_out_of_range():
    image = np.zeros((8, 8, 3), np.uint8)
    assert PRESIZE_FACTORS[0] == 2
    for factor in (0, 1, PRESIZE_FACTORS[-1] + 1):
        with pytest.raises(ValueError, match="presize factor"):
            presized_frame(image, (4, 4), factor)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write   (rewrites section {SECTION!r} of {vector_file.VECTORS_PATH})")
    vector_file.write_section(SECTION, build_section())
    print(f"wrote section {SECTION!r} of {vector_file.VECTORS_PATH}", file=sys.stderr)
