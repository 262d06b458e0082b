"""SSD MobileNetV2 detector as a Keras functional model, TF1-compatible.

The network reproduces the TF1 OD API ``ssd_mobilenet_v2`` graph layer for
layer (see ``object_detection/models/ssd_mobilenet_v2_feature_extractor.py``,
``feature_map_generators.multi_resolution_feature_maps`` and slim's
``mobilenet_v2.V2_DEF``):

- backbone: "Conv" 3x3/2, then the 17 inverted-residual blocks
  ``expanded_conv[_N]`` (expand 1x1 -> depthwise 3x3 -> project 1x1, each
  with batch norm; ReLU6 after expand and depthwise, none after project;
  residual add when stride 1 and depths equal), then "Conv_1" 1x1. Depths
  follow slim's depth multiplier: ``make_divisible(d * width, 8, min_depth)``;
  the expansion depth is ``make_divisible(in * 6, 8)``.
- SSD feature maps from ``feature_endpoints`` (coco-parity: the block-13
  expansion output, 19x19x576, and Conv_1, 10x10x1280), then extra layers
  ``layer_19_1_Conv2d_{i}_1x1_{d/2}`` + ``layer_19_2_Conv2d_{i}_3x3_s2_{d}``
  (depthwise 3x3/2 + BN + ReLU6 named ``..._depthwise``, then 1x1 + BN +
  ReLU6), depth ``max(int(d * width), min_depth)``.
- heads ``BoxPredictor_{i}``: ``BoxEncodingPredictor`` (4 * anchors) and
  ``ClassPredictor`` ((num_classes + 1) * anchors, background first), kxk
  convolutions with bias; SSDLite puts a depthwise kxk + BN + ReLU6
  (``..._depthwise``) before 1x1 predictors.

TF1 numerics: batch norm epsilon 0.001, 'SAME' padding (TensorFlow's
asymmetric bottom/right padding of strided convolutions; Keras
``padding="same"`` on the TensorFlow backend is the same op) unless
``use_explicit_padding``, ReLU6.

Naming: every Keras layer is named by its TF1 scope with "/" written as "."
(Keras forbids "/" in names), e.g. ``expanded_conv_13.expand.BatchNorm``; the
heads keep their TF1 scope ``BoxPredictor_0.ClassPredictor``. So
:func:`tf1_variable_map` is a plain rename, and a TF1 checkpoint loads
variable for variable.

Outputs: ``box_encodings`` [B, N, 4] (ty, tx, th, tw) and ``class_logits``
[B, N, num_classes + 1], anchors in :mod:`ktp_tflite.train.anchors` order.
"""

from __future__ import annotations

import keras
import numpy as np

from ktp_tflite.train.anchors import anchors_per_location
from ktp_tflite.train.config import MOBILENET_V2_BLOCKS, ModelConfig, endpoint_stride_count

TF1_BACKBONE_SCOPE = "FeatureExtractor/MobilenetV2"

# Keras weight name -> TF1 variable name, per layer type.
_TF1_SUFFIX = {
    ("Conv2D", "kernel"): "weights",
    ("Conv2D", "bias"): "biases",
    ("DepthwiseConv2D", "kernel"): "depthwise_weights",
    ("BatchNormalization", "gamma"): "BatchNorm/gamma",
    ("BatchNormalization", "beta"): "BatchNorm/beta",
    ("BatchNormalization", "moving_mean"): "BatchNorm/moving_mean",
    ("BatchNormalization", "moving_variance"): "BatchNorm/moving_variance",
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """TF-Slim's ``_make_divisible``: round to a multiple, never more than 10 % down."""
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def backbone_depth(config: ModelConfig, depth: int) -> int:
    """Output depth of a backbone layer after the width multiplier."""
    return make_divisible(depth * config.width_multiplier, 8, config.min_depth)


def extra_layer_depth(config: ModelConfig, depth: float) -> int:
    """Depth of an extra SSD layer (the OD API's ``depth_fn``)."""
    return max(int(depth * config.width_multiplier), config.min_depth)


def _od_api_layer_name(endpoint: str) -> str:
    """OD API name of an end point ("Conv_1" -> "layer_19")."""
    if endpoint == "Conv_1":
        return f"layer_{len(MOBILENET_V2_BLOCKS) + 2}"
    scope, _, suffix = endpoint.partition("/")
    index = 0 if scope == "expanded_conv" else int(scope.rsplit("_", 1)[1])
    name = f"layer_{index + 2}"
    return f"{name}_expansion_output" if suffix else name


class _Builder:
    """Adds named layers to a functional graph."""

    def __init__(self, config: ModelConfig):
        self.config = config

    # A new initializer for every layer: a Keras 3 initializer instance draws its
    # seed once, so one instance shared by layers gives every kernel of the same
    # shape the same values (the repeated MobileNetV2 blocks started as copies).
    @staticmethod
    def backbone_init() -> keras.initializers.Initializer:
        return keras.initializers.TruncatedNormal(stddev=0.09)

    @staticmethod
    def ssd_init() -> keras.initializers.Initializer:
        return keras.initializers.TruncatedNormal(stddev=0.03)

    def _pad(self, x, kernel: int, name: str):
        if not self.config.use_explicit_padding or kernel == 1:
            return x, "same"
        total = kernel - 1
        begin = total // 2
        pad = ((begin, total - begin), (begin, total - begin))
        return keras.layers.ZeroPadding2D(pad, name=f"{name}.pad")(x), "valid"

    def _bn_relu(self, x, name: str, activation: bool = True):
        x = keras.layers.BatchNormalization(
            epsilon=self.config.bn_epsilon,
            momentum=self.config.bn_momentum,
            name=f"{name}.BatchNorm",
        )(x)
        if activation:
            x = keras.layers.ReLU(6.0, name=f"{name}.Relu6")(x)
        return x

    def conv_bn(self, x, filters: int, kernel: int, stride: int, name: str, init, activation: bool = True):
        x, padding = self._pad(x, kernel, name)
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=init,
            name=name,
        )(x)
        return self._bn_relu(x, name, activation)

    def depthwise_bn(self, x, kernel: int, stride: int, name: str, init):
        x, padding = self._pad(x, kernel, name)
        x = keras.layers.DepthwiseConv2D(
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            depthwise_initializer=init,
            name=name,
        )(x)
        return self._bn_relu(x, name)


def _backbone(builder: _Builder, image, last_endpoint: str) -> dict[str, object]:
    config = builder.config
    init = builder.backbone_init
    endpoints: dict[str, object] = {}
    x = builder.conv_bn(image, backbone_depth(config, 32), 3, 2, "Conv", init())
    endpoints["Conv"] = x
    for scope, expansion, depth, stride in MOBILENET_V2_BLOCKS:
        shortcut = x
        in_depth = x.shape[-1]
        inner = make_divisible(in_depth * expansion, 8 if expansion > 1 else 1)
        if inner > in_depth:
            x = builder.conv_bn(x, inner, 1, 1, f"{scope}.expand", init())
            endpoints[f"{scope}/expand"] = x
            if last_endpoint == f"{scope}/expand":
                return endpoints
        x = builder.depthwise_bn(x, 3, stride, f"{scope}.depthwise", init())
        out_depth = backbone_depth(config, depth)
        x = builder.conv_bn(x, out_depth, 1, 1, f"{scope}.project", init(), activation=False)
        if stride == 1 and in_depth == out_depth:
            x = keras.layers.Add(name=f"{scope}.add")([x, shortcut])
        endpoints[scope] = x
        if last_endpoint == scope:
            return endpoints
    last_depth = 1280
    if not (config.fixed_last_conv and config.width_multiplier < 1.0):
        last_depth = backbone_depth(config, 1280)
    endpoints["Conv_1"] = builder.conv_bn(x, last_depth, 1, 1, "Conv_1", init())
    return endpoints


def _head(builder: _Builder, x, index: int, outputs: int, kind: str):
    config = builder.config
    name = f"BoxPredictor_{index}.{kind}"
    kernel = config.head_kernel_size
    if config.head_use_depthwise:
        x = builder.depthwise_bn(x, kernel, 1, f"{name}_depthwise", builder.ssd_init())
        kernel = 1
    bias = 0.0
    if kind == "ClassPredictor":
        bias = config.class_prediction_bias_init
    return keras.layers.Conv2D(
        outputs,
        kernel,
        padding="same",
        use_bias=True,
        kernel_initializer=builder.ssd_init(),
        bias_initializer=keras.initializers.Constant(bias),
        name=name,
    )(x)


def build_model(config: ModelConfig, name: str = "ssd_mobilenet_v2") -> keras.Model:
    """The detector: image [B, H, W, 3] in [-1, 1] -> [box_encodings, class_logits]."""
    height, width = config.input_size
    image = keras.Input((height, width, 3), name="image")
    builder = _Builder(config)
    for endpoint in config.feature_endpoints:
        endpoint_stride_count(endpoint)  # validates the name
    endpoints = _backbone(builder, image, config.feature_endpoints[-1])
    feature_maps = [endpoints[name_] for name_ in config.feature_endpoints]

    base = _od_api_layer_name(config.feature_endpoints[-1])
    x = feature_maps[-1]
    for offset, depth in enumerate(config.extra_layer_depths):
        index = len(config.feature_endpoints) + offset
        mid = extra_layer_depth(config, depth / 2)
        out = extra_layer_depth(config, depth)
        x = builder.conv_bn(x, mid, 1, 1, f"{base}_1_Conv2d_{index}_1x1_{mid}", builder.ssd_init())
        name_ = f"{base}_2_Conv2d_{index}_3x3_s2_{out}"
        if config.feature_use_depthwise:
            x = builder.depthwise_bn(x, 3, 2, f"{name_}_depthwise", builder.ssd_init())
            x = builder.conv_bn(x, out, 1, 1, name_, builder.ssd_init())
        else:
            x = builder.conv_bn(x, out, 3, 2, name_, builder.ssd_init())
        feature_maps.append(x)

    slots = config.num_classes + 1
    boxes, classes = [], []
    for index, (feature, count) in enumerate(zip(feature_maps, anchors_per_location(config))):
        box = _head(builder, feature, index, count * 4, "BoxEncodingPredictor")
        cls = _head(builder, feature, index, count * slots, "ClassPredictor")
        boxes.append(keras.layers.Reshape((-1, 4), name=f"BoxPredictor_{index}.box_reshape")(box))
        classes.append(keras.layers.Reshape((-1, slots), name=f"BoxPredictor_{index}.class_reshape")(cls))
    box_encodings = keras.layers.Concatenate(axis=1, name="box_encodings")(boxes)
    class_logits = keras.layers.Concatenate(axis=1, name="class_logits")(classes)
    return keras.Model(image, [box_encodings, class_logits], name=name)


def feature_map_shapes(model: keras.Model) -> list[tuple[int, int, int]]:
    """(height, width, depth) of the tensor each head reads, in head order."""
    shapes = []
    index = 0
    while True:
        try:
            layer = model.get_layer(f"BoxPredictor_{index}.BoxEncodingPredictor")
        except ValueError:
            break
        layer_in = layer.input
        if isinstance(layer_in, list):
            layer_in = layer_in[0]
        height, width, depth = (int(d) for d in layer_in.shape[1:])
        shapes.append((height, width, depth))
        index += 1
    return shapes


def tf1_variable_map(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 OD API checkpoint variable name -> Keras variable of ``model``.

    Raises:
      ValueError: a weight with no TF1 counterpart (a bug in the builder).
    """
    mapping: dict[str, keras.Variable] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        scope = layer.name.replace(".", "/")
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            scope = scope.removesuffix("/BatchNorm")
        prefix = "" if scope.startswith("BoxPredictor_") else f"{TF1_BACKBONE_SCOPE}/"
        for weight in layer.weights:
            short = weight.path.rsplit("/", 1)[-1]
            suffix = _TF1_SUFFIX.get((kind, short))
            if suffix is None:
                raise ValueError(f"layer {layer.name}: weight {short} has no TF1 name")
            mapping[f"{prefix}{scope}/{suffix}"] = weight
    return mapping


def count_parameters(model: keras.Model) -> int:
    """Number of scalar weights, batch-norm statistics included."""
    return int(sum(np.prod(w.shape) for w in model.weights))
