"""GPU delegate compatibility of a .tflite, and which delegate to ship for.

Runs TensorFlow's model analyzer (``tf.lite.experimental.Analyzer.analyze``
with ``gpu_compatibility=True``), which prints its report; the report is
captured and parsed: ops, per-op "GPU COMPATIBILITY WARNING" lines and the
verdict. The analyzer skips custom ops, but the GPU delegate cannot run
``TFLite_Detection_PostProcess``, so that op is always listed as a CPU
fallback here.

Recommendation: ship the int8 model for CPU
(XNNPACK) and NNAPI; ship fp16 (or fp32) for the GPU delegate, which runs
float kernels and would dequantize an int8 graph.

Both facts: docs/REFERENCES.md, 'Known pitfalls of SSD to int8 TFLite', item 6.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP

GPU_PITFALL = "docs/REFERENCES.md, 'Known pitfalls of SSD to int8 TFLite', item 6"
ALWAYS_CPU = {POSTPROCESS_OP: f"custom op; the GPU delegate has no kernel for it ({GPU_PITFALL})"}
_OP_LINE = re.compile(r"^\s*Op#(\d+)\s+([A-Za-z0-9_]+)\(")
_WARNING = "GPU COMPATIBILITY WARNING"


class DelegateError(KtpError, ValueError):
    """The analyzer cannot read the model."""


@dataclasses.dataclass(frozen=True)
class GpuCompatibility:
    """Which ops the GPU delegate would take and what falls back to the CPU."""

    model: str
    analyzer_verdict: str
    total_ops: int
    gpu_ops: int
    cpu_fallback: dict[str, list[str]]  # op type -> reasons
    precision: str
    recommendation: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_analyzer_report(text: str) -> tuple[list[tuple[int, str]], dict[int, list[str]], str]:
    """(ops [(index, name)], warnings per op index, verdict line) from the analyzer's text."""
    ops: list[tuple[int, str]] = []
    warnings: dict[int, list[str]] = {}
    current: int | None = None
    verdict = ""
    for line in text.splitlines():
        match = _OP_LINE.match(line)
        if match:
            current = int(match.group(1))
            ops.append((current, match.group(2)))
            if _WARNING in line:
                warnings.setdefault(current, []).append(line.split(_WARNING, 1)[1].strip(": "))
            continue
        if _WARNING in line:
            if current is not None:
                warnings.setdefault(current, []).append(line.split(_WARNING, 1)[1].strip(": "))
            continue
        if "compatible with GPU delegate" in line:
            verdict = line.strip()
        if line.startswith("Tensors of Subgraph"):
            current = None
    return ops, warnings, verdict


def _recommendation(precision: str, fallback: dict[str, list[str]]) -> str:
    moved = ", ".join(sorted(fallback)) or "nothing"
    if precision == "int8":
        return (
            "int8: ship this model for CPU (XNNPACK) and NNAPI; for the GPU delegate ship the fp16 "
            f"model instead (a full-int8 graph is not GPU friendly). CPU fallback on GPU: {moved}."
        )
    return (
        f"{precision}: suitable for the GPU delegate (fp16 preferred); for CPU/NNAPI ship the int8 "
        f"model. CPU fallback on GPU: {moved}."
    )


def gpu_compatibility(model_path: str | Path) -> GpuCompatibility:
    """Analyze one model.

    Raises:
      DelegateError: the analyzer cannot read the file.
    """
    import tensorflow as tf

    from ktp_tflite.benchmarks.graph_cost import precision_label
    from ktp_tflite.convert.tflite_model import ModelLoadError, read_model

    path = Path(model_path)
    try:
        precision = precision_label(read_model(path))
    except ModelLoadError as error:
        raise DelegateError(f"{path}: cannot analyze ({error})") from error
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            tf.lite.experimental.Analyzer.analyze(model_path=str(path), gpu_compatibility=True)
    except (ValueError, RuntimeError) as error:
        raise DelegateError(f"{path}: the TFLite analyzer failed ({error})") from error
    ops, warnings, verdict = parse_analyzer_report(buffer.getvalue())
    fallback: dict[str, list[str]] = {}
    for index, name in ops:
        reasons = list(warnings.get(index, []))
        if name in ALWAYS_CPU:
            reasons.append(ALWAYS_CPU[name])
        if reasons:
            fallback.setdefault(name, [])
            fallback[name].extend(r for r in reasons if r not in fallback[name])
    cpu_ops = sum(1 for _, name in ops if name in fallback)
    return GpuCompatibility(
        model=str(path),
        analyzer_verdict=verdict,
        total_ops=len(ops),
        gpu_ops=len(ops) - cpu_ops,
        cpu_fallback=fallback,
        precision=precision,
        recommendation=_recommendation(precision, fallback),
    )
