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
Problems (unreadable or truncated images, boxes outside the image or with
zero area, unknown class names, empty files) raise :class:`DatasetError`
naming the file and record, or with ``skip_bad=True`` drop that image and are
listed in ``Dataset.skipped``. Writers write to a temporary name and rename.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

from ktp_tflite.train.atomic_files import atomic_write_bytes, default_file_mode
from ktp_tflite.train.labels import (
    CLASSES,
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


# --------------------------------------------------------------------------- helpers


class _Collector:
    """Gathers problems; raises on the first one unless skipping."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.problems: list[Problem] = []

    def report(self, where: str, message: str) -> None:
        problem = Problem(where, message.removeprefix(f"{where}: ").removeprefix(f"{where} "))
        if not self.skip_bad:
            raise DatasetError(f"{problem} (use --skip-bad to leave such records out)")
        self.problems.append(problem)


def _check_image(data: bytes, where: str) -> tuple[int, int, str]:
    """Decode fully (catches truncation); returns (width, height, format)."""
    from PIL import Image

    if not data:
        raise DatasetError(f"{where}: image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt = (image.format or "").lower()
            return image.width, image.height, "jpeg" if fmt in ("jpeg", "mpo") else fmt
    except (OSError, ValueError, SyntaxError) as error:
        raise DatasetError(f"{where}: cannot decode image ({error}); file truncated or not an image") from error


def _make_box(
    ymin: float, xmin: float, ymax: float, xmax: float, name: str, where: str
) -> Box:
    """Validate a normalised box; raises DatasetError with what is wrong."""
    try:
        label = canonical_class(name)
    except UnknownClassError as error:
        raise DatasetError(f"{where}: {error}") from error
    values = (ymin, xmin, ymax, xmax)
    if any(v != v for v in values):  # NaN
        raise DatasetError(f"{where}: box of class {label} has NaN coordinates")
    if min(values) < -BOX_TOLERANCE or max(values) > 1 + BOX_TOLERANCE:
        raise DatasetError(
            f"{where}: box of class {label} lies outside the image "
            f"(normalised ymin={ymin:.4f} xmin={xmin:.4f} ymax={ymax:.4f} xmax={xmax:.4f}); "
            "fix or delete this annotation"
        )
    ymin, xmin, ymax, xmax = (min(max(v, 0.0), 1.0) for v in values)
    if ymax <= ymin or xmax <= xmin:
        raise DatasetError(f"{where}: box of class {label} has zero area; delete this annotation")
    return Box(ymin=ymin, xmin=xmin, ymax=ymax, xmax=xmax, label=label)


# --------------------------------------------------------------------------- detection


def detect_format(path: Path) -> str:
    """Return "tfrecord", "coco", "voc" or "images" for a file or folder."""
    path = Path(path)
    if not path.exists():
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
    names = [p for p in path.iterdir() if not p.name.startswith(".")]
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
            f"{path}: this is an export with splits ({', '.join(splits)}); "
            f"pass one of them, e.g. {path / splits[0]}"
        )
    raise DatasetError(f"{path}: no .tfrecord, COCO .json, VOC .xml or image file found in this folder")


def read_dataset(
    path: str | Path,
    *,
    skip_bad: bool = False,
    label_map: str | Path | None = None,
    labelled: bool = True,
) -> Dataset:
    """Read any supported format.

    Args:
      path: a file or folder (see the module docstring).
      skip_bad: leave bad records out and list them in ``skipped`` instead of raising.
      label_map: the TFRecord's label map, when it is not beside the file.
      labelled: when False, a plain image folder is accepted (calibration data).

    Raises:
      DatasetError: unknown format, unreadable file, or a bad record (without skip_bad).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "tfrecord":
        dataset = read_tfrecord(path, skip_bad=skip_bad, label_map=label_map)
    elif fmt == "coco":
        dataset = read_coco(path, skip_bad=skip_bad)
    elif fmt == "voc":
        dataset = read_voc(path, skip_bad=skip_bad)
    else:
        if labelled:
            raise DatasetError(
                f"{path}: holds images but no annotations (no .tfrecord, COCO .json or VOC .xml); "
                "a plain image folder is only accepted as representative (calibration) data"
            )
        dataset = read_image_folder(path, skip_bad=skip_bad)
    if not dataset.examples:
        raise DatasetError(f"{path}: no usable images" + (
            f" ({len(dataset.skipped)} skipped: {dataset.skipped[0]})" if dataset.skipped else ""
        ))
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
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            yield raw
    except tf.errors.DataLossError as error:
        raise DatasetError(f"{path}: corrupt or truncated TFRecord ({error.message.splitlines()[0]})") from error


def read_tfrecord(path: Path, *, skip_bad: bool = False, label_map: str | Path | None = None) -> Dataset:
    """Read a Roboflow / OD API TFRecord with its label map."""
    import tensorflow as tf

    record = _tfrecord_file(Path(path))
    if record.stat().st_size == 0:
        raise DatasetError(f"{record}: file is empty (0 bytes)")
    map_path = Path(label_map) if label_map is not None else _find_label_map(record)
    if not map_path.exists():
        raise DatasetError(f"{map_path}: label map not found")
    id_to_name = parse_label_map(map_path.read_text(encoding="utf-8"), str(map_path))
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
        except Exception as error:  # protobuf DecodeError has no stable import path
            collector.report(where, f"not a tf.train.Example ({error})")
            continue
        feature = example.features.feature

        def floats(key: str) -> list[float]:
            return list(feature[key].float_list.value) if key in feature else []

        def strings(key: str) -> list[bytes]:
            return list(feature[key].bytes_list.value) if key in feature else []

        filename = (strings("image/filename") or strings("image/source_id") or [b""])[0].decode(
            "utf-8", "replace"
        ) or f"record_{index:06d}.jpg"
        where = f"{record} record {index} ({filename})"
        try:
            encoded = (strings("image/encoded") or [b""])[0]
            width, height, fmt = _check_image(encoded, where)
            ymins, xmins = floats("image/object/bbox/ymin"), floats("image/object/bbox/xmin")
            ymaxs, xmaxs = floats("image/object/bbox/ymax"), floats("image/object/bbox/xmax")
            texts = strings("image/object/class/text")
            ids = list(feature["image/object/class/label"].int64_list.value) if (
                "image/object/class/label" in feature
            ) else []
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

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
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
                writer.write(
                    tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
                )
                if progress is not None:
                    progress(1)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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


def read_coco(path: Path, *, skip_bad: bool = False) -> Dataset:
    """Read a COCO JSON (Roboflow's export or any COCO detection file)."""
    json_path = _coco_file(Path(path))
    text = json_path.read_text(encoding="utf-8")
    if not text.strip():
        raise DatasetError(f"{json_path}: file is empty")
    try:
        coco = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{json_path}: not valid JSON ({error})") from error
    if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
        raise DatasetError(f"{json_path}: not a COCO detection file (needs 'images' and 'annotations')")
    used_categories = {a.get("category_id") for a in coco["annotations"]}
    categories: dict[int, str] = {}
    for category in coco.get("categories", []):
        try:
            categories[category["id"]] = canonical_class(category["name"])
        except UnknownClassError as error:
            # Roboflow adds a super-category (e.g. "ktp") that no box uses.
            if category["id"] in used_categories:
                raise DatasetError(f"{json_path}: category {category['id']}: {error}") from error
    by_image: dict[int, list[dict]] = {}
    for annotation in coco["annotations"]:
        by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    roots = [json_path.parent, json_path.parent / "images", json_path.parent.parent / "images"]
    collector = _Collector(skip_bad)
    examples = []
    for image in coco["images"]:
        name = str(image.get("file_name", ""))
        where = f"{json_path} image {image.get('id')} ({name})"
        try:
            image_path = next((root / name for root in roots if (root / name).is_file()), None)
            if image_path is None:
                raise DatasetError(
                    f"{where}: image file not found in {', '.join(str(r) for r in roots[:2])}"
                )
            width, height, fmt = _check_image(image_path.read_bytes(), f"{image_path}")
            if (image.get("width"), image.get("height")) not in ((width, height), (None, None)):
                raise DatasetError(
                    f"{where}: JSON says {image.get('width')}x{image.get('height')} "
                    f"but the file is {width}x{height}"
                )
            boxes = []
            for annotation in by_image.get(image.get("id"), []):
                box_where = f"{where} annotation {annotation.get('id')}"
                category = annotation.get("category_id")
                if category not in categories:
                    raise DatasetError(f"{box_where}: category_id {category} is not a known category")
                x, y, w, h = (float(v) for v in annotation["bbox"])
                boxes.append(
                    _make_box(y / height, x / width, (y + h) / height, (x + w) / width,
                              categories[category], box_where)
                )
        except DatasetError as error:
            collector.report(where, str(error))
            continue
        examples.append(
            Example(image_id=name, width=width, height=height, boxes=tuple(boxes),
                    image_path=image_path, image_format=fmt)
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
    images, annotations = [], []
    for image_id, example in enumerate(dataset.examples, start=1):
        target = out_dir / example.image_id
        if not target.exists() or target.read_bytes() != example.encoded():
            atomic_write_bytes(target, example.encoded())
        images.append(
            {"id": image_id, "file_name": example.image_id, "width": example.width, "height": example.height}
        )
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
        "categories": [
            {"id": i, "name": name, "supercategory": "ktp"} for i, name in enumerate(CLASSES, start=1)
        ],
    }
    json_path = out_dir / COCO_NAME
    atomic_write_bytes(json_path, json.dumps(coco, indent=1).encode())
    return json_path


# --------------------------------------------------------------------------- VOC and images


def read_voc(path: Path, *, skip_bad: bool = False) -> Dataset:
    """Read a folder of Pascal VOC ``.xml`` files (images beside them or in ../JPEGImages)."""
    folder = Path(path)
    collector = _Collector(skip_bad)
    examples = []
    for xml_path in sorted(folder.glob("*.xml")):
        where = str(xml_path)
        try:
            if xml_path.stat().st_size == 0:
                raise DatasetError(f"{where}: file is empty")
            try:
                root = ET.parse(xml_path).getroot()
            except ET.ParseError as error:
                raise DatasetError(f"{where}: not valid XML ({error})") from error
            name = root.findtext("filename") or xml_path.with_suffix(".jpg").name
            candidates = [folder / name, folder.parent / "JPEGImages" / name]
            image_path = next((c for c in candidates if c.is_file()), None)
            if image_path is None:
                raise DatasetError(f"{where}: image {name} not found beside it or in ../JPEGImages")
            width, height, fmt = _check_image(image_path.read_bytes(), str(image_path))
            boxes = []
            for i, obj in enumerate(root.findall("object")):
                bnd = obj.find("bndbox")
                if bnd is None:
                    raise DatasetError(f"{where}: object {i} has no bndbox")
                try:
                    x0, y0, x1, y1 = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
                except (TypeError, ValueError) as error:
                    raise DatasetError(f"{where}: object {i} has a bad bndbox ({error})") from error
                boxes.append(
                    _make_box(y0 / height, x0 / width, y1 / height, x1 / width,
                              obj.findtext("name") or "", f"{where} object {i}")
                )
        except DatasetError as error:
            collector.report(where, str(error))
            continue
        examples.append(Example(image_id=image_path.name, width=width, height=height,
                                boxes=tuple(boxes), image_path=image_path, image_format=fmt))
    return Dataset(examples=examples, source=str(folder), format="voc", skipped=collector.problems)


def read_image_folder(path: Path, *, skip_bad: bool = False) -> Dataset:
    """Unlabelled images of a folder (representative data for int8 calibration)."""
    folder = Path(path)
    collector = _Collector(skip_bad)
    examples = []
    for image_path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            width, height, fmt = _check_image(image_path.read_bytes(), str(image_path))
        except DatasetError as error:
            collector.report(str(image_path), str(error))
            continue
        examples.append(Example(image_id=image_path.name, width=width, height=height,
                                image_path=image_path, image_format=fmt))
    return Dataset(examples=examples, source=str(folder), format="images", skipped=collector.problems)


# --------------------------------------------------------------------------- tf.data


def to_tf_dataset(dataset: Dataset):
    """A ``tf.data.Dataset`` of dicts: ``image`` uint8 [H, W, 3], ``boxes`` float32 [N, 4]
    (ymin, xmin, ymax, xmax normalised), ``classes`` int32 [N] (0-based), ``image_id`` string.

    Encoded bytes come from Python; decoding runs in parallel inside TensorFlow.
    """
    import numpy as np
    import tensorflow as tf

    def generate():
        for example in dataset.examples:
            boxes = np.array(
                [[b.ymin, b.xmin, b.ymax, b.xmax] for b in example.boxes], dtype=np.float32
            ).reshape(-1, 4)
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
