"""Host measurement, isolated-op profile, GPU compatibility, reports and the CLI on tiny models."""

from __future__ import annotations

import base64
import html.parser
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.benchmarks.host_latency import HostConfig, LatencyStats, measure


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A ~7 M MAC float convnet (64x64) and a tiny SSD with the post-process op, float and int8."""
    import tensorflow as tf

    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    folder = tmp_path_factory.mktemp("bench_models")
    tf.keras.utils.set_random_seed(0)
    layers = tf.keras.layers
    inputs = tf.keras.Input((64, 64, 3), batch_size=1)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 1, activation="relu")(x)
    x = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    paths = {"convnet": folder / "convnet.tflite"}
    paths["convnet"].write_bytes(
        tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, x)).convert()
    )
    import ktp_tests_tiny_ssd as tiny_ssd

    source = detect_model_source(tiny_ssd.build_tf1_graph(folder / "tflite_graph.pb"))
    paths["ssd_float"] = folder / "ssd_float.tflite"
    paths["ssd_float"].write_bytes(convert_model(source, QuantizeConfig("float")).model)
    paths["ssd_int8"] = folder / "ssd_int8.tflite"
    paths["ssd_int8"].write_bytes(convert_model(source, QuantizeConfig("int8"), tiny_ssd.calibration()).model)
    return paths


def test_percentiles_are_computed_right():
    stats = LatencyStats.from_samples([4.0, 1.0, 3.0, 2.0, 5.0])
    # linear interpolation between order statistics: rank (n - 1) * q
    assert (stats.runs, stats.min_ms, stats.p50_ms, stats.mean_ms) == (5, 1.0, 3.0, 3.0)
    assert stats.p90_ms == pytest.approx(4.6) and stats.p99_ms == pytest.approx(4.96)
    assert stats.stdev_ms == pytest.approx(math.sqrt(2.5))  # sample standard deviation
    many = LatencyStats.from_samples(range(1, 101))
    assert (many.p50_ms, many.p90_ms, many.p99_ms) == pytest.approx((50.5, 90.1, 99.01))
    assert LatencyStats.from_samples([7.0]).stdev_ms == 0.0
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])


def test_single_op_model_reproduces_the_full_model_tensor(models):
    from ktp_tflite.benchmarks.host_latency import fixed_input, make_interpreter
    from ktp_tflite.convert.tflite_model import read_model

    model = read_model(models["convnet"])
    full = make_interpreter(model.data, 1, "builtin", preserve=True)
    detail = full.get_input_details()[0]
    full.set_tensor(detail["index"], fixed_input(detail, 0))
    full.invoke()
    op = model.ops[1]  # the first depthwise conv
    one = make_interpreter(model.single_op_model(1), 1, "builtin")
    assert [d["index"] for d in one.get_input_details()] == [op.inputs[0].index]
    one.set_tensor(op.inputs[0].index, full.get_tensor(op.inputs[0].index))
    one.invoke()
    np.testing.assert_array_equal(one.get_tensor(op.outputs[0].index), full.get_tensor(op.outputs[0].index))


def test_host_measurement_and_op_profile_add_up(models):
    result = measure(
        models["convnet"], HostConfig(threads=1, runs=20, warmup=3, kernels="builtin", op_runs=10)
    )
    assert result.kernels == "builtin" and result.latency.runs == 20 and len(result.samples_ms) == 20
    assert result.latency.min_ms <= result.latency.p50_ms <= result.latency.p90_ms <= result.latency.p99_ms
    assert result.init_ms > 0 and result.first_ms > 0 and result.peak_memory_kb > 0
    assert result.input_shape == (1, 64, 64, 3) and result.input_dtype == "float32"
    assert result.preprocess is not None and result.preprocess.p50_ms > 0
    profile = result.op_profile
    types = profile.by_type()
    assert set(types) >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert types["CONV_2D"]["count"] == 3 and types["DEPTHWISE_CONV_2D"]["count"] == 2
    assert sum(row["percent"] for row in types.values()) == pytest.approx(100.0)
    # the isolated ops add up to the full-model time of the same interleaved rounds, within
    # fusion/cache/overhead effects (CI once saw 1.66 when the two were timed apart)
    assert 0.6 <= profile.coverage <= 1.6, (profile.total_ms, profile.model_p50_ms)


def test_ssd_post_processing_is_timed_and_gpu_fallback_listed(models):
    from ktp_tflite.benchmarks.delegates import gpu_compatibility

    result = measure(models["ssd_int8"], HostConfig(threads=1, runs=5, warmup=1, op_profile=False))
    assert result.kernels == "xnnpack" and result.input_dtype == "uint8"
    assert result.postprocess is not None and result.op_profile is None
    gpu = gpu_compatibility(models["ssd_int8"])
    assert "TFLite_Detection_PostProcess" in gpu.cpu_fallback
    assert gpu.total_ops == 12 and gpu.gpu_ops == 11
    assert gpu.precision == "int8" and "fp16" in gpu.recommendation


def test_unloadable_model_is_a_clear_error(tmp_path):
    from ktp_tflite.benchmarks.host_latency import HostBenchmarkError

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(HostBenchmarkError, match="bad.tflite: not a TFLite model"):
        measure(bad, HostConfig(runs=1))


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_cli_writes_reports_whose_html_embeds_decodable_pngs(models, tmp_path):
    from PIL import Image

    from ktp_tflite.benchmarks.cli import benchmark

    eval_json = tmp_path / "eval.json"
    eval_json.write_text(
        json.dumps(
            {
                "models": [
                    {"model": str(models["ssd_float"]), "metrics": {"map": 0.61, "map50": 0.9, "map75": 0.7}},
                    {
                        "model": "elsewhere/ssd_int8.tflite",
                        "metrics": {"map": 0.58, "map50": 0.88, "map75": 0.66},
                    },
                ]
            }
        )
    )
    out = tmp_path / "report"
    args = [
        str(models["ssd_float"]),
        str(models["ssd_int8"]),
        "--threads",
        "1",
        "--runs",
        "5",
        "--warmup",
        "1",
        "--profile",
        "pixel4",
        "--profile",
        "pixel6",
        "--eval",
        str(eval_json),
        "--report",
        str(out),
    ]
    result = CliRunner().invoke(benchmark, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "pixel4 CPU x4, int8:" in result.stdout and "projected" in result.stdout
    assert "ratio 1.00" in result.stdout

    report = json.loads((out / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["ssd_float.tflite", "ssd_int8.tflite"]
    assert report["models"][1]["metrics"]["map"] == 0.58
    assert report["ratios_host_p50"]["xnnpack"]["ssd_float.tflite"] == 1.0
    for model in report["models"]:
        assert [p["status"] for p in model["projections"]] == ["projected", "projected"]
        assert model["host_measured"][0]["op_profile"]["method"] == "isolated-op"
        assert "TFLite_Detection_PostProcess" in model["gpu_compatibility"]["cpu_fallback"]
    markdown = (out / "report.md").read_text()
    assert "projected" in markdown and "Measured on this host" in markdown and "mAP" in markdown

    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert len(parser.sources) == 3
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        image.load()
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100

    again = CliRunner().invoke(benchmark, args)
    assert again.exit_code == 1 and "--force" in again.output


def test_cli_rejects_a_broken_profile_file(models, tmp_path):
    from ktp_tflite.benchmarks.cli import benchmark

    broken = tmp_path / "phone.json"
    broken.write_text("{")
    result = CliRunner().invoke(benchmark, [str(models["convnet"]), "--runs", "1", "--profile", str(broken)])
    assert result.exit_code == 1
    assert "phone.json: not valid JSON" in result.output
