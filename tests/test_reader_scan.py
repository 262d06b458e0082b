"""A whole scan: `scan --reader`, `evaluate-scan`, fields.jsonl, on rendered photos and the bundled models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from ktp_tflite.convert.cli import main
from ktp_tflite.train.field_texts import (
    FieldTextsError,
    find_field_texts,
    read_field_texts,
)
from ktp_tflite.train.labels import CLASSES

REFERENCE = Path(__file__).resolve().parents[1] / "train" / "reference"
DETECTOR = REFERENCE / "model_float.tflite"  # no metadata: LiteRT, labels in CLASSES order
READER = REFERENCE / "reader" / "ktp_reader_int8.tflite"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scan") / "val"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--count", "4", "--seed", "4100",
                                       "--format", "coco", "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_field_texts_are_read_and_checked(photos, tmp_path):
    texts = read_field_texts(find_field_texts(photos / "_annotations.coco.json"))  # beside the COCO file
    assert len(texts) == 4 and all(set(values) == set(CLASSES) for values in texts.values())
    assert all(len(values["nik"]) == 16 and values["nik"].isdigit() for values in texts.values())
    bad = tmp_path / "fields.jsonl"
    for text, message in [('{"image_id": "a", "nik": "1"}\n{"image_id": "a"}\n', "line 2: image id 'a' is given twice"),
                          ('{"image_id": "a", "nik": 12}\n', "line 1: nik must be text"),
                          ('[1, 2]\n', "line 1 must be an object"),
                          ('{"image_id": "a"\n', "line 1 is not JSON")]:
        bad.write_text(text)
        with pytest.raises(FieldTextsError, match=message):
            read_field_texts(bad)
    with pytest.raises(FieldTextsError, match="no fields.jsonl"):
        find_field_texts(tmp_path / "a" / "b" / "x.json")


@pytest.mark.skipif(not READER.is_file(), reason="the bundled reader is not in this checkout")
def test_scan_with_the_bundled_reader_reads_rendered_cards(photos):
    """The bundled reader's level (MODEL_CARD.md): the closed-vocabulary fields nearly always, NIKs mostly."""
    texts = read_field_texts(photos / "fields.jsonl")
    exact = dict.fromkeys(CLASSES, 0)
    for image_id, printed in sorted(texts.items()):
        result = CliRunner().invoke(main, ["scan", str(photos / image_id), "--model", str(DETECTOR),
                                           "--reader", str(READER)])
        assert result.exit_code == 0, result.output
        read = json.loads(result.stdout)["text"]
        assert read["missing"] == [] and set(read["fields"]) == set(CLASSES)
        for field, reading in read["fields"].items():
            exact[field] += reading["text"] == printed[field]
            assert 0.0 < reading["confidence"] <= 1.0 and reading["text_height"] > 2
        assert set(read["fields"]["nik"]["text"]) <= set("0123456789")
        check = read["nik_check"]
        if read["fields"]["nik"]["text"] == printed["nik"]:  # a NIK read right says who the card is for
            assert check["valid"] is True and check["gender_agrees"] is True
            assert check["gender"] == printed["jenis_kelamin"]  # the NIK (day + 40 for women) agrees with the card
    assert exact["status_perkawinan"] >= 3 and exact["kewarganegaraan"] == 4 and exact["jenis_kelamin"] >= 3
    assert exact["nik"] >= 2, exact


@pytest.mark.skipif(not READER.is_file(), reason="the bundled reader is not in this checkout")
def test_evaluate_scan_reports_fields_and_cards_read(photos, tmp_path):
    out = tmp_path / "scan.json"
    result = CliRunner().invoke(main, ["evaluate-scan", "--model", str(DETECTOR), "--reader", str(READER),
                                       "--data", str(photos), "--runtime", "litert", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["photos"] == 4 and report["reader"]["precision"] == "int8"
    texts = read_field_texts(photos / "fields.jsonl")
    for source in ("detector", "ground_truth"):
        part = report["sources"][source]
        assert {k: v["crops"] for k, v in part["fields"].items()} == {**dict.fromkeys(CLASSES, 4), "all": 20}
        assert sum(part["cards"][k] for k in part["cards"] if k != "all") == part["cards"]["all"] == 4
        for field in CLASSES:
            assert sum(cell["values"] for cell in part["by_text_height"][field].values()) == 4
    truth = report["sources"]["ground_truth"]
    assert truth["fields"]["all"]["exact"] >= 0.7 and truth["fields"]["jenis_kelamin"]["exact"] == 1.0
    assert truth["nik_valid"] >= 0.5 and report["reader_ms_per_field"] > 0
    # shares and counts only: no printed value reaches the report
    dumped = out.read_text()
    assert not any(value in dumped for values in texts.values() for value in (values["nik"], values["nama"]))
    assert "cards read all (4)" in result.output
    missing = tmp_path / "fields.jsonl"
    missing.write_text("")
    refused = CliRunner().invoke(main, ["evaluate-scan", "--model", str(DETECTOR), "--reader", str(READER),
                                        "--data", str(photos), "--texts", str(missing), "--runtime", "litert"])
    assert refused.exit_code == 1 and "have no printed texts" in refused.output and "Traceback" not in refused.output


def test_scan_refuses_a_reader_that_is_not_one(photos):
    image = next(photos.glob("*.jpg"))
    result = CliRunner().invoke(main, ["scan", str(image), "--model", str(DETECTOR), "--reader", str(DETECTOR)])
    assert result.exit_code == 1 and "not a field reader" in result.output and "Traceback" not in result.output
