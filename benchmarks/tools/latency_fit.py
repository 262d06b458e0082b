"""The fit of the latency model's six shared parameters to published Pixel latencies.

A maintainer tool (``benchmarks/tools/calibrate.py`` runs it and writes the
fitted values, with the errors below, into the bundled device profiles); the
product's projection (:mod:`ktp_tflite.benchmarks.projection`, the formulas
fitted here) reads the profiles and needs none of this, nor scipy.

The parameters are fit by least squares on log latency against the published
figures in :data:`REFERENCE_ROWS` (10 rows, 6 parameters, with weak
log-normal :data:`PRIORS` that keep unconstrained parameters near physically
plausible values); the leave-one-out error over those rows is the error band
printed next to every projection. A reference row can say that its published
run did not use the dot product (:attr:`ReferenceRow.dotprod_used`); it is
then projected with the no-dot-product int8 peak on every core.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from ktp_tflite.benchmarks.profiles import PARAMETER_NAMES, DeviceProfile
from ktp_tflite.benchmarks.projection import OpArrays, OpRow, project_arrays

# Where every published row below is written down, with its source page.
LATENCY_TABLE = "docs/REFERENCES.md, 'Pixel CPU latency, TFLite benchmark_model'"
SOURCE_BENCHMARKS = f"tensorflow/lite/g3doc/performance/benchmarks.md ({LATENCY_TABLE})"
SOURCE_HOSTED = f"tensorflow/lite/g3doc/guide/hosted_models.md ({LATENCY_TABLE})"
SOURCE_EFFNET_LITE = f"tensorflow/tpu models/official/efficientnet/lite README ({LATENCY_TABLE})"
SOURCE_OD = f"tensorflow/lite/g3doc/models/object_detection/overview.md ({LATENCY_TABLE})"


@dataclasses.dataclass(frozen=True)
class ReferenceRow:
    """A published latency: CPU, 4 threads on the big cores, TFLite benchmark_model."""

    model: str
    precision: str  # "float" or "int8"
    device: str
    ms: float
    source: str
    # False when the published run's int8 kernels did not use the dot product
    # even on cores that have it (see OD_NO_DOTPROD for the evidence)
    dotprod_used: bool = True

    @property
    def key(self) -> str:
        return f"{self.model}/{self.precision}"


OD_NO_DOTPROD = (
    "The object-detection overview's SSD MobileNet v1 quant rows are projected without the dot "
    "product: their Pixel 3 / Pixel 4 latency ratio (46 / 29 = 1.59x) matches the float rows "
    "(MobileNet v1 float 23.9 / 14.0 = 1.71x), not benchmarks.md's int8 rows (13.4 / 5.0 = 2.68x), "
    "which a dot-product kernel on Pixel 4 would give. Inference: that table was measured with "
    "int8 kernels without SDOT (an older runtime or the uint8 path); the page does not say."
)

REFERENCE_ROWS: tuple[ReferenceRow, ...] = (
    ReferenceRow("mobilenet_v1_1.0_224", "float", "pixel3", 23.9, SOURCE_BENCHMARKS),
    ReferenceRow("mobilenet_v1_1.0_224", "int8", "pixel3", 13.4, SOURCE_BENCHMARKS),
    ReferenceRow("mobilenet_v1_1.0_224", "float", "pixel4", 14.0, SOURCE_BENCHMARKS),
    ReferenceRow("mobilenet_v1_1.0_224", "int8", "pixel4", 5.0, SOURCE_BENCHMARKS),
    ReferenceRow("mobilenet_v2_1.0_224", "float", "pixel3", 17.5, SOURCE_HOSTED),
    ReferenceRow("mobilenet_v2_1.0_224", "int8", "pixel3", 12.0, SOURCE_HOSTED),
    ReferenceRow("efficientnet_lite0", "float", "pixel4", 12.0, SOURCE_EFFNET_LITE),
    ReferenceRow("efficientnet_lite0", "int8", "pixel4", 6.5, SOURCE_EFFNET_LITE),
    ReferenceRow("ssd_mobilenet_v1_300", "int8", "pixel3", 46.0, SOURCE_OD, dotprod_used=False),
    ReferenceRow("ssd_mobilenet_v1_300", "int8", "pixel4", 29.0, SOURCE_OD, dotprod_used=False),
)

# Prior (centre, why): the fit is pulled toward these with a log-normal weight
# of PRIOR_SIGMA, so parameters the rows barely constrain stay plausible.
PRIORS: dict[str, tuple[float, str]] = {
    "eff_dense_float": (
        0.45,
        (
            "[derived] docs/REFERENCES.md, 'Derived throughput, EfficientNet-Lite0 on Pixel 4': "
            "EfficientNet-Lite0 fp32 on Pixel 4 x4 runs at ~68 GFLOPS effective, ~42 % of the 4 big "
            "cores' NEON fp32 peak"
        ),
    ),
    "eff_dense_int8": (
        0.25,
        (
            "[derived] docs/REFERENCES.md, 'Derived throughput, EfficientNet-Lite0 on Pixel 4': "
            "EfficientNet-Lite0 int8 on Pixel 4 x4 runs at ~125 GOPS effective, ~19 % of the SDOT peak"
        ),
    ),
    "eff_depthwise": (0.3, "judgement: depthwise convs reach a fraction of dense GEMM efficiency"),
    "bytes_per_cycle": (8.0, "judgement: L2-resident activations, ~8 bytes/cycle/core"),
    "op_overhead_kcycles": (10.0, "judgement: a few microseconds of dispatch per op"),
    "postprocess_cycles_per_score": (20.0, "judgement: a max over classes plus sort per anchor"),
}
PRIOR_SIGMA = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Fitted parameters, in-sample and leave-one-out errors (percent, signed)."""

    params: dict[str, float]
    in_sample: list[dict]
    loo: list[dict]

    @staticmethod
    def _stats(rows: list[dict]) -> dict[str, float]:
        errors = [abs(r["error_percent"]) for r in rows]
        return {"mean_abs_percent": sum(errors) / len(errors), "worst_abs_percent": max(errors)}

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "in_sample": {"rows": self.in_sample, **self._stats(self.in_sample)},
            "leave_one_out": {"rows": self.loo, **self._stats(self.loo)},
        }


def _predict(
    row: ReferenceRow, costs: dict[str, OpArrays], devices: dict[str, DeviceProfile], params: dict[str, float]
) -> float:
    return project_arrays(costs[row.key], devices[row.device], params, row.dotprod_used)["total"]


def fit_parameters(
    rows: Sequence[ReferenceRow],
    costs: Mapping[str, Sequence[OpRow] | OpArrays],
    devices: dict[str, DeviceProfile],
) -> dict[str, float]:
    """Least squares on log latency (plus the log-normal priors) over ``rows``."""
    import numpy as np
    from scipy.optimize import least_squares

    arrays = {k: v if isinstance(v, OpArrays) else OpArrays.of(v) for k, v in costs.items()}
    names = PARAMETER_NAMES
    centre = np.log([PRIORS[n][0] for n in names])

    def residuals(theta):
        params = dict(zip(names, np.exp(theta)))
        errors = [math.log(_predict(r, arrays, devices, params) / r.ms) for r in rows]
        return np.concatenate([errors, (theta - centre) / PRIOR_SIGMA])

    solution = least_squares(residuals, centre, method="trf", diff_step=1e-4, xtol=1e-10, ftol=1e-12)
    return {n: float(v) for n, v in zip(names, np.exp(solution.x))}


def fit_with_loo(
    rows: Sequence[ReferenceRow], costs: Mapping[str, Sequence[OpRow]], devices: dict[str, DeviceProfile]
) -> FitResult:
    """Fit on all rows, then refit without each row to project it (leave-one-out)."""

    def entry(row: ReferenceRow, projected: float) -> dict:
        return {
            "model": row.model,
            "precision": row.precision,
            "device": row.device,
            "published_ms": row.ms,
            "projected_ms": round(projected, 3),
            "error_percent": round(100.0 * (projected - row.ms) / row.ms, 2),
            "source": row.source,
            "dotprod_used": row.dotprod_used,
        }

    arrays = {k: OpArrays.of(v) for k, v in costs.items()}
    params = fit_parameters(rows, arrays, devices)
    in_sample = [entry(r, _predict(r, arrays, devices, params)) for r in rows]
    loo = []
    for k, row in enumerate(rows):
        held = fit_parameters([r for j, r in enumerate(rows) if j != k], arrays, devices)
        loo.append(entry(row, _predict(row, arrays, devices, held)))
    return FitResult(params=params, in_sample=in_sample, loo=loo)
