"""Convert an SSD detector to TFLite: full-integer int8, float16, dynamic or float.

Conversion returns bytes; only the CLI writes files. The whole flow of
``ktpconvert quantize`` around it (model source, representative set,
metadata, verification) is :mod:`ktp_tflite.convert.quantize_flow`.
Full-integer mode makes every op int8 except the
``TFLite_Detection_PostProcess`` op and the DEQUANTIZE ops that feed it; the input is uint8 by default (the Task Library
and MediaPipe refuse int8 input) and the four outputs stay float32 (the
post-process op always emits float).

int8 runs in steps, on public TF 2.19 machinery: the converter with
``_experimental_calibrate_only`` yields a float model carrying each
activation's calibrated min/max; by default :mod:`ktp_tflite.convert.ranges`
then replaces those ranges by refined ones (MSE-optimal clipping, and ranges
for what the post-process uses of the box codes and score logits); then
``tensorflow.lite.python.convert.mlir_quantize`` quantizes it with
``denylisted_nodes`` (the layers ``--keep-float`` leaves in float). The same
calibrated model feeds the QuantizationDebugger, so ``--debug-report`` costs
no second calibration.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.model_source import TF1_OUTPUTS, ModelSource
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD
from ktp_tflite.train.scratch import private_tempdir

MODES = ("int8", "float16", "dynamic", "float")
INPUT_TYPES = ("uint8", "float32")
RANGES = ("refined", "minmax")

RepresentativeDataset = Callable[[], Iterator[list[np.ndarray]]]
# Samples TF's calibrator sees in "refined" mode: enough to lay out the calibrated model;
# the ranges come from convert/ranges.py's one pass over all samples.
STRUCTURE_SAMPLES = 4


def _leading(samples: RepresentativeDataset, count: int) -> RepresentativeDataset:
    """The first ``count`` elements of a representative dataset (the generator is closed after them)."""

    def generate() -> Iterator[list[np.ndarray]]:
        iterator = samples()
        try:
            for position, item in enumerate(iterator):  # a set of exactly ``count`` runs to its end
                if position >= count:
                    break
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    return generate


class ConversionError(KtpError, RuntimeError):
    """The TFLite converter refused the model or the settings; says which and why."""


@dataclasses.dataclass(frozen=True)
class QuantizeConfig:
    """How to convert.

    Attributes:
      mode: "int8" (full integer), "float16", "dynamic" (int8 weights) or "float".
      input_type: int8 mode only: "uint8" (default) or "float32" model input.
      keep_float: int8 mode only: layers to leave in float, by output tensor
        name or by one of its ';'-separated parts (as the debug report lists).
      ranges: int8 mode only: "refined" (default; see
        :mod:`ktp_tflite.convert.ranges`) or "minmax" (the calibrated min/max
        as the TFLite converter uses them).
    """

    mode: str = "int8"
    input_type: str = "uint8"
    keep_float: tuple[str, ...] = ()
    ranges: str = "refined"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConversionError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.input_type not in INPUT_TYPES:
            raise ConversionError(
                f"unknown input type {self.input_type!r}; use one of {', '.join(INPUT_TYPES)} "
                "(int8 input is refused by the Task Library and MediaPipe)"
            )
        if self.ranges not in RANGES:
            raise ConversionError(f"unknown ranges {self.ranges!r}; use one of {', '.join(RANGES)}")
        if self.mode != "int8" and self.keep_float:
            raise ConversionError("--keep-float only applies to --mode int8")

    @property
    def model_input_type(self) -> str:
        """The converted model's input dtype: ``input_type`` in int8 mode, float32 otherwise."""
        return self.input_type if self.mode == "int8" else "float32"


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """A converted model and where the time went.

    Attributes:
      model: the .tflite bytes.
      calibrated: int8 mode: the calibrated float model with the ranges that
        were quantized (for the debugger).
      kept_float: output tensor names left in float.
      seconds: {"conversion": graph conversion, "calibration": running the
        representative data, "range refinement" (ranges "refined"),
        "quantization": the MLIR quantizer}.
      range_changes: ranges "refined": every refined activation range.
    """

    model: bytes
    calibrated: bytes | None
    kept_float: tuple[str, ...]
    seconds: dict[str, float]
    range_changes: tuple = ()


def _pipeline_overrides(source: ModelSource) -> dict[str, float]:
    """Post-process thresholds the pipeline config sets differently from the graph."""
    if source.pipeline is None:
        return {}
    post = source.pipeline.post_processing
    wanted = {"nms_score_threshold": post.score_threshold, "nms_iou_threshold": post.iou_threshold}
    return {k: v for k, v in wanted.items() if abs(float(source.postprocess.get(k, v)) - v) > 1e-7}


def _tf1_converter(source: ModelSource, folder: str):
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2, graph_pb2

    graph_path = str(source.path)
    overrides = _pipeline_overrides(source)
    if overrides:
        graph = graph_pb2.GraphDef()
        graph.ParseFromString(source.path.read_bytes())
        for node in graph.node:
            if node.name == TF1_OUTPUTS[0]:
                for key, value in overrides.items():
                    node.attr[key].CopyFrom(attr_value_pb2.AttrValue(f=value))
        graph_path = str(Path(folder) / "tflite_graph.pb")
        Path(graph_path).write_bytes(graph.SerializeToString())
        where = source.pipeline.source if source.pipeline else source.path
        print(f"post-process settings from {where}: {overrides}", file=sys.stderr)
    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        graph_path,
        input_arrays=[source.input_name],
        output_arrays=list(TF1_OUTPUTS),
        input_shapes={source.input_name: [1, source.height, source.width, 3]},
    )
    converter.allow_custom_ops = True
    return converter


def _saved_model_converter(source: ModelSource):
    """From the loaded serving signature, not ``from_saved_model``.

    With Keras 3, ``from_saved_model`` can emit a model whose weights are not
    frozen (see ``ktp_tflite.train.export``); the loaded concrete function
    with its owning object is the path that works for our exports and for
    the OD API's ``export_tflite_graph_tf2.py``.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(str(source.path))
    concrete = loaded.signatures["serving_default"]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    converter.allow_custom_ops = True
    return converter


def make_converter(source: ModelSource, folder: str):
    """A TFLite converter for ``source`` with no optimisation set.

    Args:
      source: a TF1 frozen graph or SavedModel.
      folder: scratch folder (a rewritten graph may be placed there).
    """
    if source.kind == "tf1_frozen_graph":
        return _tf1_converter(source, folder)
    if source.kind == "saved_model":
        return _saved_model_converter(source)
    raise ConversionError(
        f"{source.path}: a {source.kind} model cannot be converted again; "
        "pass the tflite_graph.pb or SavedModel it came from"
    )


def _run(converter, what: str, source: ModelSource) -> bytes:
    try:
        return converter.convert()
    except KtpError:
        raise
    except Exception as error:  # the converter raises bare Exception/ConverterError
        message = str(error).strip().splitlines()
        detail = message[-1] if message else type(error).__name__
        raise ConversionError(f"{source.path}: {what} failed: {detail}") from error


def pin_input_range(calibrated: bytes, low: float, high: float) -> bytes:
    """Set the calibrated input range to what pixels 0..255 map to.

    Calibration records the range the sample images happened to cover (a
    set of dim photos might span [-1, 0.8]); the uint8 input would then not
    mean "pixel value" and apps that feed raw pixels, as the Task Library
    does for uint8 models, would see shifted colours. Pinning the range to
    [(0 - mean) / std, (255 - mean) / std] gives scale 1/std and zero point
    ~mean, i.e. uint8 input == pixels.
    """
    from ktp_tflite.convert.tflite_model import parse_model

    model = parse_model(calibrated, "calibrated model")
    for tensor in model.inputs:
        quantization = tensor.quantization
        if quantization is None or len(quantization.min) != 1 or len(quantization.max) != 1:
            raise ConversionError(
                f"calibration recorded no range for input {tensor.name!r}; "
                "the representative data did not reach the model input"
            )
    return model.with_ranges({tensor.index: (low, high) for tensor in model.inputs})


def resolve_keep_float(calibrated: bytes, names: tuple[str, ...]) -> tuple[str, ...]:
    """Map ``--keep-float`` names to output tensor names of the calibrated model.

    Raises:
      ConversionError: a name matches no layer (lists a few valid ones).
    """
    from ktp_tflite.convert.tflite_model import parse_model

    layers = [t.name for op in parse_model(calibrated, "calibrated model").ops for t in op.outputs]
    resolved: list[str] = []
    for name in names:
        matches = [layer for layer in layers if layer == name or name in layer.split(";")]
        if not matches:
            examples = ", ".join(repr(layer) for layer in layers[:5])
            raise ConversionError(
                f"--keep-float {name!r} matches no layer of the model; use names from --debug-report (e.g. {examples})"
            )
        resolved.extend(m for m in matches if m not in resolved)
    return tuple(resolved)


def convert_model(
    source: ModelSource,
    config: QuantizeConfig,
    representative: RepresentativeDataset | None = None,
    calibration_timer: list[float] | None = None,
    range_data: RepresentativeDataset | None = None,
) -> ConversionResult:
    """Convert ``source`` as ``config`` says.

    Args:
      source: from :func:`ktp_tflite.convert.model_source.detect_model_source`.
      config: mode, input type, layers to keep in float.
      representative: int8 mode: the calibration inputs.
      calibration_timer: the list the representative generator appends its
        run time to (:func:`ktp_tflite.convert.representative.calibration_inputs`);
        used to split conversion and calibration time.
      range_data: ranges "refined": the samples of the one range pass
        (:func:`ktp_tflite.convert.ranges.refine_ranges`; default:
        ``representative`` again). In that mode TF's calibrator sees only the
        first :data:`STRUCTURE_SAMPLES` of ``representative``: it lays out the
        calibrated model, the range pass records every range.

    Raises:
      ConversionError: the converter failed (names the model and the reason).
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    if config.mode == "int8" and representative is None:
        raise ConversionError("int8 mode needs representative data (--representative)")
    timer = calibration_timer if calibration_timer is not None else []
    with private_tempdir("ktp-convert-") as folder:  # TF's own temporaries go in it too (Ctrl-C)
        start = time.perf_counter()  # loading the graph counts as conversion
        converter = make_converter(source, str(folder))
        if config.mode == "float":
            model = _run(converter, "float conversion", source)
            return ConversionResult(model, None, (), {"conversion": time.perf_counter() - start})
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if config.mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if config.mode in ("float16", "dynamic"):
            model = _run(converter, f"{config.mode} conversion", source)
            return ConversionResult(model, None, (), {"conversion": time.perf_counter() - start})

        if config.ranges == "refined" and representative is not None:
            # refine_ranges records every range itself over all samples: TF's calibrator only lays
            # out the calibrated model (which tensors get ranges), from the first few
            converter.representative_dataset = _leading(representative, STRUCTURE_SAMPLES)
        else:
            converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, config.input_type)
        converter.inference_output_type = tf.float32
        converter._experimental_calibrate_only = True  # pylint: disable=protected-access
        calibrated = _run(converter, "calibration", source)
        total = time.perf_counter() - start
        calibration = sum(timer)

    mean, std = (source.pipeline.input_mean, source.pipeline.input_std) if source.pipeline else (INPUT_MEAN, INPUT_STD)
    calibrated = pin_input_range(calibrated, (0.0 - mean) / std, (255.0 - mean) / std)
    seconds = {"conversion": max(0.0, total - calibration), "calibration": calibration}
    changes: Sequence = ()
    if config.ranges == "refined":
        from ktp_tflite.convert.ranges import refine_ranges

        start = time.perf_counter()
        samples = range_data if range_data is not None else representative
        if samples is None:  # checked above; for the type checker
            raise ConversionError("range refinement needs representative data (--representative)")
        calibrated, changes = refine_ranges(calibrated, samples)
        seconds["range refinement"] = time.perf_counter() - start
    kept = resolve_keep_float(calibrated, config.keep_float) if config.keep_float else ()
    start = time.perf_counter()
    try:
        model = mlir_quantize(
            calibrated,
            input_data_type=getattr(tf, config.input_type),
            output_data_type=tf.float32,
            denylisted_nodes=list(kept) or None,
        )
    except Exception as error:  # the quantizer raises untyped errors; re-raised as ours
        raise ConversionError(f"{source.path}: int8 quantization failed: {error}") from error
    seconds["quantization"] = time.perf_counter() - start
    return ConversionResult(bytes(model), bytes(calibrated), kept, seconds, tuple(changes))
