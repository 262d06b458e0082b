"""Measure on a real phone: push the model and TFLite's ``benchmark_model`` over adb, parse its output.

The official binary (``benchmark_model``, built for android_aarch64 from
``tensorflow/lite/tools/benchmark`` or downloaded from the TFLite nightly
builds) prints, among other lines::

    INFO: count=56 first=18102 curr=17954 min=17720 max=19560 avg=18011.5 std=322
    INFO: Inference timings in us: Init: 45123, First inference: 28461,
          Warmup (avg): 18626.6, Inference (avg): 18011.5   (one line in the real output)
    INFO: Overall peak memory footprint (MB) via periodic monitoring: 22.4531

and, with ``--enable_op_profiling=true``, a "Summary by node type" table
(columns [Node type] [count] [avg ms] [avg %] [cdf %] [mem KB] [times
called]) for initialization and again for the regular runs; the one after
"Operator-wise Profiling Info for Regular Benchmark Runs" is used. Results
are marked "measured".
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

from ktp_tflite.train.errors import KtpError

DEVICE_DIR = "/data/local/tmp"
_TIMINGS = re.compile(
    r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
    r"Warmup \(avg\): ([\d.e+-]+|nan|-?inf), Inference \(avg\): ([\d.e+-]+)"
)
_COUNT = re.compile(r"count=(\d+) first=(\d+) curr=(\d+) min=(\d+) max=(\d+) avg=([\d.e+-]+) std=(\d+)")
_PEAK = re.compile(
    r"Overall peak memory footprint \(MB\) via periodic monitoring: ([\d.]+)"
    r"|Peak memory footprint \(MB\): init=[\d.]+ overall=([\d.]+)"
)
_NODE_ROW = re.compile(r"^\s*(\S(?:.*\S)?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+(\d+)\s*$")
_REGULAR = "Operator-wise Profiling Info for Regular Benchmark Runs"
_SUMMARY = "Summary by node type"


class AdbError(KtpError, RuntimeError):
    """adb, the device or benchmark_model failed, or its output cannot be parsed."""


@dataclasses.dataclass(frozen=True)
class DeviceRun:
    """One benchmark_model run on a phone (times in ms)."""

    model: str
    device: str
    threads: int | None
    init_ms: float
    first_ms: float
    warmup_avg_ms: float | None
    avg_ms: float
    min_ms: float | None
    max_ms: float | None
    std_ms: float | None
    runs: int | None
    peak_memory_mb: float | None
    by_node_type: dict[str, dict[str, float]]
    status: str = "measured"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _node_table(text: str) -> dict[str, dict[str, float]]:
    start = text.find(_REGULAR)
    region = text[start:] if start >= 0 else text[max(text.rfind(_SUMMARY), 0) :]
    at = region.find(_SUMMARY)
    if at < 0:
        return {}
    table: dict[str, dict[str, float]] = {}
    for line in region[at:].splitlines()[2:]:
        match = _NODE_ROW.match(line)
        if not match:
            if table:
                break
            continue
        name, count, avg_ms, avg_pct, _cdf, mem_kb, called = match.groups()
        table[name] = {
            "count": int(count),
            "avg_ms": float(avg_ms),
            "percent": float(avg_pct),
            "mem_kb": float(mem_kb),
            "times_called": int(called),
        }
    return table


def parse_benchmark_output(
    text: str, *, model: str = "model", device: str = "device", source: str = "benchmark_model output"
) -> DeviceRun:
    """Parse benchmark_model's stdout/stderr text.

    Raises:
      AdbError: no "Inference timings" line (the run failed or was cut short).
    """
    timings = _TIMINGS.search(text)
    if not timings:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise AdbError(
            f"{source}: no 'Inference timings in us' line; benchmark_model did not finish "
            f"(last lines: {tail or 'none'})"
        )
    init_us, first_us, warmup_us, avg_us = timings.groups()
    counts = [m for m in _COUNT.finditer(text[: timings.start()])]
    last = counts[-1].groups() if counts else None
    threads = re.search(r"Num threads: \[(\d+)\]", text)
    peak = _PEAK.search(text)
    warmup = float(warmup_us)
    return DeviceRun(
        model=model,
        device=device,
        threads=int(threads.group(1)) if threads else None,
        init_ms=float(init_us) / 1e3,
        first_ms=float(first_us) / 1e3,
        warmup_avg_ms=None if warmup != warmup else warmup / 1e3,
        avg_ms=float(avg_us) / 1e3,
        min_ms=int(last[3]) / 1e3 if last else None,
        max_ms=int(last[4]) / 1e3 if last else None,
        std_ms=int(last[6]) / 1e3 if last else None,
        runs=int(last[0]) if last else None,
        peak_memory_mb=float(peak.group(1) or peak.group(2)) if peak else None,
        by_node_type=_node_table(text),
    )


def _adb(adb: str, serial: str | None, args: list[str], timeout: float) -> str:
    command = [adb, *(["-s", serial] if serial else []), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise AdbError(f"`{' '.join(command)}` took longer than {timeout:.0f} s") from error
    if done.returncode != 0:
        raise AdbError(
            f"`{' '.join(command)}` failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}"
        )
    return done.stdout + done.stderr


def run_on_device(
    model_path: str | Path,
    binary: str | Path,
    *,
    threads: int,
    device: str,
    serial: str | None = None,
    runs: int = 50,
    warmup: int = 5,
    use_xnnpack: bool = True,
    adb: str | None = None,
    timeout_s: float = 600,
) -> DeviceRun:
    """Push ``binary`` and the model, run benchmark_model with op profiling, parse it.

    Raises:
      AdbError: adb missing, no device, push/run failed, or unparseable output.
    """
    adb = adb or shutil.which("adb")
    if not adb:
        raise AdbError("adb not found on PATH; install Android platform-tools or pass --adb-path")
    model_path, binary = Path(model_path), Path(binary)
    for path, what in ((model_path, "model"), (binary, "benchmark binary")):
        if not path.is_file():
            raise AdbError(f"{path}: {what} not found")
    remote_binary = f"{DEVICE_DIR}/benchmark_model"
    remote_model = f"{DEVICE_DIR}/{model_path.name}"
    _adb(adb, serial, ["push", str(binary), remote_binary], timeout_s)
    _adb(adb, serial, ["shell", "chmod", "+x", remote_binary], 60)
    _adb(adb, serial, ["push", str(model_path), remote_model], timeout_s)
    output = _adb(
        adb,
        serial,
        [
            "shell",
            remote_binary,
            f"--graph={remote_model}",
            f"--num_threads={threads}",
            f"--num_runs={runs}",
            f"--warmup_runs={warmup}",
            "--enable_op_profiling=true",
            f"--use_xnnpack={'true' if use_xnnpack else 'false'}",
        ],
        timeout_s,
    )
    return parse_benchmark_output(
        output,
        model=str(model_path),
        device=device,
        source=f"benchmark_model on {serial or 'the connected device'}",
    )
