"""The TFLite model facade (convert/tflite_model.py) on the tiny SSDs, and that it is the only reader."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ktp_tflite.convert.tflite_model import (
    ModelLoadError,
    Normalization,
    TfliteModel,
    parse_model,
    read_model,
)
from ktp_tflite.train.labels import CLASSES

import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)

ROOT = Path(__file__).resolve().parents[1]
FACADE = "convert/tflite_model.py"
# Parsing or building a .tflite flatbuffer, or reading its metadata, by hand.
FLATBUFFER_READERS = re.compile(
    r"schema_py_generated|GetRootAs|InitFromPackedBuf|InitFromBuf\b|flatbuffer_utils|MetadataDisplayer\.with_"
    r"|^\s*(?:import flatbuffers|from flatbuffers\b)",
    re.MULTILINE,
)
# Files that still read .tflite flatbuffers themselves, each with what keeps it
# from the facade. This list may only shrink: an entry that no longer matches fails.
PENDING: dict[str, str] = {}
POSTPROCESS = "TFLite_Detection_PostProcess"


def _readers(text: str) -> bool:
    return FLATBUFFER_READERS.search(text) is not None


def test_the_scanner_recognises_flatbuffer_parsing():
    assert _readers("from tensorflow.lite.python import schema_py_generated as schema\n")
    assert _readers("    root = schema.Model.GetRootAsModel(data, 0)\n")
    assert _readers("    model_t = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)\n")
    assert _readers("    import flatbuffers\n")
    assert _readers("    from flatbuffers import flexbuffers\n")
    assert _readers("displayer = metadata.MetadataDisplayer.with_model_buffer(model)\n")
    assert not _readers("from ktp_tflite.convert.tflite_model import parse_model\nmodel.ops\n")


def test_only_the_facade_parses_tflite_flatbuffers():
    readers = {
        path.relative_to(ROOT).as_posix()
        for folder in ("train", "convert", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if _readers(path.read_text(encoding="utf-8"))
    }
    assert FACADE in readers  # the scan sees real files
    others = sorted(readers - {FACADE} - set(PENDING))
    assert others == [], f"these modules parse .tflite flatbuffers; use {FACADE} instead: {others}"
    stale = sorted(set(PENDING) - readers)
    assert stale == [], f"remove {stale} from PENDING: they no longer parse flatbuffers"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    import tensorflow as tf

    from ktp_tflite.convert.metadata import ModelInfo, attach_metadata
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    folder = tmp_path_factory.mktemp("facade")
    graph = tiny_ssd.build_tf1_graph(folder / "tflite_graph.pb", oracle=tiny_ssd.default_oracle())
    source = detect_model_source(graph)
    int8 = convert_model(source, QuantizeConfig(), tiny_ssd.calibration())
    plain_float = convert_model(source, QuantizeConfig(mode="float")).model
    built = {
        "int8": attach_metadata(int8.model, ModelInfo(version="1")),
        "calibrated": int8.calibrated,
        "float": plain_float,
        "float_unit": attach_metadata(plain_float, ModelInfo(version="1", input_mean=0.0, input_std=255.0)),
    }
    order = [f"{POSTPROCESS}:3", f"{POSTPROCESS}:2", POSTPROCESS, f"{POSTPROCESS}:1"]
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph), ["normalized_input_image_tensor"], order,
        {"normalized_input_image_tensor": [1, 64, 64, 3]})
    converter.allow_custom_ops = True
    built["permuted"] = converter.convert()

    inputs = tf.keras.Input((8, 8, 3), batch_size=1)
    keras = tf.keras.Model(inputs, tf.keras.layers.Conv2D(2, 3)(inputs))

    def calibration():
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    built["int8_input"] = converter.convert()
    paths = {"graph": graph}
    for name, data in built.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def _interpreter(model: TfliteModel):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model.data)
    interpreter.allocate_tensors()
    return interpreter


def test_int8_detector_input_outputs_metadata_and_precision(models):
    model = read_model(models["int8"])
    assert model.source == str(models["int8"]) and model.name == "int8.tflite"
    assert model.size_bytes == models["int8"].stat().st_size
    assert (model.input.dtype, model.input.shape, model.input_size) == ("uint8", (1, 64, 64, 3), (64, 64))
    scale, zero_point = model.input_quantization
    assert scale == pytest.approx(1 / 127.5, rel=1e-6)  # pinned to pixels: 0 -> -1, 255 -> +1
    assert zero_point in (127, 128)
    detail = _interpreter(model).get_input_details()[0]
    assert (scale, zero_point) == detail["quantization"] and model.input.index == detail["index"]
    roles = model.detection_outputs()
    assert list(roles) == ["boxes", "classes", "scores", "count"]
    assert [t.name for t in roles.values()] == [POSTPROCESS] + [f"{POSTPROCESS}:{i}" for i in (1, 2, 3)]
    assert {t.dtype for t in roles.values()} == {"float32"} and model.is_detector
    assert model.postprocess_options["max_detections"] == 10 and model.num_classes == 5
    assert model.postprocess_options["use_regular_nms"] is False
    assert model.labels == CLASSES
    assert model.normalization == Normalization((127.5,), (127.5,), "metadata")
    assert model.metadata.output_names == ("location", "category", "score", "number of detections")
    assert model.metadata.associated_files == ("labels.txt",)
    assert model.float_compute_ops == () and model.precision == "int8"
    codes = [op.code for op in model.ops]
    assert codes.count("CONV_2D") == 5 and codes[-1] == POSTPROCESS
    conv = next(op for op in model.ops if op.code == "CONV_2D")
    assert conv.signature == "CONV_2D(int8,int8,int32)->(int8)"
    weights = conv.inputs[1]
    assert weights.constant and weights.data_bytes == weights.elements  # int8: one byte per value
    assert len(weights.quantization.scale) == weights.shape[0]  # per output channel


def test_float_detector_without_metadata(models):
    model = read_model(models["float"])
    assert model.input.dtype == "float32" and model.input_quantization == (0.0, 0)
    assert model.metadata is None and model.labels is None and not model.has_metadata
    assert model.normalization == Normalization((127.5,), (127.5,), "default")  # train/preprocess.py
    assert model.precision == "float"
    assert model.float_compute_ops[0].signature.startswith("CONV_2D(float32")
    assert POSTPROCESS not in {op.code for op in model.float_compute_ops}


def test_constant_values_are_the_stored_weights_the_interpreter_holds(models):
    for name in ("float", "int8"):
        model = read_model(models[name])
        interpreter = _interpreter(model)
        conv = next(op for op in model.ops if op.code == "CONV_2D")
        for tensor in conv.inputs[1:]:
            values = model.constant_values(tensor)
            assert values.dtype == tensor.dtype and values.shape == tensor.shape
            np.testing.assert_array_equal(values, interpreter.get_tensor(tensor.index))
        with pytest.raises(ModelLoadError, match=f"{name}.tflite: tensor {conv.inputs[0].index} .*holds no values"):
            model.constant_values(conv.inputs[0])  # computed, not stored


def test_outputs_are_bound_through_the_op_not_the_output_order(models):
    model = read_model(models["permuted"])
    assert [t.name for t in model.outputs] == [f"{POSTPROCESS}:3", f"{POSTPROCESS}:2", POSTPROCESS,
                                               f"{POSTPROCESS}:1"]
    roles = model.detection_outputs()
    assert roles["boxes"].name == POSTPROCESS and roles["count"].name == f"{POSTPROCESS}:3"
    details = {d["name"]: d["index"] for d in _interpreter(model).get_output_details()}
    assert {role: t.index for role, t in roles.items()} == {
        "boxes": details[POSTPROCESS], "classes": details[f"{POSTPROCESS}:1"],
        "scores": details[f"{POSTPROCESS}:2"], "count": details[f"{POSTPROCESS}:3"]}


def test_model_input_feeds_each_dtype(models):
    from ktp_tflite.convert.detector import TfliteDetector

    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    uint8 = read_model(models["int8"]).model_input(pixels)
    assert uint8.dtype == np.uint8 and uint8.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(uint8[0], pixels)  # as the Task Library feeds uint8 models
    default = read_model(models["float"]).model_input(pixels)
    np.testing.assert_array_equal(default[0], (pixels.astype(np.float32) - 127.5) / 127.5)
    unit = read_model(models["float_unit"])
    assert unit.normalization == Normalization((0.0,), (255.0,), "metadata")
    np.testing.assert_allclose(unit.model_input(pixels)[0], pixels / 255.0, rtol=1e-6)
    detector = TfliteDetector(unit)  # the detector feeds through the same function
    detector.feed(pixels)
    np.testing.assert_array_equal(detector.interpreter.get_tensor(detector.input["index"]),
                                  unit.model_input(pixels))

    int8 = read_model(models["int8_input"])
    small = pixels[:8, :8]
    scale, zero_point = int8.input_quantization
    assert (scale, zero_point) == _interpreter(int8).get_input_details()[0]["quantization"]
    real = (small.astype(np.float32) - 127.5) / 127.5
    expected = np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)
    value = int8.model_input(small)
    assert value.dtype == np.int8
    np.testing.assert_array_equal(value[0], expected)
    with pytest.raises(ValueError, match=r"\[8, 8, 3\]"):
        int8.model_input(pixels)


def test_metadata_is_read_once(models, monkeypatch):
    from tensorflow_lite_support.metadata.python import metadata as tflite_metadata

    calls = []
    original = tflite_metadata.MetadataDisplayer.with_model_buffer

    def counting(buffer):
        calls.append(len(buffer))
        return original(buffer)

    monkeypatch.setattr(tflite_metadata.MetadataDisplayer, "with_model_buffer", counting)
    model = read_model(models["int8"])
    assert calls == []  # parsing does not read the metadata
    assert model.labels == CLASSES and model.normalization.source == "metadata"
    document = model.metadata_document()
    assert document["labels"] == list(CLASSES) and document["packed_files"] == ["labels.txt"]
    document["labels"].clear()  # a copy: the model's own stays
    assert model.metadata_document()["labels"] == list(CLASSES)
    assert calls == [model.size_bytes]


def test_with_ranges_changes_only_the_recorded_range(models):
    model = read_model(models["calibrated"])
    recorded = [t for t in model.tensors if t.quantization and len(t.quantization.min) == 1
                and t.dtype == "float32" and t.index not in {i.index for i in model.inputs}]
    tensor = recorded[0]
    edited = parse_model(model.with_ranges({tensor.index: (-1.5, 2.5)}), "edited")
    assert edited.tensors[tensor.index].quantization.min == (-1.5,)
    assert edited.tensors[tensor.index].quantization.max == (2.5,)
    assert [t for t in edited.tensors if t.index != tensor.index] == [
        t for t in model.tensors if t.index != tensor.index]
    assert edited.size_bytes == model.size_bytes
    weights = next(t for t in model.tensors if t.constant)
    with pytest.raises(ModelLoadError, match="no calibrated range"):
        model.with_ranges({weights.index: (0.0, 1.0)})


def test_with_outputs_reads_intermediates_through_xnnpack_as_the_reference_kernels_see_them(models):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = read_model(models["calibrated"])
    produced = [t.index for op in model.ops for t in op.outputs if op.code != POSTPROCESS]
    widened = parse_model(model.with_outputs(produced), "widened")
    assert [t.index for t in widened.outputs][: len(model.outputs)] == [t.index for t in model.outputs]
    assert {t.index for t in widened.outputs} == {t.index for t in model.outputs} | set(produced)
    assert widened.tensors == model.tensors and len(widened.ops) == len(model.ops)
    image = np.random.default_rng(1).uniform(-1, 1, model.inputs[0].shape).astype(np.float32)
    fast = Interpreter(model_content=widened.data, num_threads=1)  # XNNPACK, the default delegate
    every = Interpreter(model_content=model.data, experimental_preserve_all_tensors=True,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    for interpreter in (fast, every):
        interpreter.allocate_tensors()
        interpreter.set_tensor(model.inputs[0].index, image)
        interpreter.invoke()
    for index in produced:
        np.testing.assert_allclose(fast.get_tensor(index), every.get_tensor(index), rtol=1e-4, atol=1e-4)


def test_parsing_needs_no_tensorflow(models):
    code = (
        "import sys, numpy as np\n"
        "from ktp_tflite.convert.tflite_model import read_model\n"
        "from ktp_tflite.benchmarks.graph_cost import graph_cost\n"
        f"model = read_model({str(models['int8'])!r})\n"
        "model.model_input(np.zeros((64, 64, 3), np.uint8))\n"
        "print(graph_cost(model).total_macs > 0, model.precision, 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "int8", "False"]


# ----------------------------------------------------------------------------- bad files


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.tflite: not a TFLite model \(the file is empty\)"):
        read_model(empty)


def test_foreign_files(models, tmp_path):
    with pytest.raises(ModelLoadError, match=r"tflite_graph\.pb: not a TFLite model \(no 'TFL3'"):
        read_model(models["graph"])  # a TF1 frozen graph
    png = tmp_path / "photo.tflite"
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png, format="PNG")
    with pytest.raises(ModelLoadError, match=r"photo\.tflite: not a TFLite model"):
        read_model(png)
    with pytest.raises(ModelLoadError, match="m.bin: cannot read"):
        read_model(tmp_path / "missing" / "m.bin")
    for seed in range(20):  # the identifier, then garbage
        body = np.random.default_rng(seed).integers(0, 256, 2000, dtype=np.uint8).tobytes()
        with pytest.raises(ModelLoadError, match="garbage.tflite: "):
            parse_model(body[:4] + b"TFL3" + body[8:], "garbage.tflite")


@pytest.mark.parametrize("name", ["float", "int8"])
def test_every_truncation_is_a_model_load_error_naming_the_file(models, name):
    """Cut anywhere: parsing, or reading the metadata packed at the end, says so."""
    data = models[name].read_bytes()
    parsed_whole = 0
    for cut in range(len(data)):
        try:
            model = parse_model(data[:cut], f"cut_{name}.tflite")
            parsed_whole += 1
            model.metadata  # noqa: B018  (the packed label file is the last part of the file)
        except ModelLoadError as error:
            assert f"cut_{name}.tflite: " in str(error)
        else:
            pytest.fail(f"a copy cut at byte {cut} of {len(data)} loaded without an error")
    # only a cut inside the packed files leaves the flatbuffer itself whole
    assert parsed_whole == (0 if name == "float" else len(data) - data.rindex(b"PK\x03\x04"))


def test_truncated_files_through_the_readers(models, tmp_path):
    from ktp_tflite.benchmarks.graph_cost import GraphCostError, graph_cost
    from ktp_tflite.convert.detector import load_detector
    from ktp_tflite.convert.verify import inspect_model

    data = models["int8"].read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.tflite: truncated or corrupt TFLite flatbuffer"):
        load_detector(cut)
    with pytest.raises(ModelLoadError, match="half: truncated"):
        inspect_model(data[: len(data) // 2], "half")
    with pytest.raises(GraphCostError, match="half: truncated"):
        graph_cost(data[: len(data) // 2], "half")
    labels_cut = data[: data.rindex(b"PK\x03\x04") + 10]
    with pytest.raises(ModelLoadError, match="labels.txt that the file does not hold"):
        inspect_model(labels_cut, "labels_cut.tflite")


def test_inspect_json_keeps_its_shape(models):
    from ktp_tflite.convert.verify import inspect_model

    facts = json.loads(json.dumps(inspect_model(read_model(models["int8"])).to_dict()))
    assert facts["input"] == {"index": 0, "name": "normalized_input_image_tensor", "dtype": "uint8",
                              "shape": [1, 64, 64, 3]}
    assert facts["outputs"]["boxes"]["shape"] == [1, 10, 4]  # the interpreter's, not the file's ()
    assert facts["metadata"]["labels"] == list(CLASSES)
