"""`ktpconvert quantize` on a TF1 OD API style tflite_graph.pb built in the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.train.labels import CLASSES


import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graphs")
    return {
        "random": tiny_ssd.build_tf1_graph(folder / "tflite_graph.pb"),
        "oracle": tiny_ssd.build_tf1_graph(folder / "oracle.pb", oracle=tiny_ssd.default_oracle()),
        "no_post": tiny_ssd.build_tf1_graph(folder / "raw.pb", postprocess=False),
        "gray": tiny_ssd.build_tf1_graph(folder / "gray.pb", channels=1),
    }


def _quantize(args: list[str]):
    result = CliRunner().invoke(main, ["quantize", *args])
    return result


@pytest.fixture(scope="module")
def int8_run(graphs, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "ktp_int8.tflite"
    result = _quantize([str(graphs["random"]), "--representative", "synth:6", "--num-samples", "4",
                        "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output + str(result.exception)
    return out, json.loads(result.stdout)


def test_int8_model_is_full_integer_with_uint8_input_and_float_outputs(int8_run):
    from ktp_tflite.convert.verify import inspect_model

    out, summary = int8_run
    report = inspect_model(out.read_bytes(), str(out))
    assert report.input.dtype == "uint8"
    assert report.input.shape == (1, 64, 64, 3)
    scale, zero_point = report.input_quantization
    # pinned to pixels: 0 -> -1 and 255 -> +1 within one step, whatever the calibration images span
    assert scale == pytest.approx(2 / 255, rel=1e-3)
    assert (0 - zero_point) * scale == pytest.approx(-1.0, abs=scale)
    assert (255 - zero_point) * scale == pytest.approx(1.0, abs=scale)
    assert report.op_counts["TFLite_Detection_PostProcess"] == 1
    assert report.op_counts["CONV_2D"] == 5
    assert report.float_compute_ops == []
    conv = [row["op"] for row in report.op_dtypes if row["op"].startswith("CONV_2D")]
    assert conv == ["CONV_2D(int8,int8,int32)->(int8)"]
    assert {t.dtype for t in report.outputs.values()} == {"float32"}
    assert report.outputs["boxes"].shape == (1, 10, 4)
    assert report.outputs["count"].shape == (1,)
    assert summary["input"]["dtype"] == "uint8"
    assert set(summary["seconds"]) == {"conversion", "calibration", "range refinement", "quantization"}
    assert summary["ranges"]["method"] == "refined"
    assert summary["ranges"]["logits"]["chosen"][1] <= 6.24  # the TF1 graph's sigmoid input


def test_int8_model_has_metadata_and_task_library_detects(int8_run):
    from ktp_tflite.convert.metadata import read_metadata

    out, summary = int8_run
    meta = read_metadata(out.read_bytes())
    assert meta["labels"] == list(CLASSES)
    units = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"]
    assert units[0]["options"] == {"mean": [127.5], "std": [127.5]}
    task = summary["task_library"]
    assert task["num_detections"] == 10
    assert task["task_library_per_class"] == task["interpreter_per_class"]
    assert task["problems"] == []


def test_int8_detections_match_float_model(graphs, tmp_path):
    """The oracle graph detects five fixed anchors; int8 must find the same ones."""
    from ktp_tflite.convert.detector import TfliteDetector
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    source = detect_model_source(graphs["oracle"])
    float_model = convert_model(source, QuantizeConfig(mode="float")).model
    int8_model = convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model
    image = np.random.default_rng(5).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    reference = TfliteDetector(float_model).detect(image)
    quantized = TfliteDetector(int8_model).detect(image)
    anchors = tiny_ssd.anchor_table(64, 64)
    expected = sorted(tiny_ssd.default_oracle().values())
    assert sorted(reference.classes[:5].tolist()) == expected
    assert sorted(quantized.classes[:5].tolist()) == expected
    assert quantized.scores[:5] == pytest.approx(reference.scores[:5], abs=0.02)
    order_f = np.argsort(reference.classes[:5])
    order_q = np.argsort(quantized.classes[:5])
    np.testing.assert_allclose(quantized.boxes[:5][order_q], reference.boxes[:5][order_f], atol=0.01)
    first = list(tiny_ssd.default_oracle())[0]
    yc, xc, h, w = anchors[first]
    row = int(np.where(reference.classes == tiny_ssd.default_oracle()[first])[0][0])
    expected_box = np.clip([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], 0.0, 1.0)
    np.testing.assert_allclose(reference.boxes[row], expected_box, atol=0.01)
    assert len(int8_model) < 0.6 * len(float_model)


@pytest.mark.parametrize("mode,input_dtype", [("float16", "float32"), ("dynamic", "float32"),
                                              ("float", "float32")])
def test_other_modes(graphs, tmp_path, mode, input_dtype):
    from ktp_tflite.convert.verify import inspect_model

    out = tmp_path / f"{mode}.tflite"
    result = _quantize([str(graphs["random"]), "--mode", mode, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = inspect_model(out.read_bytes())
    assert report.input.dtype == input_dtype
    assert {t.dtype for t in report.outputs.values()} == {"float32"}
    assert report.metadata["labels"] == list(CLASSES)
    dtypes = " ".join(row["op"] for row in report.op_dtypes)
    if mode == "float16":
        assert "DEQUANTIZE(float16)->(float32)" in dtypes
    if mode == "dynamic":
        assert "CONV_2D(float32,int8" in dtypes
    if mode == "float":
        assert "int8" not in dtypes and "float16" not in dtypes


def test_float32_input_type(graphs, tmp_path):
    from ktp_tflite.convert.verify import inspect_model

    out = tmp_path / "f32in.tflite"
    result = _quantize([str(graphs["random"]), "--representative", "synth:4", "--num-samples", "2",
                        "--input-type", "float32", "--no-metadata", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = inspect_model(out.read_bytes())
    assert report.input.dtype == "float32"
    assert report.float_compute_ops == []
    assert report.metadata is None


def test_keep_float_and_debug_report(graphs, tmp_path):
    from ktp_tflite.convert.verify import inspect_model

    out = tmp_path / "kept.tflite"
    report_dir = tmp_path / "debug"
    result = _quantize([str(graphs["random"]), "--representative", "synth:4", "--num-samples", "3",
                        "--keep-float", "FeatureExtractor/Conv_1", "--debug-report", str(report_dir),
                        "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["kept_float"]) == 1 and "FeatureExtractor/Conv_1" in summary["kept_float"][0]
    float_ops = inspect_model(out.read_bytes()).float_compute_ops
    assert any(op.startswith("CONV_2D(float32") and "FeatureExtractor/Conv_1" in op for op in float_ops)
    debug = json.loads((report_dir / "quantization_debug.json").read_text())
    layers = debug["worst_layers"]
    assert len(layers) >= 5
    assert layers[0]["rmse_per_scale"] > 0.1  # rounding alone gives ~0.29 steps
    assert {layer["op_name"] for layer in layers} >= {"CONV_2D"}
    errors = [layer["rmse_per_scale"] for layer in layers]
    assert errors == sorted(errors, reverse=True)
    assert (report_dir / "layer_statistics.csv").read_text().startswith("tensor_name,")


def test_keep_float_unknown_layer(graphs, tmp_path):
    out = tmp_path / "x.tflite"
    result = _quantize([str(graphs["random"]), "--representative", "synth:2", "--num-samples", "2",
                        "--keep-float", "no/such/layer", "--out", str(out)])
    assert result.exit_code == 1
    assert "no/such/layer" in result.output and "matches no layer" in result.output
    assert not out.exists()


def test_pipeline_config_sets_postprocess_and_checks_size(graphs, tmp_path):
    from ktp_tflite.convert.verify import inspect_model

    text = (DATA / "ssd_mobilenet_v2_ktp.config").read_text()
    matching = tmp_path / "pipeline.config"
    matching.write_text(text.replace("height: 300", "height: 64").replace("width: 300", "width: 64")
                        .replace("score_threshold: 1e-8", "score_threshold: 0.25"))
    out = tmp_path / "cfg.tflite"
    result = _quantize([str(graphs["random"]), "--mode", "float", "--pipeline-config", str(matching),
                        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert inspect_model(out.read_bytes()).postprocess["nms_score_threshold"] == pytest.approx(0.25)

    result = _quantize([str(graphs["random"]), "--mode", "float", "--pipeline-config",
                        str(DATA / "ssd_mobilenet_v2_ktp.config"), "--out", str(tmp_path / "bad.tflite")])
    assert result.exit_code == 1
    assert "64x64" in result.output and "300x300" in result.output
    assert not (tmp_path / "bad.tflite").exists()


# ----------------------------------------------------------------------------- bad input


def test_missing_postprocess_says_what_and_how(graphs, tmp_path):
    result = _quantize([str(graphs["no_post"]), "--mode", "float", "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1
    assert "TFLite_Detection_PostProcess" in result.output
    assert "exactly 4 outputs" in result.output
    assert "--add_postprocessing_op=true" in result.output
    assert not (tmp_path / "o.tflite").exists()


def test_wrong_channel_count(graphs, tmp_path):
    result = _quantize([str(graphs["gray"]), "--mode", "float", "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1
    assert "1 channel" in result.output and "3 channels" in result.output


def test_unknown_model_kind(tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00\x01not a model at all" * 10)
    result = _quantize([str(junk), "--mode", "float", "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1
    assert str(junk) in result.output and "export_tflite_ssd_graph.py" in result.output
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    result = _quantize([str(folder), "--mode", "float", "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 1 and "neither a SavedModel" in result.output


def test_representative_smaller_than_asked(graphs, tmp_path):
    out = tmp_path / "o.tflite"
    result = _quantize([str(graphs["random"]), "--representative", "synth:3", "--num-samples", "5",
                        "--out", str(out)])
    assert result.exit_code == 1
    assert "3 image(s)" in result.output and "--num-samples asks for 5" in result.output
    assert not out.exists()


def test_representative_unreadable_leaves_nothing(graphs, tmp_path):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 24), (i * 40, 10, 10)).save(folder / f"ok_{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "o.tflite"
    result = _quantize([str(graphs["random"]), "--representative", str(folder), "--num-samples", "4",
                        "--out", str(out)])
    assert result.exit_code == 1
    assert "broken.jpg" in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_representative_from_image_folder(graphs, tmp_path):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "o.tflite"
    result = _quantize([str(graphs["random"]), "--representative", str(folder), "--num-samples", "3",
                        "--no-metadata", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_bad_synth_spec(graphs, tmp_path):
    result = _quantize([str(graphs["random"]), "--representative", "synth:many", "--out",
                        str(tmp_path / "o.tflite")])
    assert result.exit_code == 1 and "synth:N" in result.output


def test_wrong_label_count(graphs, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("nik\nnama\njenis_kelamin\nstatus_perkawinan\n")
    out = tmp_path / "o.tflite"
    result = _quantize([str(graphs["random"]), "--mode", "float", "--labels", str(labels),
                        "--out", str(out)])
    assert result.exit_code == 1
    assert "4 labels" in result.output and "5 classes" in result.output
    assert not out.exists()


def test_output_folder_missing(graphs, tmp_path):
    out = tmp_path / "no" / "such" / "model.tflite"
    result = _quantize([str(graphs["random"]), "--mode", "float", "--out", str(out)])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not out.parent.exists()


def test_existing_output_needs_force(graphs, tmp_path):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"keep me")
    result = _quantize([str(graphs["random"]), "--mode", "float", "--out", str(out)])
    assert result.exit_code == 1 and "--force" in result.output
    assert out.read_bytes() == b"keep me"
    result = _quantize([str(graphs["random"]), "--mode", "float", "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[4:8] == b"TFL3"


def test_quantize_detector_is_the_command_without_files(graphs, int8_run, tmp_path):
    """The library flow behind `quantize` and the benchmarks: bytes and reports, nothing written."""
    from ktp_tflite.convert.metadata import MetadataError, ModelInfo
    from ktp_tflite.convert.model_source import ModelSourceError
    from ktp_tflite.convert.quantize import ConversionError, QuantizeConfig, convert_model
    from ktp_tflite.convert.quantize_flow import debug_layers, quantize_detector
    from ktp_tflite.convert.representative import load_representative
    from ktp_tflite.convert.verify import inspect_model

    # float without metadata (tf1_parity): the converter's own bytes, float32 input even though
    # QuantizeConfig's input_type defaults to uint8 (it applies to int8 only)
    plain = quantize_detector(graphs["random"], QuantizeConfig(mode="float"))
    assert plain.model == convert_model(plain.source, QuantizeConfig(mode="float")).model
    assert plain.report.input.dtype == "float32" and plain.report.metadata is None
    assert plain.task_report is None and "ranges" not in plain.to_dict()
    with pytest.raises(ConversionError, match="needs an int8 conversion"):
        debug_layers(plain)
    with pytest.raises(ConversionError, match="needs representative data"):
        quantize_detector(graphs["random"], QuantizeConfig())

    # int8 on images drawn beforehand (quantize_bench), with metadata: what the command printed
    samples = load_representative("synth:6", 4, seed=3)
    result = quantize_detector(graphs["random"], QuantizeConfig(), representative=samples,
                               info=ModelInfo(), progress=False)
    assert result.samples is samples and sorted(result.cache) == [0, 1, 2, 3]
    out, printed = int8_run
    summary = json.loads(json.dumps(result.to_dict(), default=str))  # as the command prints it
    assert {k: v for k, v in summary.items() if k != "seconds"} == {
        k: v for k, v in printed.items() if k not in ("out", "seconds")}
    assert set(summary["seconds"]) == {"conversion", "calibration", "range refinement", "quantization"}
    assert set(result.seconds) == {"convert", "metadata_and_verify"}
    assert inspect_model(result.model).metadata["labels"] == list(CLASSES)
    assert len(result.model) == out.stat().st_size  # the same model (the zip dates of labels.txt differ)
    errors = [layer.rmse_per_scale for layer in debug_layers(result, progress=False)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0.1
    assert list(tmp_path.iterdir()) == []

    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(plain.model)
    with pytest.raises(ModelSourceError, match="already a .tflite"):
        quantize_detector(tflite, QuantizeConfig(mode="float"))
    with pytest.raises(MetadataError, match="^my.txt: 3 labels but .* has 5 classes"):
        quantize_detector(graphs["random"], QuantizeConfig(mode="float"),
                          info=ModelInfo(labels=("a", "b", "c")), labels_source="my.txt")


def test_int8_needs_representative(graphs, tmp_path):
    result = _quantize([str(graphs["random"]), "--out", str(tmp_path / "o.tflite")])
    assert result.exit_code == 2 and "--representative" in result.output


def test_image_failing_during_calibration_is_reported(graphs):
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.records import DatasetError

    def broken():
        yield [np.zeros((1, 64, 64, 3), np.float32)]
        raise DatasetError("calib/img_7.jpg: cannot decode image")

    with pytest.raises(DatasetError, match="img_7.jpg"):
        convert_model(detect_model_source(graphs["random"]), QuantizeConfig(), broken)


def test_representative_sampling_is_deterministic_and_preprocessed(tmp_path):
    from PIL import Image

    from ktp_tflite.convert.representative import calibration_inputs, load_representative
    from ktp_tflite.train.preprocess import resize_rgb, to_model_input

    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    first = load_representative(str(tmp_path), 4, seed=1)
    again = load_representative(str(tmp_path), 4, seed=1)
    other = load_representative(str(tmp_path), 4, seed=2)
    pixels = [load() for load in first.loaders]
    assert all(np.array_equal(a, load()) for a, load in zip(pixels, again.loaders, strict=True))
    assert not all(np.array_equal(a, load()) for a, load in zip(pixels, other.loaders, strict=True))
    batches = list(calibration_inputs(first, 16, 20, progress=False)())
    assert len(batches) == 4
    expected = to_model_input(resize_rgb(pixels[0], 16, 20))[np.newaxis]
    np.testing.assert_array_equal(batches[0][0], expected)
    assert batches[0][0].dtype == np.float32 and -1.0 <= batches[0][0].min() <= batches[0][0].max() <= 1.0
