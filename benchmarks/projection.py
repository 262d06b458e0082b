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
come only from the core facts (clock, SIMD pipes, dot product). A projection
reads their values and its error band from the device profile;
``dotprod=False`` (:func:`project_arrays`) projects int8 with the
no-dot-product peak on every core. The values and bands are fit offline, by
least squares on log latency against published Pixel figures, in the
maintainer tool :mod:`ktp_tflite.benchmarks.tools.latency_fit` (run by
``benchmarks/tools/calibrate.py``); projecting needs only this module. A
projection is an estimate, never a measurement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ktp_tflite.benchmarks.profiles import PARAMETER_NAMES, DeviceProfile

if TYPE_CHECKING:  # numpy is imported where the arrays are built, not with the module
    import numpy as np

# (class, dtype, MACs, bytes) of one runtime op: what the model needs from a graph.
OpRow = tuple[str, str, int, int]

# What each parameter of the formulas above means (the fit tool writes it into every profile).
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
class OpArrays:
    """Op rows as numpy columns (built once per model; the fit reuses them for every trial)."""

    keys: tuple[str, ...]  # "class/dtype" per op
    key_index: np.ndarray  # int array: position of each op's key in ``keys``
    op_class: np.ndarray  # str array
    int8: np.ndarray  # bool array
    macs: np.ndarray  # float array
    nbytes: np.ndarray  # float array

    @classmethod
    def of(cls, rows: Sequence[OpRow]) -> OpArrays:
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


def _op_seconds(ops: OpArrays, cap: Capacity, params: dict[str, float]):
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


def project_arrays(
    ops: OpArrays, profile: DeviceProfile, params: dict[str, float], dotprod: bool = True
) -> dict[str, float]:
    """:func:`project_rows` on prepared columns (``dotprod=False``: int8 without the dot product)."""
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
    return project_arrays(OpArrays.of(rows), profile, params)


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
