"""The field reader: a small CRNN-style recognizer with CTC, and its configuration.

One model reads all five fields. The field is not an input: the five share
the alphabet and the fonts, the grammar of each field is applied when
decoding (:mod:`ktp_tflite.train.reader_grammar`), and one model means one
.tflite file, one interpreter and one calibration set in the app. (The issue
asks to choose between this and one model per field by measurement; that
measurement has not been made yet.)

Architecture, for a [32, 256, 3] crop in [-1, 1] (MobileNet's range, the
detector's preprocessing):

- a 3x3 stride-2 convolution, then MobileNet-style depthwise-separable
  blocks (3x3 depthwise + 1x1 pointwise, batch norm, ReLU6) that halve the
  height down to 1 and the width once more: a [1, 64, C] feature row; each
  block followed by ``block_repeats`` residual stride-1 blocks of its width
  (depth where the letters are still several rows tall; 0 in the bundled
  reader);
- the sequence head: depthwise-separable 1-D convolutions over the width
  (kernel 1x5, residual), then a 1x1 convolution to blank + 41 characters.

Output: logits [T = width / 4, NUM_CLASSES] (no softmax; decoding takes a
log-softmax). The head is convolutional, not a BiLSTM: every op is a plain
CONV_2D / DEPTHWISE_CONV_2D / ADD / RESHAPE, which TFLite quantizes fully to
int8 and XNNPACK runs well; LSTMs convert to UNIDIRECTIONAL_SEQUENCE_LSTM or
unrolled loops that often keep float parts or need 16x8 quantization.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.reader_crops import CROP_KINDS, DETECTOR_KIND, CropConfig
from ktp_tflite.train.reader_grammar import NUM_CLASSES

INPUT_NAME = "crop"
OUTPUT_NAME = "logits"
WIDTH_STRIDE = 4  # crop columns per output time step


class ReaderConfigError(KtpError, ValueError):
    """Reader settings that cannot be honoured (says which)."""


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    """Everything a reader run needs; stored as ``config.json`` in the run folder.

    Attributes:
      crop: crop geometry (the model input is [crop.height, crop.width, 3]).
      channels: filters of the stem and the four blocks.
      block_repeats: residual stride-1 separable blocks after each of the four
        strided blocks (0: none).
      head_channels: width of the sequence head.
      head_blocks: residual 1-D blocks in the head.
      steps: training steps.
      batch_size: crops per step.
      learning_rate: Adam's peak learning rate: 500 steps of linear warm-up, then
        cosine decay to 0 at ``steps``.
      seed: initial weights and batch order.
      train_seed / train_cards: rendered cards the training crops come from
        (5 fields x the crop kinds per card).
      val_seed / val_cards: rendered cards of the evaluation crops.
      crop_kinds: "rectified", "box" and/or "detector" (see
        :mod:`ktp_tflite.train.reader_crops`); "detector" crops need a
        detector when the training crops are rendered and are never
        validation crops (those are the exact boxes).
      box_jitter: training "box" crops have each edge moved by up to this
        many box heights (a detector's box errors); validation crops use the
        exact boxes.
      deskew_boxes: "box" crops are deskewed, as the app and ``scan --reader``
        crop a detector's box (runs before this setting: False).
      detector: the detector whose boxes made the "detector" crops (file name
        and SHA-256 prefix), "" without them.
      init_from: the checkpoint whose model weights started this run (a
        warm start; the architecture must match, the crop width may differ),
        "" for random initial weights.
      frame_sizes: (width, height) of the training photos, cycled by card
        index (three 640x480 cards to one 1280x960: the app reads from the
        analysis frame or a larger capture).
      checkpoint_every: steps between checkpoints (and at the end).
      field_weights: (field, weight) pairs: a training crop of that field is
        drawn with that weight (fields not named: 1), so the fields' shares of
        the batches follow the weights (every card gives each field the same
        number of crops); () draws every crop alike.
    """

    crop: CropConfig = dataclasses.field(default_factory=CropConfig)
    channels: tuple[int, ...] = (24, 48, 96, 128, 160)
    block_repeats: int = 0
    head_channels: int = 160
    head_blocks: int = 2
    steps: int = 20000
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    train_seed: int = 101
    train_cards: int = 12000
    val_seed: int = 1101
    val_cards: int = 300
    crop_kinds: tuple[str, ...] = ("rectified", "box")
    box_jitter: float = 0.12
    deskew_boxes: bool = True
    detector: str = ""
    init_from: str = ""
    frame_sizes: tuple[tuple[int, int], ...] = ((640, 480), (640, 480), (640, 480), (1280, 960))
    checkpoint_every: int = 500
    field_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        if self.crop.height != 32:
            raise ReaderConfigError(f"crop height {self.crop.height}: the reader's blocks need exactly 32")
        if self.crop.width % WIDTH_STRIDE:
            raise ReaderConfigError(f"crop width {self.crop.width} must be a multiple of {WIDTH_STRIDE}")
        if len(self.channels) != 5 or min(self.channels) < 1 or self.head_channels < 1:
            raise ReaderConfigError(f"channels {self.channels}: give 5 positive filter counts")
        for name in ("steps", "head_blocks", "block_repeats"):
            if getattr(self, name) < 0:
                raise ReaderConfigError(f"{name} must be >= 0")
        for name in ("batch_size", "train_cards", "val_cards", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ReaderConfigError(f"{name} must be >= 1")
        bad = [k for k in self.crop_kinds if k not in (*CROP_KINDS, DETECTOR_KIND)]
        if bad or not set(self.crop_kinds) & set(CROP_KINDS):
            raise ReaderConfigError(
                f'crop_kinds {self.crop_kinds}: use "rectified" and/or "box", optionally with "{DETECTOR_KIND}"'
            )
        if not 0.0 <= self.box_jitter <= 0.5:
            raise ReaderConfigError(f"box_jitter {self.box_jitter} must lie in 0..0.5 (box heights)")
        if not self.frame_sizes or any(len(s) != 2 or min(s) < 64 for s in self.frame_sizes):
            raise ReaderConfigError(f"frame_sizes {self.frame_sizes}: give (width, height) pairs of >= 64 px")
        named = [name for name, _ in self.field_weights]
        if any(name not in CLASSES for name in named) or len(set(named)) != len(named):
            raise ReaderConfigError(
                f"field_weights {self.field_weights}: name each of {', '.join(CLASSES)} at most once"
            )
        weights = dict(self.field_weights)
        if any(not (math.isfinite(w) and w >= 0) for w in weights.values()) or not any(
            weights.get(name, 1.0) > 0 for name in CLASSES
        ):
            raise ReaderConfigError(f"field_weights {self.field_weights}: weights must be >= 0, one of them > 0")

    @property
    def validation_kinds(self) -> tuple[str, ...]:
        """The crop kinds of validation (and calibration) crops: the config's, without "detector"."""
        return tuple(k for k in self.crop_kinds if k != DETECTOR_KIND)

    @property
    def time_steps(self) -> int:
        """Output time steps (crop width / 4)."""
        return self.crop.width // WIDTH_STRIDE

    def to_json(self) -> str:
        """The config as JSON (read back by :func:`reader_config_from_json`)."""
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


def reader_config_from_json(text: str, source: str = "config.json") -> ReaderConfig:
    """Parse :meth:`ReaderConfig.to_json` output.

    Raises:
      ReaderConfigError: not such a config (names ``source``).
    """
    try:
        data: dict[str, Any] = json.loads(text)
        crop = CropConfig(**data.pop("crop"))
        for key in ("channels", "crop_kinds"):
            data[key] = tuple(data[key])
        data.setdefault("deskew_boxes", False)  # written before box crops were deskewed
        if "frame_sizes" in data:
            data["frame_sizes"] = tuple(tuple(size) for size in data["frame_sizes"])
        data["field_weights"] = tuple((str(name), float(w)) for name, w in data.get("field_weights", ()))
        return ReaderConfig(crop=crop, **data)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ReaderConfigError(
            f"{source}: not a reader config ({error}); was it written by `ktpconvert train-reader`?"
        ) from error


def build_reader(config: ReaderConfig):
    """The Keras reader: [crop.height, crop.width, 3] float in [-1, 1] -> logits [T, NUM_CLASSES]."""
    import keras

    def init():
        return keras.initializers.HeNormal(seed=None)  # one instance per layer (see train/model.py)

    def bn_relu(x, name):
        x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}.bn")(x)
        return keras.layers.ReLU(6.0, name=f"{name}.relu6")(x)

    def separable(x, filters, kernel, strides, name):
        x = keras.layers.DepthwiseConv2D(
            kernel, strides=strides, padding="same", use_bias=False, depthwise_initializer=init(), name=f"{name}.dw"
        )(x)
        x = bn_relu(x, f"{name}.dw")
        x = keras.layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=init(), name=f"{name}.pw")(x)
        return bn_relu(x, f"{name}.pw")

    crop = keras.Input((config.crop.height, config.crop.width, 3), name=INPUT_NAME)
    stem, *blocks = config.channels
    x = keras.layers.Conv2D(stem, 3, strides=2, padding="same", use_bias=False, kernel_initializer=init(), name="stem")(
        crop
    )
    x = bn_relu(x, "stem")  # 16 x W/2
    strides = ((2, 2), (2, 1), (2, 1), (2, 1))  # -> 8 x W/4, 4, 2, 1
    for index, (filters, stride) in enumerate(zip(blocks, strides)):
        x = separable(x, filters, 3, stride, f"block{index}")
        for repeat in range(config.block_repeats):
            y = separable(x, filters, 3, 1, f"block{index}.r{repeat}")
            x = keras.layers.Add(name=f"block{index}.r{repeat}.add")([x, y])
    x = keras.layers.Conv2D(config.head_channels, 1, use_bias=False, kernel_initializer=init(), name="head.in")(x)
    x = bn_relu(x, "head.in")
    for index in range(config.head_blocks):
        y = separable(x, config.head_channels, (1, 5), 1, f"head{index}")
        x = keras.layers.Add(name=f"head{index}.add")([x, y])
    x = keras.layers.Conv2D(NUM_CLASSES, 1, kernel_initializer=init(), name="classes")(x)
    logits = keras.layers.Reshape((config.time_steps, NUM_CLASSES), name=OUTPUT_NAME)(x)
    return keras.Model(crop, logits, name="ktp_reader")


def field_sampling(fields: Sequence[str], config: ReaderConfig) -> np.ndarray | None:
    """Probabilities of drawing each of the crops of ``fields`` under ``config.field_weights``; None: alike."""
    if not config.field_weights:
        return None
    weights = dict(config.field_weights)
    p = np.array([weights.get(field, 1.0) for field in fields], dtype=np.float64)
    if not p.sum() > 0:
        raise ReaderConfigError(f"field_weights {config.field_weights}: every training crop has weight 0")
    return p / p.sum()


@dataclasses.dataclass(frozen=True)
class FoldedConvolution:
    """One convolution of a float reader .tflite, in Keras layout, its batch norm folded in.

    The TFLite converter folds each convolution's batch norm into its kernel
    and a bias (``kernel * gamma / sqrt(var + eps)``, ``beta - mean * ...``).

    Attributes:
      depthwise: DEPTHWISE_CONV_2D (``kernel`` [h, w, channels, 1]) or CONV_2D ([h, w, in, out]).
      kernel, bias: float32 values.
    """

    depthwise: bool
    kernel: np.ndarray
    bias: np.ndarray


def _convolutions(model) -> list:
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    return [layer for layer in model.layers if isinstance(layer, kinds)]  # the order they run in


def load_folded(model, config: ReaderConfig, convolutions: Sequence[FoldedConvolution], pixels, source: str) -> None:
    """Start ``model`` (built by :func:`build_reader` from ``config``) as the reader a .tflite holds.

    ``convolutions`` are the file's, in the order its graph runs them (stem,
    blocks, head, classifier). The file may have fewer residual blocks per
    stage than ``config.block_repeats``: those it lacks start as identities
    (their last batch norm's scale 0, so the branch adds 0) and train from
    there. The crop width may differ (no weight depends on it).

    Each batch norm is set so that the model computes the file's function
    in inference mode exactly, and in training mode on batches like
    ``pixels`` (float model input, [N, 32, W, 3]; a few hundred training
    crops): its moving mean and variance are the statistics of its
    convolution's output on ``pixels``, its scale and offset undo them and
    add the folded bias. Training then continues as from a checkpoint.

    Raises:
      ReaderConfigError: the file's convolutions are not this architecture's
        (names ``source``, the first mismatch and what to pass).
    """
    import keras

    layers = _convolutions(model)
    absent: list = []
    for repeats in range(config.block_repeats, -1, -1):  # the file's own residual blocks per stage
        absent = [
            layer
            for layer in layers
            if any(f".r{r}." in layer.name + "." for r in range(repeats, config.block_repeats))
        ]
        if len(layers) - len(absent) == len(convolutions):
            break
    else:
        repeats = -1
    hint = "pass a float reader .tflite of the same channels and head (`ktpconvert export-reader`'s float file)"
    if repeats < 0:
        raise ReaderConfigError(
            f"{source}: {len(convolutions)} convolutions; a reader of channels {config.channels}, head "
            f"{config.head_channels} x {config.head_blocks} has {len(layers)} with {config.block_repeats} "
            f"residual blocks per stage and fewer without them; {hint}"
        )
    present = [layer for layer in layers if layer not in absent]
    for index, (layer, folded) in enumerate(zip(present, convolutions)):
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        expected = tuple(layer.kernel.shape)
        if depthwise != folded.depthwise or tuple(folded.kernel.shape) != expected:
            raise ReaderConfigError(
                f"{source}: convolution {index} is {'depthwise ' if folded.depthwise else ''}"
                f"{list(folded.kernel.shape)} where this reader's {layer.name} is "
                f"{'depthwise ' if depthwise else ''}{list(expected)}; {hint}"
            )
    norms = {layer.name: model.get_layer(f"{layer.name}.bn") for layer in layers if layer.name != "classes"}
    for layer in absent:
        if layer.name.endswith(".pw"):  # the branch's last norm: scale and offset 0, the branch adds 0
            norm = norms[layer.name]
            norm.set_weights([np.zeros_like(w) if k < 2 else w for k, w in enumerate(norm.get_weights())])
    for layer, folded in zip(present, convolutions):
        if layer.name == "classes":
            layer.set_weights([folded.kernel, folded.bias])
            continue
        layer.set_weights([folded.kernel])
        norm = norms[layer.name]
        ones = np.ones_like(folded.bias)
        norm.set_weights([ones, folded.bias, np.zeros_like(folded.bias), ones - norm.epsilon])  # exact: x + bias
    probed = [(layer, folded) for layer, folded in zip(present, convolutions) if layer.name != "classes"]
    outputs = keras.Model(model.input, [layer.output for layer, _ in probed])(pixels, training=False)
    for (layer, folded), output in zip(probed, outputs):
        values = np.asarray(output, dtype=np.float64)
        mean, var = values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2))
        norm = norms[layer.name]
        norm.set_weights(
            [
                np.sqrt(var + norm.epsilon).astype(np.float32),
                (mean + folded.bias).astype(np.float32),
                mean.astype(np.float32),
                var.astype(np.float32),
            ]
        )
