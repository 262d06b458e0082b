"""Static cost model, device profiles and the stored calibration (no interpreter runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ktp_tflite.benchmarks.graph_cost import GraphCostError, graph_cost, precision_label
from ktp_tflite.benchmarks.profiles import (
    BUNDLED,
    ProfileError,
    bundled_profile_text,
    load_profile,
    load_profile_file,
)

# Hand-computed MACs of the tiny model below (input 1x16x16x3):
CONV_MACS = 8 * 8 * 8 * (3 * 3 * 3)  # stride-2 3x3 conv to 8x8x8: out pixels x out ch x (k*k*in ch)
DEPTHWISE_MACS = 8 * 8 * 8 * (3 * 3)  # 3x3 depthwise on 8x8x8: out elements x k*k
DENSE_MACS = 512 * 10  # flatten(8*8*8) -> 10


@pytest.fixture(scope="module")
def tiny_models():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(inputs, x)
    models = {"float": tf.lite.TFLiteConverter.from_keras_model(model).convert()}

    def calibration():
        rng = np.random.default_rng(0)
        for _ in range(2):
            yield [rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)]

    for mode in ("int8", "fp16"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "int8":
            converter.representative_dataset = calibration
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
        else:
            converter.target_spec.supported_types = [tf.float16]
        models[mode] = converter.convert()
    return models


@pytest.mark.parametrize("mode", ["float", "int8"])
def test_mac_counts_equal_hand_computed_values(tiny_models, mode):
    cost = graph_cost(tiny_models[mode], mode)
    macs = {op.op: op.macs for op in cost.runtime_ops}
    assert macs["CONV_2D"] == CONV_MACS == 13824
    assert macs["DEPTHWISE_CONV_2D"] == DEPTHWISE_MACS == 4608
    assert macs["FULLY_CONNECTED"] == DENSE_MACS == 5120
    assert cost.total_macs == CONV_MACS + DEPTHWISE_MACS + DENSE_MACS
    dtype = "int8" if mode == "int8" else "float"
    assert {op.dtype for op in cost.runtime_ops if op.op_class in ("dense", "depthwise")} == {dtype}
    summary = cost.summary()
    assert summary[f"dense/{dtype}"] == {
        "count": 2,
        "macs": CONV_MACS + DENSE_MACS,
        "bytes": summary[f"dense/{dtype}"]["bytes"],
    }
    # bytes moved by the FC op: input 512 + weights 10x512 + output 10 elements (the zero bias
    # is dropped by the converter: the op has no bias input)
    fc = next(op for op in cost.runtime_ops if op.op == "FULLY_CONNECTED")
    assert fc.bytes_moved == (1 if mode == "int8" else 4) * (512 + 5120 + 10)


def test_precision_labels_and_load_time_ops(tiny_models):
    assert precision_label(tiny_models["float"]) == "fp32"
    assert precision_label(tiny_models["int8"]) == "int8"
    assert precision_label(tiny_models["fp16"]) == "fp16"
    fp16 = graph_cost(tiny_models["fp16"])
    # the float16 weight DEQUANTIZE ops read constants only: they run at load time, not per inference
    dequantize = [op for op in fp16.ops if op.op == "DEQUANTIZE"]
    assert dequantize and not any(op.runtime for op in dequantize)
    assert fp16.total_macs == CONV_MACS + DEPTHWISE_MACS + DENSE_MACS


def test_not_a_tflite_file_is_a_clear_error():
    with pytest.raises(GraphCostError, match="x.bin: not a TFLite model"):
        graph_cost(b"\x00" * 64, "x.bin")


# ----------------------------------------------------------------------------- profiles


def test_bundled_profiles_load_and_carry_sources():
    for name in BUNDLED:
        profile = load_profile(name)
        assert profile.threads == 4 and len(profile.used_cores()) >= 1
        assert all(p.source for p in profile.parameters.values())
        assert profile.error_band_percent > 0 and profile.error_band_source
        assert ("derived" if name in ("pixel6", "pixel7", "pixel8") else "fitted") == profile.status
    pixel4 = load_profile("pixel4")
    # 4 threads on the four A76 cores: 2.84 + 3 x 2.42 GHz
    assert sum(c.ghz * n for c, n in pixel4.used_cores()) == pytest.approx(2.84 + 3 * 2.42)


def _valid_doc() -> dict:
    return json.loads(bundled_profile_text("pixel4"))


def test_broken_json_names_the_file_and_position(tmp_path):
    path = tmp_path / "phone.json"
    path.write_text('{"schema": 1, "name": "phone",\n  "threads": 4,,}')
    with pytest.raises(ProfileError, match=r"phone.json: not valid JSON \(line 2"):
        load_profile_file(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("threads"), "missing field 'threads'"),
        (lambda d: d.update(threads="four"), "field 'threads' must be int"),
        (lambda d: d.update(threads=64), "'threads' is 64 but 'cores' lists only 8 cores"),
        (lambda d: d["cores"][0].pop("ghz"), r"cores\[0\]: missing field 'ghz'"),
        (
            lambda d: d["parameters"]["eff_dense_int8"].update(value=-1.0),
            "parameters.eff_dense_int8: field 'value' must be > 0",
        ),
        (lambda d: d["parameters"].pop("bytes_per_cycle"), "parameters: missing field 'bytes_per_cycle'"),
        (lambda d: d.update(status="guessed"), "field 'status' must be one of fitted, derived"),
        (lambda d: d.update(schema=2), "reads schema 1"),
    ],
)
def test_invalid_fields_are_named(tmp_path, edit, message):
    doc = _valid_doc()
    edit(doc)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile_file(path)
    assert str(path) in str(info.value)


def test_unknown_profile_name_lists_the_choices():
    with pytest.raises(ProfileError, match="pixel4"):
        load_profile("pixel99")


# ----------------------------------------------------------------------------- stored calibration


def test_stored_fit_is_reproduced_from_stored_costs():
    from ktp_tflite.benchmarks.tools.calibrate import cost_rows, device_profile, load_costs
    from ktp_tflite.benchmarks.tools.latency_fit import REFERENCE_ROWS, fit_with_loo

    stored = load_profile("pixel4")
    rows = cost_rows(load_costs())
    fit = fit_with_loo(REFERENCE_ROWS, rows, {n: device_profile(n) for n in ("pixel3", "pixel4")})
    for name, parameter in stored.parameters.items():
        assert fit.params[name] == pytest.approx(parameter.value, rel=1e-3), name
    stored_rows = {(r["model"], r["precision"], r["device"]): r for r in stored.fit["reference_rows"]}
    assert len(stored_rows) == len(REFERENCE_ROWS) == len(fit.loo)
    for row in fit.loo:
        key = (row["model"], row["precision"], row["device"])
        assert row["projected_ms"] == pytest.approx(stored_rows[key]["projected_ms"], rel=1e-3)
    worst = max(abs(r["error_percent"]) for r in fit.loo)
    assert worst == pytest.approx(stored.fit["leave_one_out_worst_abs_percent"], abs=0.05)
    assert stored.error_band_percent >= worst


def test_projection_is_labelled_and_scales_with_the_device():
    from ktp_tflite.benchmarks.projection import project
    from ktp_tflite.benchmarks.tools.calibrate import cost_rows, load_costs

    rows = cost_rows(load_costs())["mobilenet_v1_1.0_224/int8"]
    pixel4 = project(rows, load_profile("pixel4"), "v1")
    text = pixel4.text()
    assert text.startswith("pixel4 CPU x4, int8: ") and text.endswith("projected")
    assert f"+-{pixel4.band_percent:.0f} %" in text
    # Pixel 3's A75 cores (narrower SIMD, no dot product on the Snapdragon 845) are slower
    assert project(rows, load_profile("pixel3"), "v1").ms > 1.5 * pixel4.ms
    assert "derived from core facts" in project(rows, load_profile("pixel6"), "v1").text()


def test_rows_measured_without_dot_product_use_the_slower_int8_peak():
    from ktp_tflite.benchmarks.projection import OpArrays, capacity, project_arrays
    from ktp_tflite.benchmarks.tools.calibrate import cost_rows, device_profile, load_costs
    from ktp_tflite.benchmarks.tools.latency_fit import REFERENCE_ROWS

    pixel4 = device_profile("pixel4")
    with_dot, without = capacity(pixel4), capacity(pixel4, dotprod=False)
    # 2x128-bit pipes: 16 int8 MACs per pipe per cycle with SDOT, 8 without; float unchanged
    assert with_dot.peak_int8 == pytest.approx(2 * without.peak_int8)
    assert without.peak_int8 == pytest.approx(without.peak_int8_nodot)
    assert with_dot.peak_float == without.peak_float
    params = {name: p.value for name, p in load_profile("pixel4").parameters.items()}
    ops = OpArrays.of(cost_rows(load_costs())["ssd_mobilenet_v1_300/int8"])
    fast = project_arrays(ops, pixel4, params)["total"]
    slow = project_arrays(ops, pixel4, params, dotprod=False)["total"]
    assert 1.3 * fast < slow < 2.0 * fast  # dense int8 convs dominate; depthwise and the rest do not change
    flagged = [r for r in REFERENCE_ROWS if not r.dotprod_used]
    assert {r.model for r in flagged} == {"ssd_mobilenet_v1_300"}
    stored = {(r["model"], r["device"]): r["dotprod_used"] for r in load_profile("pixel4").fit["reference_rows"]}
    assert stored[("ssd_mobilenet_v1_300", "pixel4")] is False
    assert stored[("mobilenet_v1_1.0_224", "pixel4")] is True
