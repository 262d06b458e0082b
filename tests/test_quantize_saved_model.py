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


@pytest.fixture(scope="module")
def spread_saved_model(tmp_path_factory) -> Path:
    """The tiny export with head biases spread like a trained model's outputs.

    Random-init features nearly vanish, so the heads' outputs would be their
    biases: box codes ~N(0, 20) and logits ~N(0, 30) per anchor slot, wide
    ranges of which only the top-scored anchors matter to the post-process.
    """
    import numpy as np
    import tensorflow as tf

    from ktp_tflite.train.config import preset
    from ktp_tflite.train.export import ExportConfig, save_signatures, serving_module
    from ktp_tflite.train.model import build_model

    config = preset("tiny").model
    model = build_model(config)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        for part, spread in (("BoxEncodingPredictor", 20.0), ("ClassPredictor", 30.0)):
            if part in layer.name:
                kernel, bias = layer.get_weights()
                layer.set_weights([kernel, rng.normal(0.0, spread, bias.shape).astype(np.float32)])
    module = serving_module(model, config, ExportConfig())
    folder = tmp_path_factory.mktemp("spread") / "saved_model"
    tf.saved_model.save(module, str(folder), signatures=save_signatures(module))
    return folder


def test_refined_ranges_bound_the_post_process_inputs(spread_saved_model):
    """Box codes share one refined scale end to end; score logits stop at the sigmoid's limit."""
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.convert.ranges import LOGIT_LIMIT
    from ktp_tflite.convert.representative import calibration_inputs, load_representative
    from ktp_tflite.convert.tflite_model import parse_model

    source = detect_model_source(spread_saved_model)
    data = calibration_inputs(load_representative("synth:3", 3, 0), 96, 96, progress=False,
                              cache={})
    minmax = convert_model(source, QuantizeConfig(ranges="minmax"), data)
    refined = convert_model(source, QuantizeConfig(), data)
    assert minmax.range_changes == ()
    rules = {c.rule for c in refined.range_changes}
    assert rules == {"mse", "box-codes", "logits"}
    for change in refined.range_changes:
        low, high = change.chosen
        assert low <= 0.0 <= high and high > low
        if change.rule != "box-codes":  # those come from the post-process input's values
            # Inside the recorded range widened to hold 0 (int8 needs an exact zero).
            assert min(change.recorded[0], 0.0) <= low + 1e-6
            assert high <= max(change.recorded[1], 0.0) + 1e-6
        if change.rule == "logits":
            assert -LOGIT_LIMIT - 1e-6 <= low and high <= LOGIT_LIMIT + 1e-6
    box = [c for c in refined.range_changes if c.rule == "box-codes"]
    assert len({c.chosen for c in box}) == 1  # one range for the whole chain
    assert any("concat" in c.tensor for c in box) and any("BoxEncodingPredictor" in c.tensor
                                                          for c in box)

    def box_input_scale(model: bytes) -> float:
        ops = parse_model(model).ops
        post = next(op for op in ops if op.code == "TFLite_Detection_PostProcess")
        dequantize = next(op for op in ops if op.outputs[0].index == post.inputs[0].index)
        return dequantize.inputs[0].quantization.scale[0]

    low, high = box[0].chosen
    assert box_input_scale(refined.model) == pytest.approx((high - low) / 255, rel=0.02)
    # The tiny model has few anchors, so the 100 candidates per image are a big share.
    assert box_input_scale(refined.model) < 0.8 * box_input_scale(minmax.model)
    assert set(refined.seconds) == {"conversion", "calibration", "range refinement", "quantization"}
