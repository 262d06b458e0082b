"""TFLite metadata: written with tflite-support's writer, read back, checked against a golden JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.convert.metadata import (
    CATEGORY,
    LOCATION,
    NUMBER_OF_DETECTIONS,
    SCORE,
    MetadataError,
    ModelInfo,
    attach_metadata,
    read_labels,
    read_metadata,
)
from ktp_tflite.train.labels import CLASSES

GOLDEN = Path(__file__).parent / "data" / "metadata_golden.json"


import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    folder = tmp_path_factory.mktemp("metadata")
    source = detect_model_source(tiny_ssd.build_tf1_graph(folder / "tflite_graph.pb"))
    three = detect_model_source(tiny_ssd.build_tf1_graph(folder / "three.pb", num_classes=3))
    return {
        "int8": convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model,
        "float": convert_model(source, QuantizeConfig(mode="float")).model,
        "three": convert_model(three, QuantizeConfig(mode="float")).model,
        "folder": folder,
    }


INFO = ModelInfo(version="0.1.0")  # fixed, so the golden file does not follow the package version


def test_metadata_matches_golden_json(models):
    meta = read_metadata(attach_metadata(models["int8"], INFO))
    assert meta == json.loads(GOLDEN.read_text())


def test_output_names_and_labels(models):
    meta = read_metadata(attach_metadata(models["int8"], INFO))
    names = [t["name"] for t in meta["subgraph_metadata"][0]["output_tensor_metadata"]]
    assert names == [LOCATION, CATEGORY, SCORE, NUMBER_OF_DETECTIONS]
    assert meta["labels"] == list(CLASSES)
    assert meta["packed_files"] == ["labels.txt"]
    assert (meta["name"], meta["author"], meta["license"]) == (
        INFO.name, INFO.author, INFO.license)


def test_custom_labels_and_normalization(models):
    info = ModelInfo(version="2", labels=("a", "b", "c"), input_mean=0.0, input_std=255.0,
                     name="three classes")
    meta = read_metadata(attach_metadata(models["three"], info))
    assert meta["labels"] == ["a", "b", "c"]
    assert meta["name"] == "three classes"
    norm = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]["options"]
    assert norm == {"mean": [0.0], "std": [255.0]}


def test_label_count_must_match_num_classes(models):
    with pytest.raises(MetadataError, match="3 classes but 5 labels"):
        attach_metadata(models["three"], INFO)


def test_model_without_postprocess_is_refused(tmp_path):
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 3), batch_size=1)
    plain = tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 3)(inputs))
    model = tf.lite.TFLiteConverter.from_keras_model(plain).convert()
    with pytest.raises(MetadataError, match="exactly 4 outputs"):
        attach_metadata(model, INFO)


def test_read_labels(tmp_path):
    good = tmp_path / "labels.txt"
    good.write_text("nik\nnama\n\n")
    assert read_labels(good) == ("nik", "nama")
    for text, message in (("", "empty"), ("nik\n\nnama\n", "blank line"), ("a\na\n", "duplicate")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(MetadataError, match=message):
            read_labels(bad)


def test_metadata_command_on_float_model(models, tmp_path):
    source = tmp_path / "float.tflite"
    source.write_bytes(models["float"])
    out = tmp_path / "float_md.tflite"
    result = CliRunner().invoke(main, ["metadata", str(source), "--out", str(out),
                                       "--name", "KTP float", "--model-version", "9"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == list(CLASSES)
    assert summary["task_library"]["num_detections"] > 0  # float input + normalization metadata
    meta = read_metadata(out.read_bytes())
    assert (meta["name"], meta["version"]) == ("KTP float", "9")
    assert source.read_bytes() == models["float"]  # input untouched


def test_metadata_command_bad_labels_and_output(models, tmp_path):
    source = tmp_path / "float.tflite"
    source.write_bytes(models["float"])
    labels = tmp_path / "labels.txt"
    labels.write_text("nik\nnama\n")
    result = CliRunner().invoke(main, ["metadata", str(source), "--labels", str(labels),
                                       "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1 and "5 classes but 2 labels" in result.output
    assert not (tmp_path / "o.tflite").exists()
    result = CliRunner().invoke(main, ["metadata", str(source), "--out", str(source)])
    assert result.exit_code == 1 and "would overwrite the input" in result.output
    result = CliRunner().invoke(main, ["metadata", str(source), "--out",
                                       str(tmp_path / "missing" / "o.tflite")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_metadata_on_a_model_with_metadata_replaces_it(models):
    """Issue 16: `ktpconvert metadata` on the main job's own output failed ("already been packed")."""
    import dataclasses

    once = attach_metadata(models["int8"], INFO)
    again = attach_metadata(once, dataclasses.replace(INFO, name="renamed"))
    meta = read_metadata(again)
    assert meta["name"] == "renamed"
    assert meta["labels"] == list(CLASSES) and meta["packed_files"] == ["labels.txt"]
    assert {k: v for k, v in meta.items() if k != "name"} == {
        k: v for k, v in read_metadata(once).items() if k != "name"}
