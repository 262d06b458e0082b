"""From a trained detector to a verified .tflite in one call: what ``ktpconvert quantize`` does.

:func:`quantize_detector` recognises the model
(:func:`~ktp_tflite.convert.model_source.detect_model_source`), draws the
calibration images (:mod:`~ktp_tflite.convert.representative`), converts
(:func:`~ktp_tflite.convert.quantize.convert_model`), attaches the metadata
(:func:`~ktp_tflite.convert.metadata.attach_metadata`) and verifies the result
(:func:`~ktp_tflite.convert.verify.verify_model`). It returns the bytes and the
reports and writes nothing: the caller writes. :func:`debug_layers` runs the
QuantizationDebugger on the same calibrated model and images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktp_tflite.convert.metadata import MetadataError, ModelInfo, attach_metadata
from ktp_tflite.convert.model_source import ModelSource, ModelSourceError, detect_model_source
from ktp_tflite.convert.quantize import (
    STRUCTURE_SAMPLES,
    ConversionError,
    ConversionResult,
    QuantizeConfig,
    convert_model,
)
from ktp_tflite.convert.representative import Prefetch, RepresentativeSet, calibration_inputs, load_representative
from ktp_tflite.convert.verify import ModelReport, TaskLibraryReport, verify_model
from ktp_tflite.train.pipeline_config import SsdPipelineConfig

if TYPE_CHECKING:
    from ktp_tflite.convert.quant_debug import LayerError


@dataclasses.dataclass(frozen=True)
class QuantizeResult:
    """A converted and verified detector.

    Attributes:
      model: the .tflite bytes (with metadata unless none was asked).
      source: the recognised model input.
      config: how it was converted.
      conversion: the converter's result: the bytes before metadata, the
        calibrated model, where the time went, the refined ranges.
      report: the facts of ``model`` (input, outputs, ops).
      task_report: the Task Library check, None without metadata.
      seconds: {"convert": the conversion, "metadata_and_verify": the rest}.
      samples: int8 mode: the calibration images.
      cache: their resized pixels by position, so :func:`debug_layers` renders
        and loads nothing again.
    """

    model: bytes
    source: ModelSource
    config: QuantizeConfig
    conversion: ConversionResult
    report: ModelReport
    task_report: TaskLibraryReport | None
    seconds: dict[str, float]
    samples: RepresentativeSet | None = None
    cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The JSON summary of ``ktpconvert quantize`` (without ``out``); no sample content."""
        summary = {
            "mode": self.config.mode,
            "seconds": self.conversion.seconds,
            "kept_float": list(self.conversion.kept_float),
            **model_summary(self.report, self.task_report),
        }
        if self.config.mode == "int8":
            summary["ranges"] = {"method": self.config.ranges, **range_summary(self.conversion.range_changes)}
        return summary


def model_summary(report: ModelReport, task_report: TaskLibraryReport | None) -> dict:
    """What ``quantize`` and ``metadata`` print of a verified model: size, tensors, ops, labels."""
    result = {
        "size_bytes": report.size_bytes,
        "input": {
            "dtype": report.input.dtype,
            "shape": list(report.input.shape),
            "quantization": list(report.input_quantization),
        },
        "outputs": {role: t.name for role, t in report.outputs.items()},
        "op_counts": report.op_counts,
        "float_compute_ops": len(report.float_compute_ops),
    }
    if report.metadata is not None:
        result["labels"] = report.metadata["labels"]
    if task_report is not None:
        result["task_library"] = task_report.to_dict()
    return result


def range_summary(changes) -> dict:
    """What range refinement did: tensors per rule, the median width kept, one example per rule."""
    if not changes:
        return {}
    by_rule: dict[str, int] = {}
    for change in changes:
        by_rule[change.rule] = by_rule.get(change.rule, 0) + 1
    chains = {}
    for change in changes:  # one representative tensor per detection-aware rule
        if change.rule != "mse" and change.rule not in chains:
            chains[change.rule] = {
                "recorded": [round(v, 4) for v in change.recorded],
                "chosen": [round(v, 4) for v in change.chosen],
            }
    narrowed = sorted((c.chosen[1] - c.chosen[0]) / (c.recorded[1] - c.recorded[0]) for c in changes)
    return {"tensors": by_rule, "median_width_kept": round(narrowed[len(narrowed) // 2], 4), **chains}


def quantize_detector(
    model: str | Path | ModelSource,
    config: QuantizeConfig,
    *,
    representative: str | RepresentativeSet | None = None,
    num_samples: int = 300,
    seed: int = 0,
    pipeline: SsdPipelineConfig | None = None,
    info: ModelInfo | None = None,
    labels_source: str = "default labels",
    name: str = "model",
    progress: bool = True,
    log: Callable[[str], Any] | None = None,
) -> QuantizeResult:
    """Convert ``model`` as ``config`` says, attach ``info`` as metadata, and verify it.

    Args:
      model: a ``tflite_graph.pb`` or SavedModel, or its detected source.
      config: mode, input type, layers kept in float, ranges.
      representative: int8 mode: a data set or ``synth:N`` (``num_samples``
        drawn with ``seed``), or images already drawn.
      num_samples: calibration images drawn from a ``representative`` path.
      seed: fixes which images are drawn.
      pipeline: the model's pipeline.config (input size, post-process settings).
      info: the metadata to attach; None: no metadata and no Task Library check.
      labels_source: where ``info.labels`` came from, for messages.
      name: what messages call the result (the output path).
      progress: progress bars on stderr over the calibration images.
      log: called with each progress message ("converting ...").

    Raises:
      ModelSourceError: not a convertible detector (a .tflite, no post-process op...).
      MetadataError: ``info`` has another number of labels than the model classes.
      RepresentativeError, DatasetError: the representative data cannot be used.
      ConversionError: the converter failed, or int8 without representative data.
      VerificationError: the converted model is broken (lists every problem).
    """
    source = model if isinstance(model, ModelSource) else detect_model_source(model, pipeline)
    if source.kind == "tflite":
        raise ModelSourceError(
            f"{source.path}: already a .tflite; quantize the tflite_graph.pb or SavedModel it came "
            "from (use `ktpconvert metadata` to add metadata to it)"
        )
    if info is not None and source.num_classes is not None and source.num_classes != len(info.labels):
        raise MetadataError(
            f"{labels_source}: {len(info.labels)} labels but {source.path} has "
            f"{source.num_classes} classes; give a labels file with one line per class"
        )
    samples = data = range_data = prefetch = None
    timer: list[float] = []
    cache: dict = {}  # resized samples, so later passes render and load nothing
    if config.mode == "int8" and representative is not None:
        samples = (
            representative
            if isinstance(representative, RepresentativeSet)
            else load_representative(representative, num_samples, seed)
        )
        # "refined": TF's calibrator sees a few samples (the layout), the range pass all of them
        layout = (
            samples
            if config.ranges != "refined"
            else dataclasses.replace(samples, loaders=samples.loaders[:STRUCTURE_SAMPLES])
        )
        # loaded and resized in worker processes while the graph converts (Prefetch)
        prefetch = Prefetch(samples, source.height, source.width, cache)
        data = calibration_inputs(
            layout, source.height, source.width, progress=progress, timer=timer, cache=cache, prefetch=prefetch
        )
        range_data = calibration_inputs(
            samples,
            source.height,
            source.width,
            progress=progress,
            cache=cache,
            label="refining ranges",
            prefetch=prefetch,
        )
    if log is not None:
        log(f"converting {source.kind} {source.path} ({source.height}x{source.width}, {config.mode})")
    start = time.perf_counter()
    with prefetch or contextlib.nullcontext():
        conversion = convert_model(source, config, data, timer, range_data)
    converted = time.perf_counter()
    tflite = conversion.model if info is None else attach_metadata(conversion.model, info, name)
    report, task_report = verify_model(
        tflite,
        source=name,
        mode=config.mode,
        input_type=config.model_input_type,
        input_size=(source.height, source.width),
        task_library=info is not None,
        kept_float=conversion.kept_float,
    )
    seconds = {"convert": converted - start, "metadata_and_verify": time.perf_counter() - converted}
    return QuantizeResult(tflite, source, config, conversion, report, task_report, seconds, samples, cache)


def debug_layers(result: QuantizeResult, *, progress: bool = True) -> list[LayerError]:
    """Per-layer int8 errors of ``result`` (QuantizationDebugger) on its calibration images, worst first.

    Raises:
      ConversionError: ``result`` is not an int8 conversion.
      DebugReportError: the debugger failed.
    """
    from ktp_tflite.convert.quant_debug import quantization_debug_report

    if result.conversion.calibrated is None or result.samples is None:
        raise ConversionError("a quantization debug report needs an int8 conversion (--mode int8)")
    data = calibration_inputs(
        result.samples,
        result.source.height,
        result.source.width,
        progress=progress,
        cache=result.cache,
        label="debugging",
    )
    return quantization_debug_report(result.conversion.calibrated, data)
