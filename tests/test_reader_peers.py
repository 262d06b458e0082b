"""The peer comparison (benchmarks/tools/reader_peers.py): crops, scoring and outputs on 2 rendered cards.

The peers are optional: their parts run only where the engine is installed
in this interpreter (CI has neither); the crops, the reader's path and the
outputs always run.
"""

import configparser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ktp_tflite.benchmarks.tools import reader_peers
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.reader_crops import CropConfig, render_value_crops
from ktp_tflite.train.synth import TRAIN, render_card

ROOT = Path(__file__).resolve().parents[1]
SEED = 4100


def _has_tesseract() -> bool:
    if shutil.which("tesseract") is None:
        return False
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False).stdout
    return reader_peers.TESSERACT_LANGUAGE in langs.split()


def _has_rapidocr() -> bool:
    import importlib.util

    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


@pytest.fixture(scope="module")
def tiny_reader(tmp_path_factory):
    from ktp_tflite.train.reader_export import float_tflite
    from ktp_tflite.train.reader_model import ReaderConfig, build_reader

    config = ReaderConfig(channels=(8, 8, 8, 12, 16), head_channels=16, head_blocks=1)
    path = tmp_path_factory.mktemp("reader") / "reader.tflite"
    path.write_bytes(float_tflite(build_reader(config), config))
    return path


def test_crops_use_the_project_geometry_at_native_resolution():
    texts, crops = reader_peers.card_crops(SEED, 0, TRAIN, CropConfig())
    card = render_card(SEED, 0, TRAIN)
    assert texts == {f: card.texts[f] for f in CLASSES}
    assert set(crops) == set(reader_peers.VARIANTS) and all(len(v) == len(CLASSES) for v in crops.values())
    reference = render_value_crops(SEED, 0, TRAIN)  # rectified first, then box, CLASSES order
    for ours, theirs in zip(crops["box32"], reference[len(CLASSES):], strict=True):
        assert ours.field == theirs.field and np.array_equal(ours.pixels, theirs.pixels)  # the reader's input
    boxes = {b.label: b.to_pixels(TRAIN.width, TRAIN.height) for b in card.boxes}
    for margin in reader_peers.MARGINS:
        tag = f"m{round(margin * 100)}"
        for column, field in enumerate(CLASSES):
            line = reference[column].text_height  # the rectified crop's line height
            rectified = crops[f"rect_native_{tag}"][column]
            assert rectified.dtype == np.uint8 and rectified.shape[2] == 3
            assert rectified.shape[0] == max(8, round(line * (1 + 2 * margin)))
            x0, y0, x1, y1 = boxes[field]
            box = crops[f"box_native_{tag}"][column]
            native = (y1 - y0) * (1 + 2 * margin)
            assert box.shape[0] == max(8, round(native))
            if box.shape[0] > 8:  # at frame resolution (up to rounding the height): box and margins, unsqueezed
                assert abs(box.shape[1] - (x1 - x0 + 2 * margin * (y1 - y0)) * box.shape[0] / native) <= 1


def test_normalise_snap_and_score_count_exact_fields_and_cards():
    assert reader_peers.normalise("  budi\t santoso : ", "nama") == "BUDI SANTOSO"
    assert reader_peers.normalise(": 3201 2345-6789 0123", "nik") == "3201234567890123"
    assert reader_peers.snap("LAKI LAK", "jenis_kelamin") == "LAKI-LAKI"
    assert reader_peers.snap("W", "kewarganegaraan") == "WNI" and reader_peers.snap("X Y", "nama") == "X Y"
    assert reader_peers.snap("", "jenis_kelamin") == ""  # nothing read: no guess
    truths = [dict(zip(CLASSES, ("1234567890123456", "ANI", "PEREMPUAN", "KAWIN", "WNI")))] * 2
    texts = ["1234 5678 9012 3456", "ani", "Perempuan", "KAWIN", "WNI",  # all five exact
             "1234567890123450", "ANI", "PEREMPUAM", "KAWIN", "wni"]  # NIK and gender wrong
    as_read = reader_peers.score(truths, texts, [0.002] * 10, lenient=False)
    assert as_read["fields"] == {"nik": 0.5, "nama": 1.0, "jenis_kelamin": 0.5, "status_perkawinan": 1.0,
                                 "kewarganegaraan": 1.0}
    assert as_read["all_five"] == 0.5 and as_read["crops"] == 10 and as_read["ms_per_field"] == pytest.approx(2.0)
    lenient = reader_peers.score(truths, texts, [0.002] * 10, lenient=True)
    assert lenient["fields"]["jenis_kelamin"] == 1.0 and lenient["fields"]["nik"] == 0.5
    assert lenient["all_five"] == 0.5
    spaced = [dict(zip(CLASSES, ("1", "ANI PUTRI", "PEREMPUAN", "BELUM KAWIN", "WNI")))]
    dropped = ["1", "ANIPUTRI", "PEREMPUAN", "BELUMKAWIN", "WNI"]  # an engine that drops spaces
    assert reader_peers.score(spaced, dropped, [0.001] * 5, lenient=False)["all_five"] == 0.0
    assert reader_peers.score(spaced, dropped, [0.001] * 5, lenient=True)["all_five"] == 1.0


@pytest.mark.skipif(not _has_tesseract(), reason="tesseract with 'ind' data is not installed")
def test_tesseract_worker_reads_each_page_of_a_batch():
    font = ImageFont.load_default(size=36)

    def line(text):
        image = Image.new("RGB", (24 + 24 * len(text), 56), "white")
        ImageDraw.Draw(image).text((12, 8), text, fill="black", font=font)
        return np.asarray(image)

    images = [line("31"), np.full((56, 120, 3), 255, np.uint8), line("4709")]
    texts, seconds = reader_peers.run_peer(sys.executable, "tesseract-line", images)
    assert [reader_peers.normalise(t, "nik") for t in texts] == ["31", "", "4709"]
    assert len(seconds) == 3 and all(s > 0 for s in seconds)


def test_benchmark_writes_rates_of_every_engine_and_no_text(tiny_reader, tmp_path, capsys):
    engines = []
    if _has_tesseract():
        engines += ["tesseract", "tesseract-line"]
    if _has_rapidocr():
        engines += ["rapidocr-rec"]
    variants = ["box32", "rect_native_m50"]
    argv = ["--cards", "2", "--seed", str(SEED), "--reader", str(tiny_reader), "--engines", ",".join(engines),
            "--variants", ",".join(variants), "--out", str(tmp_path / "out")]
    assert reader_peers.main(argv) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "reader_peers.json").read_text())
    markdown = (tmp_path / "out" / "reader_peers.md").read_text()
    assert "| engine (crop variant) | NIK | Nama | Jenis Kelamin |" in markdown and markdown.strip() in printed
    assert {"date", "machine", "cards", "seed", "frame", "fields", "variants", "normalisation", "timing",
            "engines", "headline", "results", "command"} <= set(data)
    assert data["cards"] == 2 and data["fields"] == list(CLASSES) and data["machine"]["cpu"]
    assert [(r["engine"], r["variant"]) for r in data["results"]] == (
        [("reader", "box32"), ("reader", "box32_deskew")] + [(e, v) for e in engines for v in variants])
    for row in data["results"]:
        for key in ("as_read", "lenient"):
            s = row[key]
            assert s["crops"] == 10 and s["ms_per_field"] > 0
            assert all(0.0 <= v <= 1.0 for v in [*s["fields"].values(), s["all_five"]])
    reader = data["results"][0]
    for key in ("as_read", "lenient"):  # decode_field's vocabulary has one value
        assert reader[key]["fields"]["kewarganegaraan"] == 1.0
    assert set(data["headline"]["as_read"]) == {"reader", *engines}
    assert data["engines"]["reader"]["input"] == [1, 32, 256, 3]
    # privacy: no name or NIK of the cards in any output
    for index in range(2):
        card = render_card(SEED, index, TRAIN)
        for field in ("nik", "nama"):
            for output in (printed, markdown, json.dumps(data)):
                assert card.texts[field] not in output
    # outputs are not replaced without --force
    assert reader_peers.main(argv) == 1
    assert "pass --force" in capsys.readouterr().err


def test_without_any_engine_or_reader_it_says_how_to_install_and_fails(tmp_path, capsys):
    argv = ["--cards", "1", "--seed", "1", "--engines", "rapidocr,tesseract", "--peers-python",
            str(tmp_path / "no-python"), "--out", str(tmp_path / "out")]
    assert reader_peers.main(argv) == 1
    err = capsys.readouterr().err
    assert "Error: no engine can run" in err
    assert reader_peers.INSTALL["tesseract"] in err and reader_peers.RAPIDOCR_REQUIREMENT in err
    assert not (tmp_path / "out" / "reader_peers.json").exists()


def test_setup_cfg_extra_pins_the_rapidocr_the_script_names():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    peers = [line.strip() for line in config["options.extras_require"]["peers"].splitlines() if line.strip()]
    assert reader_peers.RAPIDOCR_REQUIREMENT in peers
