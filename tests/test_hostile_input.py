"""Issue 16: a careless or hostile user never loses a file and never sees a traceback.

Every case runs the real command (click's CliRunner, or a subprocess where a
signal or the peak memory is measured) or the real reader, and asserts the
exit code, the message (naming the file and record), that no traceback was
printed, and the SHA-256 of every input before and after.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from ktp_tflite.convert.cli import main
from ktp_tflite.train import datasets
from ktp_tflite.train.atomic_files import (
    OutputExistsError,
    OutputIsInputError,
    OutputPathError,
    atomic_output,
    atomic_output_dir,
    check_output,
    write_output,
)
from ktp_tflite.train.images import (
    MAX_PIXELS_ENV,
    ImageReadError,
    ImageTooLargeError,
    check_image,
    load_image,
    read_header,
)
from ktp_tflite.train.labels import LabelMapError, label_map_pbtxt, parse_label_map
from ktp_tflite.train.pipeline_config import PipelineConfigError
from ktp_tflite.train.records import DatasetError, Example

REFERENCE = Path(__file__).resolve().parents[1] / "train" / "reference"
REFERENCE_TFLITE = REFERENCE / "model_float.tflite"
REFERENCE_SAVED_MODEL = REFERENCE / "saved_model"


# ----------------------------------------------------------------------------- helpers


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its hash."""
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _invoke(args: list[str], **kwargs):
    result = CliRunner().invoke(main, [str(a) for a in args], **kwargs)
    assert "Traceback" not in result.output
    # an exception that escaped the command would be here (CliRunner hides its traceback)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _fails(args: list[str], *expected: str, **kwargs):
    result = _invoke(args, **kwargs)
    assert result.exit_code == 1, result.output
    assert "\nError: " in "\n" + result.stderr, result.output  # a line of its own
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    return result


def _png(width: int = 40, height: int = 30, color=(200, 30, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose IHDR claims width x height RGB pixels; its IDAT holds almost nothing."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))


def _coco(folder: Path, images: int = 2) -> dict:
    """A valid two-image COCO data set in ``folder``; returns its JSON document."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {"images": [], "annotations": [], "categories": [
        {"id": 1, "name": "nik"}, {"id": 2, "name": "Nama"}]}
    for i in range(1, images + 1):
        (folder / f"card{i}.png").write_bytes(_png(40, 30, (20 * i, 90, 160)))
        document["images"].append({"id": i, "file_name": f"card{i}.png", "width": 40, "height": 30})
        document["annotations"].append(
            {"id": 10 * i, "image_id": i, "category_id": i, "bbox": [2 * i, 3, 10 + i, 6]})
    _save(folder, document)
    return document


def _save(folder: Path, document) -> Path:
    path = folder / datasets.COCO_NAME
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


# ----------------------------------------------------------------------------- 1. outputs


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (120, 130, 140)).save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    return path


def test_scan_json_never_overwrites_the_photo_or_the_model(tmp_path, photo):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3 not really a model" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.json").symlink_to(photo)
    os.link(model, tmp_path / "hard.json")
    before = _tree(tmp_path)
    for target in (photo, model, tmp_path / "link.json", tmp_path / "sub" / ".." / "photo.jpg",
                   tmp_path / "hard.json"):
        _fails(["scan", photo, "--model", model, "--json", target, "--force"],
               f"{target}: would overwrite the input")
    assert _tree(tmp_path) == before


def test_scan_json_keeps_an_existing_file_unless_force(tmp_path, photo):
    out = tmp_path / "hasil scan ü.json"  # spaces and unicode in the path
    out.write_text("earlier result")
    _fails(["scan", photo, "--model", REFERENCE_TFLITE, "--json", out], f"{out}: exists",
           "--force")
    assert out.read_text() == "earlier result"
    photo_hash, model_hash = _sha(photo), _sha(REFERENCE_TFLITE)
    result = _invoke(["scan", photo, "--model", REFERENCE_TFLITE, "--json", out, "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads(result.stdout)
    assert (_sha(photo), _sha(REFERENCE_TFLITE)) == (photo_hash, model_hash)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, photo.name])


def test_quantize_and_metadata_refuse_an_out_that_is_an_input(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"model bytes")
    config = tmp_path / "pipeline.config"
    config.write_text("model { ssd { num_classes: 5 } }")
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    (calibration / "a.png").write_bytes(_png())
    (tmp_path / "alias.tflite").symlink_to(model)
    before = _tree(tmp_path)
    for out in (model, tmp_path / "alias.tflite", calibration / ".." / "model.tflite"):
        _fails(["metadata", model, "--out", out, "--force"], f"{out}: would overwrite the input")
        _fails(["quantize", model, "--out", out, "--representative", calibration, "--force"],
               f"{out}: would overwrite the input")
    _fails(["quantize", model, "--out", config, "--representative", calibration,
            "--pipeline-config", config, "--force"], "would overwrite the input")
    _fails(["quantize", model, "--out", calibration / "int8.tflite", "--representative",
            calibration], f"lies inside the input folder {calibration}")
    _fails(["metadata", model, "--out", tmp_path / "calibration" / "a.png"],
           "exists; pass --force")
    assert _tree(tmp_path) == before


def test_quantize_debug_report_and_import_tf1_folders_never_take_an_input(tmp_path):
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    for suffix in ("index", "data-00000-of-00001", "meta"):
        (checkpoints / f"model.ckpt-7.{suffix}").write_bytes(b"weights " + suffix.encode())
    config = tmp_path / "pipeline.config"
    config.write_text("model { ssd { num_classes: 5 } }")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("my notes")
    before = _tree(tmp_path)
    args = ["import-tf1", checkpoints / "model.ckpt-7", "--pipeline-config", config]
    _fails(args + ["--out", checkpoints, "--force"], f"{checkpoints}: holds the input")
    _fails(args + ["--out", other], f"{other}: holds files this command did not write")
    _fails(args + ["--out", other, "--force"], f"{other}: holds files this command did not write")
    _fails(["quantize", tmp_path / "ckpt", "--out", tmp_path / "x.tflite", "--representative",
            "synth:2", "--debug-report", other, "--force"], "holds files this command did not write")
    assert _tree(tmp_path) == before


def test_benchmark_report_and_eval_json(tmp_path):
    from ktp_tflite.benchmarks.cli import benchmark

    models = tmp_path / "models"
    models.mkdir()
    model = models / "m.tflite"
    model.write_bytes(b"model")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"models": [{"model": "m.tflite", "metrics": {"map": "high"}}]}))
    before = _tree(tmp_path)

    def run(*args):
        result = CliRunner().invoke(benchmark, [str(a) for a in args])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.exit_code == 1 and result.stderr.startswith("Error: ")
        return result.stderr

    assert f"{models}: holds the input {model}" in run(model, "--report", models, "--force")
    assert f"{notes}: holds files this command did not write" in run(model, "--report", notes,
                                                                     "--force")
    assert "not replaced even with --force" in run(model, "--report", notes)
    assert f"{deep}: nested too deeply" in run(model, "--eval", deep)
    assert "models[0].metrics.map is the string 'high'" in run(model, "--eval", typed)
    assert _tree(tmp_path) == before


def test_android_assets_never_writes_over_its_own_model(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    installed = assets / "ktp_detector.tflite"
    installed.write_bytes(REFERENCE_TFLITE.read_bytes())
    alias = tmp_path / "same.tflite"
    os.link(installed, alias)
    before = _tree(tmp_path)
    _fails(["android-assets", alias, "--assets-dir", assets], "would overwrite the input")
    assert _tree(tmp_path) == before


def test_atomic_output_is_exclusive_without_force_and_clean_on_any_exit(tmp_path):
    out = tmp_path / "model.tflite"
    # a concurrent run publishes first: this one fails and keeps the other's file
    with pytest.raises(OutputExistsError, match="appeared while this run was writing"):
        with atomic_output(out) as temporary:
            temporary.write_bytes(b"second run")
            out.write_bytes(b"first run")
    assert out.read_bytes() == b"first run"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]
    with pytest.raises(OutputExistsError, match="pass --force"):
        write_output(out, b"again")
    write_output(out, b"forced", force=True)
    assert out.read_bytes() == b"forced"
    # Ctrl-C while writing: nothing under the final name, no temporary
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "new.bin") as temporary:
            temporary.write_bytes(b"half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output(tmp_path, force=True)
    with pytest.raises(OutputPathError, match="does not exist"):
        write_output(tmp_path / "missing" / "x", b"")


def test_atomic_output_dir_rules(tmp_path):
    target = tmp_path / "données ktp"
    target.mkdir()  # an existing empty folder is free
    with atomic_output_dir(target) as staging:
        (staging / "report.json").write_text("{}")
    assert sorted(os.listdir(target)) == ["report.json"]
    with pytest.raises(OutputExistsError, match="not empty; pass --force"):
        check_output(target, folder=True)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(target, force=True, marker="report.json") as staging:
            (staging / "report.json").write_text("half")
            raise KeyboardInterrupt
    assert (target / "report.json").read_text() == "{}"
    with atomic_output_dir(target, force=True, marker="report.json") as staging:
        (staging / "report.json").write_text("new")
    assert (target / "report.json").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["données ktp"]
    # filled by someone else while building, without force: refused, theirs kept
    race = tmp_path / "race"
    with pytest.raises(OutputExistsError, match="filled while this run was writing"):
        with atomic_output_dir(race) as staging:
            (staging / "mine").write_text("mine")
            race.mkdir()
            (race / "theirs").write_text("theirs")
    assert os.listdir(race) == ["theirs"]
    with pytest.raises(OutputIsInputError, match="holds the input"):
        check_output(tmp_path, inputs=[race / "theirs"], folder=True, force=True)
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output(race / "theirs", folder=True, force=True)
    assert sorted(os.listdir(tmp_path)) == ["données ktp", "race"]


_SIGNAL_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C as a terminal delivers it, even when the suite itself runs with SIGINT ignored (nohup, `cmd &`)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from pathlib import Path
    from ktp_tflite.convert.cli import _terminate_as_exit
    from ktp_tflite.train.atomic_files import atomic_output, atomic_output_dir
    out = Path(sys.argv[1])
    with _terminate_as_exit():
        with atomic_output_dir(out / "dataset") as staging:
            (staging / "part.bin").write_bytes(b"x" * 1000)
            with atomic_output(out / "model.tflite") as temporary:
                temporary.write_bytes(b"half a model")
                print("ready", flush=True)
                time.sleep(60)
""")


@pytest.mark.parametrize("signum, returncode, leftovers", [
    (signal.SIGINT, -signal.SIGINT, False),
    (signal.SIGTERM, 128 + signal.SIGTERM, False),
    (signal.SIGKILL, -signal.SIGKILL, True),
])
def test_interrupted_writes_leave_nothing_under_the_final_names(tmp_path, signum, returncode,
                                                                leftovers):
    process = subprocess.Popen([sys.executable, "-c", _SIGNAL_SCRIPT, str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == returncode, stderr
    names = sorted(os.listdir(tmp_path))
    assert "model.tflite" not in names and "dataset" not in names
    if leftovers:  # SIGKILL cannot be cleaned up after: only hidden temporaries stay
        assert names and all(n.startswith(".") and n.endswith(".tmp") for n in names)
    else:
        assert names == []


# ----------------------------------------------------------------------------- 2. images


def test_bomb_header_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    for load in (read_header, check_image, load_image):
        with pytest.raises(ImageTooLargeError) as caught:
            load(bomb)
        message = str(caught.value)
        assert message.startswith(f"{bomb}: image is ") and "3600.0 megapixels" in message
        assert "over the limit of 50 megapixels" in message and MAX_PIXELS_ENV in message
    with pytest.raises(ImageTooLargeError, match="^ktp.tfrecord record 4: image is"):
        load_image(bomb_png(), where="ktp.tfrecord record 4")
    # under PIL's own hard limit, our limit decides and names the size
    with pytest.raises(ImageTooLargeError, match="10000x6000 pixels, 60.0 megapixels"):
        read_header(bomb_png(10000, 6000))
    assert read_header(bomb_png(10000, 6000), max_pixels=60_000_000).width == 10000
    # above PIL's own hard limit the setting cannot help, and says so
    with pytest.raises(ImageTooLargeError, match="over PIL's own limit of 178.957 megapixels"):
        read_header(bomb, max_pixels=10**10)


def test_large_real_png_is_refused_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("L", (12000, 12000), 0).save(big, format="PNG")
    assert big.stat().st_size < 1_000_000
    with pytest.raises(ImageTooLargeError, match="12000x12000 pixels, 144.0 megapixels"):
        read_header(big)
    monkeypatch.setenv(MAX_PIXELS_ENV, "150000000")
    info = read_header(big)
    assert (info.width, info.height, info.format) == (12000, 12000, "png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageReadError, match=f"{MAX_PIXELS_ENV}='lots'"):
        read_header(big)


def test_bomb_in_every_reader_and_command(tmp_path, photo):
    bomb = bomb_png()
    coco = tmp_path / "coco"
    _coco(coco)
    (coco / "card2.png").write_bytes(bomb)
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "ok.png").write_bytes(_png())
    (folder / "bomb.png").write_bytes(bomb)
    voc = tmp_path / "voc"
    voc.mkdir()
    (voc / "bomb.png").write_bytes(bomb)
    (voc / "bomb.xml").write_text("<annotation><filename>bomb.png</filename></annotation>")
    for path, labelled, name in ((coco, True, "card2"), (folder, False, "bomb"), (voc, True, "bomb")):
        with pytest.raises(DatasetError, match=f"{name}.png: image is 3600.0 megapixels"):
            datasets.read_dataset(path, labelled=labelled)
    dataset = datasets.read_dataset(folder, labelled=False, skip_bad=True)
    assert [e.image_id for e in dataset.examples] == ["ok.png"]
    assert "3600.0 megapixels" in str(dataset.skipped[0])
    example = Example(image_id="x.png", width=1, height=1, image_bytes=bomb)
    with pytest.raises(ImageTooLargeError, match="^x.png: image is"):
        example.load_rgb()

    before = _tree(tmp_path)
    result = _invoke(["data", "inspect", coco])
    assert result.exit_code == 1 and "card2.png: image is 3600.0 megapixels" in result.stdout
    bomb_photo = tmp_path / "images" / "bomb.png"
    _fails(["scan", bomb_photo, "--model", REFERENCE_TFLITE], f"{bomb_photo}: image is",
           "3600.0 megapixels")
    _fails(["evaluate", REFERENCE_TFLITE, "--data", coco], "card2.png: image is")
    out = tmp_path / "int8.tflite"
    _fails(["quantize", REFERENCE_SAVED_MODEL, "--out", out, "--representative", folder],
           "bomb.png: image is 3600.0 megapixels")
    assert not out.exists() and _tree(tmp_path) == before


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys
    from ktp_tflite.train import datasets, images
    from ktp_tflite.train.errors import KtpError
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.argv[1] == "header":
        try:
            images.load_image(sys.argv[2])
        except images.ImageTooLargeError:
            pass
    else:
        try:
            datasets.read_dataset(sys.argv[2])
        except KtpError:
            pass
    print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_bomb_costs_no_memory(tmp_path):
    """Peak RSS of refusing the 60000x60000 header (decoding it would take 10.8 GB).

    The measuring process is started through ``sh`` (which forks it): a child
    exec'd straight from pytest inherits pytest's peak in ru_maxrss.
    """
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    big = tmp_path / "big.png"
    Image.new("L", (12000, 12000), 0).save(big, format="PNG")  # real, 144 megapixels
    coco = tmp_path / "coco"
    _coco(coco)
    (coco / "card1.png").write_bytes(bomb_png())
    for mode, path in (("header", bomb), ("header", big), ("coco", coco)):
        output = subprocess.run(["sh", "-c", '"$@"; exit $?', "sh", sys.executable, "-c",
                                 _RSS_SCRIPT, mode, str(path)],
                                capture_output=True, text=True, check=True).stdout
        base_kb, peak_kb = (int(v) for v in output.split())
        print(f"peak RSS {mode} {path.name}: {peak_kb / 1024:.1f} MB "
              f"(after imports {base_kb / 1024:.1f} MB)")
        assert peak_kb < 200 * 1024 and peak_kb - base_kb < 8 * 1024, (mode, base_kb, peak_kb)


def _encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_colour_modes_become_uint8_rgb():
    gray16 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    palette = Image.new("P", (4, 3))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 1), 1)
    cases = {
        "L": (_encoded(Image.new("L", (4, 3), 77)), [77, 77, 77]),
        "LA": (_encoded(Image.new("LA", (4, 3), (77, 0))), [77, 77, 77]),
        "RGBA": (_encoded(Image.new("RGBA", (4, 3), (1, 2, 3, 0))), [1, 2, 3]),
        "P": (_encoded(palette), [10, 20, 30]),
        "P+transparency": (_encoded(palette, transparency=0), [10, 20, 30]),
        "1": (_encoded(Image.new("1", (4, 3), 1)), [255, 255, 255]),
        "I;16": (_encoded(Image.fromarray(gray16)), [0, 0, 0]),
        "CMYK": (_encoded(Image.new("CMYK", (4, 3), (0, 0, 0, 0)), "JPEG", quality=100),
                 [255, 255, 255]),
        "BMP": (_encoded(Image.new("RGB", (4, 3), (9, 8, 7)), "BMP"), [9, 8, 7]),
    }
    for name, (data, first) in cases.items():
        pixels = load_image(data, where=name)
        assert pixels.dtype == np.uint8 and pixels.shape == (3, 4, 3), name
        assert np.abs(pixels[0, 0].astype(int) - first).max() <= 1, (name, pixels[0, 0])
    assert load_image(cases["P"][0], where="P")[1, 1].tolist() == [200, 100, 50]
    # 16-bit samples keep their high byte, as tf.io.decode_image does
    np.testing.assert_array_equal(load_image(cases["I;16"][0], where="16")[..., 0], gray16 >> 8)


def test_exif_orientation_matches_pillow():
    stored = Image.fromarray(np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = _encoded(stored, exif=exif)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
        np.testing.assert_array_equal(load_image(data, where="p.png"), expected, str(orientation))
        np.testing.assert_array_equal(load_image(data, where="p.png", upright=False),
                                      np.asarray(stored))
        assert read_header(data, where="p.png").orientation == orientation


def test_image_messages_name_the_file_never_a_bytesio(tmp_path):
    for data, text in ((b"definitely not an image", "not a JPEG, PNG"),
                       (_png()[:60], "truncated"), (b"", "empty (0 bytes)")):
        with pytest.raises(ImageReadError) as caught:
            load_image(data, where="ktp.tfrecord record 3 (card.jpg)")
        message = str(caught.value)
        assert message.startswith("ktp.tfrecord record 3 (card.jpg): ") and text in message
        assert "BytesIO" not in message and "0x" not in message
    tiff = tmp_path / "scan.jpg"
    Image.new("RGB", (4, 4)).save(tiff, format="TIFF")
    with pytest.raises(ImageReadError, match=f"^{tiff}: cannot read the image: not a JPEG"):
        read_header(tiff)
    with pytest.raises(ImageReadError, match="cannot read the file"):
        read_header(tmp_path / "missing.png")


# ----------------------------------------------------------------------------- 3. COCO


def test_duplicate_image_ids_are_an_error_everywhere(tmp_path):
    coco = tmp_path / "val"
    document = _coco(coco)
    document["images"][1]["id"] = 1
    json_path = _save(coco, document)
    with pytest.raises(DatasetError, match="image id 1 is used by images.0. and images.1."):
        datasets.read_dataset(coco)
    with pytest.raises(DatasetError, match="must be unique"):
        datasets.read_dataset(coco, skip_bad=True)
    before = _tree(tmp_path)
    result = _invoke(["data", "inspect", coco])
    assert result.exit_code == 1 and "problems: none" not in result.output
    assert f"{json_path}: image id 1 is used by" in result.stderr
    _fails(["evaluate", REFERENCE_TFLITE, "--data", coco], "image id 1 is used by")
    assert _tree(tmp_path) == before


MALFORMED = [
    ("bbox string", lambda d: d["annotations"][0].update(bbox="1,2,3,4"),
     "annotation 10: bbox is the string '1,2,3,4'; COCO needs four numbers"),
    ("bbox of 3", lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
     "annotation 10: bbox is a list of 3 value(s)"),
    ("bbox missing", lambda d: d["annotations"][0].pop("bbox"), "annotation 10: bbox is null"),
    ("bbox null", lambda d: d["annotations"][0].update(bbox=None), "annotation 10: bbox is null"),
    ("bbox bool", lambda d: d["annotations"][0].update(bbox=[True, 1, 2, 3]), "bbox is a list"),
    ("negative width", lambda d: d["annotations"][0].update(bbox=[5, 5, -4, 3]),
     "negative width or height (-4 x 3)"),
    ("annotations object", lambda d: d.update(annotations={"1": {}}),
     "'annotations' is an object {...}; COCO needs a list"),
    ("images holding lists", lambda d: d["images"].__setitem__(0, [1, "card1.png"]),
     "images[0] is a list of 2 value(s); each entry of 'images' must be an object"),
    ("category without id", lambda d: d["categories"][0].pop("id"),
     "categories[0] has id null; give every category a whole-number id"),
    ("category without name", lambda d: d["categories"][0].pop("name"),
     "category 1 has name null"),
    ("image id null", lambda d: d["images"][0].update(id=None), "images[0] has id null"),
    ("width as string", lambda d: d["images"][0].update(width="640"),
     "width is the string '640'; write it as a whole number"),
    ("negative image width", lambda d: d["images"][0].update(width=-40),
     "width is -40; it must be a positive number"),
    ("wrong size", lambda d: d["images"][0].update(width=41),
     "JSON says 41x30 but the file is 40x30"),
    ("file_name traversal", lambda d: d["images"][0].update(file_name="../../../etc/passwd"),
     "file_name '../../../etc/passwd' points outside the data set folder"),
    ("absolute file_name", lambda d: d["images"][0].update(file_name="/etc/passwd"),
     "file_name '/etc/passwd' points outside the data set folder"),
    ("file_name list", lambda d: d["images"][0].update(file_name=["a"]), "file_name is a list"),
    ("orphan annotation", lambda d: d["annotations"][0].update(image_id=99),
     "annotation 10: image_id 99 is not in 'images'"),
    ("category_id string", lambda d: d["annotations"][0].update(category_id="1"),
     "category_id is the string '1'"),
    ("unknown category", lambda d: d["annotations"][0].update(category_id=7),
     "category_id 7 is not a known category"),
    ("top-level list", lambda d: [d], "not a COCO detection file"),
]


@pytest.mark.parametrize("name, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_coco_is_named_never_a_traceback(tmp_path, name, change, message):
    coco = tmp_path / "set"
    document = _coco(coco)
    changed = change(document)  # only the top-level case returns the new document
    json_path = _save(coco, changed if name == "top-level list" else document)
    before = _tree(tmp_path)
    with pytest.raises(DatasetError) as caught:
        datasets.read_dataset(coco)
    assert str(caught.value).startswith(f"{json_path}") and message in str(caught.value)
    result = _invoke(["data", "inspect", coco])
    assert result.exit_code == 1 and message in result.output
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"images": [], "annotations": [], "x": NaN}', "holds NaN, which JSON does not allow"),
    ('{"images": [{"id": 1, "width": 1e400}], "annotations": []}', "too large to be finite"),
    ('{"images": [{"id": ' + "9" * 5000 + '}], "annotations": []}', "not a valid COCO JSON"),
    ('{"images": [', "not valid JSON (line 1 column 13"),
    ("", "file is empty"),
])
def test_unparseable_coco_json(tmp_path, text, message):
    folder = tmp_path / "set"
    folder.mkdir()
    path = _save(folder, text)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: .*{re.escape(message)}"):
        datasets.read_dataset(folder)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DatasetError, match="not a UTF-8 text file"):
        datasets.read_dataset(folder)


def test_coco_with_bom_spaces_and_unicode_reads(tmp_path):
    folder = tmp_path / "données ktp" / "val set"
    document = _coco(folder)
    (folder / "card1.png").rename(folder / "kartu ü 1.png")
    document["images"][0]["file_name"] = "kartu ü 1.png"
    (folder / datasets.COCO_NAME).write_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode())
    dataset = datasets.read_dataset(folder)
    assert [e.image_id for e in dataset.examples] == ["kartu ü 1.png", "card2.png"]
    assert [b.label for e in dataset.examples for b in e.boxes] == ["nik", "nama"]


def test_bad_record_hint_names_only_options_that_exist(tmp_path):
    coco = tmp_path / "set"
    document = _coco(coco)
    (coco / "card2.png").write_bytes(_png()[:70])
    _save(coco, document)
    result = _fails(["evaluate", REFERENCE_TFLITE, "--data", coco], "card2.png: cannot decode",
                    "truncated", "ktpconvert data inspect")
    assert "use --skip-bad" not in result.stderr
    result = _fails(["quantize", REFERENCE_SAVED_MODEL, "--out", tmp_path / "q.tflite",
                     "--representative", coco], "card2.png")
    assert "use --skip-bad" not in result.stderr and not (tmp_path / "q.tflite").exists()


# ----------------------------------------------------------------------------- VOC, label maps, configs


def test_voc_entities_and_paths_are_refused(tmp_path):
    (tmp_path / "card.png").write_bytes(_png())
    laughs = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    cases = {
        "external": ('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                     "<annotation><filename>&x;</filename></annotation>", "undefined entity"),
        "laughs": (f'<!DOCTYPE a [<!ENTITY e0 "ha">{laughs}]>'
                   "<annotation><filename>&e9;</filename></annotation>", "amplification"),
        "traversal": ("<annotation><filename>../../etc/passwd</filename></annotation>",
                      "points outside the data set folder"),
        "bndbox": ("<annotation><filename>card.png</filename><object><name>nik</name><bndbox>"
                   "<xmin>a</xmin></bndbox></object></annotation>", "bad bndbox"),
        "reversed": ("<annotation><filename>card.png</filename><object><name>nik</name><bndbox>"
                     "<xmin>30</xmin><ymin>1</ymin><xmax>10</xmax><ymax>9</ymax></bndbox>"
                     "</object></annotation>", "max below its min"),
    }
    for name, (xml, message) in cases.items():
        xml_path = tmp_path / "card.xml"
        xml_path.write_text(xml)
        with pytest.raises(DatasetError) as caught:
            datasets.read_dataset(tmp_path)
        assert str(caught.value).startswith(str(xml_path)) and message in str(caught.value), name
        result = _invoke(["data", "inspect", tmp_path])
        assert result.exit_code == 1 and message in result.output, name


LABEL_MAPS = [
    ("garbage", "no 'item { ... }' entries found"),
    ("item { id: 1 }", "item 1 has no name"),
    ("item { name: 'nik' }", "item 1 has no id"),
    ("item { id: 1 name: 'nik' }\nitem { id: 2 name: 'nama' \nitem { id: 3 name: 'x' }",
     "expected '}'"),
    ("item { id: 1 name: 'nik' } item { id: 1 name: 'nama' }", "id 1 is used by two items"),
    ("item { id: 0 name: 'nik' }", "0 is the background class"),
    ("item " + "{ a " * 5000 + "}" * 5000, "nested more than 64 deep"),
    ("item { id: " + "9" * 5000 + " name: 'nik' }", "cannot be read"),
    ("item { id: 1 name: 'golongan darah' }", "unknown class name 'golongan darah'"),
]


@pytest.fixture(scope="module")
def tfrecord(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfrecord")
    example = Example(image_id="card.png", width=40, height=30, image_bytes=_png(),
                      image_format="png")
    datasets.write_tfrecord(datasets.Dataset([example], "test", "synth"), folder / "ktp.tfrecord")
    return folder


@pytest.mark.parametrize("text, message", LABEL_MAPS, ids=[t[:20] for t, _ in LABEL_MAPS])
def test_bad_label_maps_are_named(tfrecord, text, message):
    label_map = tfrecord / "label_map.pbtxt"
    label_map.write_text(text)
    try:
        with pytest.raises(DatasetError) as caught:
            datasets.read_dataset(tfrecord)
        assert str(caught.value).startswith(str(label_map)) and message in str(caught.value)
        if "unknown class" not in message:
            with pytest.raises(LabelMapError, match=re.escape(message)):
                parse_label_map(text)
        result = _invoke(["data", "inspect", tfrecord])
        assert result.exit_code == 1 and message in result.stderr
    finally:
        label_map.write_text(label_map_pbtxt())


def test_tfrecord_with_garbage_image_names_the_record(tfrecord, tmp_path):
    example = Example(image_id="card.png", width=4, height=4, image_bytes=b"GIF89a broken",
                      image_format="png")
    datasets.write_tfrecord(datasets.Dataset([example], "test", "synth"), tmp_path / "x.tfrecord")
    with pytest.raises(DatasetError) as caught:
        datasets.read_dataset(tmp_path / "x.tfrecord")
    assert str(caught.value).startswith(f"{tmp_path / 'x.tfrecord'} record 0 (card.png): ")
    assert "BytesIO" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("model " + "{ ssd " * 200 + "}" * 200, "nested more than 64 deep"),
    ("model { ssd { num_classes: " + "7" * 5000 + " } }", "cannot be read"),
    ("model { ssd { num_classes: 100000 } }", "num_classes: must be an integer from 1 to 1000"),
    ("model { ssd { num_classes: 5 image_resizer { fixed_shape_resizer { height: 1e9 } } } }",
     "expected an integer"),
    ("model { ssd { num_classes: 5 image_resizer { fixed_shape_resizer { height: 100000 } } } }",
     "larger than 4096"),
    ("model { ssd { num_classes: 5 image_resizer { fixed_shape_resizer {} } "
     "feature_extractor { type: 'ssd_mobilenet_v2' depth_multiplier: nan } } }",
     "expected a finite number, found nan"),
])
def test_hostile_pipeline_configs(tmp_path, text, message):
    from ktp_tflite.train.pipeline_config import load_ssd_config

    path = tmp_path / "pipeline.config"
    path.write_text(text)
    with pytest.raises(PipelineConfigError, match=re.escape(message)):
        load_ssd_config(path)
    (tmp_path / "saved_model").mkdir()
    _fails(["quantize", tmp_path / "saved_model", "--out", tmp_path / "o.tflite", "--mode", "float",
            "--pipeline-config", path], f"{path}", message)
    assert sorted(os.listdir(tmp_path)) == ["pipeline.config", "saved_model"]


def test_sigterm_in_the_real_cli_exits_143_and_cleans_up(tmp_path):
    """`ktpconvert benchmark` killed with SIGTERM while measuring: no report folder, no temporary."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ktp_tflite.convert.cli", "benchmark", str(REFERENCE_TFLITE),
         "--runs", "100000", "--warmup", "0", "--no-op-profile", "--no-gpu-check",
         "--profile", "pixel4", "--report", str(tmp_path / "report")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    line = ""
    while "measuring" not in line and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert os.listdir(tmp_path) == []


def test_scan_on_corrupt_images_found_by_fuzzing(tmp_path):
    """Two inputs the fuzz run found: PIL raised ValueError / SyntaxError past `scan`'s loader."""
    bmp = bytearray(_encoded(Image.new("RGB", (24, 16), (10, 120, 200)), "BMP"))
    bmp[30:34] = struct.pack("<I", 1)  # RLE8 compression on a 24-bit BMP: "unknown raw mode"
    png = bytes.fromhex(  # the fuzz input as found: an IDAT that ends early, IEND cut
        "89504e470d0a1a0a0000000d4948445200000018000000100802000000834628c20000001c4944415478"
        "9c633ca1c1c5400dc0441553460d1a3568d4a0111000c136011ade86338b000000004945")
    for name, data in (("rle.bmp", bytes(bmp)), ("cut.png", png)):
        photo = tmp_path / name
        photo.write_bytes(data)
        with pytest.raises(ImageReadError, match=f"^{re.escape(str(photo))}: cannot decode image"):
            load_image(photo)
        _fails(["scan", photo, "--model", REFERENCE_TFLITE, "--json", tmp_path / "out.json"],
               f"{photo}: cannot decode image")
        assert not (tmp_path / "out.json").exists()


def test_interrupted_data_synth_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    """Issue 16 case 5: the data set folder is built under a temporary name and renamed whole."""
    from ktp_tflite.convert.cli.data import write_synthetic
    from ktp_tflite.train import datasets

    real_write_coco = datasets.write_coco

    def interrupted(dataset, folder):
        real_write_coco(dataset, folder)  # the images are on disk, then the user presses Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "write_coco", interrupted)
    out = tmp_path / "synth"
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(out, 3, 0, (320, 240), "both", 1, False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left either

    monkeypatch.setattr(datasets, "write_coco", real_write_coco)
    paths = write_synthetic(out, 3, 0, (320, 240), "both", 1, False)
    assert sorted(p.relative_to(out).as_posix() for p in paths) == ["coco", "tfrecord/ktp.tfrecord"]
    assert (out / "labels.txt").is_file() and (out / "fields.jsonl").is_file()
    assert len(list((out / "coco").glob("*.jpg"))) == 3


def test_evaluate_json_never_overwrites_the_model_or_the_data(tmp_path):
    """Issue 16 case 1: `evaluate --json m.tflite --force` replaced the model with JSON."""
    import shutil

    model = tmp_path / "m.tflite"
    shutil.copy(REFERENCE_TFLITE, model)
    data = tmp_path / "val"
    data.mkdir()
    (data / "_annotations.coco.json").write_text('{"images": [], "annotations": [], "categories": []}')
    before = _tree(tmp_path)
    _fails(["evaluate", model, "--data", data, "--json", model, "--force"],
           f"{model}: would overwrite the input")
    _fails(["evaluate", model, "--data", data, "--json", data / "_annotations.coco.json", "--force"],
           f"{data / '_annotations.coco.json'}")
    assert _tree(tmp_path) == before


@pytest.fixture(scope="module")
def wrong_label_models(tmp_path_factory):
    """Detectors with metadata: 3 classes, and the five classes with two swapped."""
    import dataclasses

    import ktp_tests_tiny_ssd as tiny_ssd

    from ktp_tflite.convert.metadata import ModelInfo, attach_metadata
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.datasets import write_coco
    from ktp_tflite.train.labels import CLASSES

    folder = tmp_path_factory.mktemp("labels")
    three = convert_model(detect_model_source(tiny_ssd.build_tf1_graph(folder / "three.pb", num_classes=3)),
                          QuantizeConfig(mode="float")).model
    five = convert_model(detect_model_source(tiny_ssd.build_tf1_graph(folder / "five.pb")),
                         QuantizeConfig(mode="float")).model
    swapped = (CLASSES[1], CLASSES[0], *CLASSES[2:])
    paths = {"three": folder / "three.tflite", "swapped": folder / "swapped.tflite"}
    paths["three"].write_bytes(attach_metadata(three, dataclasses.replace(ModelInfo(), labels=CLASSES[:3])))
    paths["swapped"].write_bytes(attach_metadata(five, dataclasses.replace(ModelInfo(), labels=swapped)))
    write_coco(tiny_ssd.oracle_dataset(tiny_ssd.default_oracle()), folder / "val")
    return {**paths, "data": folder / "val"}


def test_scan_and_evaluate_refuse_a_detector_that_is_not_the_five_fields(wrong_label_models, photo):
    """Issue 16 case 6: 3 labels ran with 2 fields silently dropped; a swap passed unnoticed."""
    for name, expected in (("three", "has 3 classes"), ("swapped", "must be exactly")):
        model = wrong_label_models[name]
        _fails(["scan", photo, "--model", model], f"{model}: ", expected)
        _fails(["evaluate", model, "--data", wrong_label_models["data"], "--runtime", "litert"],
               f"{model}: ", expected)
        _fails(["benchmark", model, "--runs", "1", "--no-op-profile", "--no-gpu-check"], f"{model}: ", expected)
