"""`ktpconvert import-tf1`: TF1 OD API checkpoints (written with the v1 Saver) -> run folders."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from ktp_tflite.convert.cli import main
from ktp_tflite.train import box_coder
from ktp_tflite.train.anchors import generate_anchors
from ktp_tflite.train.config import preset, with_overrides
from ktp_tflite.train.model import build_model, tf1_variable_map
from ktp_tflite.train.pipeline_config import PipelineConfigError
from ktp_tflite.train.run_folder import RunFolder
from ktp_tflite.train.tf1_import import (
    CheckpointImportError,
    import_checkpoint,
    load_pipeline,
    load_tf1_weights,
    match_variables,
    model_config_from_pipeline,
)
from ktp_tflite.train.trainer import make_optimizer, restore_model, train

DATA = Path(__file__).parent / "data"
COCO_CONFIG = DATA / "tf1" / "ssd_mobilenet_v2_coco.config"
SSDLITE_CONFIG = DATA / "tf1" / "ssdlite_mobilenet_v2_coco.config"
SCOPE = "FeatureExtractor/MobilenetV2"
EMA = "/ExponentialMovingAverage"


def _variable_list(name: str) -> dict[str, tuple[int, ...]]:
    result = {}
    path = DATA / "odapi" / f"{name}_5class_checkpoint_variables.txt"
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        result[key] = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
    return result


def _random_value(name: str, shape: tuple[int, ...], rng) -> np.ndarray:
    if name == "global_step":
        return np.array(1234, np.int64)
    if name.endswith("moving_variance"):
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if name.endswith("gamma"):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if len(shape) == 4:  # kernels: variance-preserving scale
        fan_in = shape[0] * shape[1] * (1 if "depthwise" in name else shape[2])
        return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)
    return rng.normal(0.0, 0.2, shape).astype(np.float32)


def _random_checkpoint(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: _random_value(name, shape, rng) for name, shape in shapes.items()}


def _write_tf1_checkpoint(prefix: Path, arrays: dict[str, np.ndarray]) -> str:
    """A TF1 checkpoint (raw variable names) written by tf.compat.v1.train.Saver."""
    graph = tf.Graph()
    with graph.as_default():
        feeds, variables = {}, []
        for name, value in arrays.items():
            holder = tf.compat.v1.placeholder(value.dtype, value.shape)
            variables.append(tf.compat.v1.Variable(holder, name=name))
            feeds[holder] = value
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer(), feeds)
            return saver.save(session, str(prefix), write_meta_graph=False)


def _conv(x, kernel, stride=1):
    return tf.nn.conv2d(x, kernel, stride, "SAME").numpy()


def _depthwise(x, kernel, stride=1):
    return tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], "SAME").numpy()


def _bn_relu6(x, arrays, scope):
    y = ((x - arrays[f"{scope}/BatchNorm/moving_mean"])
         / np.sqrt(arrays[f"{scope}/BatchNorm/moving_variance"] + 0.001)
         * arrays[f"{scope}/BatchNorm/gamma"] + arrays[f"{scope}/BatchNorm/beta"])
    return np.clip(y, 0.0, 6.0)


def _outputs(model, names, image):
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    return [t.numpy() for t in probe(image, training=False)]


# ---------------------------------------------------------------- pipeline.config


def test_zoo_configs_give_the_coco_parity_architectures():
    coco = load_pipeline(COCO_CONFIG)
    assert model_config_from_pipeline(coco.ssd, coco.extras) == preset("coco-parity").model
    assert coco.extras.use_moving_averages is False
    lite = load_pipeline(SSDLITE_CONFIG)
    expected = with_overrides(preset("coco-parity"), ssdlite=True).model
    assert model_config_from_pipeline(lite.ssd, lite.extras) == expected
    assert lite.extras.use_moving_averages is True


def test_pipeline_fields_map_onto_the_model(tmp_path):
    text = COCO_CONFIG.read_text()
    text = (text.replace("depth_multiplier: 1.0", "depth_multiplier: 0.5")
            .replace("height: 300", "height: 320").replace("width: 300", "width: 256")
            .replace("num_classes: 5", "num_classes: 90")
            .replace("kernel_size: 3", "kernel_size: 1")
            .replace("      use_depthwise: true\n", "      use_explicit_padding: true\n")
            .replace("min_scale: 0.2", "min_scale: 0.15\n        base_anchor_height: 0.5")
            .replace("y_scale: 10.0", "y_scale: 8.0"))
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    pipeline = load_pipeline(path)
    model = model_config_from_pipeline(pipeline.ssd, pipeline.extras)
    assert (model.width_multiplier, model.input_size, model.num_classes) == (0.5, (320, 256), 90)
    assert (model.head_kernel_size, model.feature_use_depthwise) == (1, False)
    assert model.use_explicit_padding is True
    assert model.anchors.min_scale == 0.15 and model.anchors.base_anchor_size == (0.5, 1.0)
    assert model.box_coder_scales == (8.0, 10.0, 5.0, 5.0)


@pytest.mark.parametrize("old,new,field", [
    ("score_converter: SIGMOID", "score_converter: SOFTMAX", "score_converter"),
    ("num_layers: 6", "num_layers: 5", "ssd_anchor_generator.num_layers"),
    ('type: "ssd_mobilenet_v2"', 'type: "ssd_mobilenet_v2_keras"', "feature_extractor.type"),
    ("num_layers_before_predictor: 0", "num_layers_before_predictor: 1",
     "num_layers_before_predictor"),
    ("num_classes: 5", "num_classes: 5\n    add_background_class: false", "add_background_class"),
    ("epsilon: 0.0010000000475", "epsilon: 0.01", "batch_norm.epsilon"),
    ("activation: RELU_6", "activation: RELU", "conv_hyperparams.activation"),
    ("box_code_size: 4", "box_code_size: 5", "box_code_size"),
    ("apply_sigmoid_to_scores: false", "apply_sigmoid_to_scores: true",
     "apply_sigmoid_to_scores"),
])
def test_unsupported_pipeline_fields_are_errors_naming_them(tmp_path, old, new, field):
    text = COCO_CONFIG.read_text()
    assert old in text
    path = tmp_path / "pipeline.config"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(PipelineConfigError) as error:
        pipeline = load_pipeline(path)
        model_config_from_pipeline(pipeline.ssd, pipeline.extras)
    assert field in str(error.value) and str(path) in str(error.value)


# ---------------------------------------------------------------- matching rules


def test_matching_rules_for_slots_averages_and_statistics():
    model = {"a/weights": (3,), "a/BatchNorm/moving_mean": (3,)}
    checkpoint = {"a/weights": (3,), "a/weights/RMSProp": (3,), "a/weights/RMSProp_1": (3,),
                  f"a/weights{EMA}": (3,), "a/BatchNorm/moving_mean": (3,), "global_step": (),
                  "b/weights": (2,)}
    plan, report = match_variables(checkpoint, model, {"a/weights"}, False)
    assert plan == {"a/weights": "a/weights", "a/BatchNorm/moving_mean": "a/BatchNorm/moving_mean"}
    assert report.unexpected == ("b/weights",) and not report.complete
    assert set(report.ignored) == {"a/weights/RMSProp", "a/weights/RMSProp_1",
                                   f"a/weights{EMA}", "global_step"}
    plan, report = match_variables(checkpoint, model, {"a/weights"}, True)
    assert plan["a/weights"] == f"a/weights{EMA}"
    assert plan["a/BatchNorm/moving_mean"] == "a/BatchNorm/moving_mean"  # no shadow: raw
    assert "a/weights" in report.ignored


# ---------------------------------------------------------------- real-size checkpoints


@pytest.fixture(scope="module")
def coco_import(tmp_path_factory):
    """The ssd_mobilenet_v2 variable list as a TF1 checkpoint (+ RMSProp slots), CLI-imported."""
    folder = tmp_path_factory.mktemp("coco")
    shapes = _variable_list("ssd_mobilenet_v2")
    arrays = _random_checkpoint(shapes, seed=0)
    slots = [n for n in shapes if n.startswith("BoxPredictor_0/")]
    for name in slots:
        arrays[f"{name}/RMSProp"] = np.ones(shapes[name], np.float32)
    prefix = _write_tf1_checkpoint(folder / "model.ckpt-1234", arrays)
    result = CliRunner().invoke(main, ["import-tf1", prefix, "--pipeline-config",
                                       str(COCO_CONFIG), "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    config, model = restore_model(folder / "run")
    return folder, arrays, summary, config, model


def test_coco_checkpoint_fills_every_weight(coco_import):
    folder, arrays, summary, config, model = coco_import
    assert summary["assigned"] == summary["model_weights"] == 344
    assert summary["global_step"] == 1234 and summary["used_moving_averages"] is False
    assert summary["ignored"] == 1 + 4  # global_step + 4 RMSProp slots
    assert summary["missing"] == summary["unexpected"] == summary["mismatched"] == []
    assert config.preset == "tf1-import" and config.model == preset("coco-parity").model
    variables = tf1_variable_map(model)
    assert len(variables) == len(model.weights) == 344
    for name, variable in variables.items():
        np.testing.assert_array_equal(variable.numpy(), arrays[name], err_msg=name)
    assert not [p for p in folder.iterdir() if p.name.startswith(".run")]  # no staging left


def test_coco_layer_outputs_equal_hand_computation_from_checkpoint_tensors(coco_import):
    _, arrays, _, _, model = coco_import
    image = np.random.default_rng(1).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    conv, feature0, extra_in, extra_dw, extra_out, class0 = _outputs(model, [
        "Conv.Relu6", "expanded_conv_13.expand.Relu6", "layer_19_1_Conv2d_2_1x1_256.Relu6",
        "layer_19_2_Conv2d_2_3x3_s2_512_depthwise.Relu6", "layer_19_2_Conv2d_2_3x3_s2_512.Relu6",
        "BoxPredictor_0.ClassPredictor"], image)
    manual = _bn_relu6(_conv(image, arrays[f"{SCOPE}/Conv/weights"], 2), arrays, f"{SCOPE}/Conv")
    np.testing.assert_allclose(conv, manual, atol=1e-4)
    # Extra layer 2: depthwise 3x3 stride 2 on 10x10 ('SAME': pad bottom/right), BN, ReLU6,
    # then 1x1 + BN + ReLU6.
    name = f"{SCOPE}/layer_19_2_Conv2d_2_3x3_s2_512"
    assert extra_in.shape == (1, 10, 10, 256) and extra_dw.shape == (1, 5, 5, 256)
    manual = _bn_relu6(_depthwise(extra_in, arrays[f"{name}_depthwise/depthwise_weights"], 2),
                       arrays, f"{name}_depthwise")
    np.testing.assert_allclose(extra_dw, manual, atol=1e-4)
    manual = _bn_relu6(_conv(extra_dw, arrays[f"{name}/weights"]), arrays, name)
    np.testing.assert_allclose(extra_out, manual, atol=1e-4)
    # Head 0: 3x3 conv with bias on the 19x19x576 map, 3 anchors x (5 + 1) classes.
    manual = (_conv(feature0, arrays["BoxPredictor_0/ClassPredictor/weights"])
              + arrays["BoxPredictor_0/ClassPredictor/biases"])
    assert class0.shape == (1, 19, 19, 18)
    np.testing.assert_allclose(class0, manual, atol=1e-3, rtol=1e-4)


@pytest.fixture(scope="module")
def ssdlite_checkpoint(tmp_path_factory):
    """ssdlite variable list with EMA shadows of every trainable variable."""
    folder = tmp_path_factory.mktemp("ssdlite")
    shapes = _variable_list("ssdlite_mobilenet_v2")
    arrays = _random_checkpoint(shapes, seed=2)
    statistics = ("moving_mean", "moving_variance")
    for name in list(arrays):
        if name != "global_step" and not name.endswith(statistics):
            arrays[f"{name}{EMA}"] = arrays[name] * np.float32(0.5) + np.float32(0.01)
    prefix = _write_tf1_checkpoint(folder / "model.ckpt-50", arrays)
    return folder, prefix, arrays


def test_ssdlite_import_uses_the_moving_averages_the_config_asks_for(ssdlite_checkpoint):
    folder, prefix, arrays = ssdlite_checkpoint
    report = import_checkpoint(prefix, SSDLITE_CONFIG, folder / "run")
    assert report.complete and report.used_moving_averages and report.assigned == 404
    config, model = restore_model(folder / "run")
    assert config.model.head_use_depthwise and config.model.feature_use_depthwise
    variables = tf1_variable_map(model)
    for name, variable in variables.items():
        source = name if name.endswith(("moving_mean", "moving_variance")) else f"{name}{EMA}"
        np.testing.assert_array_equal(variable.numpy(), arrays[source], err_msg=name)
    # SSDLite head 1: depthwise 3x3 + BN + ReLU6, then a 1x1 conv with bias, from EMA tensors.
    weights = {name: arrays.get(f"{name}{EMA}", arrays[name]) for name in variables}
    image = np.random.default_rng(3).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    feature1, box1 = _outputs(model, ["Conv_1.Relu6", "BoxPredictor_1.BoxEncodingPredictor"],
                              image)
    scope = "BoxPredictor_1/BoxEncodingPredictor"
    x = _bn_relu6(_depthwise(feature1, weights[f"{scope}_depthwise/depthwise_weights"]), weights,
                  f"{scope}_depthwise")
    manual = _conv(x, weights[f"{scope}/weights"]) + weights[f"{scope}/biases"]
    assert box1.shape == (1, 10, 10, 24)
    np.testing.assert_allclose(box1, manual, atol=1e-3, rtol=1e-4)

    # --no-use-moving-averages reads the raw weights and ignores the shadows.
    raw = load_tf1_weights(model, prefix, use_moving_averages=False)
    assert raw.complete and sum(n.endswith(EMA) for n in raw.ignored) == sum(
        n.endswith(EMA) for n in arrays)
    np.testing.assert_array_equal(model.get_layer("Conv").kernel.numpy(),
                                  arrays[f"{SCOPE}/Conv/weights"])
    result = CliRunner().invoke(main, ["import-tf1", prefix, "--pipeline-config",
                                       str(SSDLITE_CONFIG), "--out", str(folder / "raw"),
                                       "--no-use-moving-averages"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["used_moving_averages"] is False
    _, raw_model = restore_model(folder / "raw")
    np.testing.assert_array_equal(raw_model.get_layer("BoxPredictor_5.ClassPredictor").bias.numpy(),
                                  arrays["BoxPredictor_5/ClassPredictor/biases"])


# ---------------------------------------------------------------- tiny checkpoints


def _tiny_config(tmp_path: Path, num_classes: int = 2) -> Path:
    text = (COCO_CONFIG.read_text().replace("depth_multiplier: 1.0", "depth_multiplier: 0.35")
            .replace("height: 300", "height: 96").replace("width: 300", "width: 96")
            .replace("num_classes: 5", f"num_classes: {num_classes}"))
    path = tmp_path / f"tiny_{num_classes}.config"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 96x96, width 0.35, 2-class TF1 checkpoint and its config."""
    folder = tmp_path_factory.mktemp("tiny")
    config_path = _tiny_config(folder)
    pipeline = load_pipeline(config_path)
    model = build_model(model_config_from_pipeline(pipeline.ssd, pipeline.extras))
    shapes = {name: tuple(v.shape) for name, v in tf1_variable_map(model).items()}
    arrays = {**_random_checkpoint(shapes, seed=4), "global_step": np.array(7, np.int64)}
    prefix = _write_tf1_checkpoint(folder / "model.ckpt-7", arrays)
    return folder, config_path, prefix, arrays, shapes


def test_incomplete_checkpoint_is_a_readable_error_and_writes_nothing(tiny, tmp_path):
    _, config_path, _, arrays, _ = tiny
    broken = dict(arrays)
    del broken[f"{SCOPE}/expanded_conv_3/project/weights"]
    broken[f"{SCOPE}/Conv_9/weights"] = np.zeros((1, 1, 8, 8), np.float32)
    broken["BoxPredictor_2/BoxEncodingPredictor/biases"] = np.zeros((5,), np.float32)
    prefix = _write_tf1_checkpoint(tmp_path / "ckpt" / "model.ckpt-1", broken)
    out = tmp_path / "run"
    with pytest.raises(CheckpointImportError) as error:
        import_checkpoint(prefix, config_path, out)
    message = str(error.value)
    assert "1 model variable(s) missing" in message
    assert f"{SCOPE}/expanded_conv_3/project/weights" in message
    unexpected = "1 checkpoint variable(s) the model has no place for:"
    assert f"{unexpected}\n  {SCOPE}/Conv_9/weights" in message
    assert "BoxPredictor_2/BoxEncodingPredictor/biases: [5] vs [24]" in message
    assert not out.exists()

    result = CliRunner().invoke(main, ["import-tf1", prefix, "--pipeline-config",
                                       str(config_path), "--out", str(out)])
    assert result.exit_code == 1 and "Conv_9/weights" in result.output and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run")]


def test_class_count_mismatch_and_missing_averages_give_hints(tiny, tmp_path):
    _, _, prefix, _, _ = tiny
    with pytest.raises(CheckpointImportError, match="num_classes in the pipeline config"):
        import_checkpoint(prefix, _tiny_config(tmp_path, num_classes=3), tmp_path / "a")
    with pytest.raises(CheckpointImportError, match="--no-use-moving-averages"):
        import_checkpoint(prefix, _tiny_config(tmp_path), tmp_path / "b",
                          use_moving_averages=True)
    with pytest.raises(CheckpointImportError, match="cannot read a TF1 checkpoint"):
        import_checkpoint(tmp_path / "nothing.ckpt", _tiny_config(tmp_path), tmp_path / "c")


def test_cli_refuses_an_existing_folder_and_export_matches_keras(tiny, small_synth):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from ktp_tflite.train.preprocess import resize_rgb, to_model_input

    folder, config_path, prefix, arrays, _ = tiny
    runner = CliRunner()
    args = ["import-tf1", prefix, "--pipeline-config", str(config_path), "--out",
            str(folder / "run")]
    assert runner.invoke(main, args).exit_code == 0
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "--force" in result.output
    result = runner.invoke(main, args + ["--force"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["global_step"] == 7

    result = runner.invoke(main, ["export", str(folder / "run"), "--out", str(folder / "exp")])
    assert result.exit_code == 0, result.output
    config, model = restore_model(folder / "run")
    np.testing.assert_array_equal(model.get_layer("Conv").kernel.numpy(),
                                  arrays[f"{SCOPE}/Conv/weights"])
    anchors = generate_anchors(config.model)
    interpreter = Interpreter(model_content=(folder / "exp" / "model_float.tflite").read_bytes())
    interpreter.allocate_tensors()
    outputs = interpreter.get_output_details()
    raw = Interpreter(  # without XNNPACK, so that the op list and its inputs stay visible
        model_content=(folder / "exp" / "model_float.tflite").read_bytes(),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    raw.allocate_tensors()
    (post_op,) = [op for op in raw._get_ops_details()
                  if op["op_name"] == "TFLite_Detection_PostProcess"]
    post_inputs = list(post_op["inputs"])
    for example in small_synth.examples[:2]:
        image = to_model_input(resize_rgb(example.load_rgb(), 96, 96))[None]
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        boxes, classes, scores, _ = (interpreter.get_tensor(o["index"]) for o in outputs)
        codes, logits = (t.numpy()[0] for t in model(image, training=False))
        keras_boxes = box_coder.decode(codes, anchors, config.model.box_coder_scales)
        keras_scores = 1.0 / (1.0 + np.exp(-logits[:, 1:]))
        assert scores[0, 0] == pytest.approx(keras_scores.max(), abs=1e-4)
        for box, label, score in zip(boxes[0], classes[0].astype(int), scores[0]):
            same = (np.abs(keras_scores[:, label] - score) < 1e-4) & (
                np.abs(keras_boxes - box).max(axis=1) < 1e-4)
            assert same.any(), (box, label, score)
        # Raw outputs: the post-process op's inputs (box encodings, sigmoid scores with
        # background first, anchors as (ycenter, xcenter, h, w)) equal the Keras model's.
        raw.set_tensor(raw.get_input_details()[0]["index"], image)
        raw.invoke()
        encodings, class_scores, op_anchors = (raw.get_tensor(i) for i in post_inputs)
        np.testing.assert_allclose(encodings[0], codes, atol=1e-4)
        np.testing.assert_allclose(class_scores[0], 1.0 / (1.0 + np.exp(-logits)), atol=1e-4)
        np.testing.assert_allclose(op_anchors, anchors, atol=1e-6)


def test_resume_with_a_new_class_count_reinitialises_only_the_class_heads(tiny, small_synth,
                                                                          tmp_path):
    _, config_path, prefix, arrays, shapes = tiny
    run_dir = tmp_path / "run"
    import_checkpoint(prefix, config_path, run_dir)
    # ckpt-0 holds what `train --resume` restores: step 0, the model, the optimizer's slots.
    config, _ = restore_model(run_dir)
    model = build_model(config.model)
    optimizer, _ = make_optimizer(config.train)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(5, dtype=tf.int64)
    tf.train.Checkpoint(step=step, model=model, optimizer=optimizer).restore(
        tf.train.latest_checkpoint(str(RunFolder(run_dir).checkpoints))).assert_existing_objects_matched()
    assert int(step.numpy()) == 0
    logs: list[str] = []
    five = with_overrides(preset("tiny"), steps=0)  # 5 KTP classes; no steps yet
    train(five, small_synth, run_dir, resume=True, log=logs.append)
    assert any("with 5 classes instead of 2" in line for line in logs), logs
    config, model = restore_model(run_dir)
    assert config.model.num_classes == 5
    variables = tf1_variable_map(model)
    changed = []
    for name, variable in variables.items():
        if tuple(variable.shape) != shapes[name]:
            changed.append(name)
        else:
            np.testing.assert_array_equal(variable.numpy(), arrays[name], err_msg=name)
    assert sorted(changed) == sorted(
        f"BoxPredictor_{i}/ClassPredictor/{w}" for i in range(6) for w in ("weights", "biases"))
    assert variables["BoxPredictor_0/ClassPredictor/biases"].shape == (3 * 6,)

    # A normal resume of the fine-tuning run: it trains, and continues the step count.
    result = train(with_overrides(preset("tiny"), steps=2), small_synth, run_dir, resume=True,
                   log=logs.append)
    assert (result.first_step, result.last_step) == (0, 2)
    assert tf.train.latest_checkpoint(str(RunFolder(run_dir).checkpoints)).endswith("ckpt-2")
