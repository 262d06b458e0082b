"""Host latency of .tflite models in the LiteRT interpreter, one subprocess per model.

Each model is measured in a fresh Python process (``python -m
ktp_tflite.benchmarks.host_latency``) so that one model's memory high-water
mark and caches do not pollute the next. In that process: load (init time),
warm-up runs (the first one reported separately), then timed runs of
``invoke()`` on one fixed, seeded input; latency min/p50/p90/p99/mean/stdev;
peak memory as the process's peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs`` just before the interpreter is created) minus its
RSS at that moment; pre-processing (JPEG decode,
stretch-resize, normalize or quantize, as apps feed the model) and output
parsing are timed separately from inference.

Per-op-type time ("isolated-op" method): the Python interpreter exposes no
op profiler, and the ``benchmark_model`` binary is not available here. So
every runtime op is rebuilt as a one-op .tflite (same tensors, weights and
options), fed the exact tensors it sees in the full model (captured with
``experimental_preserve_all_tensors``), and timed under the same kernels and
threads. The ops and the full model are timed in interleaved rounds (each
round: the full model once, then every op once, in graph order), so a burst
of load from other processes or a clock change falls on both alike; the sum
of the ops' medians is reported next to the full model's median from the
same rounds (``coverage``). It differs from 1 by op fusion across ops,
cache effects and per-invoke overhead, so treat the breakdown as shares,
not exact times.

Why one file: the parent (:func:`measure`) and the measuring child (``_child``,
:func:`measure_in_process`) run this module, and the results' ``to_dict``/``from_dict`` are the
JSON protocol between them, so they change together. If it grows, the isolated-op profile
(:class:`OpTiming`, :class:`OpProfile`, :func:`isolated_op_profile`) could move to op_profile.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from ktp_tflite.convert.tflite_model import INPUT_DTYPES, ModelLoadError, TfliteModel, read_model
from ktp_tflite.train.errors import KtpError

KERNELS = ("xnnpack", "builtin")
PREPROCESS_IMAGE_SIZE = (640, 480)  # the synthetic photo decoded and resized before each run
SCORE_THRESHOLD = 0.5


class HostBenchmarkError(KtpError, RuntimeError):
    """A model cannot be loaded or run by the LiteRT interpreter."""


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings in milliseconds.

    Percentiles interpolate linearly between order statistics (numpy's
    default); stdev is the sample standard deviation (0 for one run).
    """

    runs: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    stdev_ms: float

    @classmethod
    def from_samples(cls, samples_ms) -> LatencyStats:
        import numpy as np

        values = np.asarray(list(samples_ms), dtype=np.float64)
        if values.size == 0:
            raise ValueError("no timing samples")
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            runs=int(values.size),
            min_ms=float(values.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            mean_ms=float(values.mean()),
            stdev_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        )


@dataclasses.dataclass(frozen=True)
class HostConfig:
    """How to measure on this machine.

    Attributes:
      threads: interpreter threads.
      runs: timed runs after warm-up.
      warmup: untimed runs first (the first inference is reported apart).
      kernels: "xnnpack" (LiteRT's default delegate) or "builtin" (reference
        and optimized builtin kernels, no default delegate).
      op_profile: also time every op alone (see the module notes).
      op_runs: timed rounds of the op profile (each: the full model once, then every op once).
      seed: seed of the fixed input.
    """

    threads: int = 4
    runs: int = 50
    warmup: int = 5
    kernels: str = "xnnpack"
    op_profile: bool = True
    op_runs: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.kernels not in KERNELS:
            raise HostBenchmarkError(f"unknown kernels {self.kernels!r}; use one of {', '.join(KERNELS)}")
        if self.threads < 1 or self.runs < 1 or self.warmup < 0 or self.op_runs < 1:
            raise HostBenchmarkError(
                f"threads ({self.threads}), runs ({self.runs}) and op runs ({self.op_runs}) must be "
                f">= 1 and warmup ({self.warmup}) >= 0"
            )


@dataclasses.dataclass(frozen=True)
class OpTiming:
    """One op timed alone (median of its runs)."""

    index: int
    op: str
    dtype: str
    ms: float


@dataclasses.dataclass(frozen=True)
class OpProfile:
    """Isolated-op timings of one model and how they add up.

    ``model_p50_ms`` is the full model's median over the same interleaved rounds
    as the ops, not the main latency run's p50.
    """

    method: str
    ops: tuple[OpTiming, ...]
    model_p50_ms: float

    @property
    def total_ms(self) -> float:
        return sum(op.ms for op in self.ops)

    @property
    def coverage(self) -> float:
        """Sum of the isolated ops over the full-model p50 (1.0 = they add up exactly)."""
        return self.total_ms / self.model_p50_ms if self.model_p50_ms > 0 else float("nan")

    def by_type(self) -> dict[str, dict[str, float]]:
        """{op type: {"count", "ms", "percent"}}, largest first; percent of the op sum."""
        table: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "ms": 0.0})
        for op in self.ops:
            table[op.op]["count"] += 1
            table[op.op]["ms"] += op.ms
        total = self.total_ms or 1.0
        return {
            name: {"count": int(row["count"]), "ms": row["ms"], "percent": 100.0 * row["ms"] / total}
            for name, row in sorted(table.items(), key=lambda kv: -kv[1]["ms"])
        }

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "model_p50_ms": self.model_p50_ms,
            "total_ms": self.total_ms,
            "coverage": self.coverage,
            "by_type": self.by_type(),
            "ops": [dataclasses.asdict(op) for op in self.ops],
        }

    @classmethod
    def from_dict(cls, data: dict) -> OpProfile:
        return cls(
            method=data["method"],
            model_p50_ms=data["model_p50_ms"],
            ops=tuple(OpTiming(**op) for op in data["ops"]),
        )


@dataclasses.dataclass(frozen=True)
class HostResult:
    """Everything measured for one model on this machine."""

    model: str
    size_bytes: int
    threads: int
    kernels: str
    input_shape: tuple[int, ...]
    input_dtype: str
    init_ms: float
    first_ms: float
    latency: LatencyStats
    samples_ms: tuple[float, ...]
    peak_memory_kb: int
    preprocess: LatencyStats | None
    postprocess: LatencyStats | None
    op_profile: OpProfile | None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["op_profile"] = self.op_profile.to_dict() if self.op_profile else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> HostResult:
        def stats(value):
            return LatencyStats(**value) if value else None

        return cls(
            **{
                **data,
                "input_shape": tuple(data["input_shape"]),
                "latency": LatencyStats(**data["latency"]),
                "samples_ms": tuple(data["samples_ms"]),
                "preprocess": stats(data["preprocess"]),
                "postprocess": stats(data["postprocess"]),
                "op_profile": OpProfile.from_dict(data["op_profile"]) if data["op_profile"] else None,
            }
        )


def make_interpreter(model: bytes, threads: int, kernels: str, *, preserve: bool = False):
    """A LiteRT interpreter with XNNPACK (default) or builtin kernels only, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if kernels == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(
        model_content=model,
        num_threads=threads,
        experimental_op_resolver_type=resolver,
        experimental_preserve_all_tensors=preserve,
    )
    interpreter.allocate_tensors()
    return interpreter


def fixed_input(detail: dict, seed: int):
    """A seeded input for one input tensor: full-range for integer types, [-1, 1] for float."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def _time_invokes(interpreter, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        interpreter.invoke()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def _synthetic_jpeg(seed: int) -> bytes:
    """A 640x480 photo-like JPEG (smooth gradients plus mild noise); no user data."""
    import numpy as np
    from PIL import Image

    width, height = PREPROCESS_IMAGE_SIZE
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=-1)
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _preprocess_timings(model: TfliteModel, runs: int, seed: int) -> LatencyStats | None:
    """Decode + stretch-resize + :meth:`TfliteModel.model_input`, per run; None for non-image inputs."""
    import numpy as np
    from PIL import Image

    from ktp_tflite.train.preprocess import resize_rgb

    shape = list(model.input.shape)
    if len(shape) != 4 or shape[3] != 3 or model.input.dtype not in INPUT_DTYPES:
        return None
    if model.input.dtype != "uint8":
        _ = model.normalization  # reads the metadata (once) before the timed runs
    jpeg = _synthetic_jpeg(seed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        value = model.model_input(resize_rgb(image, shape[1], shape[2]))
        samples.append((time.perf_counter_ns() - start) / 1e6)
    del value
    return LatencyStats.from_samples(samples)


def _postprocess_timings(interpreter, model: TfliteModel, runs: int) -> LatencyStats:
    """Reading and parsing outputs: SSD detections above a threshold, else a top-5."""
    import numpy as np

    roles = {role: t.index for role, t in model.detection_outputs().items()} if model.is_detector else None
    outputs = [d["index"] for d in interpreter.get_output_details()]
    width, height = PREPROCESS_IMAGE_SIZE
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        if roles is not None:
            values = {role: interpreter.get_tensor(index) for role, index in roles.items()}
            count = round(float(np.ravel(values["count"])[0]))
            scores = values["scores"][0][:count]
            keep = scores >= SCORE_THRESHOLD
            boxes = np.clip(values["boxes"][0][:count][keep], 0.0, 1.0) * [height, width, height, width]
            parsed = list(
                zip(
                    boxes.round().astype(int).tolist(),
                    values["classes"][0][:count][keep].astype(int).tolist(),
                    scores[keep].tolist(),
                )
            )
        else:
            first = np.ravel(interpreter.get_tensor(outputs[0]))
            parsed = np.argsort(first)[-5:][::-1].tolist()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    del parsed
    return LatencyStats.from_samples(samples)


def isolated_op_profile(model: TfliteModel, full, inputs: dict, config: HostConfig) -> OpProfile:
    """Time every runtime op of subgraph 0 alone on the tensors it sees in the full model.

    ``full`` is the full model's interpreter with ``inputs`` set; it is timed in
    the same interleaved rounds as the ops (``config.op_runs`` rounds). Each op
    runs as :meth:`TfliteModel.single_op_model`.
    """
    import numpy as np

    from ktp_tflite.benchmarks.graph_cost import graph_cost

    capture = make_interpreter(model.data, config.threads, "builtin", preserve=True)
    for index, value in inputs.items():
        capture.set_tensor(index, value)
    capture.invoke()
    costs = graph_cost(model)
    load_time = {t.index: cost.index for cost in costs.ops if not cost.runtime for t in model.ops[cost.index].outputs}
    runtime_ops, interpreters = [], []
    for cost in costs.ops:
        if not cost.runtime:
            continue
        inputs_of = [t.index for t in model.ops[cost.index].inputs]
        producers = tuple(sorted({load_time[i] for i in inputs_of if i in load_time}))
        one_op = model.single_op_model(cost.index, producers)
        interpreter = make_interpreter(one_op, config.threads, config.kernels)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], capture.get_tensor(detail["index"]))
        interpreter.invoke()
        runtime_ops.append(cost)
        interpreters.append(interpreter)
    del capture
    model_samples: list[float] = []
    op_samples: list[list[float]] = [[] for _ in interpreters]
    for _ in range(config.op_runs):
        model_samples += _time_invokes(full, 1)
        for samples, interpreter in zip(op_samples, interpreters):
            samples += _time_invokes(interpreter, 1)
    timings = tuple(
        OpTiming(cost.index, cost.op, cost.dtype, float(np.median(samples)))
        for cost, samples in zip(runtime_ops, op_samples)
    )
    return OpProfile(method="isolated-op", ops=timings, model_p50_ms=float(np.median(model_samples)))


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_memory() -> int:
    """Reset the peak-RSS mark (Linux: write 5 to clear_refs); return the current RSS in KB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        current = _status_kb("VmRSS")
        if current is not None:
            return current
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # fallback: growth of the lifetime peak


def _peak_memory_kb() -> int:
    peak = _status_kb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_in_process(path: str | Path, config: HostConfig) -> HostResult:
    """Measure one model in this process (use :func:`measure` for a clean process).

    Raises:
      HostBenchmarkError: the file cannot be read or the interpreter rejects it.
    """
    path = Path(path)
    try:
        tflite = read_model(path)
    except ModelLoadError as error:
        raise HostBenchmarkError(str(error)) from error
    model = tflite.data
    import numpy as np  # imported before the memory baseline
    import PIL.Image  # noqa: F401

    baseline_kb = _reset_peak_memory()
    start = time.perf_counter_ns()
    try:
        interpreter = make_interpreter(model, config.threads, config.kernels)
    except (ValueError, RuntimeError) as error:
        raise HostBenchmarkError(f"{path}: the LiteRT interpreter cannot load it ({error})") from error
    init_ms = (time.perf_counter_ns() - start) / 1e6
    details = interpreter.get_input_details()
    inputs = {d["index"]: fixed_input(d, config.seed + k) for k, d in enumerate(details)}
    for index, value in inputs.items():
        interpreter.set_tensor(index, value)
    try:
        first_ms = _time_invokes(interpreter, 1)[0]
    except RuntimeError as error:
        raise HostBenchmarkError(f"{path}: inference failed ({error})") from error
    _time_invokes(interpreter, max(config.warmup - 1, 0))
    samples = _time_invokes(interpreter, config.runs)
    peak_kb = _peak_memory_kb() - baseline_kb
    latency = LatencyStats.from_samples(samples)
    print(f"{path.name}: p50 {latency.p50_ms:.2f} ms over {config.runs} runs", file=sys.stderr)
    post = _postprocess_timings(interpreter, tflite, config.runs)
    pre = _preprocess_timings(tflite, config.runs, config.seed) if len(details) == 1 else None
    profile = None
    if config.op_profile:
        print(f"{path.name}: timing each op alone", file=sys.stderr)
        profile = isolated_op_profile(tflite, interpreter, inputs, config)
    return HostResult(
        model=str(path),
        size_bytes=len(model),
        threads=config.threads,
        kernels=config.kernels,
        input_shape=tuple(int(d) for d in details[0]["shape"]),
        input_dtype=np.dtype(details[0]["dtype"]).name,
        init_ms=init_ms,
        first_ms=first_ms,
        latency=latency,
        samples_ms=tuple(samples),
        peak_memory_kb=int(peak_kb),
        preprocess=pre,
        postprocess=post,
        op_profile=profile,
    )


def measure(path: str | Path, config: HostConfig, timeout_s: float = 1800) -> HostResult:
    """Measure one model in a fresh Python process.

    Raises:
      HostBenchmarkError: the model cannot be measured (message from the child).
    """
    command = [
        sys.executable,
        "-m",
        "ktp_tflite.benchmarks.host_latency",
        str(path),
        json.dumps(dataclasses.asdict(config)),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired as error:
        raise HostBenchmarkError(f"{path}: measurement took longer than {timeout_s:.0f} s") from error
    sys.stderr.write(done.stderr if done.returncode == 0 else "")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise HostBenchmarkError(f"{path}: measurement process failed (exit {done.returncode}): {tail}")
    data = json.loads(lines[-1])
    if "error" in data:
        raise HostBenchmarkError(data["error"])
    return HostResult.from_dict(data)


def _child(argv: list[str]) -> int:
    path, config_json = argv
    try:
        result = measure_in_process(path, HostConfig(**json.loads(config_json)))
    except KtpError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
