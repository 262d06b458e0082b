"""Verification and `ktpconvert inspect`: outputs bound by the op, dtype report, Task Library."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.train.labels import CLASSES


import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import tensorflow as tf

    from ktp_tflite.convert.metadata import ModelInfo, attach_metadata
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    folder = tmp_path_factory.mktemp("verify")
    graph = tiny_ssd.build_tf1_graph(folder / "oracle.pb", oracle=tiny_ssd.default_oracle())
    source = detect_model_source(graph)
    int8 = attach_metadata(convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model,
                           ModelInfo(version="1"))
    plain_float = convert_model(source, QuantizeConfig(mode="float")).model
    # the TF2 exporters' trap: the same four outputs in another order
    order = ["TFLite_Detection_PostProcess:3", "TFLite_Detection_PostProcess:2",
             "TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1"]
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph), ["normalized_input_image_tensor"], order,
        {"normalized_input_image_tensor": [1, 64, 64, 3]})
    converter.allow_custom_ops = True
    permuted = converter.convert()
    paths = {}
    for name, data in (("int8", int8), ("float", plain_float), ("permuted", permuted)):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def test_outputs_are_bound_through_the_postprocess_op(models):
    from ktp_tflite.convert.detector import load_detector
    from ktp_tflite.convert.verify import inspect_model

    report = inspect_model(models["permuted"].read_bytes())
    assert report.output_order == ("count", "scores", "boxes", "classes")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    straight = load_detector(models["float"]).detect(image)
    permuted = load_detector(models["permuted"]).detect(image)
    np.testing.assert_array_equal(permuted.classes, straight.classes)
    np.testing.assert_allclose(permuted.boxes, straight.boxes)
    assert sorted(straight.classes[:5].tolist()) == [0, 1, 2, 3, 4]


def test_check_model_flags_float_ops_in_int8_and_wrong_input(models):
    from ktp_tflite.convert.verify import check_model, inspect_model

    report = inspect_model(models["float"].read_bytes())
    problems = check_model(report, mode="int8", input_type="uint8", expect_metadata=True)
    text = " ".join(problems)
    assert "input dtype is float32, asked uint8" in text
    assert "compute in float in an int8 model" in text and "CONV_2D(float32" in text
    assert "no TFLite metadata" in text
    good = inspect_model(models["int8"].read_bytes())
    assert check_model(good, mode="int8", input_type="uint8", input_size=(64, 64),
                       expect_metadata=True) == []
    assert "expected [1, 32, 32, 3]" in " ".join(check_model(good, input_size=(32, 32)))


def test_inspect_command_prints_facts_and_task_library(models):
    result = CliRunner().invoke(main, ["inspect", str(models["int8"])])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["input"]["dtype"] == "uint8" and facts["input"]["shape"] == [1, 64, 64, 3]
    assert [facts["outputs"][r]["dtype"] for r in ("boxes", "classes", "scores", "count")] == ["float32"] * 4
    assert facts["op_counts"]["TFLite_Detection_PostProcess"] == 1
    assert facts["float_compute_ops"] == []
    assert {"op": "LOGISTIC(int8)->(int8)", "count": 1} in facts["op_dtypes"]
    assert facts["postprocess"]["num_classes"] == 5 and facts["postprocess"]["use_regular_nms"] is False
    assert facts["metadata"]["labels"] == list(CLASSES)
    task = facts["task_library"]
    # the oracle model finds one box of each class: the Task Library must report all five
    assert set(task["task_library_per_class"]) == set(CLASSES)
    assert task["num_detections"] == 10
    assert task["task_library_per_class"] == task["interpreter_per_class"]
    assert facts["problems"] == []


def test_inspect_without_metadata_skips_task_library(models):
    result = CliRunner().invoke(main, ["inspect", str(models["float"])])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["metadata"] is None
    assert facts["task_library"].startswith("skipped")


def test_inspect_refuses_non_detectors(tmp_path):
    import tensorflow as tf

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"0123456789" * 10)
    result = CliRunner().invoke(main, ["inspect", str(junk)])
    assert result.exit_code == 1 and "TFL3" in result.output

    inputs = tf.keras.Input((8, 8, 3), batch_size=1)
    plain = tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 3)(inputs))
    classifier = tmp_path / "plain.tflite"
    classifier.write_bytes(tf.lite.TFLiteConverter.from_keras_model(plain).convert())
    result = CliRunner().invoke(main, ["inspect", str(classifier)])
    assert result.exit_code == 1
    assert "0 TFLite_Detection_PostProcess ops" in result.output and "exactly 4 outputs" in result.output


def test_task_library_probe_reports_errors_as_data(tmp_path):
    from ktp_tflite.convert.verify import VerificationError, run_task_library

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    with pytest.raises(VerificationError, match="task-library cannot use the model"):
        run_task_library(broken, [np.zeros((8, 8, 3), np.uint8)])
