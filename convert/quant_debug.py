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
        layers.append(LayerError(
            tensor_name=row["tensor_name"],
            op_name=row["op_name"],
            scale=scale,
            rmse_per_scale=math.sqrt(mse) / scale if scale > 0 else float("inf"),
            mean_abs_error=float(row["mean_abs_error"]),
            max_abs_error=float(row["max_abs_error"]),
            range=float(row["range"]),
        ))
    layers.sort(key=lambda layer: layer.rmse_per_scale, reverse=True)
    return layers[:top] if top > 0 else layers


def write_debug_report(folder: str | Path, layers: list[LayerError]) -> Path:
    """Write ``quantization_debug.json`` and ``layer_statistics.csv`` into ``folder``.

    Each file goes to a temporary name first and is renamed into place.
    """
    import os

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "metric": "rmse / scale (quantization error in units of the int8 step)",
        "worst_layers": [layer.to_dict() for layer in layers],
        "keep_float_hint": "pass a tensor_name to --keep-float to leave that layer in float",
    }
    target = folder / REPORT_JSON
    temporary = folder / f".{REPORT_JSON}.tmp"
    temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, target)
    csv_target = folder / LAYERS_CSV
    csv_temporary = folder / f".{LAYERS_CSV}.tmp"
    with csv_temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(LayerError.__dataclass_fields__))
        writer.writeheader()
        for layer in layers:
            writer.writerow(layer.to_dict())
    os.replace(csv_temporary, csv_target)
    return target
