"""`ktpconvert train` + `ktpconvert export`: SavedModel with the fused post-process, float .tflite."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.train import box_coder
from ktp_tflite.train.anchors import generate_anchors
from ktp_tflite.train.config import preset
from ktp_tflite.train.export import (
    OUTPUT_KEYS,
    POSTPROCESS_OP,
    SIGNATURE_KEY,
    ExportConfig,
    ExportError,
    check_postprocess_outputs,
    postprocess_implements,
    tflite_op_names,
)
from ktp_tflite.train.model import count_parameters
from ktp_tflite.train.preprocess import resize_rgb, to_model_input
from ktp_tflite.train.run_folder import ExportFolder

import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)


def test_postprocess_attributes_are_written_exactly():
    model = preset("coco-parity").model
    text = postprocess_implements(model, ExportConfig(score_threshold=1e-8, iou_threshold=0.35))
    assert text.startswith(f'name: "{POSTPROCESS_OP}"')
    assert 'attr { key: "nms_score_threshold" value { f: 1e-08 } }' in text
    assert 'attr { key: "nms_iou_threshold" value { f: 0.35 } }' in text
    assert 'attr { key: "use_regular_nms" value { b: false } }' in text
    assert 'attr { key: "num_classes" value { i: 5 } }' in text
    assert 'attr { key: "y_scale" value { f: 10.0 } }' in text
    assert 'attr { key: "w_scale" value { f: 5.0 } }' in text
    assert "0.000000" not in text


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_synth):
    from ktp_tflite.train.datasets import write_coco

    folder = tmp_path_factory.mktemp("export")
    write_coco(small_synth, folder / "coco")
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--data", str(folder / "coco"), "--out",
                                  str(folder / "run"), "--preset", "tiny", "--steps", "3",
                                  "--input-size", "128"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["last_step"] == 3
    result = runner.invoke(main, ["export", str(folder / "run"), "--out", str(folder / "exp")])
    assert result.exit_code == 0, result.output
    return folder


def test_export_writes_the_folder_and_refuses_to_overwrite(exported):
    out = exported / "exp"
    # The layout on disk is the one existing exports have (spelled out here), and what ExportFolder names.
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "model_float.tflite", "saved_model"]
    layout = ExportFolder(out)
    named = [layout.saved_model, layout.float_tflite, layout.labels, layout.summary]
    assert sorted(p.relative_to(out).as_posix() for p in named) == sorted(p.name for p in out.iterdir())
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "labels.txt").read_text().splitlines()[0] == "nik"
    info = json.loads((out / "export.json").read_text())
    assert info["postprocess"]["score_threshold"] == 1e-8
    assert info["input_size"] == [128, 128]  # --input-size over the preset's 96
    assert not [p for p in exported.iterdir() if p.name.startswith(".exp")]  # no staging left
    result = CliRunner().invoke(main, ["export", str(exported / "run"), "--out", str(out)])
    assert result.exit_code == 1 and "--force" in result.output


def test_float_tflite_has_one_postprocess_op_and_frozen_weights(exported):
    from ai_edge_litert.interpreter import Interpreter

    from ktp_tflite.train.trainer import restore_model

    data = (exported / "exp" / "model_float.tflite").read_bytes()
    ops = tflite_op_names(data)
    assert ops.count(POSTPROCESS_OP) == 1 and ops[-1] == POSTPROCESS_OP
    _, model = restore_model(exported / "run")
    assert len(data) > 0.5 * 4 * count_parameters(model)  # weights are in the file
    interpreter = Interpreter(model_content=data)
    inputs = interpreter.get_input_details()
    assert inputs[0]["dtype"] == np.float32 and list(inputs[0]["shape"]) == [1, 128, 128, 3]
    outputs = interpreter.get_output_details()
    assert [o["dtype"] for o in outputs] == [np.float32] * 4
    assert [list(o["shape"]) for o in outputs] == [[1, 10, 4], [1, 10], [1, 10], [1]]
    # As the converter emitted them, no rewrite: the op's outputs in its order, under OUTPUT_KEYS.
    (postprocess,) = [op for op in interpreter._get_ops_details() if op["op_name"] == POSTPROCESS_OP]
    assert [o["index"] for o in outputs] == list(postprocess["outputs"])
    assert interpreter.get_signature_list()[SIGNATURE_KEY]["outputs"] == list(OUTPUT_KEYS)
    signature = interpreter.get_signature_runner(SIGNATURE_KEY).get_output_details()
    assert [signature[key]["index"] for key in OUTPUT_KEYS] == list(postprocess["outputs"])


def test_output_keys_sort_as_the_converter_needs():
    import tensorflow as tf

    def fingerprint_order(keys):
        # TF's Fingerprint64, by which the converter's SavedModel importer orders signature outputs
        values = [int.from_bytes(bytes(row), "little") for row in tf.fingerprint(tf.constant(keys)).numpy()]
        return [key for _, key in sorted(zip(values, keys))]

    assert fingerprint_order(list(OUTPUT_KEYS)) == sorted(OUTPUT_KEYS) == list(OUTPUT_KEYS)
    # the OD API's names would put the count first (what the export had to rewrite before)
    od_api = ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    assert fingerprint_order(od_api) == od_api[3:] + od_api[:3]


def test_outputs_in_another_order_are_refused(tmp_path):
    import tensorflow as tf

    graph = tiny_ssd.build_tf1_graph(tmp_path / "tflite_graph.pb", oracle=tiny_ssd.default_oracle())
    permuted = [f"{POSTPROCESS_OP}:3", POSTPROCESS_OP, f"{POSTPROCESS_OP}:1", f"{POSTPROCESS_OP}:2"]
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph), ["normalized_input_image_tensor"], permuted, {"normalized_input_image_tensor": [1, 64, 64, 3]}
    )
    converter.allow_custom_ops = True
    with pytest.raises(ExportError, match="expected the TFLite_Detection_PostProcess outputs") as error:
        check_postprocess_outputs(converter.convert())
    listed, wanted = (json.loads(found) for found in re.findall(r"\[[\d, ]+\]", str(error.value)))
    assert listed != wanted and sorted(listed) == sorted(wanted)  # count first, then boxes...
    assert listed == [wanted[3], wanted[0], wanted[1], wanted[2]]


def test_float_tflite_matches_the_keras_model_on_rendered_images(exported, small_synth):
    from ai_edge_litert.interpreter import Interpreter

    from ktp_tflite.train.trainer import restore_model

    config, model = restore_model(exported / "run")
    anchors = generate_anchors(config.model)
    interpreter = Interpreter(model_content=(exported / "exp" / "model_float.tflite").read_bytes())
    interpreter.allocate_tensors()
    image_index = interpreter.get_input_details()[0]["index"]
    outputs = interpreter.get_output_details()
    for example in small_synth.examples[:3]:
        image = to_model_input(resize_rgb(example.load_rgb(), 128, 128))[None]
        interpreter.set_tensor(image_index, image)
        interpreter.invoke()
        boxes, classes, scores, count = (interpreter.get_tensor(o["index"]) for o in outputs)
        codes, logits = (t.numpy()[0] for t in model(image, training=False))
        keras_boxes = box_coder.decode(codes, anchors, config.model.box_coder_scales)
        keras_scores = 1.0 / (1.0 + np.exp(-logits[:, 1:]))
        assert int(count[0]) == 10
        # The top detection is the best (anchor, class) score of the Keras model.
        assert scores[0, 0] == pytest.approx(keras_scores.max(), abs=1e-4)
        for box, label, score in zip(boxes[0], classes[0].astype(int), scores[0]):
            # Every detection is one anchor's decoded box and class score.
            same = (np.abs(keras_scores[:, label] - score) < 1e-4) & (
                np.abs(keras_boxes - box).max(axis=1) < 1e-4
            )
            assert same.any(), (box, label, score)


def test_cli_errors_name_the_problem(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path), "--out", str(tmp_path.parent / "x")])
    assert result.exit_code == 1 and "no config.json" in result.output
    coco = tmp_path / "coco"
    coco.mkdir()
    result = runner.invoke(main, ["train", "--data", str(coco), "--out", str(tmp_path / "run"),
                                  "--steps", "1", "--epochs", "1"])
    assert result.exit_code == 2 and "not both" in result.output
