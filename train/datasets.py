"""Read and write the data set formats users bring, into one :class:`Dataset`.

Formats (detected by :func:`read_dataset`):

- Roboflow / OD API TFRecord: a ``.tfrecord`` (``.record``, ``.tfrecords``)
  file of ``tf.train.Example`` with the keys ``image/encoded``,
  ``image/format``, ``image/height``, ``image/width``, ``image/filename``,
  ``image/source_id``, ``image/object/bbox/{xmin,xmax,ymin,ymax}``
  (normalised) and ``image/object/class/{text,label}``, plus its label map
  beside it (``<stem>_label_map.pbtxt``, as Roboflow names it, or
  ``label_map.pbtxt``). A folder holding one such file works too.
- COCO JSON: Roboflow's ``_annotations.coco.json`` beside the images, or any
  COCO JSON whose ``file_name``s resolve against its folder or an
  ``images/`` folder beside it.
- Pascal VOC: a folder of ``.xml`` annotations with their images (read only).
- A plain folder of images: unlabelled, for int8 calibration only.

Class names are mapped with :func:`ktp_tflite.train.labels.canonical_class`.
Annotation files are validated before use (COCO: types, required keys,
unique image ids, finite numbers; label maps: text-format syntax, ids and
names), and every file name they give must stay inside the data set folder.
Images are opened by :mod:`ktp_tflite.train.images` (pixel limit checked from
the header before decoding). A broken file raises :class:`DatasetError`
naming it, the record and the fix; a bad record (unreadable, truncated or
too large image, box outside the image or of zero area, unknown class name)
does too, or with ``skip_bad=True`` that image is dropped and listed in
``Dataset.skipped``. Writers write to a temporary name and rename.

Why one file: every reader shares the validation helpers (``_Collector``, ``_make_box``,
``_relative_name``, :func:`describe`) and one contract (a :class:`Dataset`; a bad record raised
or skipped), and :func:`read_dataset` dispatches over them. If it grows, split by format, helpers
staying here: e.g. COCO (:func:`read_coco`, :func:`write_coco`, ``_coco_*``) to datasets_coco.py.
"""

from __future__ import annotations

import functools
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import Any

from ktp_tflite.train.atomic_files import atomic_output, atomic_write_bytes
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.images import check_image
from ktp_tflite.train.labels import (
    CLASSES,
    LabelMapError,
    UnknownClassError,
    canonical_class,
    label_map_pbtxt,
    parse_label_map,
)
from ktp_tflite.train.records import Box, Dataset, DatasetError, Example, Problem

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
COCO_NAME = "_annotations.coco.json"
# Boxes may poke out of the image by this much (normalised) through rounding in
# exporters; they are clipped. Beyond it the box is an error.
BOX_TOLERANCE = 0.01
# Roboflow splits; a folder holding these is an export root, not a data set.
SPLITS = ("train", "valid", "test")
# The hint of a bad record: true for every command (only `train` offers --skip-bad).
BAD_RECORD_HINT = (
    "fix or delete it; `ktpconvert data inspect` lists every such record and "
    "`ktpconvert train --skip-bad` leaves them out"
)


# --------------------------------------------------------------------------- helpers


class _Collector:
    """Gathers problems; raises on the first one unless skipping."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.problems: list[Problem] = []

    def report(self, where: str, message: str) -> None:
        problem = Problem(where, message.removeprefix(f"{where}: ").removeprefix(f"{where} "))
        if not self.skip_bad:
            raise DatasetError(f"{problem} ({BAD_RECORD_HINT})")
        self.problems.append(problem)


def describe(value: Any) -> str:
    """A JSON value as a message shows it: its kind, never a whole nested value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value[:24]!r}" + ("..." if len(value) > 24 else "")
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."
    if isinstance(value, list):
        return f"a list of {len(value)} value(s)"
    if isinstance(value, dict):
        return "an object {...}"
    return type(value).__name__


def _show_id(value: Any) -> str:
    """An id for a record's name in messages (ids are validated ints or strings)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return describe(value)


def _json_constant(name: str) -> float:
    raise ValueError(f"holds {name}, which JSON does not allow; write a finite number")


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"holds the number {text[:24]}, too large to be finite")
    return value


def read_json(path: str | Path, *, what: str = "JSON file", fix: str = "", error: type[KtpError] = DatasetError) -> Any:
    """Parse a JSON file strictly; every failure raises ``error`` naming the file.

    Refused with a message: unreadable or non-UTF-8 files, empty files,
    syntax errors (with line and column), NaN/Infinity and numbers too large
    to be finite, and nesting deeper than Python's parser goes.

    Args:
      path: the file.
      what: what the file should be ("COCO JSON", "evaluation JSON").
      fix: appended to syntax errors, e.g. "pass the file written by ...".
      error: the KtpError subclass to raise.
    """
    path = Path(path)
    hint = f"; {fix}" if fix else ""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as caught:
        raise error(f"{path}: not a UTF-8 text file (byte {caught.start}); is this a {what}?") from None
    except OSError as caught:
        raise error(f"{path}: cannot read the {what} ({caught.strerror or caught})") from None
    if not text.strip():
        raise error(f"{path}: file is empty")
    try:
        return json.loads(text, parse_constant=_json_constant, parse_float=_json_float)
    except json.JSONDecodeError as caught:
        raise error(
            f"{path}: not valid JSON (line {caught.lineno} column {caught.colno}: {caught.msg}){hint}"
        ) from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to read (thousands of levels); is this a {what}?") from None
    except ValueError as caught:  # our NaN/infinity hooks, or an int of > 4300 digits
        raise error(f"{path}: not a valid {what} ({caught}){hint}") from None


def _make_box(ymin: float, xmin: float, ymax: float, xmax: float, name: str, where: str) -> Box:
    """Validate a normalised box; raises DatasetError with what is wrong."""
    try:
        label = canonical_class(name)
    except UnknownClassError as error:
        raise DatasetError(f"{where}: {error}") from error
    values = (ymin, xmin, ymax, xmax)
    if not all(math.isfinite(v) for v in values):
        raise DatasetError(
            f"{where}: box of class {label} has NaN or infinite coordinates; fix or delete this annotation"
        )
    if min(values) < -BOX_TOLERANCE or max(values) > 1 + BOX_TOLERANCE:
        raise DatasetError(
            f"{where}: box of class {label} lies outside the image "
            f"(normalised ymin={ymin:.4f} xmin={xmin:.4f} ymax={ymax:.4f} xmax={xmax:.4f}); "
            "fix or delete this annotation"
        )
    if ymax < ymin or xmax < xmin:
        raise DatasetError(
            f"{where}: box of class {label} has a max below its min (normalised "
            f"ymin={ymin:.4f} ymax={ymax:.4f} xmin={xmin:.4f} xmax={xmax:.4f}); write the "
            "corners in order"
        )
    ymin, xmin, ymax, xmax = (min(max(v, 0.0), 1.0) for v in values)
    if ymax <= ymin or xmax <= xmin:
        raise DatasetError(f"{where}: box of class {label} has zero area; delete this annotation")
    return Box(ymin=ymin, xmin=xmin, ymax=ymax, xmax=xmax, label=label)


def _relative_name(name: Any, where: str, field: str) -> PurePath:
    """A file name from an annotation file, refused unless it stays inside the data set folder.

    The check is lexical (absolute paths and any ``..`` are refused), so
    symlinks the user placed inside the folder still work.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"{where}: {field} is {describe(name)}; give the image's file name")
    if "\0" in name:
        raise DatasetError(f"{where}: {field} holds a NUL character; give the image's file name")
    relative = PurePath(name)
    if relative.is_absolute() or relative.anchor or ".." in relative.parts:
        raise DatasetError(
            f"{where}: {field} {name[:60]!r} points outside the data set folder; file names "
            "must be relative to it, without '..'"
        )
    return relative


def _find_file(roots: list[Path], relative: PurePath) -> Path | None:
    for root in roots:
        candidate = root / relative
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # e.g. a name longer than the file system allows
            continue
    return None


# --------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str:
    """Return "tfrecord", "coco", "voc" or "images" for a file or folder."""
    path = Path(path)
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() in TFRECORD_SUFFIXES:
            return "tfrecord"
        if path.suffix.lower() == ".json":
            return "coco"
        raise DatasetError(
            f"{path}: unknown data set file; expected a .tfrecord/.record file, a COCO .json, "
            "or a folder (COCO export, Pascal VOC, or plain images)"
        )
    try:
        names = [p for p in path.iterdir() if not p.name.startswith(".")]
    except OSError as error:
        raise DatasetError(f"{path}: cannot list the folder ({error.strerror})") from None
    if any(p.suffix.lower() in TFRECORD_SUFFIXES for p in names):
        return "tfrecord"
    if (path / COCO_NAME).exists() or any(p.suffix.lower() == ".json" for p in names):
        return "coco"
    if any(p.suffix.lower() == ".xml" for p in names):
        return "voc"
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in names):
        return "images"
    splits = [s for s in SPLITS if (path / s).is_dir()]
    if splits:
        raise DatasetError(
            f"{path}: this is an export with splits ({', '.join(splits)}); pass one of them, e.g. {path / splits[0]}"
        )
    raise DatasetError(f"{path}: no .tfrecord, COCO .json, VOC .xml or image file found in this folder")


def read_dataset(
    path: str | Path,
    *,
    skip_bad: bool = False,
    label_map: str | Path | None = None,
    labelled: bool = True,
    max_pixels: int | None = None,
) -> Dataset:
    """Read any supported format.

    Args:
      path: a file or folder (see the module docstring).
      skip_bad: leave bad records out and list them in ``skipped`` instead of raising.
      label_map: the TFRecord's label map, when it is not beside the file.
      labelled: when False, a plain image folder is accepted (calibration data).
      max_pixels: the per-image pixel limit (default: ``KTP_MAX_PIXELS`` or 50
        megapixels, see :mod:`ktp_tflite.train.images`).

    Raises:
      DatasetError: unknown format, unreadable file, or a bad record (without skip_bad).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "tfrecord":
        dataset = read_tfrecord(path, skip_bad=skip_bad, label_map=label_map, max_pixels=max_pixels)
    elif fmt == "coco":
        dataset = read_coco(path, skip_bad=skip_bad, max_pixels=max_pixels)
    elif fmt == "voc":
        dataset = read_voc(path, skip_bad=skip_bad, max_pixels=max_pixels)
    else:
        if labelled:
            raise DatasetError(
                f"{path}: holds images but no annotations (no .tfrecord, COCO .json or VOC .xml); "
                "a plain image folder is only accepted as representative (calibration) data"
            )
        dataset = read_image_folder(path, skip_bad=skip_bad, max_pixels=max_pixels)
    if not dataset.examples:
        raise DatasetError(
            f"{path}: no usable images"
            + (f" ({len(dataset.skipped)} skipped: {dataset.skipped[0]})" if dataset.skipped else "")
        )
    return dataset


# --------------------------------------------------------------------------- TFRecord


def _tfrecord_file(path: Path) -> Path:
    if path.is_file():
        return path
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in TFRECORD_SUFFIXES)
    if len(files) > 1:
        raise DatasetError(f"{path}: holds {len(files)} TFRecord files; pass one of them")
    return files[0]


def _find_label_map(record: Path) -> Path:
    candidates = [
        record.with_name(f"{record.stem}_label_map.pbtxt"),
        record.with_name("label_map.pbtxt"),
    ]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    others = sorted(record.parent.glob("*label_map.pbtxt"))
    if len(others) == 1:
        return others[0]
    raise DatasetError(
        f"{record}: no label map found (looked for {candidates[0].name} and {candidates[1].name} "
        "beside it); Roboflow exports it as <name>_label_map.pbtxt: put it beside the TFRecord "
        "or pass --label-map"
    )


def _iter_tfrecord(path: Path) -> Iterator[bytes]:
    import tensorflow as tf

    try:
        yield from tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    except tf.errors.OpError as error:  # DataLossError for a torn file, others for worse
        first = (error.message or type(error).__name__).splitlines()[0]
        raise DatasetError(f"{path}: corrupt or truncated TFRecord ({first})") from None


def read_label_map(path: str | Path) -> dict[int, str]:
    """{id: canonical class} of a label map file.

    Raises:
      DatasetError: unreadable file, bad syntax, bad item, or an unknown class.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: label map not found") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise DatasetError(f"{path}: cannot read the label map ({reason})") from None
    try:
        id_to_name = parse_label_map(text, str(path))
    except LabelMapError as error:
        raise DatasetError(str(error)) from None
    mapped = {}
    for item_id, name in id_to_name.items():
        try:
            mapped[item_id] = canonical_class(name)
        except UnknownClassError as error:
            raise DatasetError(f"{path}: id {item_id}: {error}") from None
    return mapped


def _feature_floats(feature, key: str) -> list[float]:
    """The float list of ``key`` in a tf.train.Example's feature map; [] when absent."""
    return list(feature[key].float_list.value) if key in feature else []


def _feature_bytes(feature, key: str) -> list[bytes]:
    """The bytes list of ``key`` in a tf.train.Example's feature map; [] when absent."""
    return list(feature[key].bytes_list.value) if key in feature else []


def read_tfrecord(
    path: Path, *, skip_bad: bool = False, label_map: str | Path | None = None, max_pixels: int | None = None
) -> Dataset:
    """Read a Roboflow / OD API TFRecord with its label map."""
    import tensorflow as tf

    record = _tfrecord_file(Path(path))
    if record.stat().st_size == 0:
        raise DatasetError(f"{record}: file is empty (0 bytes)")
    map_path = Path(label_map) if label_map is not None else _find_label_map(record)
    id_to_name = read_label_map(map_path)
    for name in id_to_name.values():
        try:
            canonical_class(name)
        except UnknownClassError as error:
            raise DatasetError(f"{map_path}: {error}") from error
    collector = _Collector(skip_bad)
    examples: list[Example] = []
    for index, raw in enumerate(_iter_tfrecord(record)):
        where = f"{record} record {index}"
        try:
            example = tf.train.Example.FromString(raw)
        # on hostile bytes the pure-Python protobuf of this stack raises UnicodeDecodeError (a map
        # key) and RecursionError (nested groups), not only google.protobuf.message.DecodeError
        except Exception as error:  # noqa: BLE001 - protobuf raises more than DecodeError (above)
            collector.report(where, f"not a tf.train.Example ({error})")
            continue
        feature = example.features.feature
        floats = functools.partial(_feature_floats, feature)
        strings = functools.partial(_feature_bytes, feature)
        filename = (strings("image/filename") or strings("image/source_id") or [b""])[0].decode(
            "utf-8", "replace"
        ) or f"record_{index:06d}.jpg"
        where = f"{record} record {index} ({filename})"
        try:
            encoded = (strings("image/encoded") or [b""])[0]
            info = check_image(encoded, where=where, max_pixels=max_pixels)
            width, height, fmt = info.width, info.height, info.format
            ymins, xmins = floats("image/object/bbox/ymin"), floats("image/object/bbox/xmin")
            ymaxs, xmaxs = floats("image/object/bbox/ymax"), floats("image/object/bbox/xmax")
            texts = strings("image/object/class/text")
            ids = (
                list(feature["image/object/class/label"].int64_list.value)
                if ("image/object/class/label" in feature)
                else []
            )
            count = len(ymins)
            if not (len(xmins) == len(ymaxs) == len(xmaxs) == count):
                raise DatasetError(f"{where}: bbox coordinate lists have different lengths")
            boxes = []
            for i in range(count):
                if i < len(ids) and ids[i] in id_to_name:
                    name = id_to_name[ids[i]]
                elif i < len(texts):
                    name = texts[i].decode("utf-8", "replace")
                else:
                    raise DatasetError(
                        f"{where}: box {i} has class id {ids[i] if i < len(ids) else 'none'} "
                        f"that is not in {map_path.name} and no class text"
                    )
                boxes.append(_make_box(ymins[i], xmins[i], ymaxs[i], xmaxs[i], name, f"{where} box {i}"))
        except DatasetError as error:
            collector.report(where, str(error))
            continue
        examples.append(
            Example(
                image_id=filename,
                width=width,
                height=height,
                boxes=tuple(boxes),
                image_bytes=encoded,
                image_format=fmt,
            )
        )
    return Dataset(examples=examples, source=str(record), format="tfrecord", skipped=collector.problems)


def write_tfrecord(dataset: Dataset, path: str | Path, progress: Callable[[int], None] | None = None) -> Path:
    """Write a Roboflow-style TFRecord and ``label_map.pbtxt`` beside it.

    Returns:
      The label map path.
    """
    import tensorflow as tf

    path = Path(path)
    if not path.parent.is_dir():
        raise DatasetError(f"{path}: folder {path.parent} does not exist; create it first")

    def bytes_feature(values: list[bytes]):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def float_feature(values: list[float]):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def int_feature(values: list[int]):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    with atomic_output(path, force=True) as temporary:
        with tf.io.TFRecordWriter(str(temporary)) as writer:
            for example in dataset.examples:
                encoded = example.encoded()
                name = example.image_id.encode("utf-8")
                boxes = example.boxes
                features = {
                    "image/height": int_feature([example.height]),
                    "image/width": int_feature([example.width]),
                    "image/filename": bytes_feature([name]),
                    "image/source_id": bytes_feature([name]),
                    "image/encoded": bytes_feature([encoded]),
                    "image/format": bytes_feature([example.image_format.encode()]),
                    "image/object/bbox/xmin": float_feature([b.xmin for b in boxes]),
                    "image/object/bbox/xmax": float_feature([b.xmax for b in boxes]),
                    "image/object/bbox/ymin": float_feature([b.ymin for b in boxes]),
                    "image/object/bbox/ymax": float_feature([b.ymax for b in boxes]),
                    "image/object/class/text": bytes_feature([b.label.encode() for b in boxes]),
                    "image/object/class/label": int_feature([b.class_index + 1 for b in boxes]),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
                if progress is not None:
                    progress(1)
    map_path = path.with_name("label_map.pbtxt")
    atomic_write_bytes(map_path, label_map_pbtxt().encode())
    return map_path


# --------------------------------------------------------------------------- COCO


def _coco_file(path: Path) -> Path:
    if path.is_file():
        return path
    if (path / COCO_NAME).exists():
        return path / COCO_NAME
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".json")
    if len(files) > 1:
        raise DatasetError(f"{path}: holds {len(files)} JSON files and no {COCO_NAME}; pass one")
    return files[0]


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _objects(coco: dict, key: str, json_path: Path) -> list[dict]:
    """``coco[key]`` checked to be a list of objects (file-level: always an error)."""
    entries = coco.get(key, [])
    if not isinstance(entries, list):
        raise DatasetError(f"{json_path}: '{key}' is {describe(entries)}; COCO needs a list [{{...}}, ...] of objects")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(
                f"{json_path}: {key}[{index}] is {describe(entry)}; each entry of '{key}' must be an object {{...}}"
            )
    return entries


def _coco_categories(entries: list[dict], used: set, json_path: Path) -> dict[Any, str]:
    """{category id: canonical class} of the categories boxes use."""
    categories: dict[Any, str] = {}
    seen: set[int] = set()
    for index, category in enumerate(entries):
        category_id, name = category.get("id"), category.get("name")
        if isinstance(category_id, bool) or not isinstance(category_id, int):
            raise DatasetError(
                f"{json_path}: categories[{index}] has id {describe(category_id)}; "
                "give every category a whole-number id"
            )
        if not isinstance(name, str):
            raise DatasetError(
                f"{json_path}: category {category_id} has name {describe(name)}; give every category a name"
            )
        if category_id in seen:
            raise DatasetError(f"{json_path}: category id {category_id} appears twice; category ids must be unique")
        seen.add(category_id)
        try:
            categories[category_id] = canonical_class(name)
        except UnknownClassError as error:
            # Roboflow adds a super-category (e.g. "ktp") that no box uses.
            if category_id in used:
                raise DatasetError(f"{json_path}: category {category_id}: {error}") from None
    return categories


def _coco_dimension(image: dict, key: str, where: str) -> int | None:
    value = image.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise DatasetError(
            f"{where}: {key} is {describe(value)}; write it as a whole number of pixels (or leave it out)"
        )
    if value <= 0:
        raise DatasetError(f"{where}: {key} is {describe(value)}; it must be a positive number of pixels")
    return int(value)


def _coco_bbox(annotation: dict, where: str) -> tuple[float, float, float, float]:
    bbox = annotation.get("bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in bbox)
    ):
        raise DatasetError(
            f"{where}: bbox is {describe(bbox)}; COCO needs four numbers [x, y, width, height] in pixels"
        )
    try:
        x, y, w, h = (float(v) for v in bbox)
    except OverflowError:
        raise DatasetError(f"{where}: bbox holds a number too large to be finite") from None
    if w < 0 or h < 0:
        raise DatasetError(
            f"{where}: bbox has a negative width or height ({w:g} x {h:g}); COCO "
            "boxes are [x, y, width, height], not two corners"
        )
    return x, y, w, h


def read_coco(path: Path, *, skip_bad: bool = False, max_pixels: int | None = None) -> Dataset:
    """Read a COCO JSON (Roboflow's export or any COCO detection file).

    The whole file is validated before any image is opened: 'images',
    'annotations' and 'categories' are lists of objects, ids have the right
    types, image ids are unique (two images with one id would share boxes:
    always an error), every file name stays inside the data set folder.
    """
    json_path = _coco_file(Path(path))
    coco = read_json(json_path, what="COCO JSON", fix="give a COCO detection file")
    if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
        raise DatasetError(f"{json_path}: not a COCO detection file (needs 'images' and 'annotations')")
    images = _objects(coco, "images", json_path)
    annotations = _objects(coco, "annotations", json_path)
    first_index: dict[Any, int] = {}
    for index, image in enumerate(images):
        image_id = image.get("id")
        if not _is_id(image_id):
            raise DatasetError(
                f"{json_path}: images[{index}] has id {describe(image_id)}; give every image a whole-number id"
            )
        if image_id in first_index:
            raise DatasetError(
                f"{json_path}: image id {_show_id(image_id)} is used by images[{first_index[image_id]}] "
                f"and images[{index}]; the boxes of one would be given to the other. Image ids "
                "must be unique: renumber the images and their annotations' image_id"
            )
        first_index[image_id] = index
    by_image: dict[Any, list[dict]] = {}
    collector = _Collector(skip_bad)
    for index, annotation in enumerate(annotations):
        image_id, category = annotation.get("image_id"), annotation.get("category_id")
        label = (
            f"annotation {_show_id(annotation['id'])}" if _is_id(annotation.get("id")) else (f"annotations[{index}]")
        )
        if not _is_id(image_id):
            raise DatasetError(f"{json_path} {label}: image_id is {describe(image_id)}; give the id of its image")
        if isinstance(category, bool) or not isinstance(category, int):
            raise DatasetError(f"{json_path} {label}: category_id is {describe(category)}; give the id of its category")
        if image_id not in first_index:
            collector.report(
                f"{json_path} {label}",
                f"image_id {_show_id(image_id)} is not in 'images'; add the image or delete the annotation",
            )
            continue
        by_image.setdefault(image_id, []).append(annotation)
    used = {a["category_id"] for a in annotations}
    categories = _coco_categories(_objects(coco, "categories", json_path), used, json_path)
    roots = [json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"]
    examples = []
    for image in images:
        image_id, name = image["id"], image.get("file_name")
        shown = name[:60] if isinstance(name, str) else describe(name)
        where = f"{json_path} image {_show_id(image_id)} ({shown})"
        try:
            relative = _relative_name(name, where, "file_name")
            image_path = _find_file(roots, relative)
            if image_path is None:
                raise DatasetError(f"{where}: image file not found in {', '.join(str(r) for r in roots[:2])}")
            json_width = _coco_dimension(image, "width", where)
            json_height = _coco_dimension(image, "height", where)
            info = check_image(image_path, where=str(image_path), max_pixels=max_pixels)
            width, height = info.width, info.height
            if json_width not in (None, width) or json_height not in (None, height):
                raise DatasetError(
                    f"{where}: JSON says {json_width or '?'}x{json_height or '?'} "
                    f"but the file is {width}x{height}; fix width/height in the JSON"
                )
            boxes = []
            for index, annotation in enumerate(by_image.get(image_id, [])):
                box_where = (
                    f"{where} annotation {_show_id(annotation['id'])}"
                    if _is_id(annotation.get("id"))
                    else f"{where} annotation #{index}"
                )
                category = annotation["category_id"]
                if category not in categories:
                    raise DatasetError(f"{box_where}: category_id {category} is not a known category")
                x, y, w, h = _coco_bbox(annotation, box_where)
                boxes.append(
                    _make_box(y / height, x / width, (y + h) / height, (x + w) / width, categories[category], box_where)
                )
        except DatasetError as error:
            collector.report(where, str(error))
            continue
        examples.append(
            Example(
                image_id=str(name),
                width=width,
                height=height,
                boxes=tuple(boxes),
                image_path=image_path,
                image_format=info.format,
            )
        )
    return Dataset(examples=examples, source=str(json_path), format="coco", skipped=collector.problems)


def write_coco(dataset: Dataset, out_dir: str | Path, progress: Callable[[int], None] | None = None) -> Path:
    """Write images and ``_annotations.coco.json`` (Roboflow's COCO layout) into ``out_dir``.

    Boxes are written in float pixels, so normalised boxes round-trip exactly.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise DatasetError(f"{out_dir}: parent folder {out_dir.parent} does not exist")
    out_dir.mkdir(exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, example in enumerate(dataset.examples, start=1):
        target = out_dir / example.image_id
        if not target.exists() or target.read_bytes() != example.encoded():
            atomic_write_bytes(target, example.encoded())
        images.append({"id": image_id, "file_name": example.image_id, "width": example.width, "height": example.height})
        for box in example.boxes:
            x0, y0, x1, y1 = box.to_pixels(example.width, example.height)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": box.class_index + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
        if progress is not None:
            progress(1)
    coco = {
        "info": {"description": f"ktp-tflite export of {dataset.source}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "ktp"} for i, name in enumerate(CLASSES, start=1)],
    }
    json_path = out_dir / COCO_NAME
    atomic_write_bytes(json_path, json.dumps(coco, indent=1).encode())
    return json_path


# --------------------------------------------------------------------------- VOC and images


def read_voc(path: Path, *, skip_bad: bool = False, max_pixels: int | None = None) -> Dataset:
    """Read a folder of Pascal VOC ``.xml`` files (images beside them or in ../JPEGImages).

    Entities are expanded by expat, which refuses external entities and
    exponential expansion ("billion laughs"): both are bad records.
    """
    folder = Path(path)
    collector = _Collector(skip_bad)
    examples = []
    for xml_path in sorted(folder.glob("*.xml")):
        where = str(xml_path)
        try:
            try:
                if xml_path.stat().st_size == 0:
                    raise DatasetError(f"{where}: file is empty")
                root = ET.parse(xml_path).getroot()
            except ET.ParseError as error:
                raise DatasetError(f"{where}: not valid XML ({error})") from None
            except OSError as error:
                raise DatasetError(f"{where}: cannot read the file ({error.strerror})") from None
            name = root.findtext("filename") or xml_path.with_suffix(".jpg").name
            relative = _relative_name(name.strip(), where, "<filename>")
            image_path = _find_file([folder, folder.parent / "JPEGImages"], relative)
            if image_path is None:
                raise DatasetError(f"{where}: image {name[:60]} not found beside it or in ../JPEGImages")
            info = check_image(image_path, where=str(image_path), max_pixels=max_pixels)
            width, height = info.width, info.height
            boxes = []
            for i, obj in enumerate(root.findall("object")):
                bnd = obj.find("bndbox")
                if bnd is None:
                    raise DatasetError(f"{where}: object {i} has no bndbox")
                try:
                    x0, y0, x1, y1 = (float(bnd.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax"))
                except (TypeError, ValueError):
                    raise DatasetError(
                        f"{where}: object {i} has a bad bndbox (xmin, ymin, xmax and ymax must be numbers in pixels)"
                    ) from None
                boxes.append(
                    _make_box(
                        y0 / height,
                        x0 / width,
                        y1 / height,
                        x1 / width,
                        obj.findtext("name") or "",
                        f"{where} object {i}",
                    )
                )
        except DatasetError as error:
            collector.report(where, str(error))
            continue
        examples.append(
            Example(
                image_id=image_path.name,
                width=width,
                height=height,
                boxes=tuple(boxes),
                image_path=image_path,
                image_format=info.format,
            )
        )
    return Dataset(examples=examples, source=str(folder), format="voc", skipped=collector.problems)


def read_image_folder(path: Path, *, skip_bad: bool = False, max_pixels: int | None = None) -> Dataset:
    """Unlabelled images of a folder (representative data for int8 calibration)."""
    folder = Path(path)
    collector = _Collector(skip_bad)
    examples = []
    for image_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            info = check_image(image_path, where=str(image_path), max_pixels=max_pixels)
        except DatasetError as error:
            collector.report(str(image_path), str(error))
            continue
        examples.append(
            Example(
                image_id=image_path.name,
                width=info.width,
                height=info.height,
                image_path=image_path,
                image_format=info.format,
            )
        )
    return Dataset(examples=examples, source=str(folder), format="images", skipped=collector.problems)


# --------------------------------------------------------------------------- tf.data


def to_tf_dataset(dataset: Dataset):
    """A ``tf.data.Dataset`` of dicts: ``image``, ``boxes``, ``classes``, ``image_id``.

    ``image`` is uint8 [H, W, 3], ``boxes`` float32 [N, 4] (ymin, xmin, ymax,
    xmax normalised), ``classes`` int32 [N] (0-based), ``image_id`` a string.
    Encoded bytes come from Python; decoding runs in parallel inside TensorFlow.
    """
    import numpy as np
    import tensorflow as tf

    def generate():
        for example in dataset.examples:
            boxes = np.array([[b.ymin, b.xmin, b.ymax, b.xmax] for b in example.boxes], dtype=np.float32).reshape(-1, 4)
            classes = np.array([b.class_index for b in example.boxes], dtype=np.int32)
            yield example.encoded(), boxes, classes, example.image_id

    signature = (
        tf.TensorSpec((), tf.string),
        tf.TensorSpec((None, 4), tf.float32),
        tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.string),
    )

    def decode(encoded, boxes, classes, image_id):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return {"image": image, "boxes": boxes, "classes": classes, "image_id": image_id}

    return tf.data.Dataset.from_generator(generate, output_signature=signature).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE
    )
