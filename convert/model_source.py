"""Recognise what a user hands to ``ktpconvert``: TF1 frozen graph, SavedModel or .tflite.

:func:`detect_model_source` looks at the file itself, not its name, and
returns a :class:`ModelSource` that says how to convert it and what input it
takes. Graphs that lack the fused ``TFLite_Detection_PostProcess`` op are
refused here with the fix, because the Task Library would otherwise reject
the converted file later with "Mobile SSD models are expected to have
exactly 4 outputs".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP
from ktp_tflite.train.pipeline_config import SsdPipelineConfig
from ktp_tflite.train.run_folder import ExportFolder

TF1_INPUT = "normalized_input_image_tensor"
TF1_OUTPUTS = (POSTPROCESS_OP, *(f"{POSTPROCESS_OP}:{i}" for i in (1, 2, 3)))
TF1_RAW_OUTPUTS = ("raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors")
TFLITE_IDENTIFIER = b"TFL3"

TF1_EXPORT_HINT = (
    "export it with the OD API's object_detection/export_tflite_ssd_graph.py "
    "--add_postprocessing_op=true (TF1), or for TF2 models "
    "object_detection/export_tflite_graph_tf2.py, or `ktpconvert export` for models "
    "trained here"
)


class ModelSourceError(KtpError, ValueError):
    """The model input is not something ktpconvert can convert; says why and how to fix."""


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A recognised model input.

    Attributes:
      kind: "tf1_frozen_graph", "saved_model" or "tflite".
      path: the file or folder.
      height, width: model input size.
      num_classes: classes without background, when the model states it.
      postprocess: the post-process op's settings as the model holds them
        (TF1 graphs: the NodeDef attrs; SavedModels: the implements string).
      input_name: the model's input name (TF1 placeholder or signature key).
      pipeline: the pipeline.config given with the model, if any.
    """

    kind: str
    path: Path
    height: int
    width: int
    num_classes: int | None = None
    postprocess: dict[str, float | int | bool] = dataclasses.field(default_factory=dict)
    input_name: str = TF1_INPUT
    pipeline: SsdPipelineConfig | None = None


def detect_model_source(path: str | Path, pipeline: SsdPipelineConfig | None = None) -> ModelSource:
    """Work out what kind of model ``path`` is and check it can be converted.

    Args:
      path: a ``tflite_graph.pb``, a SavedModel folder or a ``.tflite`` file.
      pipeline: the model's ``pipeline.config``, checked against the model
        and used for what the model does not state (input size).

    Raises:
      ModelSourceError: unknown kind, missing post-process op, wrong channel
        count, or a model that disagrees with the pipeline config.
    """
    path = Path(path)
    if not path.exists():
        raise ModelSourceError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return _saved_model_source(path, pipeline)
        export = ExportFolder(path)  # a `ktpconvert export` folder: its SavedModel
        if (export.saved_model / "saved_model.pb").is_file():
            return _saved_model_source(export.saved_model, pipeline)
        if (path / "tflite_graph.pb").is_file():
            return _tf1_source(path / "tflite_graph.pb", pipeline)
        raise ModelSourceError(
            f"{path}: folder holds neither a SavedModel (saved_model.pb) nor a tflite_graph.pb; " + TF1_EXPORT_HINT
        )
    head = path.read_bytes()[:8]
    if head[4:8] == TFLITE_IDENTIFIER:
        return _tflite_source(path)
    if path.suffix == ".tflite":
        raise ModelSourceError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    return _tf1_source(path, pipeline)


def _fail_without_postprocess(path: Path, found: str) -> ModelSourceError:
    return ModelSourceError(
        f"{path}: the graph has no {POSTPROCESS_OP} op ({found}). Without it the "
        "converted model has raw box/score outputs and the Task Library refuses it with "
        "'Mobile SSD models are expected to have exactly 4 outputs'; " + TF1_EXPORT_HINT
    )


def _check_channels(path: Path, channels: int | None) -> None:
    if channels is not None and channels != 3:
        raise ModelSourceError(
            f"{path}: model input has {channels} channel(s); the KTP detector takes RGB "
            "images with 3 channels (grayscale or RGBA models are not supported; re-export "
            "with a 3-channel fixed_shape_resizer)"
        )


def _size_from(path: Path, shape: list[int] | None, pipeline: SsdPipelineConfig | None) -> tuple[int, int]:
    """Input (height, width) from the model's static shape or the pipeline config."""
    height = width = None
    if shape is not None and len(shape) == 4:
        _check_channels(path, shape[3] if shape[3] > 0 else None)
        if shape[1] > 0 and shape[2] > 0:
            height, width = shape[1], shape[2]
    elif shape is not None:
        raise ModelSourceError(f"{path}: model input has shape {shape}; expected [1, H, W, 3]")
    if pipeline is not None:
        if height is not None and (height, width) != (pipeline.height, pipeline.width):
            raise ModelSourceError(
                f"{path}: model input is {height}x{width} but {pipeline.source} says "
                f"{pipeline.height}x{pipeline.width}; pass the pipeline.config the model was "
                "exported with"
            )
        height, width = pipeline.height, pipeline.width
    if height is None or width is None:
        raise ModelSourceError(
            f"{path}: model input size is not fixed in the graph; pass --pipeline-config "
            "with the model's pipeline.config (fixed_shape_resizer height/width)"
        )
    return height, width


def _check_classes(path: Path, num_classes: int | None, pipeline: SsdPipelineConfig | None) -> None:
    if pipeline is not None and num_classes is not None and num_classes != pipeline.num_classes:
        raise ModelSourceError(
            f"{path}: model has {num_classes} classes but {pipeline.source} says "
            f"num_classes: {pipeline.num_classes}; pass the pipeline.config the model was "
            "exported with"
        )


def _attr_value(attr) -> float | int | bool | None:
    kind = attr.WhichOneof("value")
    if kind in ("i", "f", "b"):
        return getattr(attr, kind)
    return None


def _tf1_source(path: Path, pipeline: SsdPipelineConfig | None) -> ModelSource:
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise ModelSourceError(
            f"{path}: not a TF1 frozen graph, SavedModel or .tflite file ({error}); " + TF1_EXPORT_HINT
        ) from error
    nodes = {node.name: node for node in graph.node}
    if not nodes:
        raise ModelSourceError(f"{path}: not a model (an empty or non-GraphDef file); " + TF1_EXPORT_HINT)
    if TF1_INPUT not in nodes:
        raise ModelSourceError(
            f"{path}: GraphDef has no input node {TF1_INPUT!r}; this is not a graph written by "
            "export_tflite_ssd_graph.py (a frozen_inference_graph.pb cannot be converted to "
            "TFLite); " + TF1_EXPORT_HINT
        )
    if POSTPROCESS_OP not in nodes:
        raw = [name for name in TF1_RAW_OUTPUTS if name in nodes]
        found = f"only raw outputs {', '.join(raw)}" if raw else "no detection outputs at all"
        raise _fail_without_postprocess(path, found)
    post = nodes[POSTPROCESS_OP]
    attrs = {key: value for key, attr in post.attr.items() if (value := _attr_value(attr)) is not None}

    shape = None
    placeholder = nodes[TF1_INPUT]
    if "shape" in placeholder.attr and not placeholder.attr["shape"].shape.unknown_rank:
        shape = [dim.size for dim in placeholder.attr["shape"].shape.dim]
    height, width = _size_from(path, shape, pipeline)
    num_classes = int(attrs["num_classes"]) if "num_classes" in attrs else None
    _check_classes(path, num_classes, pipeline)
    if pipeline is not None:
        coder = pipeline.box_coder
        wanted = {
            "y_scale": coder.y_scale,
            "x_scale": coder.x_scale,
            "h_scale": coder.height_scale,
            "w_scale": coder.width_scale,
        }
        for key, value in wanted.items():
            if key in attrs and abs(float(attrs[key]) - value) > 1e-6:
                raise ModelSourceError(
                    f"{path}: post-process {key} is {attrs[key]} but {pipeline.source} box coder "
                    f"says {value}; pass the pipeline.config the model was exported with"
                )
    return ModelSource(
        kind="tf1_frozen_graph",
        path=path,
        height=height,
        width=width,
        num_classes=num_classes,
        postprocess=attrs,
        input_name=TF1_INPUT,
        pipeline=pipeline,
    )


def _implements_attrs(text: str) -> dict[str, float | int | bool]:
    """Settings out of an ``experimental_implements`` NameAttrList text."""
    import re

    attrs: dict[str, float | int | bool] = {}
    for key, kind, value in re.findall(r'key:\s*"(\w+)"\s*value\s*\{\s*(\w)\s*:\s*([\w.+-]+)', text):
        if kind == "i":
            attrs[key] = int(value)
        elif kind == "f":
            attrs[key] = float(value)
        elif kind == "b":
            attrs[key] = value == "true"
    return attrs


def _saved_model_source(path: Path, pipeline: SsdPipelineConfig | None) -> ModelSource:
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    except (OSError, DecodeError) as error:
        raise ModelSourceError(f"{path}: cannot read saved_model.pb ({error})") from error
    if not saved.meta_graphs:
        raise ModelSourceError(f"{path}: SavedModel holds no graph")
    meta = saved.meta_graphs[0]
    if "serving_default" not in meta.signature_def:
        raise ModelSourceError(
            f"{path}: SavedModel has no 'serving_default' signature (found "
            f"{sorted(meta.signature_def) or 'none'}); " + TF1_EXPORT_HINT
        )
    signature = meta.signature_def["serving_default"]
    if len(signature.inputs) != 1:
        raise ModelSourceError(f"{path}: serving signature takes {len(signature.inputs)} inputs; expected one image")
    input_name, tensor = next(iter(signature.inputs.items()))
    shape = None if tensor.tensor_shape.unknown_rank else [d.size for d in tensor.tensor_shape.dim]

    attrs: dict[str, float | int | bool] | None = None
    for function in meta.graph_def.library.function:
        attr = function.attr.get("_implements")
        if attr is None:
            continue
        if attr.WhichOneof("value") == "func" and attr.func.name == POSTPROCESS_OP:
            attrs = {k: v for k, a in attr.func.attr.items() if (v := _attr_value(a)) is not None}
            break
        if POSTPROCESS_OP in attr.s.decode("utf-8", "replace"):
            attrs = _implements_attrs(attr.s.decode("utf-8", "replace"))
            break
    if attrs is None:
        raise _fail_without_postprocess(
            path,
            f"the serving signature has {len(signature.outputs)} outputs and no function "
            f"declares experimental_implements={POSTPROCESS_OP!r}",
        )
    if len(signature.outputs) != 4:
        raise ModelSourceError(
            f"{path}: serving signature has {len(signature.outputs)} outputs; a detector for the "
            "Task Library needs exactly 4 (boxes, classes, scores, count); " + TF1_EXPORT_HINT
        )
    height, width = _size_from(path, shape, pipeline)
    num_classes = int(attrs["num_classes"]) if "num_classes" in attrs else None
    _check_classes(path, num_classes, pipeline)
    return ModelSource(
        kind="saved_model",
        path=path,
        height=height,
        width=width,
        num_classes=num_classes,
        postprocess=attrs,
        input_name=input_name,
        pipeline=pipeline,
    )


def _tflite_source(path: Path) -> ModelSource:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as error:
        raise ModelSourceError(f"{path}: the LiteRT interpreter cannot load it ({error})") from error
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ModelSourceError(f"{path}: model has {len(inputs)} inputs; expected one image")
    shape = [int(d) for d in inputs[0]["shape"]]
    height, width = _size_from(path, shape, None)
    return ModelSource(kind="tflite", path=path, height=height, width=width, input_name=inputs[0]["name"])
