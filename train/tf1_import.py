"""Import a TF1 Object Detection API SSD MobileNet v2 checkpoint into a run folder.

Input: a TF1 checkpoint prefix (``model.ckpt-N``, read with
``tf.train.load_checkpoint``, no TF1 needed) and its ``pipeline.config``.
Output: a run folder as ``ktpconvert train`` writes it (``config.json`` and
``checkpoints/ckpt-0`` holding step 0, the model and a fresh optimizer; plus
``tf1_import.json``; layout in :mod:`ktp_tflite.train.run_folder`), which
``ktpconvert export``, ``quantize`` and ``train --resume`` accept.

The model is built by :func:`ktp_tflite.train.model.build_model` from the
config (:func:`model_config_from_pipeline`; every field that changes the
network is either mapped or an error naming it) and its weights are filled by
name through :func:`ktp_tflite.train.model.tf1_variable_map`. The import is
all or nothing: every model weight must be filled exactly once with a tensor
of the same shape, and every checkpoint variable must be used or be one the
inference graph never reads (``global_step``, optimizer slots such as
``.../Momentum``, ``.../RMSProp``, ``.../Adam``, and the
``.../ExponentialMovingAverage`` shadows when averages are not used).
Otherwise :class:`CheckpointImportError` lists what is missing, unexpected
or of the wrong shape.

Moving averages: the OD API exporters (``exporter.py``,
``export_tflite_ssd_graph_lib.py``) freeze the shadow variables
``<weight>/ExponentialMovingAverage`` instead of the raw weights when
``eval_config.use_moving_averages`` is true, for every trainable variable
(batch-norm moving statistics have no shadow and are read raw). This import
does the same, so the default follows the config, and the caller may force it
either way (``--use-moving-averages/--no-use-moving-averages``).

Why one file: one import flow (pipeline.config -> :class:`ModelConfig` -> checkpoint variables
matched by name -> run folder); the config half fixes the network whose TF1 names the checkpoint
half matches. If it grows, the config checks (:class:`PipelineExtras`, :func:`pipeline_extras`,
``_check_hyperparams``, :func:`model_config_from_pipeline`) could move to tf1_pipeline.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from ktp_tflite.train.atomic_files import atomic_write_files
from ktp_tflite.train.config import AnchorConfig, ModelConfig, preset
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.pipeline_config import (
    Message,
    PipelineConfigError,
    SsdPipelineConfig,
    parse_text_proto,
    ssd_config_from_message,
)
from ktp_tflite.train.run_folder import IMPORT_FILE as IMPORT_FILE  # the marker of `import-tf1 --force`
from ktp_tflite.train.run_folder import RunFolder

IMPORT_PRESET = "tf1-import"
EMA_SUFFIX = "/ExponentialMovingAverage"
# The ssd_mobilenet_v2 feature extractor's fixed layout (OD API
# ssd_mobilenet_v2_feature_extractor.py): layer_15/expansion_output, layer_19,
# then four extra layers of depth 512, 256, 256, 128.
_FEATURE_ENDPOINTS = ("expanded_conv_13/expand", "Conv_1")
_EXTRA_LAYER_DEPTHS = (512, 256, 256, 128)
_NUM_LAYERS = len(_FEATURE_ENDPOINTS) + len(_EXTRA_LAYER_DEPTHS)
# Variables the inference graph never reads: training bookkeeping.
_UNUSED = re.compile(r"(^global_step$|^beta[12]_power$|/(Momentum|RMSProp(_1)?|Adam(_1)?|Adagrad|Ftrl(_1)?)$)")
_LISTED = 12  # names shown per category in an error message


class CheckpointImportError(KtpError, ValueError):
    """A TF1 checkpoint that does not match its pipeline.config or cannot be read."""


@dataclasses.dataclass(frozen=True)
class PipelineExtras:
    """Fields of ``pipeline.config`` outside :class:`SsdPipelineConfig` that matter here.

    Attributes:
      use_explicit_padding: ``feature_extractor.use_explicit_padding``.
      base_anchor_size: ``ssd_anchor_generator`` base anchor (height, width).
      class_prediction_bias_init: ``convolutional_box_predictor`` initial bias.
      use_moving_averages: ``eval_config.use_moving_averages``.
    """

    use_explicit_padding: bool = False
    base_anchor_size: tuple[float, float] = (1.0, 1.0)
    class_prediction_bias_init: float = 0.0
    use_moving_averages: bool = False


@dataclasses.dataclass(frozen=True)
class Tf1Pipeline:
    """A parsed ``pipeline.config``: the SSD part and the extra fields."""

    ssd: SsdPipelineConfig
    extras: PipelineExtras


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """How checkpoint variables were matched to model weights.

    Attributes:
      checkpoint: the checkpoint prefix read.
      model_weights: number of weights of the built model.
      assigned: model weights filled from the checkpoint.
      used_moving_averages: weights came from the EMA shadow variables.
      global_step: the checkpoint's ``global_step`` (None if absent).
      ignored: checkpoint variables deliberately not used (sorted).
      missing: model variables (TF1 names) the checkpoint lacks.
      unexpected: checkpoint variables the model has no place for.
      mismatched: (name, checkpoint shape, model shape) of wrong shapes.
    """

    checkpoint: str
    model_weights: int
    assigned: int
    used_moving_averages: bool
    global_step: int | None = None
    ignored: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def complete(self) -> bool:
        """Every weight filled once, nothing unexplained."""
        return not self.missing and not self.unexpected and not self.mismatched and self.assigned == self.model_weights

    def problems(self) -> str:
        """A readable list of what does not match ("" when complete)."""
        lines = []

        def listed(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"{len(items)} {title}:")
                lines.extend(f"  {item}" for item in items[:_LISTED])
                if len(items) > _LISTED:
                    lines.append(f"  ... and {len(items) - _LISTED} more")

        listed("model variable(s) missing from the checkpoint", list(self.missing))
        listed("checkpoint variable(s) the model has no place for", list(self.unexpected))
        listed(
            "shape mismatch(es) (checkpoint vs model)",
            [f"{name}: {list(theirs)} vs {list(ours)}" for name, theirs, ours in self.mismatched],
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (counts, not the full ignored list)."""
        return {
            "checkpoint": self.checkpoint,
            "model_weights": self.model_weights,
            "assigned": self.assigned,
            "used_moving_averages": self.used_moving_averages,
            "global_step": self.global_step,
            "ignored": len(self.ignored),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [[n, list(a), list(b)] for n, a, b in self.mismatched],
        }


def _values(message: Message, field: str) -> list[Any]:
    return message.get(field, [])


def _one(message: Message, field: str, default: Any) -> Any:
    values = _values(message, field)
    return values[-1] if values else default


def _child(message: Message, field: str) -> Message:
    value = _one(message, field, {})
    return value if isinstance(value, dict) else {}


def _check_hyperparams(holder: Message, path: str, source: str) -> None:
    """ReLU6 and batch-norm epsilon 0.001 are what the builder implements."""
    if "conv_hyperparams" not in holder:
        return
    hyper = _child(holder, "conv_hyperparams")
    activation = _one(hyper, "activation", "NONE")
    if activation != "RELU_6":
        raise PipelineConfigError(
            f"{source}: {path}.conv_hyperparams.activation: {activation} is not supported; "
            "the model uses RELU_6 (as every OD API MobileNet SSD config)"
        )
    if "batch_norm" in hyper:
        epsilon = _one(_child(hyper, "batch_norm"), "epsilon", 0.001)
        if abs(float(epsilon) - 0.001) > 1e-7:
            raise PipelineConfigError(
                f"{source}: {path}.conv_hyperparams.batch_norm.epsilon: {epsilon} is not "
                "supported; the model uses 0.001 (slim's MobileNet default)"
            )


def pipeline_extras(message: Message, source: str = "pipeline.config") -> PipelineExtras:
    """Read (and check) the fields :class:`SsdPipelineConfig` leaves out.

    Raises:
      PipelineConfigError: a field set to something the builder cannot honour.
    """
    ssd = _child(_child(message, "model"), "ssd")
    path = "pipeline.model.ssd"

    def error(field: str, problem: str) -> PipelineConfigError:
        return PipelineConfigError(f"{source}: {path}.{field}: {problem}")

    if _one(ssd, "add_background_class", True) is not True:
        raise error("add_background_class", "must be true; the heads predict background first")
    extractor = _child(ssd, "feature_extractor")
    if _one(extractor, "pad_to_multiple", 1) != 1:
        raise error("feature_extractor.pad_to_multiple", "must be 1 with a fixed-shape input")
    if _one(extractor, "num_layers", _NUM_LAYERS) != _NUM_LAYERS:
        raise error("feature_extractor.num_layers", f"ssd_mobilenet_v2 has {_NUM_LAYERS} feature maps")
    if extractor.get("fpn"):
        raise error("feature_extractor.fpn", "FPN feature extractors are not supported")
    _check_hyperparams(extractor, f"{path}.feature_extractor", source)
    predictor = _child(_child(ssd, "box_predictor"), "convolutional_box_predictor")
    layers = _one(predictor, "num_layers_before_predictor", 0)
    if layers != 0:
        raise error(
            "box_predictor.convolutional_box_predictor.num_layers_before_predictor",
            f"{layers} is not supported; the heads are single convolutions (0)",
        )
    if _one(predictor, "apply_sigmoid_to_scores", False) is not False:
        raise error(
            "box_predictor.convolutional_box_predictor.apply_sigmoid_to_scores",
            "must be false; the sigmoid is the post-processing score converter",
        )
    _check_hyperparams(predictor, f"{path}.box_predictor.convolutional_box_predictor", source)
    post = _child(ssd, "post_processing")
    if float(_one(post, "logit_scale", 1.0)) != 1.0:
        raise error("post_processing.logit_scale", "must be 1.0; the export applies no scale")
    anchors = _child(_child(ssd, "anchor_generator"), "ssd_anchor_generator")
    moving = _one(_child(message, "eval_config"), "use_moving_averages", False)
    return PipelineExtras(
        use_explicit_padding=bool(_one(extractor, "use_explicit_padding", False)),
        base_anchor_size=(
            float(_one(anchors, "base_anchor_height", 1.0)),
            float(_one(anchors, "base_anchor_width", 1.0)),
        ),
        class_prediction_bias_init=float(_one(predictor, "class_prediction_bias_init", 0.0)),
        use_moving_averages=bool(moving),
    )


def load_pipeline(path: str | Path) -> Tf1Pipeline:
    """Parse and check a TF1 ``pipeline.config`` file.

    Raises:
      PipelineConfigError: unreadable, bad syntax, or a field the model cannot honour.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineConfigError(f"{path}: cannot read pipeline config ({error})") from error
    message = parse_text_proto(text, str(path))
    return Tf1Pipeline(ssd_config_from_message(message, str(path)), pipeline_extras(message, str(path)))


def model_config_from_pipeline(config: SsdPipelineConfig, extras: PipelineExtras = PipelineExtras()) -> ModelConfig:
    """The :class:`ModelConfig` that reproduces the TF1 model of ``config``.

    ``feature_extractor.use_depthwise`` makes the extra layers depthwise 3x3 +
    1x1 (the zoo's ``ssd_mobilenet_v2_coco_2018_03_29`` sets it, the sample
    config does not); ``box_predictor.use_depthwise`` gives SSDLite heads.

    Raises:
      PipelineConfigError: a value the builder cannot honour (names the field).
    """
    source = config.source or "pipeline.config"

    def error(field: str, problem: str) -> PipelineConfigError:
        return PipelineConfigError(f"{source}: pipeline.model.ssd.{field}: {problem}")

    extractor = config.feature_extractor
    if extractor.type != "ssd_mobilenet_v2":
        raise error(
            "feature_extractor.type",
            f"{extractor.type!r}: only the TF1 'ssd_mobilenet_v2' is supported (TF2 "
            "'_keras' checkpoints are object-based and use other variable names)",
        )
    if extractor.min_depth < 1:
        raise error("feature_extractor.min_depth", f"must be positive, found {extractor.min_depth}")
    if config.post_processing.score_converter != "SIGMOID":
        raise error(
            "post_processing.score_converter",
            f"{config.post_processing.score_converter} is not supported; the exported "
            "model applies SIGMOID (TFLite post-process op)",
        )
    anchors = config.anchors
    if anchors.num_layers != _NUM_LAYERS:
        raise error(
            "anchor_generator.ssd_anchor_generator.num_layers",
            f"{anchors.num_layers}: ssd_mobilenet_v2 has {_NUM_LAYERS} feature maps",
        )
    if config.box_predictor.box_code_size != 4:
        raise error("box_predictor.convolutional_box_predictor.box_code_size", "must be 4")
    coder = config.box_coder
    return ModelConfig(
        input_size=(config.height, config.width),
        num_classes=config.num_classes,
        width_multiplier=extractor.depth_multiplier,
        min_depth=extractor.min_depth,
        fixed_last_conv=False,
        feature_endpoints=_FEATURE_ENDPOINTS,
        extra_layer_depths=_EXTRA_LAYER_DEPTHS,
        feature_use_depthwise=extractor.use_depthwise,
        head_use_depthwise=config.box_predictor.use_depthwise,
        head_kernel_size=config.box_predictor.kernel_size,
        use_explicit_padding=extras.use_explicit_padding,
        bn_epsilon=0.001,
        bn_momentum=0.9997,
        class_prediction_bias_init=extras.class_prediction_bias_init,
        anchors=AnchorConfig(
            min_scale=anchors.min_scale,
            max_scale=anchors.max_scale,
            aspect_ratios=anchors.aspect_ratios,
            reduce_boxes_in_lowest_layer=anchors.reduce_boxes_in_lowest_layer,
            interpolated_scale_aspect_ratio=anchors.interpolated_scale_aspect_ratio,
            base_anchor_size=extras.base_anchor_size,
        ),
        box_coder_scales=(coder.y_scale, coder.x_scale, coder.height_scale, coder.width_scale),
    )


def match_variables(
    checkpoint_shapes: dict[str, tuple[int, ...]],
    model_shapes: dict[str, tuple[int, ...]],
    averaged: set[str],
    use_moving_averages: bool,
    checkpoint: str = "",
) -> tuple[dict[str, str], ImportReport]:
    """Pair model variables (TF1 names) with checkpoint variables.

    Args:
      checkpoint_shapes: checkpoint variable name -> shape.
      model_shapes: TF1 name of each model weight -> shape.
      averaged: model names that have EMA shadows (the trainable ones).
      use_moving_averages: read ``<name>/ExponentialMovingAverage`` for those.
      checkpoint: prefix, for the report.

    Returns:
      (model name -> checkpoint name to read, the report).
    """
    plan: dict[str, str] = {}
    missing, mismatched = [], []
    for name, shape in sorted(model_shapes.items()):
        source = f"{name}{EMA_SUFFIX}" if use_moving_averages and name in averaged else name
        if source not in checkpoint_shapes:
            missing.append(source)
            continue
        theirs = tuple(checkpoint_shapes[source])
        if theirs != tuple(shape):
            mismatched.append((source, theirs, tuple(shape)))
            continue
        plan[name] = source
    read = set(plan.values()) | {m[0] for m in mismatched}
    ignored, unexpected = [], []
    for name in sorted(set(checkpoint_shapes) - read):
        base = name.removesuffix(EMA_SUFFIX)
        if _UNUSED.search(name):
            ignored.append(name)
        elif name.endswith(EMA_SUFFIX) and not use_moving_averages:
            ignored.append(name)  # shadows of the raw weights we read
        elif use_moving_averages and name in averaged:
            ignored.append(name)  # raw weights replaced by their averages
        elif name.endswith(EMA_SUFFIX) and base in model_shapes and base not in averaged:
            ignored.append(name)  # a shadow of a statistic: the exporter reads it raw
        else:
            unexpected.append(name)
    report = ImportReport(
        checkpoint=checkpoint,
        model_weights=len(model_shapes),
        assigned=len(plan),
        used_moving_averages=use_moving_averages,
        ignored=tuple(ignored),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched=tuple(mismatched),
    )
    return plan, report


def _open_checkpoint(ckpt_prefix: str):
    import tensorflow as tf

    try:
        return tf.train.load_checkpoint(str(ckpt_prefix))
    except (ValueError, tf.errors.OpError) as error:
        raise CheckpointImportError(
            f"{ckpt_prefix}: cannot read a TF1 checkpoint ({error.__class__.__name__}); pass "
            "the prefix, e.g. model.ckpt-12345 for model.ckpt-12345.index + .data-*"
        ) from error


def load_tf1_weights(
    model, ckpt_prefix: str, *, use_moving_averages: bool, model_description: str = "the pipeline config"
) -> ImportReport:
    """Fill every weight of ``model`` from a TF1 checkpoint, or change nothing.

    Raises:
      CheckpointImportError: unreadable checkpoint, or the variables do not
        match (the message lists missing, unexpected and mismatched ones).
    """
    import numpy as np

    from ktp_tflite.train.model import tf1_variable_map

    reader = _open_checkpoint(ckpt_prefix)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    variables = tf1_variable_map(model)
    model_shapes = {name: tuple(v.shape) for name, v in variables.items()}
    averaged = {name for name, v in variables.items() if v.trainable}
    plan, report = match_variables(shapes, model_shapes, averaged, use_moving_averages, str(ckpt_prefix))
    if (
        use_moving_averages
        and report.missing
        and all(m.endswith(EMA_SUFFIX) for m in report.missing)
        and len(report.missing) == len(averaged)
    ):
        raise CheckpointImportError(
            f"{ckpt_prefix}: has no ExponentialMovingAverage variables; import without "
            "moving averages (--no-use-moving-averages)"
        )
    if not report.complete:
        hint = ""
        if report.mismatched and all("ClassPredictor" in m[0] for m in report.mismatched):
            hint = "\nonly the class heads differ: num_classes in the pipeline config does not match the checkpoint's"
        raise CheckpointImportError(f"{ckpt_prefix}: does not match {model_description}\n{report.problems()}{hint}")
    if len(set(plan.values())) != len(plan):
        raise CheckpointImportError(f"{ckpt_prefix}: a checkpoint variable would fill two weights")
    for name, source in plan.items():
        value = reader.get_tensor(source)
        variable = variables[name]
        variable.assign(np.asarray(value, dtype=variable.dtype))
    step = reader.get_tensor("global_step") if reader.has_tensor("global_step") else None
    return dataclasses.replace(report, global_step=None if step is None else int(step))


def import_checkpoint(
    ckpt_prefix: str | Path,
    pipeline_config_path: str | Path,
    out_run_dir: str | Path,
    *,
    use_moving_averages: bool | None = None,
) -> ImportReport:
    """Write a run folder holding the weights of a TF1 OD API checkpoint.

    Args:
      ckpt_prefix: TF1 checkpoint prefix (``.../model.ckpt-N``).
      pipeline_config_path: the ``pipeline.config`` the checkpoint was trained with.
      out_run_dir: an empty or not yet existing folder (its parent must exist).
      use_moving_averages: read the EMA shadows; None follows
        ``eval_config.use_moving_averages`` as the OD API exporters do.

    Raises:
      PipelineConfigError: the config asks for something the model cannot do.
      CheckpointImportError: the checkpoint does not match (nothing is written).
    """
    import tensorflow as tf

    from ktp_tflite.train.model import build_model
    from ktp_tflite.train.trainer import make_optimizer

    out = Path(out_run_dir)
    folder = RunFolder(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointImportError(f"{out}: exists and is not an empty folder")
    pipeline = load_pipeline(pipeline_config_path)
    model_config = model_config_from_pipeline(pipeline.ssd, pipeline.extras)
    if use_moving_averages is None:
        use_moving_averages = pipeline.extras.use_moving_averages
    model = build_model(model_config)
    description = f"{pipeline_config_path} ({pipeline.ssd.feature_extractor.type}, {pipeline.ssd.num_classes} classes)"
    report = load_tf1_weights(
        model, str(ckpt_prefix), use_moving_averages=use_moving_averages, model_description=description
    )
    run_config = dataclasses.replace(preset("coco-parity"), preset=IMPORT_PRESET, model=model_config)
    out.mkdir(exist_ok=True)
    optimizer, _ = make_optimizer(run_config.train)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(folder.checkpoints), max_to_keep=3)
    manager.save(checkpoint_number=0)
    post = pipeline.ssd.post_processing
    record = {
        **report.to_dict(),
        "pipeline_config": str(pipeline_config_path),
        "postprocess": {
            "score_threshold": post.score_threshold,
            "iou_threshold": post.iou_threshold,
            "max_total_detections": post.max_total_detections,
        },
    }
    atomic_write_files(
        {
            folder.tf1_import: (json.dumps(record, indent=2) + "\n").encode(),
            folder.config: run_config.to_json().encode(),
        }
    )
    return report
