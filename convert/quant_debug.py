"""Per-layer quantization error with TFLite's QuantizationDebugger (``--debug-report``).

The debugger runs a NumericVerify-instrumented copy of the int8 model on the
calibration inputs and compares every quantized layer with its float twin.
The ranking metric is ``rmse / scale``: the error in units of the layer's
quantization step (about 0.29 for a perfectly uniform rounding error; layers
far above it lose information). Names in the report are the ones
``--keep-float`` takes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np

from ktp_tflite.convert.quantize import RepresentativeDataset
from ktp_tflite.train.errors import KtpError

REPORT_JSON = "quantization_debug.json"
LAYERS_CSV = "layer_statistics.csv"


class DebugReportError(KtpError, RuntimeError):
    """The quantization debugger could not run on this model."""


@dataclasses.dataclass(frozen=True)
class LayerError:
    """Quantization error of one layer."""

    tensor_name: str
    op_name: str
    scale: float
    rmse_per_scale: float
    mean_abs_error: float
    max_abs_error: float
    range: float

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dataclasses.asdict(self)


def quantization_debug_report(
    calibrated: bytes, representative: RepresentativeDataset, top: int = 10
) -> list[LayerError]:
    """Per-layer errors of the int8 quantization of ``calibrated``, worst first.

    Args:
      calibrated: the calibrated float model from
        :func:`ktp_tflite.convert.quantize.convert_model` (int8 mode).
      representative: inputs to compare float and int8 layers on.
      top: how many layers to return (all when <= 0).
    """
    from tensorflow.lite.python.convert import mlir_quantize
    from tensorflow.lite.tools.optimize.debugging.python import debugger

    debug_model = mlir_quantize(calibrated, enable_numeric_verify=True)
    options = debugger.QuantizationDebugOptions(
        layer_debug_metrics={
            "range": lambda diffs: float(np.max(diffs) - np.min(diffs)),
            "mean_abs_error": lambda diffs: float(np.mean(np.abs(diffs))),
        }
    )
    try:
        run = debugger.QuantizationDebugger(
            quant_debug_model_content=bytes(debug_model),
            debug_dataset=representative,
            debug_options=options,
        )
        run.run()
        buffer = io.StringIO()
        run.layer_statistics_dump(buffer)
    except (ValueError, RuntimeError) as error:
        raise DebugReportError(f"quantization debugger failed: {error}") from error
    layers = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        layers.append(
            LayerError(
                tensor_name=row["tensor_name"],
                op_name=row["op_name"],
                scale=scale,
                rmse_per_scale=math.sqrt(mse) / scale if scale > 0 else float("inf"),
                mean_abs_error=float(row["mean_abs_error"]),
                max_abs_error=float(row["max_abs_error"]),
                range=float(row["range"]),
            )
        )
    layers.sort(key=lambda layer: layer.rmse_per_scale, reverse=True)
    return layers[:top] if top > 0 else layers


def write_debug_report(folder: str | Path, layers: list[LayerError]) -> Path:
    """Write ``quantization_debug.json`` and ``layer_statistics.csv`` into ``folder``.

    Both go to temporary names first and are renamed into place once both are
    written (:func:`ktp_tflite.train.atomic_files.atomic_write_files`).
    Returns the path of the JSON report.
    """
    from ktp_tflite.train.atomic_files import atomic_write_files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "metric": "rmse / scale (quantization error in units of the int8 step)",
        "worst_layers": [layer.to_dict() for layer in layers],
        "keep_float_hint": "pass a tensor_name to --keep-float to leave that layer in float",
    }
    table = io.StringIO()  # csv's own "\r\n" line ends, as in a file opened with newline=""
    writer = csv.DictWriter(table, fieldnames=[field.name for field in dataclasses.fields(LayerError)])
    writer.writeheader()
    for layer in layers:
        writer.writerow(layer.to_dict())
    target = folder / REPORT_JSON
    atomic_write_files(
        {
            target: (json.dumps(report, indent=2) + "\n").encode("utf-8"),
            folder / LAYERS_CSV: table.getvalue().encode("utf-8"),
        }
    )
    return target
