"""Initial backbone weights: ImageNet (Keras applications), a local file, or none.

``--backbone-weights imagenet`` builds ``keras.applications.MobileNetV2``
with ``weights="imagenet"``: the real Keras download (cached in
``~/.keras/models``), which fails offline with a clear error.
``--backbone-weights PATH`` reads a local Keras MobileNetV2 file (the
downloaded ``..._no_top.h5``, a ``.weights.h5`` saved from
``keras.applications.MobileNetV2(include_top=False)``, or a ``.keras``
model). Weights are copied layer by layer into the detector's backbone by a
fixed name map (Keras ``block_3_expand_BN`` -> our ``expanded_conv_3.expand.BatchNorm``)
and every shape is checked.

Keras applications keep Conv_1 at 1280 channels and use ``min_depth`` 8;
for widths below 1.0 the detector must be built with that layout
(``with_overrides(..., keras_backbone_layout=True)``, which ``ktpconvert
train`` applies whenever ``--backbone-weights`` is not ``none``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ktp_tflite.train.config import MOBILENET_V2_BLOCKS, ModelConfig
from ktp_tflite.train.errors import KtpError

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


class BackboneWeightsError(KtpError, ValueError):
    """Backbone weights that cannot be obtained or do not fit the model."""


def keras_to_detector_names() -> dict[str, str]:
    """Keras applications MobileNetV2 layer name -> detector layer name."""
    names = {"Conv1": "Conv", "bn_Conv1": "Conv.BatchNorm", "Conv_1": "Conv_1", "Conv_1_bn": "Conv_1.BatchNorm"}
    for index, (scope, _, _, _) in enumerate(MOBILENET_V2_BLOCKS):
        keras_prefix = "expanded_conv" if index == 0 else f"block_{index}"
        parts = ("depthwise", "project") if index == 0 else ("expand", "depthwise", "project")
        for part in parts:
            names[f"{keras_prefix}_{part}"] = f"{scope}.{part}"
            names[f"{keras_prefix}_{part}_BN"] = f"{scope}.{part}.BatchNorm"
    return names


def _keras_backbone(config: ModelConfig, weights: str | None):
    import keras

    height, width = config.input_size
    return keras.applications.MobileNetV2(
        input_shape=(max(height, 32), max(width, 32), 3),
        alpha=config.width_multiplier,
        include_top=False,
        weights=weights,
    )


def _load_source(source: str, config: ModelConfig):
    import keras

    if source == "imagenet":
        if config.width_multiplier not in IMAGENET_ALPHAS:
            raise BackboneWeightsError(
                f"no ImageNet MobileNetV2 weights for width {config.width_multiplier}; "
                f"Keras publishes {', '.join(map(str, IMAGENET_ALPHAS))}"
            )
        height, width = config.input_size
        rows = height if height == width and height in (96, 128, 160, 192, 224) else 224
        try:
            return _keras_backbone(config, "imagenet")
        except Exception as error:  # the download raises many types (re-raised as BackboneWeightsError)
            raise BackboneWeightsError(
                "cannot download the ImageNet MobileNetV2 weights with Keras "
                f"({type(error).__name__}: {error}); on a machine without internet, download "
                "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                f"{config.width_multiplier}_{rows}_no_top.h5 elsewhere and pass its path "
                "as --backbone-weights PATH, or use --backbone-weights none"
            ) from error
    path = Path(source)
    if not path.is_file():
        raise BackboneWeightsError(
            f"{path}: backbone weights file not found (--backbone-weights takes "
            "'imagenet', 'none' or a .h5/.weights.h5/.keras file)"
        )
    try:
        if path.suffix == ".keras":
            return keras.models.load_model(path, compile=False)
        model = _keras_backbone(config, None)
        model.load_weights(str(path))
        return model
    except (OSError, ValueError, KeyError) as error:
        raise BackboneWeightsError(
            f"{path}: cannot read it as Keras MobileNetV2 (include_top=False, "
            f"alpha={config.width_multiplier}) weights: {error}"
        ) from error


def load_backbone_weights(detector, config: ModelConfig, source: str) -> int:
    """Copy backbone weights into ``detector``.

    Args:
      detector: a model from :func:`ktp_tflite.train.model.build_model`.
      config: its config.
      source: "none", "imagenet" or a file path.

    Returns:
      The number of layers copied (0 for "none").

    Raises:
      BackboneWeightsError: download failed, unreadable file, or shapes differ.
    """
    if source == "none":
        return 0
    keras_model = _load_source(source, config)
    ours = {layer.name: layer for layer in detector.layers}
    copied = 0
    for keras_name, our_name in keras_to_detector_names().items():
        if our_name not in ours:
            continue  # the detector's backbone may stop before Conv_1
        try:
            theirs = keras_model.get_layer(keras_name)
        except ValueError as error:
            raise BackboneWeightsError(
                f"{source}: no layer {keras_name!r}; is this a Keras MobileNetV2 file?"
            ) from error
        values = theirs.get_weights()
        target = ours[our_name]
        expected = [tuple(w.shape) for w in target.weights]
        got = [tuple(np.shape(v)) for v in values]
        if expected != got:
            raise BackboneWeightsError(
                f"{source}: layer {keras_name} has shapes {got}, the detector's {our_name} "
                f"needs {expected}. Keras MobileNetV2 keeps Conv_1 at 1280 channels and "
                "min depth 8: for width < 1.0 build with keras_backbone_layout "
                "(fixed_last_conv=True, min_depth=8), or use a weights file made for this width"
            )
        target.set_weights(values)
        copied += 1
    if copied == 0:
        raise BackboneWeightsError(f"{source}: no backbone layer matched the detector")
    return copied
