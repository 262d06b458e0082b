"""The five KTP field classes: the one source of truth for names and ids.

Everything that needs the classes (the renderer, dataset readers and writers,
the OD API ``label_map.pbtxt``, the TFLite ``labels.txt``, metadata, the
Android asset check) reads them from here.

Ids: ``CLASSES.index(name)`` is the 0-based index that TFLite's detection
post-process reports; the OD API label map uses that index + 1 (id 0 is the
background class there).
"""

from __future__ import annotations

import re

from ktp_tflite.train.errors import KtpError

CLASSES: tuple[str, ...] = (
    "nik",
    "nama",
    "jenis_kelamin",
    "status_perkawinan",
    "kewarganegaraan",
)

# Spellings met in users' exports, after normalisation (lower case, runs of
# spaces, dashes, dots and slashes turned into one underscore).
_ALIASES: dict[str, str] = {
    "nik": "nik",
    "no_nik": "nik",
    "nomor_induk_kependudukan": "nik",
    "id_number": "nik",
    "nama": "nama",
    "name": "nama",
    "nama_lengkap": "nama",
    "full_name": "nama",
    "jenis_kelamin": "jenis_kelamin",
    "jeniskelamin": "jenis_kelamin",
    "kelamin": "jenis_kelamin",
    "gender": "jenis_kelamin",
    "sex": "jenis_kelamin",
    "status_perkawinan": "status_perkawinan",
    "statusperkawinan": "status_perkawinan",
    "status_kawin": "status_perkawinan",
    "perkawinan": "status_perkawinan",
    "marital_status": "status_perkawinan",
    "maritalstatus": "status_perkawinan",
    "marital": "status_perkawinan",
    "kewarganegaraan": "kewarganegaraan",
    "warga_negara": "kewarganegaraan",
    "nationality": "kewarganegaraan",
    "citizenship": "kewarganegaraan",
}


class UnknownClassError(KtpError, ValueError):
    """A class name that is none of the five KTP fields nor a known alias."""


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-./]+", "_", name.strip().lower()).strip("_")


def canonical_class(name: str) -> str:
    """Map a class name from a user's export to its canonical name.

    Args:
      name: e.g. "NIK", "Jenis Kelamin", "marital status", "gender".

    Returns:
      One of ``CLASSES``.

    Raises:
      UnknownClassError: the name is not a KTP field class.
    """
    key = _normalise(name)
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownClassError(
        f"unknown class name {name!r}; expected one of {', '.join(CLASSES)} "
        "(or a common spelling such as 'Jenis Kelamin', 'gender', 'marital status')"
    )


def class_index(name: str) -> int:
    """0-based index of a class (the TFLite post-process class id)."""
    return CLASSES.index(canonical_class(name))


def label_map_pbtxt(classes: tuple[str, ...] = CLASSES) -> str:
    """OD API ``label_map.pbtxt`` text (ids start at 1)."""
    items = [f"item {{\n  id: {i}\n  name: '{name}'\n}}\n" for i, name in enumerate(classes, start=1)]
    return "\n".join(items)


def labels_txt(classes: tuple[str, ...] = CLASSES) -> str:
    """TFLite ``labels.txt``: one class per line, in post-process id order."""
    return "".join(f"{name}\n" for name in classes)


class LabelMapError(KtpError, ValueError):
    """A label map (``label_map.pbtxt``) cannot be parsed or is inconsistent."""


def _label_map_value(item: dict, field: str, index: int, source: str):
    values = item.get(field, [])
    if len(values) > 1:
        raise LabelMapError(f"{source}: item {index} sets {field} {len(values)} times; give it once")
    return values[0] if values else None


def parse_label_map(text: str, source: str = "label_map.pbtxt") -> dict[int, str]:
    """Parse an OD API label map (``item { id: N name: '...' }``) into {id: name}.

    The text is read as protobuf text format (the parser of
    :mod:`ktp_tflite.train.pipeline_config`), so an unbalanced brace is a
    syntax error naming the line, not two items merged into one. Accepts
    ``display_name`` when ``name`` is missing. Names are returned as written;
    map them with :func:`canonical_class`.

    Raises:
      LabelMapError: the text holds no item, is not text format, or an item
        lacks an id or a name, has a non-positive id, or repeats an id.
    """
    from ktp_tflite.train.pipeline_config import PipelineConfigError, parse_text_proto

    if not re.search(r"\bitem\b", text):
        raise LabelMapError(f"{source}: no 'item {{ ... }}' entries found; is this a label map?")
    try:
        message = parse_text_proto(text, source, what="label map")
    except PipelineConfigError as error:
        raise LabelMapError(str(error)) from None
    items = message.get("item", [])
    if not items:
        raise LabelMapError(f"{source}: no 'item {{ ... }}' entries found; is this a label map?")
    result: dict[int, str] = {}
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise LabelMapError(f"{source}: item {index} is a value, not a block; write item {{ id: N name: 'NAME' }}")
        item_id = _label_map_value(item, "id", index, source)
        name = _label_map_value(item, "name", index, source)
        if name is None:
            name = _label_map_value(item, "display_name", index, source)
        if item_id is None or name is None:
            missing = "id" if item_id is None else "name"
            raise LabelMapError(f"{source}: item {index} has no {missing}; write item {{ id: N name: 'NAME' }}")
        if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id < 1:
            raise LabelMapError(
                f"{source}: item {index} has id {str(item_id)[:20]!r}; ids are "
                "whole numbers from 1 (0 is the background class)"
            )
        if not isinstance(name, str) or not name.strip():
            raise LabelMapError(
                f"{source}: item {index} (id {item_id}) needs a quoted, non-empty name, e.g. name: 'nik'"
            )
        if item_id in result:
            raise LabelMapError(
                f"{source}: id {item_id} is used by two items "
                f"({result[item_id]!r} and {name!r}); give each class its own id"
            )
        result[item_id] = name
    return result
