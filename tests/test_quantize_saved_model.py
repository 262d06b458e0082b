"""`ktpconvert quantize` on a SavedModel from `ktp_tflite.train.export` (tiny preset, random init)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.train.labels import CLASSES


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    import tensorflow as tf

    from ktp_tflite.train.config import preset
    from ktp_tflite.train.export import ExportConfig, save_signatures, serving_module
    from ktp_tflite.train.model import build_model

    config = preset("tiny").model
    module = serving_module(build_model(config), config, ExportConfig())
    folder = tmp_path_factory.mktemp("export") / "saved_model"
    tf.saved_model.save(module, str(folder), signatures=save_signatures(module))
    return folder


def test_saved_model_is_detected(saved_model):
    from ktp_tflite.convert.model_source import detect_model_source

    source = detect_model_source(saved_model)
    assert source.kind == "saved_model"
    assert (source.height, source.width, source.num_classes) == (96, 96, 5)
    assert source.postprocess["use_regular_nms"] is False
    assert source.postprocess["max_detections"] == 10


def test_saved_model_quantizes_to_full_int8(saved_model, tmp_path):
    from ktp_tflite.convert.metadata import read_metadata
    from ktp_tflite.convert.verify import inspect_model

    out = tmp_path / "tiny_int8.tflite"
    result = CliRunner().invoke(main, ["quantize", str(saved_model), "--representative", "synth:4",
                                       "--num-samples", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    report = inspect_model(out.read_bytes())
    assert report.input.dtype == "uint8" and report.input.shape == (1, 96, 96, 3)
    assert report.float_compute_ops == []
    assert report.op_counts["TFLite_Detection_PostProcess"] == 1
    assert report.op_counts["DEPTHWISE_CONV_2D"] > 0
    assert {t.dtype for t in report.outputs.values()} == {"float32"}
    assert report.outputs["boxes"].shape == (1, 10, 4)
    meta = read_metadata(out.read_bytes())
    assert meta["labels"] == list(CLASSES)
    assert summary["task_library"]["num_detections"] > 0
    assert summary["task_library"]["problems"] == []


def test_saved_model_without_postprocess(tmp_path):
    import tensorflow as tf

    class Raw(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 32, 32, 3], tf.float32)])
        def serving(self, image):
            pooled = tf.reduce_mean(image, axis=[1, 2])
            return {"box_encodings": tf.tile(pooled[:, None, :1], [1, 4, 4]),
                    "class_predictions": tf.tile(pooled[:, None, :], [1, 4, 2])}

    module = Raw()
    folder = tmp_path / "raw_saved_model"
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serving})
    result = CliRunner().invoke(main, ["quantize", str(folder), "--mode", "float",
                                       "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1
    assert "exactly 4 outputs" in result.output and "export_tflite_graph_tf2.py" in result.output
