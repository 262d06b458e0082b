"""`ktpconvert data ...` through the real CLI."""

import contextlib
import json

import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main


def test_synth_writes_both_formats_and_inspect_reads_them(tmp_path):
    out = tmp_path / "synth"
    result = CliRunner().invoke(
        main, ["data", "synth", "--out", str(out), "--count", "6", "--seed", "4", "--size", "320x240", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "tfrecord" / "ktp.tfrecord").exists() and (out / "tfrecord" / "label_map.pbtxt").exists()
    assert (out / "coco" / "_annotations.coco.json").exists()
    lines = (out / "fields.jsonl").read_text().splitlines()
    assert len(lines) == 6 and set(json.loads(lines[0])) == {
        "image_id", "nik", "nama", "jenis_kelamin", "status_perkawinan", "kewarganegaraan"
    }
    for folder in ("tfrecord", "coco"):
        result = CliRunner().invoke(main, ["data", "inspect", str(out / folder), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["images"] == 6
        assert {name: c["boxes"] for name, c in report["classes"].items()} == {
            "nik": 6, "nama": 6, "jenis_kelamin": 6, "status_perkawinan": 6, "kewarganegaraan": 6
        }
        # the report never carries field text
        nik = json.loads(lines[0])["nik"]
        assert nik not in result.output
    # a second run into the same folder refuses without --force
    again = CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--count", "1"])
    assert again.exit_code == 1 and "not empty" in again.output


def test_synth_stress_preset_renders_a_full_data_set(tmp_path):
    out = tmp_path / "stress"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--count", "3", "--seed", "5",
                                       "--preset", "stress", "--format", "coco", "--size", "320x240", "--workers", "1"])
    assert result.exit_code == 0, result.output
    coco = json.loads((out / "_annotations.coco.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["annotations"]) == 15
    train = tmp_path / "train"
    CliRunner().invoke(main, ["data", "synth", "--out", str(train), "--count", "3", "--seed", "5",
                              "--format", "coco", "--size", "320x240", "--workers", "1"])
    # same identities (the seed), other photos (the recipe)
    assert (out / "fields.jsonl").read_text() == (train / "fields.jsonl").read_text()
    assert coco["annotations"] != json.loads((train / "_annotations.coco.json").read_text())["annotations"]
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "x"), "--count", "1",
                                       "--preset", "hard"])
    assert result.exit_code == 2 and "hard" in result.output


def test_synth_missing_font_is_an_error_naming_the_package(tmp_path, monkeypatch):
    from ktp_tflite.train import synth

    for cache in (synth._font, synth._unhinted_font_file, synth._text_mask):
        cache.cache_clear()
    monkeypatch.setattr(synth, "_FONT_DIRS", tuple(d for d in synth._FONT_DIRS if d.name != "freefont"))
    try:
        result = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "s"), "--count", "1",
                                           "--preset", "stress"])
    finally:
        for cache in (synth._font, synth._unhinted_font_file, synth._text_mask):
            cache.cache_clear()
    assert result.exit_code == 1 and "apt-get install fonts-freefont-ttf" in result.output
    assert "Traceback" not in result.output


def test_write_synthetic_is_the_command_as_a_library_call(tmp_path):
    from ktp_tflite.train.synth_writer import SyntheticDataError, write_synthetic

    shown = []

    class Bar:
        def update(self, n):
            shown.append(n)

    @contextlib.contextmanager
    def progress(length, label):
        shown.append((length, label))
        yield Bar()

    library = tmp_path / "library"
    paths = write_synthetic(library, 2, seed=1, size=(320, 240), fmt="coco", progress=progress)
    assert paths == [library]
    assert shown[0] == (2, "rendering 2 train cards") and sum(shown[1:]) == 2
    command = tmp_path / "command"
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(command), "--count", "2", "--seed", "1",
                                       "--format", "coco", "--size", "320x240", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(command)]
    files = sorted(p.relative_to(library) for p in library.rglob("*"))
    assert files == sorted(p.relative_to(command) for p in command.rglob("*"))
    assert len(files) == 5  # 2 photos, the COCO json, fields.jsonl, labels.txt
    assert all((library / f).read_bytes() == (command / f).read_bytes() for f in files)

    with pytest.raises(SyntheticDataError, match="unknown data set format 'voc'; use one of tfrecord"):
        write_synthetic(tmp_path / "x", 1, fmt="voc")
    with pytest.raises(SyntheticDataError, match="count must be at least 1, got 0"):
        write_synthetic(tmp_path / "x", 0)
    assert not (tmp_path / "x").exists()


def test_inspect_lists_problems_and_exits_1(tmp_path):
    out = tmp_path / "s"
    CliRunner().invoke(main, ["data", "synth", "--out", str(out), "--count", "3", "--format", "coco",
                              "--size", "320x240", "--workers", "1"])
    coco_path = out / "_annotations.coco.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"][0]["bbox"] = [1, 1, 0, 0]
    coco_path.write_text(json.dumps(coco))
    result = CliRunner().invoke(main, ["data", "inspect", str(out)])
    assert result.exit_code == 1
    assert "zero area" in result.output and "problems (1)" in result.output


def test_bad_size_and_missing_path_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["data", "synth", "--out", str(tmp_path / "x"), "--count", "1", "--size", "big"])
    assert result.exit_code == 2 and "WxH" in result.output
    result = CliRunner().invoke(main, ["data", "inspect", str(tmp_path / "missing")])
    assert result.exit_code == 2


def test_download_needs_the_api_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ROBOFLOW_API_KEY", raising=False)
    result = CliRunner().invoke(
        main, ["data", "download", "--roboflow", "ktp-2wl90/final-ktp-od-v2/1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "ROBOFLOW_API_KEY is not set" in result.output
    result = CliRunner().invoke(main, ["data", "download", "--roboflow", "just-a-name", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "WORKSPACE/PROJECT/VERSION" in result.output


def test_pipeline_data_stage_and_stage_validation(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["pipeline", "--out", str(out), "--train-count", "3", "--val-count", "2", "--workers", "1",
               "--stages", "data"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "data" / "train" / "tfrecord" / "ktp.tfrecord").exists()
    assert "images: 2" in result.output and "problems: none" in result.output
    result = CliRunner().invoke(main, ["pipeline", "--out", str(out), "--stages", "data,train-on-gpu"])
    assert result.exit_code == 2 and "train-on-gpu" in result.output
