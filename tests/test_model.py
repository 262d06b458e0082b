"""The SSD MobileNetV2 builder: TF1 variable parity, TF1 numerics, backbone weights."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ktp_tflite.train.anchors import generate_anchors
from ktp_tflite.train.backbone_weights import BackboneWeightsError, load_backbone_weights
from ktp_tflite.train.config import preset, with_overrides
from ktp_tflite.train.model import build_model, feature_map_shapes, tf1_variable_map

ODAPI = Path(__file__).parent / "data" / "odapi"


def _tf1_variables(name: str) -> dict[str, tuple[int, ...]]:
    result = {}
    for line in (ODAPI / f"{name}_5class_checkpoint_variables.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        result[key] = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
    return result


@pytest.fixture(scope="module")
def coco_model():
    return build_model(preset("coco-parity").model)


@pytest.mark.parametrize("ssdlite", [False, True])
def test_coco_parity_holds_exactly_the_tf1_checkpoint_variables(ssdlite, coco_model):
    name = "ssdlite_mobilenet_v2" if ssdlite else "ssd_mobilenet_v2"
    expected = _tf1_variables(name)
    assert expected.pop("global_step") == ()
    model = coco_model
    if ssdlite:
        model = build_model(with_overrides(preset("coco-parity"), ssdlite=True).model)
    ours = {key: tuple(v.shape) for key, v in tf1_variable_map(model).items()}
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    # Every Keras weight has exactly one TF1 name.
    assert len(ours) == len(model.weights)


def test_coco_parity_feature_maps(coco_model):
    assert feature_map_shapes(coco_model) == [
        (19, 19, 576), (10, 10, 1280), (5, 5, 512), (3, 3, 256), (2, 2, 256), (1, 1, 128)
    ]
    assert coco_model.outputs[0].shape[1:] == (1917, 4)
    assert coco_model.outputs[1].shape[1:] == (1917, 6)


@pytest.mark.parametrize(
    "name,overrides",
    [("tiny", {}), ("ktp", {}), ("coco-parity", {"width_multiplier": 0.5}),
     ("tiny", {"ssdlite": True})],
)
def test_heads_produce_one_prediction_per_anchor(name, overrides):
    config = with_overrides(preset(name), **overrides).model
    model = build_model(config)
    anchors = generate_anchors(config)
    assert model.outputs[0].shape[1:] == (anchors.shape[0], 4)
    assert model.outputs[1].shape[1:] == (anchors.shape[0], config.num_classes + 1)


def _randomise_batch_norm(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            depth = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, depth), rng.normal(0, 0.2, depth),
                rng.normal(0, 0.2, depth), rng.uniform(0.5, 2.0, depth),
            ])


def test_tf1_numerics_first_layers(coco_model):
    """Outputs computed by hand from the TF1-named tensors equal the Keras layers."""
    model = coco_model
    _randomise_batch_norm(model)
    weights = {k: v.numpy() for k, v in tf1_variable_map(model).items()}
    scope = "FeatureExtractor/MobilenetV2"

    def bn(x, name):
        return ((x - weights[f"{name}/BatchNorm/moving_mean"])
                / np.sqrt(weights[f"{name}/BatchNorm/moving_variance"] + 0.001)
                * weights[f"{name}/BatchNorm/gamma"] + weights[f"{name}/BatchNorm/beta"])

    image = np.random.default_rng(1).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    probe = keras.Model(model.input, [
        model.get_layer("Conv.Relu6").output,
        model.get_layer("expanded_conv_1.expand.Relu6").output,
        model.get_layer("expanded_conv_1.depthwise").output,
        model.get_layer("expanded_conv_2.add").output,
        model.get_layer("expanded_conv_1.project.BatchNorm").output,
    ])
    conv, expand, depthwise, added, project = (t.numpy() for t in probe(image, training=False))

    # Conv: 3x3 stride 2 'SAME' + BN (eps 0.001) + ReLU6.
    manual = tf.nn.conv2d(image, weights[f"{scope}/Conv/weights"], 2, "SAME").numpy()
    manual = np.clip(bn(manual, f"{scope}/Conv"), 0.0, 6.0)
    np.testing.assert_allclose(conv, manual, atol=1e-4)

    # Strided depthwise on an even (150x150) input: TF1 'SAME' pads 0 top/left and 1
    # bottom/right; Keras explicit symmetric padding would shift every output pixel.
    assert expand.shape == (1, 150, 150, 96)
    padded = np.pad(expand, [(0, 0), (0, 1), (0, 1), (0, 0)])
    manual = tf.nn.depthwise_conv2d(
        padded, weights[f"{scope}/expanded_conv_1/depthwise/depthwise_weights"], [1, 2, 2, 1],
        "VALID",
    ).numpy()
    np.testing.assert_allclose(depthwise, manual, atol=1e-4)

    # expanded_conv_2 (stride 1, 24 -> 24) adds its input; the project has no ReLU6.
    assert project.min() < 0.0
    shortcut = project
    x = np.clip(bn(tf.nn.conv2d(shortcut, weights[f"{scope}/expanded_conv_2/expand/weights"], 1,
                                "SAME").numpy(), f"{scope}/expanded_conv_2/expand"), 0, 6)
    x = np.clip(bn(tf.nn.depthwise_conv2d(
        x, weights[f"{scope}/expanded_conv_2/depthwise/depthwise_weights"], [1, 1, 1, 1], "SAME"
    ).numpy(), f"{scope}/expanded_conv_2/depthwise"), 0, 6)
    x = bn(tf.nn.conv2d(x, weights[f"{scope}/expanded_conv_2/project/weights"], 1, "SAME").numpy(),
           f"{scope}/expanded_conv_2/project")
    np.testing.assert_allclose(added, x + shortcut, atol=1e-3)


def _keras_compatible_tiny():
    model = with_overrides(preset("tiny"), keras_backbone_layout=True).model
    assert (model.min_depth, model.fixed_last_conv) == (8, True)
    return model


def test_backbone_weights_from_a_local_keras_file(tmp_path):
    config = _keras_compatible_tiny()
    source = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None
    )
    _randomise_batch_norm(source, seed=3)
    path = tmp_path / "mobilenet_v2_0.35.weights.h5"
    source.save_weights(path)
    detector = build_model(config)
    copied = load_backbone_weights(detector, config, str(path))
    # Conv + BN, block 0 (depthwise, project, each + BN), 16 blocks x 6, Conv_1 + BN.
    assert copied == 2 + 4 + 16 * 6 + 2
    pairs = [("block_13_expand", "expanded_conv_13.expand"),
             ("block_13_expand_BN", "expanded_conv_13.expand.BatchNorm"),
             ("expanded_conv_depthwise", "expanded_conv.depthwise"),
             ("Conv_1_bn", "Conv_1.BatchNorm")]
    for theirs, ours in pairs:
        for a, b in zip(source.get_layer(theirs).get_weights(), detector.get_layer(ours).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_backbone_weights_shape_mismatch_is_a_clear_error(tmp_path):
    source = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None
    )
    path = tmp_path / "keras.weights.h5"
    source.save_weights(path)
    config = preset("tiny").model  # min_depth 16, Conv_1 scaled: not Keras' layout
    with pytest.raises(BackboneWeightsError, match="keras_backbone_layout"):
        load_backbone_weights(build_model(config), config, str(path))
    with pytest.raises(BackboneWeightsError, match="not found"):
        load_backbone_weights(build_model(config), config, str(tmp_path / "missing.h5"))
