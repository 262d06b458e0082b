"""Fuzz every data reader: COCO, Pascal VOC, TFRecord + label map, pbtxt/pipeline.config, images.

Property-based (hypothesis): each input is a structured mutation of a valid
seed (a COCO document with values swapped for hostile ones, a VOC file with
odd fields and entities, tf.train.Examples with features of every type, a
pipeline.config with tokens dropped or inserted, PNG headers claiming any
size) or a byte-level mutation of one (flips, inserted and deleted runs,
truncation, interesting 32-bit values). Hypothesis was chosen over atheris by
measurement on the COCO reader (3000 inputs): hypothesis 114-130 inputs/s
and 90 distinct reader outcomes, atheris 240-300 inputs/s but 20-25 outcomes
(its byte mutations mostly stay in JSON syntax errors); hypothesis also runs
inside pytest, deterministically, and is a pure-Python wheel.

For every input, asserted (a violation is a crash):

- the reader raises nothing but :class:`KtpError`;
- no input is modified: every file of the input folder has the same SHA-256
  after the read;
- no file is left under a final name: the input folder holds exactly the
  same files, and ``ktpconvert scan --json`` (image target, when a model is
  given) leaves its output only on success, never a temporary.

``python -m ktp_tflite.benchmarks.tools.fuzz_readers --seconds 600 --out runs/fuzz``
runs each target for its share of the time and prints inputs tried per
reader, seconds and crashes; crashing inputs and the seed corpus are written
under ``--out``. ``tests/test_fuzz.py`` runs the same targets briefly.

Why one file: each :class:`Target` pairs a hypothesis strategy with the writer that lays its
input out and the reader calls it checks, so a new reader touches all three. If it grows, the
strategies (:func:`byte_mutations`, :func:`mutated_json`, :func:`voc_documents`,
:func:`token_mutations`, :func:`tf_examples`, ...) could move to fuzz_strategies.py.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import io
import json
import struct
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from ktp_tflite.train import datasets, images, labels, pipeline_config
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.records import Example

INTERESTING_U32 = (0, 1, 7, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 60000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)

PIPELINE_CONFIG = """model { ssd {
  num_classes: 5
  image_resizer { fixed_shape_resizer { height: 320 width: 320 } }
  feature_extractor { type: "ssd_mobilenet_v2_keras" depth_multiplier: 0.75 use_depthwise: true }
  box_predictor { convolutional_box_predictor { kernel_size: 3 use_depthwise: true } }
  anchor_generator { ssd_anchor_generator { num_layers: 6 min_scale: 0.2 max_scale: 0.95
    aspect_ratios: [1.0, 2.0, 0.5] } }
  box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 } }
  post_processing { batch_non_max_suppression { score_threshold: 0.3 iou_threshold: 0.6 }
    score_converter: SIGMOID }
} }
train_config { batch_size: 24 data_augmentation_options { random_horizontal_flip {} } }
"""


# ----------------------------------------------------------------------------- strategies


def _png(width: int = 24, height: int = 16, mode: str = "RGB", **save) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    colors: dict[str, float | tuple[float, ...]] = {
        "RGB": (200, 40, 10),
        "L": 90,
        "P": 3,
        "RGBA": (1, 2, 3, 4),
        "I;16": 40000,
    }
    color = colors[mode]
    Image.new(mode, (width, height), color).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _encoded(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new("RGB", (24, 16), (10, 120, 200))
    extra: dict = {}
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[images.EXIF_ORIENTATION_TAG] = 6
        extra["exif"] = exif
    image.save(buffer, format=fmt, **extra)
    return buffer.getvalue()


def image_seeds() -> dict[str, bytes]:
    """Valid small images of every format and mode the loader handles."""
    return {
        "rgb.png": _png(),
        "gray.png": _png(mode="L"),
        "palette.png": _png(mode="P"),
        "rgba.png": _png(mode="RGBA"),
        "gray16.png": _png(mode="I;16"),
        "exif.jpg": _encoded("JPEG"),
        "card.gif": _encoded("GIF"),
        "card.bmp": _encoded("BMP"),
        "card.webp": _encoded("WEBP"),
    }


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@st.composite
def png_headers(draw) -> bytes:
    """PNGs with valid CRCs whose IHDR claims any size, depth and colour type."""
    size = st.sampled_from(INTERESTING_U32) | st.integers(0, 2**32 - 1)
    header = struct.pack(
        ">IIBBBBB",
        draw(size),
        draw(size),
        draw(st.sampled_from((1, 2, 4, 8, 16, 3))),
        draw(st.sampled_from((0, 2, 3, 4, 6, 5))),
        0,
        0,
        draw(st.sampled_from((0, 1))),
    )
    body = draw(st.binary(max_size=64))
    idat = zlib.compress(body) if draw(st.booleans()) else body
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def byte_mutations(seed: bytes, max_ops: int = 4) -> st.SearchStrategy[bytes]:
    """``seed`` with up to ``max_ops`` flips, insertions, deletions, truncations, u32 writes."""

    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, max_ops))):
            op = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "u32", "repeat")))
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            if op == "flip" and data:
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            elif op == "delete":
                del data[pos : pos + draw(st.integers(1, 32))]
            elif op == "truncate":
                del data[pos:]
            elif op == "u32":
                data[pos : pos + 4] = struct.pack(">I", draw(st.sampled_from(INTERESTING_U32)))
            elif op == "repeat":
                data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        return bytes(data)

    return mutate()


_HOSTILE_STRINGS = (
    "card1.png",
    "../card1.png",
    "../../../etc/passwd",
    "/etc/passwd",
    "",
    "640",
    "nik",
    "NIK",
    "Jenis Kelamin",
    "golongan_darah",
    "a\x00b",
    "x" * 300,
    "images/card1.png",
    "card1.png/",
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(_HOSTILE_STRINGS)
    | st.sampled_from((0, 1, 2, -1, 40, 30, 1e308))
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                (
                    "id",
                    "image_id",
                    "category_id",
                    "bbox",
                    "file_name",
                    "width",
                    "height",
                    "name",
                    "images",
                    "annotations",
                    "categories",
                )
            )
            | st.text(max_size=4),
            children,
            max_size=4,
        )
    ),
    max_leaves=16,
)


def coco_seed() -> dict:
    """The valid two-image COCO document the COCO target mutates (images: card1/2.png)."""
    return {
        "images": [{"id": i, "file_name": f"card{i}.png", "width": 24, "height": 16} for i in (1, 2)],
        "annotations": [
            {
                "id": 10 + i,
                "image_id": i,
                "category_id": i,
                "bbox": [2, 3, 10, 6],
                "area": 60,
                "iscrowd": 0,
                "segmentation": [[1, 2, 3, 4]],
            }
            for i in (1, 2)
        ],
        "categories": [
            {"id": 0, "name": "ktp", "supercategory": "none"},
            {"id": 1, "name": "NIK"},
            {"id": 2, "name": "Nama"},
        ],
    }


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


@st.composite
def mutated_json(draw, seed: Any) -> str:
    """``seed`` with 1-3 values replaced, deleted or duplicated, or deeply nested, as JSON text."""
    document = copy.deepcopy(seed)
    paths = list(_paths(seed))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        if not path:
            document = draw(json_values)
            continue
        try:
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            op = draw(st.sampled_from(("set", "set", "delete", "duplicate", "nest")))
            if op == "set":
                parent[path[-1]] = draw(json_values)
            elif op == "delete":
                del parent[path[-1]]
            elif op == "duplicate" and isinstance(parent, list):
                parent.append(copy.deepcopy(parent[path[-1]]))
            elif op == "nest":
                depth = draw(st.integers(1, 3000))
                parent[path[-1]] = json.loads("[" * min(depth, 900) + "]" * min(depth, 900))
        except (KeyError, IndexError, TypeError):
            continue
    try:
        text = json.dumps(document)
    except (ValueError, RecursionError):
        text = "[" * 5000 + "]" * 5000
    if draw(st.integers(0, 9)) == 0:  # now and then nest far past what the parser takes
        text = '{"images": [], "annotations": [], "x": ' + "[" * 3000 + "]" * 3000 + "}"
    return text


def coco_inputs() -> st.SearchStrategy[bytes]:
    structured = mutated_json(coco_seed()).map(str.encode)
    raw = byte_mutations(json.dumps(coco_seed()).encode())
    return st.one_of(
        structured,
        structured,
        raw,
        st.sampled_from((b"NaN", b'{"images": [], "annotations": [], "x": NaN}', b"\xef\xbb\xbf{}", b"\xff\xfe", b"")),
    )


@st.composite
def voc_documents(draw) -> bytes:
    from xml.sax.saxutils import escape

    text = st.sampled_from(_HOSTILE_STRINGS) | st.text(max_size=12)
    number = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers(-100, 100).map(str) | text
    filename = draw(text)
    objects = []
    for _ in range(draw(st.integers(0, 3))):
        fields = "".join(
            f"<{k}>{escape(draw(number))}</{k}>" for k in ("xmin", "ymin", "xmax", "ymax") if draw(st.integers(0, 5))
        )
        box = f"<bndbox>{fields}</bndbox>" if draw(st.integers(0, 4)) else ""
        objects.append(f"<object><name>{escape(draw(text))}</name>{box}</object>")
    dtd = draw(
        st.sampled_from(
            (
                "",
                '<!DOCTYPE a [<!ENTITY x "card1.png">]>',
                '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                (
                    '<!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x '
                    '"&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                ),
            )
        )
    )
    name = "&x;" if dtd and draw(st.booleans()) else escape(filename)
    body = f"{dtd}<annotation><filename>{name}</filename>{''.join(objects)}</annotation>"
    data = body.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        data = draw(byte_mutations(data))
    return data


def voc_inputs() -> st.SearchStrategy[bytes]:
    valid = (
        b"<annotation><filename>card1.png</filename><object><name>NIK</name><bndbox>"
        b"<xmin>2</xmin><ymin>3</ymin><xmax>12</xmax><ymax>9</ymax></bndbox></object>"
        b"</annotation>"
    )
    return st.one_of(voc_documents(), byte_mutations(valid))


_TOKENS = (
    "{",
    "}",
    ":",
    "[",
    "]",
    ",",
    ";",
    "<",
    ">",
    "-",
    "item",
    "id",
    "name",
    "display_name",
    "model",
    "ssd",
    "num_classes",
    "'nik'",
    '"Nama"',
    "'",
    "1",
    "0",
    "-1",
    "1e999",
    "nan",
    "-inf",
    "9" * 5000,
    "true",
    "SIGMOID",
    "#c\n",
    "\\",
    "\x00",
    "é",
    "{" * 300,
)


@st.composite
def token_mutations(draw, seed: str) -> str:
    tokens = seed.split()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("delete", "insert", "replace", "repeat")))
        pos = draw(st.integers(0, max(len(tokens) - 1, 0)))
        if op == "delete" and tokens:
            del tokens[pos]
        elif op == "insert":
            tokens.insert(pos, draw(st.sampled_from(_TOKENS) | st.text(max_size=6)))
        elif op == "replace" and tokens:
            tokens[pos] = draw(st.sampled_from(_TOKENS))
        elif op == "repeat":
            tokens[pos:pos] = tokens[pos : pos + draw(st.integers(1, 10))] * draw(st.integers(1, 40))
    return " ".join(tokens)


def text_proto_inputs() -> st.SearchStrategy[tuple[str, str]]:
    """(label map text, pipeline.config text)."""
    label_map = labels.label_map_pbtxt()
    label_maps = st.one_of(
        token_mutations(label_map),
        byte_mutations(label_map.encode()).map(lambda b: b.decode("utf-8", "replace")),
        st.just(label_map),
    )
    configs = st.one_of(
        token_mutations(PIPELINE_CONFIG),
        byte_mutations(PIPELINE_CONFIG.encode()).map(lambda b: b.decode("utf-8", "replace")),
    )
    return st.tuples(label_maps, configs)


_FEATURE_KEYS = (
    "image/encoded",
    "image/filename",
    "image/source_id",
    "image/format",
    "image/height",
    "image/width",
    "image/object/bbox/xmin",
    "image/object/bbox/xmax",
    "image/object/bbox/ymin",
    "image/object/bbox/ymax",
    "image/object/class/text",
    "image/object/class/label",
)


@st.composite
def tf_examples(draw) -> list[dict[str, tuple[str, list]]]:
    """Examples as {feature key: (kind, values)}: a valid card with features swapped or dropped."""
    seeds = image_seeds()
    valid: dict[str, tuple[str, list[Any]]] = {
        "image/encoded": ("bytes", [seeds["rgb.png"]]),
        "image/filename": ("bytes", [b"card.png"]),
        "image/format": ("bytes", [b"png"]),
        "image/height": ("int", [16]),
        "image/width": ("int", [24]),
        "image/object/bbox/xmin": ("float", [0.1, 0.5]),
        "image/object/bbox/xmax": ("float", [0.4, 0.9]),
        "image/object/bbox/ymin": ("float", [0.1, 0.5]),
        "image/object/bbox/ymax": ("float", [0.3, 0.8]),
        "image/object/class/text": ("bytes", [b"NIK", b"Nama"]),
        "image/object/class/label": ("int", [1, 2]),
    }
    values = {
        "bytes": st.lists(st.binary(max_size=12) | st.sampled_from(list(seeds.values())) | png_headers(), max_size=3),
        "float": st.lists(st.floats(width=32), max_size=4),
        "int": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    }
    examples = []
    for _ in range(draw(st.integers(1, 3))):
        example = dict(valid)
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(_FEATURE_KEYS))
            if draw(st.integers(0, 3)) == 0:
                example.pop(key, None)
            else:
                kind = draw(st.sampled_from(tuple(values)))
                example[key] = (kind, draw(values[kind]))
        examples.append(example)
    return examples


def tfrecord_inputs() -> st.SearchStrategy[tuple[Any, str]]:
    """(examples or raw TFRecord bytes, label map text)."""
    label_map = labels.label_map_pbtxt()
    records = st.one_of(
        tf_examples(),
        tf_examples(),
        st.builds(lambda flips: ("raw", flips), st.lists(st.integers(0, 4000), min_size=1, max_size=3)),
    )
    return st.tuples(records, st.one_of(st.just(label_map), token_mutations(label_map)))


def image_inputs() -> st.SearchStrategy[bytes]:
    seeds = list(image_seeds().values())
    return st.one_of(
        png_headers(),
        st.sampled_from(seeds).flatmap(byte_mutations),
        st.sampled_from(seeds).flatmap(lambda s: byte_mutations(s, 1)),
        st.binary(max_size=64),
    )


# ----------------------------------------------------------------------------- targets


def tree(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under ``folder`` (hidden ones too)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class PropertyViolation(AssertionError):
    """An input was modified, or a file appeared under a final name."""


@dataclasses.dataclass
class Target:
    """One reader under fuzz: ``write`` lays out the input, ``read`` runs the reader(s)."""

    name: str
    inputs: Callable[[], st.SearchStrategy]
    write: Callable[[Path, Any], None]
    read: Callable[[Path], None]


def _write_coco(folder: Path, data: bytes) -> None:
    for i in (1, 2):
        (folder / f"card{i}.png").write_bytes(_png())
    (folder / datasets.COCO_NAME).write_bytes(data)


def _read_dataset(folder: Path, **kwargs) -> None:
    for skip_bad in (False, True):
        try:
            dataset = datasets.read_dataset(folder, skip_bad=skip_bad, **kwargs)
        except KtpError:
            continue
        for example in dataset.examples[:2]:
            try:
                example.load_rgb()
            except KtpError:
                pass


def _write_voc(folder: Path, data: bytes) -> None:
    (folder / "card1.png").write_bytes(_png())
    (folder / "card1.xml").write_bytes(data)


def _write_tfrecord(folder: Path, value) -> None:
    import tensorflow as tf

    records, label_map = value
    (folder / "label_map.pbtxt").write_text(label_map, encoding="utf-8", errors="replace")
    path = folder / "ktp.tfrecord"
    if isinstance(records, tuple):  # ("raw", positions): a valid file with bytes flipped
        example = Example(image_id="card.png", width=24, height=16, image_bytes=_png(), image_format="png")
        datasets.write_tfrecord(datasets.Dataset([example, example], "fuzz", "synth"), path)
        (folder / "label_map.pbtxt").write_text(label_map, encoding="utf-8", errors="replace")
        data = bytearray(path.read_bytes())
        for position in records[1]:
            data[position % len(data)] ^= 0x5A
        path.write_bytes(bytes(data))
        return
    make = {
        "bytes": lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=v)),
        "float": lambda v: tf.train.Feature(float_list=tf.train.FloatList(value=v)),
        "int": lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v)),
    }
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in records:
            feature = {key: make[kind](values) for key, (kind, values) in example.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _write_text_protos(folder: Path, value) -> None:
    label_map, config = value
    (folder / "label_map.pbtxt").write_text(label_map, encoding="utf-8", errors="replace")
    (folder / "pipeline.config").write_text(config, encoding="utf-8", errors="replace")


def _read_text_protos(folder: Path) -> None:
    label_map = (folder / "label_map.pbtxt").read_text(encoding="utf-8")
    config = (folder / "pipeline.config").read_text(encoding="utf-8")
    for call in (
        lambda: labels.parse_label_map(label_map),
        lambda: datasets.read_label_map(folder / "label_map.pbtxt"),
        lambda: pipeline_config.parse_text_proto(config),
        lambda: pipeline_config.load_ssd_config(folder / "pipeline.config"),
    ):
        try:
            call()
        except KtpError:
            pass


def _write_image(folder: Path, data: bytes) -> None:
    (folder / "photo.png").write_bytes(data)


def _read_image(folder: Path, model: Path | None = None) -> None:
    photo = folder / "photo.png"
    data = photo.read_bytes()
    for call in (
        lambda: images.read_header(photo),
        lambda: images.check_image(photo),
        lambda: images.load_image(photo),
        lambda: images.load_image(photo, upright=False),
        lambda: images.load_image(data, where="record 0"),
    ):
        try:
            call()
        except KtpError:
            pass
    _read_dataset(folder, labelled=False)
    if model is not None:
        scan_writes_only_on_success(photo, model, folder.parent / "out")


def scan_writes_only_on_success(photo: Path, model: Path, out_dir: Path) -> None:
    """``ktpconvert scan --json``: exit 0 and a JSON file, or exit 1 and no file at all."""
    from click.testing import CliRunner

    from ktp_tflite.convert.cli import main

    out_dir.mkdir(exist_ok=True)
    out = out_dir / "result.json"
    result = CliRunner().invoke(main, ["scan", str(photo), "--model", str(model), "--json", str(out)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    names = sorted(p.name for p in out_dir.iterdir())
    try:
        if result.exit_code == 0:
            if names != ["result.json"] or json.loads(out.read_text()) != json.loads(result.stdout):
                raise PropertyViolation(f"scan succeeded but left {names}")
        elif result.exit_code != 1 or names or "\nError: " not in "\n" + result.stderr:
            raise PropertyViolation(f"scan failed with {result.exit_code} and left {names}: {result.output[:200]}")
    finally:
        for path in out_dir.iterdir():
            path.unlink()


def targets(model: Path | None = None) -> list[Target]:
    """Every reader under fuzz; with ``model`` the image target also runs ``scan --json``."""
    return [
        Target("coco", coco_inputs, _write_coco, _read_dataset),
        Target("voc", voc_inputs, _write_voc, _read_dataset),
        Target("tfrecord+label_map", tfrecord_inputs, _write_tfrecord, _read_dataset),
        Target("pbtxt+pipeline.config", text_proto_inputs, _write_text_protos, _read_text_protos),
        Target("image", image_inputs, _write_image, lambda folder: _read_image(folder, model)),
    ]


def run_one(target: Target, workdir: Path, value) -> None:
    """Lay out one input, read it, check the properties (raises on a violation or a crash)."""
    import shutil

    folder = workdir / "input"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    target.write(folder, value)
    before = tree(folder)
    try:
        target.read(folder)
    except KtpError:
        pass
    after = tree(folder)
    if after != before:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        raise PropertyViolation(f"{target.name}: files changed or appeared: {changed}")


# ----------------------------------------------------------------------------- the long run


@dataclasses.dataclass
class Tally:
    inputs: int = 0
    seconds: float = 0.0
    crashes: list[dict] = dataclasses.field(default_factory=list)


def _save_input(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return repr(value).encode("utf-8", "backslashreplace")


def fuzz(target: Target, workdir: Path, seconds: float, crash_dir: Path | None, chunk: int = 200) -> Tally:
    """Run ``target`` for about ``seconds``, in chunks of ``chunk`` inputs with seeds 0, 1, ..."""
    tally = Tally()
    start = time.perf_counter()
    chunk_seed = 0
    while time.perf_counter() - start < seconds:

        @hypothesis_seed(chunk_seed)
        @settings(
            max_examples=chunk,
            deadline=None,
            database=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
        )
        @given(target.inputs())
        def one(value) -> None:
            if time.perf_counter() - start >= seconds:
                return
            tally.inputs += 1
            try:
                run_one(target, workdir, value)
            except Exception as error:  # noqa: BLE001 (a crash is what this run looks for)
                digest = hashlib.sha256(_save_input(value)).hexdigest()[:16]
                tally.crashes.append(
                    {
                        "reader": target.name,
                        "type": type(error).__name__,
                        "message": str(error).splitlines()[0][:300] if str(error) else "",
                        "input": digest,
                        "where": traceback.format_tb(error.__traceback__)[-1].strip(),
                    }
                )
                if crash_dir is not None:
                    crash_dir.mkdir(parents=True, exist_ok=True)
                    (crash_dir / f"{target.name}-{digest}.bin").write_bytes(_save_input(value))

        one()
        chunk_seed += 1
    tally.seconds = time.perf_counter() - start
    return tally


def write_corpus(folder: Path) -> None:
    """The seeds the strategies mutate, as files (the corpus of this fuzz run)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in image_seeds().items():
        (folder / name).write_bytes(data)
    (folder / "coco.json").write_text(json.dumps(coco_seed(), indent=1))
    (folder / "label_map.pbtxt").write_text(labels.label_map_pbtxt())
    (folder / "pipeline.config").write_text(PIPELINE_CONFIG)


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from ktp_tflite.train.atomic_files import write_output

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="Total time, split evenly.")
    parser.add_argument(
        "--out", type=Path, default=None, help="Folder for summary.json, crashing inputs and the seed corpus."
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="Detector .tflite: the image target also runs `ktpconvert scan --json`.",
    )
    parser.add_argument("--only", action="append", default=None, help="Run only this target.")
    args = parser.parse_args(argv)
    chosen = [t for t in targets(args.model) if not args.only or t.name in args.only]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_corpus(args.out / "corpus")
    results = {}
    with tempfile.TemporaryDirectory(prefix="ktp-fuzz-") as work:
        for target in chosen:
            tally = fuzz(
                target, Path(work) / target.name, args.seconds / len(chosen), args.out / "crashes" if args.out else None
            )
            results[target.name] = {
                "inputs": tally.inputs,
                "seconds": round(tally.seconds, 1),
                "inputs_per_second": round(tally.inputs / tally.seconds, 1),
                "crashes": len(tally.crashes),
                "crash_list": tally.crashes,
            }
            print(
                f"{target.name:24s} {tally.inputs:7d} inputs  {tally.seconds:7.1f} s  {len(tally.crashes)} crashes",
                flush=True,
            )
            for crash in tally.crashes[:10]:
                print(f"    {crash['type']}: {crash['message'][:120]} ({crash['where'][:120]})")
    if args.out is not None:
        write_output(args.out / "summary.json", (json.dumps(results, indent=2) + "\n").encode(), force=True)
    return 1 if any(r["crashes"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
