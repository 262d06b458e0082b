"""Latency projection onto a device profile: a per-op roofline-style cost model.

For every runtime op of the .tflite (MACs and bytes from
:mod:`ktp_tflite.benchmarks.graph_cost`) on the profile's ``threads`` fastest
cores::

    dense (conv, FC)   max(MACs / (eff_dense[dtype] * peak[dtype]), bytes / BW) + overhead
    depthwise          max(MACs / (eff_depthwise * eff_dense[dtype] * peak_dw[dtype]), bytes / BW) + overhead
    other (add, concat, reshape, logistic, quantize, pooling ...)   bytes / BW + overhead
    post-process       scores * postprocess_cycles_per_score / f_fastest + overhead   (one thread)

    peak[float] = sum over used cores of GHz * neon_pipes_128b * 4   (fp32 FMA lanes)
    peak[int8]  = sum over used cores of GHz * neon_pipes_128b * (16 with dot product, else 8)
    peak_dw[float] = peak[float]; peak_dw[int8] = the no-dot-product rate (8 per pipe): depthwise
                  convolutions have no reduction over channels for SDOT to exploit
    BW          = bytes_per_cycle * sum of used cores' GHz
    overhead    = op_overhead_kcycles * 1000 / f_fastest

The six parameters are shared by every device: the per-device differences
come only from the core facts (clock, SIMD pipes, dot product). A reference
row can say that its published run did not use the dot product
(:attr:`ReferenceRow.dotprod_used`); it is then projected with the
no-dot-product int8 peak on every core. They are fit
by least squares on log latency against the published Pixel figures in
:data:`REFERENCE_ROWS` (10 rows, 6 parameters, with weak log-normal priors
that keep unconstrained parameters near physically plausible values), and
the leave-one-out error over those rows is the error band printed next to
every projection. A projection is an estimate, never a measurement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ktp_tflite.benchmarks.profiles import PARAMETER_NAMES, DeviceProfile

if TYPE_CHECKING:  # numpy is imported where the arrays are built, not with the module
    import numpy as np

# (class, dtype, MACs, bytes) of one runtime op: what the model needs from a graph.
OpRow = tuple[str, str, int, int]

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
PARAMETER_UNITS = {
    "eff_dense_float": "fraction of the fp32 NEON peak reached by CONV_2D/FULLY_CONNECTED",
    "eff_dense_int8": "fraction of the int8 (SDOT or SMLAL) peak reached by CONV_2D/FULLY_CONNECTED",
    "eff_depthwise": "depthwise efficiency as a fraction of the dense efficiency",
    "bytes_per_cycle": "bytes moved per cycle per used core (tensor traffic bound)",
    "op_overhead_kcycles": "thousands of cycles of fixed cost per op, at the fastest core's clock",
    "postprocess_cycles_per_score": "cycles per anchor x class score in TFLite_Detection_PostProcess",
}


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What the used cores can do per second."""

    peak_float: float  # MAC/s
    peak_int8: float  # MAC/s
    peak_int8_nodot: float  # MAC/s without dot-product instructions (depthwise int8)
    sum_ghz: float
    fastest_ghz: float


def capacity(profile: DeviceProfile, dotprod: bool = True) -> Capacity:
    """Peaks of the profile's ``threads`` fastest cores (``dotprod=False``: as if no core had it)."""
    used = profile.used_cores()
    return Capacity(
        peak_float=sum(n * c.ghz * 1e9 * c.neon_pipes_128b * 4 for c, n in used),
        peak_int8=sum(n * c.ghz * 1e9 * c.neon_pipes_128b * (16 if c.dotprod and dotprod else 8) for c, n in used),
        peak_int8_nodot=sum(n * c.ghz * 1e9 * c.neon_pipes_128b * 8 for c, n in used),
        sum_ghz=sum(n * c.ghz for c, n in used),
        fastest_ghz=max(c.ghz for c, _ in used),
    )


@dataclasses.dataclass(frozen=True)
class _Arrays:
    """Op rows as numpy columns (built once per model when fitting)."""

    keys: tuple[str, ...]  # "class/dtype" per op
    key_index: np.ndarray  # int array: position of each op's key in ``keys``
    op_class: np.ndarray  # str array
    int8: np.ndarray  # bool array
    macs: np.ndarray  # float array
    nbytes: np.ndarray  # float array

    @classmethod
    def of(cls, rows: Sequence[OpRow]) -> _Arrays:
        import numpy as np

        labels = [f"{r[0]}/{r[1]}" for r in rows]
        keys = tuple(dict.fromkeys(labels))
        return cls(
            keys=keys,
            key_index=np.array([keys.index(k) for k in labels], dtype=np.int64),
            op_class=np.array([r[0] for r in rows]),
            int8=np.array([r[1] == "int8" for r in rows]),
            macs=np.array([r[2] for r in rows], dtype=np.float64),
            nbytes=np.array([r[3] for r in rows], dtype=np.float64),
        )


def _op_seconds(ops: _Arrays, cap: Capacity, params: dict[str, float]):
    """Projected seconds of every op (the formulas of the module docstring)."""
    import numpy as np

    overhead = params["op_overhead_kcycles"] * 1e3 / (cap.fastest_ghz * 1e9)
    memory = ops.nbytes / (params["bytes_per_cycle"] * cap.sum_ghz * 1e9)
    depthwise = ops.op_class == "depthwise"
    peak = np.where(ops.int8, np.where(depthwise, cap.peak_int8_nodot, cap.peak_int8), cap.peak_float)
    eff = np.where(ops.int8, params["eff_dense_int8"], params["eff_dense_float"])
    eff = np.where(depthwise, eff * params["eff_depthwise"], eff)
    compute = np.maximum(ops.macs / (eff * peak), memory)
    post = ops.macs * params["postprocess_cycles_per_score"] / (cap.fastest_ghz * 1e9)
    seconds = np.where(
        np.isin(ops.op_class, ("dense", "depthwise")),
        compute,
        np.where(ops.op_class == "postprocess", post, memory),
    )
    return seconds + overhead


def _project_arrays(
    ops: _Arrays, profile: DeviceProfile, params: dict[str, float], dotprod: bool = True
) -> dict[str, float]:
    import numpy as np

    seconds = _op_seconds(ops, capacity(profile, dotprod), params)
    sums: np.ndarray | list[float] = (
        np.bincount(ops.key_index, weights=seconds, minlength=len(ops.keys)) if len(seconds) else []
    )
    out = {key: 1e3 * float(v) for key, v in zip(ops.keys, sums)}
    out["total"] = sum(out.values())
    return out


def project_rows(
    rows: Sequence[OpRow], profile: DeviceProfile, params: dict[str, float] | None = None
) -> dict[str, float]:
    """Projected milliseconds per op class ("dense/int8", ...) and "total"."""
    params = params or {name: profile.value(name) for name in PARAMETER_NAMES}
    return _project_arrays(_Arrays.of(rows), profile, params)


def rows_from_cost(cost) -> list[OpRow]:
    """Op rows from a :class:`ktp_tflite.benchmarks.graph_cost.GraphCost`."""
    return [(op.op_class, op.dtype, op.macs, op.bytes_moved) for op in cost.runtime_ops]


def precision_of(rows: Sequence[OpRow]) -> str:
    """The precision: "int8" when most dense/depthwise MACs are int8, else "float"."""
    int8 = sum(r[2] for r in rows if r[0] in ("dense", "depthwise") and r[1] == "int8")
    total = sum(r[2] for r in rows if r[0] in ("dense", "depthwise"))
    return "int8" if total and int8 * 2 > total else "float"


@dataclasses.dataclass(frozen=True)
class Projection:
    """A projected latency on a device: an estimate with its error band."""

    model: str
    device: str
    display_name: str
    threads: int
    precision: str
    ms: float
    band_percent: float
    profile_status: str  # "fitted" or "derived"
    by_class_ms: dict[str, float]
    status: str = "projected"

    def text(self) -> str:
        """e.g. "pixel4 CPU x4, int8: 14 ms, +-25 %, projected"."""
        digits = 1 if self.ms < 10 else 0
        derived = "; profile derived from core facts" if self.profile_status == "derived" else ""
        return (
            f"{self.device} CPU x{self.threads}, {self.precision}: {self.ms:.{digits}f} ms, "
            f"+-{self.band_percent:.0f} %, projected{derived}"
        )

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "text": self.text()}


def project(rows: Sequence[OpRow], profile: DeviceProfile, model: str = "model") -> Projection:
    """Project one model (its op rows) onto ``profile`` with the profile's parameters."""
    by_class = project_rows(rows, profile)
    total = by_class.pop("total")
    return Projection(
        model=model,
        device=profile.name,
        display_name=profile.display_name,
        threads=profile.threads,
        precision=precision_of(rows),
        ms=total,
        band_percent=profile.error_band_percent,
        profile_status=profile.status,
        by_class_ms={k: v for k, v in by_class.items() if v > 0},
    )


# ----------------------------------------------------------------------------- fitting


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
    row: ReferenceRow, costs: dict[str, _Arrays], devices: dict[str, DeviceProfile], params: dict[str, float]
) -> float:
    return _project_arrays(costs[row.key], devices[row.device], params, row.dotprod_used)["total"]


def fit_parameters(
    rows: Sequence[ReferenceRow],
    costs: Mapping[str, Sequence[OpRow] | _Arrays],
    devices: dict[str, DeviceProfile],
) -> dict[str, float]:
    """Least squares on log latency (plus the log-normal priors) over ``rows``."""
    import numpy as np
    from scipy.optimize import least_squares

    arrays = {k: v if isinstance(v, _Arrays) else _Arrays.of(v) for k, v in costs.items()}
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

    arrays = {k: _Arrays.of(v) for k, v in costs.items()}
    params = fit_parameters(rows, arrays, devices)
    in_sample = [entry(r, _predict(r, arrays, devices, params)) for r in rows]
    loo = []
    for k, row in enumerate(rows):
        held = fit_parameters([r for j, r in enumerate(rows) if j != k], arrays, devices)
        loo.append(entry(row, _predict(row, arrays, devices, held)))
    return FitResult(params=params, in_sample=in_sample, loo=loo)
