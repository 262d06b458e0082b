"""Test helper (not a test module): the shared vectors file and its pixel encoding.

tests/vectors/ktp_vectors.json holds the cases Python and ktp-core (Kotlin)
both check. The test modules that write sections of it share this code;
load it as ``ktp_tests_vector_file`` (registered by conftest.py; a module
run as a script imports ``vector_file``, its folder being on ``sys.path``).

Images made by a rule both languages implement (:func:`rule_image`), pixels
stored zlib-compressed and base64-encoded (:func:`encode_pixels`), and a
writer that rewrites one top-level section in place (:func:`write_section`).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np

from ktp_tflite.train.atomic_files import atomic_write_bytes

VECTORS_PATH = Path(__file__).parent / "vectors" / "ktp_vectors.json"


def rule_image(spec: dict) -> np.ndarray:
    """The uint8 RGB image [height, width, 3] of an image rule.

    Channel ``c`` of pixel ``(x, y)`` is ``(ax * x + ay * y + axy * x * y + b) % 256``
    with ``spec["channels"][c] = [ax, ay, axy, b]``.
    """
    y, x = np.mgrid[0 : spec["height"], 0 : spec["width"]].astype(np.int64)
    return np.stack(
        [(ax * x + ay * y + axy * x * y + b) % 256 for ax, ay, axy, b in spec["channels"]], axis=-1
    ).astype(np.uint8)


def encode_pixels(pixels: np.ndarray) -> str:
    """uint8 pixels, row-major, zlib-compressed (level 9) and base64-encoded."""
    return base64.b64encode(zlib.compress(pixels.tobytes(), 9)).decode("ascii")


def decode_pixels(text: str, height: int, width: int) -> np.ndarray:
    """The uint8 RGB [height, width, 3] array of :func:`encode_pixels`' text."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).reshape(height, width, 3)


def format_section(section: dict) -> str:
    """A section with ``about`` and ``cases`` as JSON text in the file's style: one case per block, one key per line."""
    lines = ["{", f'    "about": {json.dumps(section["about"])},', '    "cases": [']
    for index, case in enumerate(section["cases"]):
        items = [f"        {json.dumps(key)}: {json.dumps(value)}" for key, value in case.items()]
        lines += ["      {", ",\n".join(items), "      }" + ("," if index < len(section["cases"]) - 1 else "")]
    lines += ["    ]", "  }"]
    return "\n".join(lines)


def section_span(text: str, name: str) -> tuple[int, int] | None:
    """Where top-level section ``name`` sits in the vectors text: from its leading comma to its end."""
    marker = f',\n  "{name}": '
    start = text.find(marker)
    if start < 0:
        return None
    following = re.compile(r',\n  "[^"]+": ').search(text, start + len(marker))
    return start, following.start() if following else text.rindex("\n}")


def write_section(name: str, section: dict, path: Path = VECTORS_PATH) -> None:
    """Rewrite top-level section ``name`` of the vectors file in place (or append it); every other byte stays."""
    text = path.read_text(encoding="utf-8")
    block = f',\n  "{name}": {format_section(section)}'
    span = section_span(text, name)
    if span is None:
        end = text.rindex("\n}")
        updated = f"{text[:end]}{block}{text[end:]}"
    else:
        updated = f"{text[: span[0]]}{block}{text[span[1] :]}"
    before, after = json.loads(text), json.loads(updated)
    assert {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
    assert [k for k in after if k != name] == [k for k in before if k != name]
    atomic_write_bytes(path, updated.encode("utf-8"))
