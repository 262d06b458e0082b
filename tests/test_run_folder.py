"""The run-folder module: the layout a real training writes, the checks, the bundled export folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ktp_tflite.train import config as config_lib
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.run_folder import ExportFolder, RunDirError, RunFolder, saved_model_variables

REFERENCE = Path(__file__).resolve().parents[1] / "train" / "reference"


def test_a_training_writes_exactly_the_files_the_run_folder_names(tmp_path, small_synth):
    from ktp_tflite.train.trainer import train

    run = RunFolder(tmp_path / "run")
    config = config_lib.with_overrides(config_lib.preset("tiny"), steps=2, checkpoint_every=1)
    result = train(config, small_synth, str(run.path), val_data=small_synth, log=lambda _: None)

    # The layout on disk is the one existing runs have (spelled out here, not taken from the module).
    assert sorted(p.name for p in run.path.iterdir()) == [
        "checkpoints", "config.json", "eval_history.jsonl", "history.jsonl", "metrics.json", "tensorboard"]
    assert sorted(p.name for p in (run.path / "tensorboard").iterdir()) == ["train", "val"]
    named = [run.config, run.checkpoints, run.eval_history, run.history, run.metrics,
             run.tensorboard("train").parent]
    assert sorted(p.relative_to(run.path).as_posix() for p in named) == sorted(
        p.name for p in run.path.iterdir())
    assert run.tensorboard("val") == run.path / "tensorboard" / "val"
    assert not run.tf1_import.exists()

    assert run.check() is run
    assert run.read_config() == config
    newest = run.latest_checkpoint()
    assert newest == str(run.path / "checkpoints" / "ckpt-2") == run.require_checkpoint()
    assert [r["step"] for r in run.history_records()] == [2]
    assert run.history_records()[0]["loss"] == pytest.approx(result.final_loss)
    metrics = run.read_metrics()
    assert metrics["step"] == result.metrics["step"] == 2
    assert metrics["map50"] == result.metrics["map50"] == run.eval_records()[-1]["map50"]


def test_a_folder_that_is_not_a_run_says_so_and_what_to_pass(tmp_path):
    empty = RunFolder(tmp_path / "photos")
    empty.path.mkdir()
    with pytest.raises(RunDirError) as info:
        empty.check()
    message = str(info.value)
    assert message.startswith(f"{empty.path}: no config.json") and "ktpconvert train" in message
    for call in (empty.read_config, empty.require_checkpoint):
        with pytest.raises(RunDirError, match=r"no config\.json"):
            call()
    assert empty.latest_checkpoint() is None
    assert empty.history_records() == [] and empty.eval_records() == []
    with pytest.raises(RunDirError, match=r"no metrics\.json"):
        empty.read_metrics()

    empty.config.write_text(config_lib.preset("tiny").to_json())
    with pytest.raises(RunDirError, match=r"no checkpoint in checkpoints/; train first"):
        empty.require_checkpoint()
    assert RunFolder(str(empty.path)) == empty  # a str path is taken as a Path
    assert sorted(p.name for p in empty.path.iterdir()) == ["config.json"]  # nothing else written


def test_export_of_a_folder_that_is_not_a_run_is_one_error_line(tmp_path):
    from click.testing import CliRunner

    from ktp_tflite.convert.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    result = CliRunner().invoke(main, ["export", str(folder), "--out", str(tmp_path / "exp")])
    assert result.exit_code == 1, result.output
    assert f"Error: {folder}: no config.json" in result.output
    assert "Traceback" not in result.output and "exporting" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_the_bundled_reference_is_an_export_folder_and_not_a_run_folder():
    export = ExportFolder(REFERENCE)
    assert (export.saved_model / "saved_model.pb").is_file()
    assert Path(f"{saved_model_variables(export.saved_model)}.index").is_file()
    assert export.float_tflite.read_bytes()[4:8] == b"TFL3"
    assert export.labels.read_text().splitlines() == list(CLASSES)
    assert export.summary.name == "export.json"
    # it keeps the reference run's curves, read as a run folder reads them
    history = RunFolder(REFERENCE).history_records()
    assert history and all("loss" in record for record in history)
    assert [r["step"] for r in history] == sorted(r["step"] for r in history)
    assert json.loads((REFERENCE / "eval_history.jsonl").read_text().splitlines()[-1]) == \
        RunFolder(REFERENCE).eval_records()[-1]
    with pytest.raises(RunDirError, match="not a run folder"):
        RunFolder(REFERENCE).check()
