"""Typed, frozen configuration of the SSD model and of a training run.

Three presets are built explicitly by :func:`preset` (no registry filled at
import time):

- ``coco-parity``: the numbers of the TF1 OD API ``ssd_mobilenet_v2_coco``
  config (300x300, width 1.0, six SSD layers from the block-13 expansion,
  Conv_1 and four extra layers, min/max scale 0.2/0.95, aspect ratios 1, 2,
  1/2, 3, 1/3 (written 0.3333 as in the config), 1917 anchors, box coder
  scales 10/10/5/5, 3x3 heads, BN epsilon 0.001 and decay 0.9997). Its
  variables map one to one onto a TF1 checkpoint (see
  :func:`ktp_tflite.train.model.tf1_variable_map`).
- ``ktp`` (default): a stride-8 feature map for the small text fields, finer
  anchor scales and wide aspect ratios (KTP values are short, wide text lines).
  Anchors follow measured box statistics of the synthetic data; input size
  and width were chosen by a measured sweep (:data:`KTP_PRESET_NOTES`).
- ``tiny``: 96x96, width 0.35, four SSD layers, three anchors per location;
  for tests only.

Plus ``ssdlite`` (depthwise heads) and the width multiplier as overrides
(:func:`with_overrides`).

Why one file: it is the one definition of a run's configuration (dataclasses, presets,
overrides, validation, the ``config.json`` round trip); a new field is declared, given preset
values and checked here. If it grows, the MobileNetV2 layout (``MOBILENET_V2_BLOCKS``,
:func:`backbone_endpoints`, :func:`endpoint_stride_count`) could move to backbone_layout.py.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from typing import Any

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES

PRESETS: tuple[str, ...] = ("ktp", "coco-parity", "tiny")
DEFAULT_PRESET = "ktp"

KTP_PRESET_NOTES = (
    "ktp preset: 320x320 input (the photo is stretched, as the Task Library does), width 0.75, "
    "feature maps at strides 8, 16, 32, 64, 128 (40, 20, 10, 5, 3). Box statistics of 40 "
    "synthetic 640x480 photos (seed 3), in normalised coordinates after the stretch: anchor "
    "scale sqrt(h*w) 0.008-0.20 (kewarganegaraan 0.008-0.03, 2-8 px tall at 320; nik up to "
    "0.20), aspect w/h 1.2-11 (median 1.6-3.8 by field). Hence scales 0.02-0.30 and aspect "
    "ratios 1, 2, 3, 5, 8 plus an interpolated-scale anchor at 3. Anchor coverage on those "
    "photos: 1.57 positive anchors per box (force match included), 70% of boxes without an "
    "anchor at IoU >= 0.5 (coco-parity anchors: 0.99 and 94%; 384 input: 1.81 and 59%; an "
    "extra stride-4 map: 3.65 and 32% with 51k anchors). Input size and width: sweep "
    "(benchmarks/results/preset_sweep.md; 3000 steps from scratch each, mAP@[.5:.95] on 500 "
    "held-out photos, projected Pixel 4 int8 ms +-62 %): 256x0.75 0.535 / 6.0, 320x0.5 0.572 / "
    "6.1, 320x0.75 0.643 and 0.620 (two seeds) / 9.2, 320x1.0 0.647 / 12.2, 384x0.75 0.677 / "
    "13.1, 384x1.0 not trained / 17.4. Rule: the best mean mAP whose projection stays within the "
    "20 ms budget at the band's upper edge (384x0.75 at 21.3 ms and 384x1.0 at 28 ms do not), "
    "or the fastest one within twice the standard error of the leader (seed sigma 0.017): "
    "320x1.0 leads 320x0.75 (mean 0.631) by 1.5 points, inside the 4.1-point noise margin, so "
    "320x0.75 (3.1 MB int8 against 4.6 MB). For flagship phones, --input-size 384 gains 3-6 "
    "points (mostly at IoU .75) for 1.4x the latency."
)


# MobileNetV2 (TF1 slim ``V2_DEF``) blocks after the first conv "Conv"
# (3x3, stride 2, 32 channels): (scope, expansion factor, output channels,
# stride). "Conv_1" (1x1, 1280 channels) follows the last block.
MOBILENET_V2_BLOCKS: tuple[tuple[str, int, int, int], ...] = (
    ("expanded_conv", 1, 16, 1),
    ("expanded_conv_1", 6, 24, 2),
    ("expanded_conv_2", 6, 24, 1),
    ("expanded_conv_3", 6, 32, 2),
    ("expanded_conv_4", 6, 32, 1),
    ("expanded_conv_5", 6, 32, 1),
    ("expanded_conv_6", 6, 64, 2),
    ("expanded_conv_7", 6, 64, 1),
    ("expanded_conv_8", 6, 64, 1),
    ("expanded_conv_9", 6, 64, 1),
    ("expanded_conv_10", 6, 96, 1),
    ("expanded_conv_11", 6, 96, 1),
    ("expanded_conv_12", 6, 96, 1),
    ("expanded_conv_13", 6, 160, 2),
    ("expanded_conv_14", 6, 160, 1),
    ("expanded_conv_15", 6, 160, 1),
    ("expanded_conv_16", 6, 320, 1),
)


def backbone_endpoints() -> tuple[str, ...]:
    """Every end point a feature map may come from, in network order.

    The expansion output of a block ("expanded_conv_N/expand", the OD API's
    "layer_{N+2}/expansion_output"), a block output ("expanded_conv_N"), or
    the last 1x1 conv ("Conv_1").
    """
    names = []
    for scope, expansion, _, _ in MOBILENET_V2_BLOCKS:
        if expansion > 1:
            names.append(f"{scope}/expand")
        names.append(scope)
    return tuple(names) + ("Conv_1",)


def endpoint_stride_count(endpoint: str) -> int:
    """How many stride-2 layers precede an end point (its stride is 2**count).

    Raises:
      ConfigError: unknown end point.
    """
    count = 1  # "Conv"
    for scope, _, _, stride in MOBILENET_V2_BLOCKS:
        if endpoint == f"{scope}/expand":
            return count
        count += stride == 2
        if endpoint == scope:
            return count
    if endpoint == "Conv_1":
        return count
    raise ConfigError(f"unknown feature end point {endpoint!r}; use one of {', '.join(backbone_endpoints())}")


class ConfigError(KtpError, ValueError):
    """A configuration value that cannot be honoured; the message names it."""


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """The OD API ``ssd_anchor_generator`` fields.

    Attributes:
      min_scale: anchor scale of the first layer (fraction of the image side).
      max_scale: anchor scale of the last layer; layers in between are linear.
      aspect_ratios: width / height ratios (in normalised coordinates).
      reduce_boxes_in_lowest_layer: the first layer gets only (0.1, 1.0),
        (min_scale, 2.0), (min_scale, 0.5), as in the OD API.
      interpolated_scale_aspect_ratio: aspect ratio of the extra anchor at
        scale sqrt(s_i * s_{i+1}); 0 disables it.
      base_anchor_size: (height, width) the scales multiply.
    """

    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    reduce_boxes_in_lowest_layer: bool = True
    interpolated_scale_aspect_ratio: float = 1.0
    base_anchor_size: tuple[float, float] = (1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the SSD MobileNetV2 detector.

    Attributes:
      input_size: (height, width) of the model input.
      num_classes: classes without background; heads predict num_classes + 1.
      width_multiplier: MobileNetV2 depth multiplier (0.35-1.0).
      min_depth: smallest channel count a multiplied layer may have (OD API 16).
      fixed_last_conv: keep Conv_1 at 1280 channels for width < 1 (what Keras
        applications and TF1 ``finegrain_classification_mode`` do).
      feature_endpoints: backbone end points used as SSD feature maps.
      extra_layer_depths: depths of the extra stride-2 layers after the last
        end point (the OD API ``layer_depth`` entries that are not -1).
      feature_use_depthwise: extra layers as depthwise 3x3 + pointwise.
      head_use_depthwise: SSDLite heads (depthwise 3x3 + BN + ReLU6 + 1x1).
      head_kernel_size: kernel size of the box predictor convolutions.
      use_explicit_padding: pad strided convs symmetrically then VALID (OD API
        option); False means TF 'SAME' padding, the TF1 default.
      bn_epsilon: batch-norm epsilon (TF1 slim/OD API: 0.001).
      bn_momentum: moving-average decay of batch-norm statistics.
      class_prediction_bias_init: initial bias of the class logits.
      anchors: anchor generator settings.
      box_coder_scales: faster-rcnn box coder (y, x, h, w) scales.
    """

    input_size: tuple[int, int] = (300, 300)
    num_classes: int = len(CLASSES)
    width_multiplier: float = 1.0
    min_depth: int = 16
    fixed_last_conv: bool = False
    feature_endpoints: tuple[str, ...] = ("expanded_conv_13/expand", "Conv_1")
    extra_layer_depths: tuple[int, ...] = (512, 256, 256, 128)
    feature_use_depthwise: bool = True
    head_use_depthwise: bool = False
    head_kernel_size: int = 3
    use_explicit_padding: bool = False
    bn_epsilon: float = 0.001
    bn_momentum: float = 0.9997
    class_prediction_bias_init: float = 0.0
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    box_coder_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)

    @property
    def num_feature_maps(self) -> int:
        """Number of SSD layers (anchor generator ``num_layers``)."""
        return len(self.feature_endpoints) + len(self.extra_layer_depths)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations that keep text legible (no horizontal flip).

    Attributes:
      second_look_probability: chance that a photo whose card is narrower than
        the zoom threshold (:data:`ktp_tflite.train.card_layout.DEFAULT_ZOOM_THRESHOLD`
        of the frame width) is cut to the crop the app's second pass would run
        on (:func:`ktp_tflite.train.augment.second_look_window`): the card large,
        with only the detail of a small one. Such a photo gets no zoom out or
        random crop.
      second_look_margin: (low, high) card widths around the card of that crop,
        drawn uniformly (pass 1's card is an estimate; the app's margin is
        :data:`ktp_tflite.train.card_layout.DEFAULT_ZOOM_MARGIN`).
      zoom_out_probability: chance of placing the photo on a larger canvas.
      max_zoom_out: largest canvas side / photo side.
      crop_probability: chance of a random crop that keeps every box whole.
      min_crop_fraction: smallest crop side as a fraction of the image side.
      max_rotation_degrees: small rotation range (+-); 0 disables it.
      brightness_delta: max brightness change (fraction of 255).
      contrast_range: (low, high) contrast factor.
      saturation_range: (low, high) saturation factor.
      hue_delta: max hue shift.
      blur_probability: chance of a Gaussian blur.
      max_blur_sigma: largest blur sigma in model-input pixels.
      resize_methods: the ways to stretch the photo to the model input, drawn
        with equal chance per image (see :func:`ktp_tflite.train.augment.resize_sampled`):
        "antialias" (ours: PIL-like triangle filter, half-pixel grid), "bilinear"
        (2-tap, half-pixel grid: the Task Library), "corner" (2-tap, sampled at
        ``x * scale``: MediaPipe), "area" (box filter), "nearest". Boxes move
        with the pixels exactly, so every method keeps labels aligned.
      max_subpixel_shift: the photo and its boxes move together by up to this
        many model pixels (uniform, each axis) when resized, so the model sees
        every sub-pixel phase of a text edge.
    """

    second_look_probability: float = 0.0
    second_look_margin: tuple[float, float] = (0.05, 0.2)
    zoom_out_probability: float = 0.3
    max_zoom_out: float = 1.6
    crop_probability: float = 0.5
    min_crop_fraction: float = 0.6
    max_rotation_degrees: float = 2.0
    brightness_delta: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    saturation_range: tuple[float, float] = (0.7, 1.3)
    hue_delta: float = 0.03
    blur_probability: float = 0.2
    max_blur_sigma: float = 1.0
    resize_methods: tuple[str, ...] = ("antialias",)
    max_subpixel_shift: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.second_look_probability <= 1.0:
            raise ConfigError(f"second_look_probability {self.second_look_probability} must lie in 0..1")
        low, high = self.second_look_margin
        if not 0.0 <= low <= high:
            raise ConfigError(f"second_look_margin {self.second_look_margin}: expected 0 <= low <= high")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
      batch_size: global batch size.
      steps: total step budget (a resumed run continues to it).
      learning_rate: peak learning rate.
      warmup_steps: linear warm-up length.
      optimizer: "adam" or "momentum" (SGD with momentum 0.9).
      weight_decay: L2 factor on convolution kernels (TF1 config: 4e-5).
      classification_loss: "focal" (sigmoid focal) or "hard_negative_mining"
        (sigmoid cross entropy, 3 negatives per positive, as the TF1 config).
      focal_alpha: focal loss alpha.
      focal_gamma: focal loss gamma.
      localization_weight: weight of the smooth L1 box loss.
      box_code_limit: 0 disables; otherwise every predicted box code (all
        anchors, not only the matched ones) beyond +-limit costs
        ``box_code_limit_weight * (|code| - limit)`` per code. Unmatched
        anchors get no box loss, so their codes drift to +-100 and more; int8
        quantization then spends its 256 steps on that range (TFLite gives the
        concatenated box tensor one scale), and the matched anchors' codes,
        all within +-10, get steps of ~0.8, i.e. boxes ~17 % off in size.
        Keep the limit above the largest training target (about 10 with the
        scales 10/10/5/5 and IoU 0.4 matching).
      box_code_limit_weight: weight of that penalty (per code, normalised by
        the number of matched anchors like the other terms).
      matched_threshold: IoU at or above which an anchor is positive.
      unmatched_threshold: IoU below which an anchor is negative.
      checkpoint_every: steps between checkpoints.
      keep_checkpoints: checkpoints kept on disk.
      log_every: steps between progress lines and TensorBoard scalars.
      eval_every: steps between validation runs (0: only at the end).
      bn_reestimate_images: training images used to re-estimate batch-norm
        statistics at the end of training (0 disables it).
      shuffle_buffer: tf.data shuffle buffer (examples).
      seed: random seed of the initial weights, shuffling and augmentation.
      augment: augmentation settings.
    """

    batch_size: int = 8
    steps: int = 20000
    learning_rate: float = 2e-3
    warmup_steps: int = 500
    optimizer: str = "adam"
    weight_decay: float = 4e-5
    classification_loss: str = "focal"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    localization_weight: float = 1.0
    box_code_limit: float = 0.0
    box_code_limit_weight: float = 1.0
    matched_threshold: float = 0.5
    unmatched_threshold: float = 0.4
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 20
    eval_every: int = 0
    bn_reestimate_images: int = 128
    shuffle_buffer: int = 512
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run folder's ``config.json`` holds."""

    preset: str
    model: ModelConfig
    train: TrainConfig

    def to_json(self) -> str:
        """JSON text of the full resolved config."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"


def preset(name: str) -> RunConfig:
    """The config of a named preset.

    Raises:
      ConfigError: unknown preset name.
    """
    if name == "coco-parity":
        return RunConfig(
            preset=name,
            model=ModelConfig(),
            train=TrainConfig(
                optimizer="momentum",
                learning_rate=0.004,
                classification_loss="hard_negative_mining",
                unmatched_threshold=0.5,
            ),
        )
    if name == "ktp":
        model = ModelConfig(
            input_size=(320, 320),
            width_multiplier=0.75,
            feature_endpoints=("expanded_conv_6/expand", "expanded_conv_13/expand", "Conv_1"),
            extra_layer_depths=(256, 256),
            bn_momentum=0.99,
            class_prediction_bias_init=-4.6,
            anchors=AnchorConfig(
                min_scale=0.02,
                max_scale=0.3,
                aspect_ratios=(1.0, 2.0, 3.0, 5.0, 8.0),
                reduce_boxes_in_lowest_layer=False,
                interpolated_scale_aspect_ratio=3.0,
            ),
        )
        # Resize as every app runtime does (convert/RUNTIMES.md), ours twice as often
        # (evaluation and `scan` use it), with sub-pixel shifts of photo and boxes.
        # Half the photos small enough for the app's zoom are shown as its second pass sees them.
        augment = AugmentConfig(
            second_look_probability=0.5,
            resize_methods=("antialias", "antialias", "bilinear", "corner", "area", "nearest"),
            max_subpixel_shift=0.5,
        )
        return RunConfig(preset=name, model=model, train=TrainConfig(box_code_limit=12.0, augment=augment))
    if name == "tiny":
        model = ModelConfig(
            input_size=(96, 96),
            width_multiplier=0.35,
            extra_layer_depths=(64, 32),
            bn_momentum=0.9,
            class_prediction_bias_init=-2.0,
            anchors=AnchorConfig(
                min_scale=0.2,
                max_scale=0.9,
                aspect_ratios=(1.0, 3.0),
                reduce_boxes_in_lowest_layer=False,
                interpolated_scale_aspect_ratio=1.0,
            ),
        )
        train = TrainConfig(
            batch_size=4,
            steps=20,
            learning_rate=5e-3,
            warmup_steps=0,
            checkpoint_every=5,
            log_every=5,
            bn_reestimate_images=8,
            shuffle_buffer=32,
        )
        return RunConfig(preset=name, model=model, train=train)
    raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def with_overrides(
    config: RunConfig,
    *,
    width_multiplier: float | None = None,
    ssdlite: bool = False,
    input_size: int | None = None,
    num_classes: int | None = None,
    keras_backbone_layout: bool = False,
    **train_overrides: Any,
) -> RunConfig:
    """A copy of ``config`` with the given fields replaced (None means keep).

    ``keras_backbone_layout`` switches to the channel layout of Keras
    applications' MobileNetV2 (min depth 8, Conv_1 kept at 1280 for width
    < 1), needed to load its ImageNet weights.

    Raises:
      ConfigError: a value out of range or an unknown training field.
    """
    model = config.model
    if width_multiplier is not None:
        if not 0.35 <= width_multiplier <= 1.0:
            raise ConfigError(f"width multiplier {width_multiplier} is outside 0.35-1.0")
        model = dataclasses.replace(model, width_multiplier=width_multiplier)
    if ssdlite:
        model = dataclasses.replace(model, head_use_depthwise=True, feature_use_depthwise=True)
    if input_size is not None:
        if input_size < 32 or input_size % 2:
            raise ConfigError(f"input size {input_size} must be an even number >= 32")
        model = dataclasses.replace(model, input_size=(input_size, input_size))
    if num_classes is not None:
        model = dataclasses.replace(model, num_classes=num_classes)
    if keras_backbone_layout:
        model = dataclasses.replace(model, min_depth=8, fixed_last_conv=True)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train_overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    train = dataclasses.replace(config.train, **{k: v for k, v in train_overrides.items() if v is not None})
    validate(dataclasses.replace(config, model=model, train=train))
    return dataclasses.replace(config, model=model, train=train)


def validate(config: RunConfig) -> None:
    """Check values the builders cannot honour.

    Raises:
      ConfigError: naming the field and the allowed values.
    """
    train = config.train
    if train.optimizer not in ("adam", "momentum"):
        raise ConfigError(f"optimizer {train.optimizer!r}: use 'adam' or 'momentum'")
    if train.classification_loss not in ("focal", "hard_negative_mining"):
        raise ConfigError(f"classification_loss {train.classification_loss!r}: use 'focal' or 'hard_negative_mining'")
    if train.box_code_limit < 0 or train.box_code_limit_weight < 0:
        raise ConfigError("box_code_limit and box_code_limit_weight must be >= 0")
    if train.batch_size < 1 or train.steps < 0:
        raise ConfigError("batch size must be >= 1 and steps >= 0")
    if not 0.0 < train.unmatched_threshold <= train.matched_threshold <= 1.0:
        raise ConfigError("need 0 < unmatched_threshold <= matched_threshold <= 1")
    model = config.model
    if model.num_classes < 1:
        raise ConfigError("num_classes must be >= 1")
    if not model.feature_endpoints:
        raise ConfigError("feature_endpoints must name at least one backbone end point")
    counts = [endpoint_stride_count(name) for name in model.feature_endpoints]
    if counts != sorted(counts) or len(set(counts)) != len(counts):
        raise ConfigError(f"feature_endpoints {model.feature_endpoints} must have strictly increasing strides")


def _from_dict(cls, data: dict[str, Any]):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            value = _from_dict(factory, value)
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[f.name] = value
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return cls(**kwargs)


def run_config_from_json(text: str, source: str = "config.json") -> RunConfig:
    """Parse the JSON written by :meth:`RunConfig.to_json`.

    Raises:
      ConfigError: invalid JSON or unknown fields (names ``source``).
    """
    try:
        data = json.loads(text)
        config = RunConfig(
            preset=data["preset"],
            model=_from_dict(ModelConfig, data["model"]),
            train=_from_dict(TrainConfig, data["train"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ConfigError(f"{source}: not a ktp-tflite run config ({error})") from error
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from error
    validate(config)
    return config
