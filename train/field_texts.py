"""``fields.jsonl``: the printed text of each field value, per image of a data set.

``ktpconvert data synth`` writes it beside the COCO / TFRecord export: one
JSON object per line, ``{"image_id": ..., "nik": ..., "nama": ..., ...}``
(the five classes; other keys are ignored). The texts of synthetic cards are
invented; for real cards this file is personal data and is only read, never
copied into a report.
"""

from __future__ import annotations

import json
from pathlib import Path

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES

FIELDS_FILE = "fields.jsonl"


class FieldTextsError(KtpError, ValueError):
    """A fields.jsonl that cannot be used (names the file and line)."""


def find_field_texts(data: str | Path) -> Path:
    """The fields.jsonl of a data set path: the file itself, or in the folder or its parent.

    Raises:
      FieldTextsError: none found (says where it looked).
    """
    data = Path(data)
    if data.is_file() and data.name == FIELDS_FILE:
        return data
    folder = data if data.is_dir() else data.parent
    for candidate in (folder / FIELDS_FILE, folder.parent / FIELDS_FILE):
        if candidate.is_file():
            return candidate
    raise FieldTextsError(
        f"{data}: no {FIELDS_FILE} in {folder} or {folder.parent}; pass --texts with the "
        f"file of the printed values (`ktpconvert data synth` writes one)"
    )


def read_field_texts(path: str | Path) -> dict[str, dict[str, str]]:
    """``{image_id: {field: text}}`` of a fields.jsonl.

    Raises:
      FieldTextsError: unreadable, a line that is not an object with a string
        ``image_id`` and string field values, or an image id given twice.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise FieldTextsError(f"{path}: cannot be read ({error})") from None
    texts: dict[str, dict[str, str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise FieldTextsError(f"{path}: line {number} is not JSON ({error.__class__.__name__})") from None
        if not isinstance(record, dict) or not isinstance(record.get("image_id"), str):
            raise FieldTextsError(f"{path}: line {number} must be an object with a string image_id")
        image_id = record["image_id"]
        if image_id in texts:
            raise FieldTextsError(f"{path}: line {number}: image id {image_id!r} is given twice")
        values = {field: record[field] for field in CLASSES if field in record}
        bad = [field for field, value in values.items() if not isinstance(value, str)]
        if bad:
            raise FieldTextsError(f"{path}: line {number}: {', '.join(bad)} must be text")
        texts[image_id] = values
    return texts
