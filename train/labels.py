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
    items = [
        f"item {{\n  id: {i}\n  name: '{name}'\n}}\n" for i, name in enumerate(classes, start=1)
    ]
    return "\n".join(items)


def labels_txt(classes: tuple[str, ...] = CLASSES) -> str:
    """TFLite ``labels.txt``: one class per line, in post-process id order."""
    return "".join(f"{name}\n" for name in classes)


def parse_label_map(text: str, source: str = "label_map.pbtxt") -> dict[int, str]:
    """Parse an OD API label map (``item { id: N name: '...' }``) into {id: name}.

    Accepts ``display_name`` when ``name`` is missing. Names are returned as
    written; map them with :func:`canonical_class`.

    Raises:
      ValueError: the text holds no item, or an item lacks an id or a name.
    """
    items = re.findall(r"item\s*\{(.*?)\}", text, flags=re.S)
    if not items:
        raise ValueError(f"{source}: no 'item {{ ... }}' entries found; is this a label map?")
    result: dict[int, str] = {}
    for body in items:
        id_match = re.search(r"\bid\s*:\s*(\d+)", body)
        name_match = re.search(r"\bname\s*:\s*[\"']([^\"']*)[\"']", body) or re.search(
            r"\bdisplay_name\s*:\s*[\"']([^\"']*)[\"']", body
        )
        if not id_match or not name_match:
            raise ValueError(f"{source}: label map item without id or name: {body.strip()!r}")
        result[int(id_match.group(1))] = name_match.group(1)
    return result
