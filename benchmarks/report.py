"""Benchmark reports: report.json, report.md and report.html with embedded PNG plots.

Measured numbers (this host, or a phone over adb) and projected numbers
(device profiles) are kept in separate tables and labelled as such; every
projection carries its error band and the word "projected". Reports hold
model file names, sizes, timings and metrics only: no image content.

Why one file: one :class:`BenchmarkReport` and its renderings (JSON, Markdown, HTML, three
plots), written by :func:`write_report`; ``to_dict`` and :func:`markdown` both read
:class:`ModelEntry` field by field, so they change together. If it grows, the plots
(:func:`figure_png`, :func:`plot_latency`, ...) could move to report_plots.py.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from ktp_tflite.benchmarks.adb import DeviceRun
from ktp_tflite.benchmarks.delegates import GpuCompatibility
from ktp_tflite.benchmarks.host_latency import HostResult
from ktp_tflite.benchmarks.projection import Projection
from ktp_tflite.train.errors import KtpError


def host_note(host: dict) -> str:
    """What host numbers mean for phones, given the host's int8 dot-product support."""
    isa = host.get("int8_dot_isa", "none")
    if isa == "none":
        speed = (
            "this x86 CPU has no VNNI, so XNNPACK runs int8 about as fast as float here, while on "
            "a Pixel's ARM cores with dot-product instructions int8 is about twice as fast as float"
        )
    else:
        speed = (
            f"this CPU has {isa}, so XNNPACK's int8 kernels use dot products here as on a Pixel's ARM "
            "cores; the int8/float ratio still differs from a phone's"
        )
    return (
        f"Host numbers come from this machine's CPU: {speed} "
        "(docs/REFERENCES.md, 'Pixel CPU latency, TFLite benchmark_model'). Use the ratios between "
        "models here and the projections for phones."
    )


OP_PROFILE_NOTE = (
    "Per-op-type times are isolated-op timings: each op rebuilt as a one-op model, fed the tensors it "
    "sees in the full model and timed alone with the same kernels and threads, in rounds interleaved with "
    "runs of the full model. Their sum differs from the full model's median in those rounds (coverage) "
    "by fusion, caches and per-invoke overhead; read them as shares."
)


class ReportError(KtpError, ValueError):
    """The report cannot be written or an input file (eval JSON) is invalid."""


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """Everything known about one model."""

    name: str
    size_bytes: int
    precision: str
    total_macs: int
    host: tuple[HostResult, ...]
    projections: tuple[Projection, ...]
    device_runs: tuple[DeviceRun, ...] = ()
    gpu: GpuCompatibility | None = None
    metrics: dict | None = None  # from the evaluate JSON (map, map50, map75)


@dataclasses.dataclass(frozen=True)
class BenchmarkReport:
    """A whole benchmark run."""

    models: tuple[ModelEntry, ...]
    profiles: tuple[dict, ...]  # name, display name, status, band, LOO mean/worst
    config: dict
    created: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )
    host: dict = dataclasses.field(
        default_factory=lambda: {
            "machine": platform.machine(),
            "processor": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "int8_dot_isa": _int8_dot_isa(),
        }
    )

    def ratios(self) -> dict[str, dict[str, float]]:
        """{kernels: {model: host p50 / first model's p50}} (first repeat of each model)."""
        out: dict[str, dict[str, float]] = {}
        for kernels in sorted({h.kernels for m in self.models for h in m.host}):
            rows = [
                (m.name, next(h.latency.p50_ms for h in m.host if h.kernels == kernels))
                for m in self.models
                if any(h.kernels == kernels for h in m.host)
            ]
            if rows:
                base = rows[0][1]
                out[kernels] = {name: p50 / base for name, p50 in rows}
        return out

    def repeatability(self) -> dict[str, dict[str, dict]]:
        """{model: {kernels: {"p50_ms": [...], "spread_percent"}}} for models measured more than once.

        Spread is (max - min) / min of the p50s of back-to-back measurements.
        """
        out: dict[str, dict[str, dict]] = {}
        for m in self.models:
            for kernels in sorted({h.kernels for h in m.host}):
                p50s = [h.latency.p50_ms for h in m.host if h.kernels == kernels]
                if len(p50s) > 1:
                    out.setdefault(m.name, {})[kernels] = {
                        "p50_ms": p50s,
                        "spread_percent": 100.0 * (max(p50s) - min(p50s)) / min(p50s),
                    }
        return out

    def to_dict(self) -> dict:
        return {
            "created": self.created,
            "host": self.host,
            "config": self.config,
            "notes": [host_note(self.host), OP_PROFILE_NOTE],
            "profiles": list(self.profiles),
            "ratios_host_p50": self.ratios(),
            "repeatability": self.repeatability(),
            "models": [
                {
                    "name": m.name,
                    "size_bytes": m.size_bytes,
                    "precision": m.precision,
                    "total_macs": m.total_macs,
                    "host_measured": [h.to_dict() for h in m.host],
                    "projections": [p.to_dict() for p in m.projections],
                    "device_measured": [d.to_dict() for d in m.device_runs],
                    "gpu_compatibility": m.gpu.to_dict() if m.gpu else None,
                    "metrics": m.metrics,
                }
                for m in self.models
            ],
        }


def _int8_dot_isa() -> str:
    """The int8 dot-product ISA: "avx512_vnni", "avx_vnni", "asimddp" (ARM) or "none", from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(text.split())
    return next((isa for isa in ("avx512_vnni", "avx_vnni", "asimddp") if isa in flags), "none")


def cpu_name() -> str:
    """This machine's CPU model name ("model name" of /proc/cpuinfo; else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


APP_RUNTIME = "task-library"  # what android_demo runs


def load_eval_metrics(path: str | Path) -> dict[str, dict]:
    """{model file name: {"map", "map50", "map75", "runtime"}} from ``ktpconvert evaluate --json``.

    The figure of the runtime the app uses: the Task Library with ktp-core's
    box mapping (``app_metrics``) when the file has it, else LiteRT's.

    Raises:
      ReportError: unreadable, not JSON, or without a "models" list of metrics.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportError(f"{path}: cannot read the evaluation JSON ({error.strerror or error})") from error
    except json.JSONDecodeError as error:
        raise ReportError(
            f"{path}: not valid JSON (line {error.lineno}: {error.msg}); pass the file "
            "written by `ktpconvert evaluate --json`"
        ) from error
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ReportError(f"{path}: no 'models' list; pass the file written by `ktpconvert evaluate --json`")
    out: dict[str, dict] = {}
    for k, entry in enumerate(models):
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict) or "model" not in entry:
            raise ReportError(f"{path}: models[{k}] lacks 'model' or 'metrics'")
        runtime = entry.get("runtime", "litert")
        metrics = entry["metrics"]
        if runtime == APP_RUNTIME and isinstance(entry.get("app_metrics"), dict):
            metrics = entry["app_metrics"]
        elif runtime != "litert":
            continue
        name = Path(str(entry["model"])).name
        if runtime == APP_RUNTIME or name not in out:
            out[name] = {
                **{k2: metrics.get(k2) for k2 in ("map", "map50", "map75")},
                "runtime": f"{runtime}, ktp-core boxes" if runtime == APP_RUNTIME else runtime,
            }
    return out


# ----------------------------------------------------------------------------- plots


def figure_png(figure) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def plot_latency(report: BenchmarkReport) -> bytes:
    """Box plot of host inference latency per model (one panel per kernel set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernels = sorted({h.kernels for m in report.models for h in m.host}) or ["xnnpack"]
    figure, axes = plt.subplots(1, len(kernels), figsize=(5 * len(kernels), 3.2), squeeze=False)
    for axis, kind in zip(axes[0], kernels):
        data = [(m.name, h.samples_ms) for m in report.models for h in m.host if h.kernels == kind]
        if data:
            axis.boxplot([d[1] for d in data], orientation="horizontal", showfliers=True)
            axis.set_yticks(range(1, len(data) + 1), [d[0] for d in data], fontsize=8)
        axis.set_xlabel("inference latency (ms), measured on this host")
        axis.set_title(f"kernels: {kind}", fontsize=9)
    return figure_png(figure)


def plot_op_breakdown(report: BenchmarkReport, top: int = 7) -> bytes:
    """Stacked bars: share of isolated-op time by op type, per model (host, measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (f"{m.name} ({h.kernels})", h.op_profile.by_type())
        for m in report.models
        for h in m.host
        if h.op_profile is not None
    ]
    totals: dict[str, float] = {}
    for _, table in rows:
        for name, row in table.items():
            totals[name] = totals.get(name, 0.0) + row["percent"]
    kinds = sorted(totals, key=lambda k: -totals[k])[:top]
    figure, axis = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(rows), 1)))
    for y, (_, table) in enumerate(rows):
        left = 0.0
        for k, name in enumerate([*kinds, "other"]):
            share = (
                table.get(name, {}).get("percent", 0.0)
                if name != "other"
                else sum(r["percent"] for n, r in table.items() if n not in kinds)
            )
            axis.barh(y, share, left=left, color=plt.cm.tab10(k % 10), label=name if y == 0 else None)
            left += share
    axis.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    axis.set_xlabel("% of isolated-op time (host, measured)")
    if rows:
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4)
    else:
        axis.text(0.5, 0.5, "no op profile (--no-op-profile)", ha="center", transform=axis.transAxes)
    return figure_png(figure)


def plot_tradeoff(report: BenchmarkReport) -> bytes:
    """Size vs latency (host p50 measured, first profile projected), annotated with mAP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6))
    for m in report.models:
        size_mb = m.size_bytes / 1e6
        label = m.name + (
            f"\nmAP {100 * m.metrics['map']:.1f}" if m.metrics and m.metrics.get("map") is not None else ""
        )
        if m.host:
            axis.scatter(size_mb, m.host[0].latency.p50_ms, marker="o", color="tab:blue")
            axis.annotate(label, (size_mb, m.host[0].latency.p50_ms), fontsize=7)
        if m.projections:
            p = m.projections[0]
            axis.errorbar(size_mb, p.ms, yerr=p.ms * p.band_percent / 100, fmt="s", color="tab:orange", capsize=3)
    axis.scatter([], [], marker="o", color="tab:blue", label="host p50 (measured)")
    if any(m.projections for m in report.models):
        first = next(m.projections[0] for m in report.models if m.projections)
        axis.scatter([], [], marker="s", color="tab:orange", label=f"{first.device} (projected, +-band)")
    axis.set_xlabel("model size (MB)")
    axis.set_ylabel("latency (ms)")
    if not any(m.metrics for m in report.models):
        axis.set_title("mAP: pass --eval eval.json from `ktpconvert evaluate --json`", fontsize=8)
    axis.legend(fontsize=7)
    return figure_png(figure)


# ----------------------------------------------------------------------------- text


def _table(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 1 else f"{value:.2f}")


def markdown(report: BenchmarkReport, images: dict[str, str] | None = None) -> str:
    """The report as Markdown (``images``: plot name -> file name to link)."""
    ratios = report.ratios()
    parts = [
        "# ktp-tflite benchmark report",
        "",
        f"Created {report.created} on {report.host['processor']} ({report.host['cpus']} CPUs).",
        "",
    ]
    parts += ["## Measured on this host (LiteRT interpreter)", "", host_note(report.host), ""]
    rows = []
    for m in report.models:
        for h in m.host:
            rows.append(
                [
                    m.name,
                    m.precision,
                    f"{m.size_bytes / 1e6:.2f}",
                    h.kernels,
                    h.threads,
                    _ms(h.init_ms),
                    _ms(h.latency.p50_ms),
                    _ms(h.latency.p90_ms),
                    _ms(h.latency.p99_ms),
                    f"{_ms(h.latency.mean_ms)} +- {_ms(h.latency.stdev_ms)}",
                    f"{ratios.get(h.kernels, {}).get(m.name, float('nan')):.2f}",
                    f"{h.peak_memory_kb / 1024:.1f}",
                    _ms(h.preprocess.p50_ms if h.preprocess else None),
                    _ms(h.postprocess.p50_ms if h.postprocess else None),
                ]
            )
    parts += [
        _table(
            [
                "model",
                "precision",
                "size MB",
                "kernels",
                "threads",
                "init ms",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "mean +- sd ms",
                "p50 ratio",
                "peak mem MB",
                "pre-proc p50 ms",
                "post-proc p50 ms",
            ],
            rows,
        ),
        "",
    ]
    for name, table in report.repeatability().items():
        for kernels, row in table.items():
            parts.append(
                f"Repeatability of {name} ({kernels}): p50 of {len(row['p50_ms'])} back-to-back runs "
                f"{', '.join(_ms(v) for v in row['p50_ms'])} ms, spread {row['spread_percent']:.1f} %."
            )
    parts += [
        "",
        (
            "Pre-processing: JPEG decode (640x480) + stretch-resize + normalize/quantize; post-processing: "
            "reading and parsing the outputs. Both are outside the inference times."
        ),
        "",
    ]
    projections = [p for m in report.models for p in m.projections]
    if projections:
        parts += ["## Projected on device profiles (estimates, not measurements)", ""]
        parts += [
            _table(
                ["model", "profile", "projection"],
                [[m.name, p.display_name, p.text()] for m in report.models for p in m.projections],
            ),
            "",
        ]
        parts += [
            _table(
                ["profile", "status", "band", "leave-one-out mean / worst"],
                [
                    [
                        p["name"],
                        p["status"],
                        f"+-{p['band_percent']:.0f} %",
                        f"{p['loo_mean']:.1f} % / {p['loo_worst']:.1f} %",
                    ]
                    for p in report.profiles
                ],
            ),
            "",
        ]
        parts += [
            (
                "Derived profiles have no published benchmark rows of their own; their band adds a margin "
                "for that (see the profile JSON's error_band_source)."
            ),
            "",
        ]
        over: list[str] = next((p["rows_over_target"] for p in report.profiles if p.get("rows_over_target")), [])
        if over:
            parts += [
                "Reference rows whose leave-one-out error exceeds the 25 % target: "
                + "; ".join(over)
                + ". See the profile notes for why.",
                "",
            ]
    runs = [(m, d) for m in report.models for d in m.device_runs]
    if runs:
        parts += ["## Measured on a phone (benchmark_model over adb)", ""]
        parts += [
            _table(
                ["model", "device", "threads", "init ms", "first ms", "avg ms", "std ms", "status"],
                [
                    [
                        m.name,
                        d.device,
                        d.threads,
                        _ms(d.init_ms),
                        _ms(d.first_ms),
                        _ms(d.avg_ms),
                        _ms(d.std_ms),
                        d.status,
                    ]
                    for m, d in runs
                ],
            ),
            "",
        ]
        for m, d in runs:
            parts += [
                f"{m.name} on {d.device}, by node type:",
                "",
                _table(
                    ["node type", "count", "avg ms", "%"],
                    [[k, v["count"], _ms(v["avg_ms"]), f"{v['percent']:.1f}"] for k, v in d.by_node_type.items()],
                ),
                "",
            ]
    profiled = [(m, h, h.op_profile) for m in report.models for h in m.host if h.op_profile]
    if profiled:
        parts += ["## Time by op type (host, isolated-op timing)", "", OP_PROFILE_NOTE, ""]
        for m, h, prof in profiled:
            parts += [
                (
                    f"**{m.name}** ({h.kernels}): op sum {_ms(prof.total_ms)} ms vs full model "
                    f"{_ms(prof.model_p50_ms)} ms in the same rounds (coverage {prof.coverage:.2f})"
                ),
                "",
                _table(
                    ["op type", "count", "ms", "%"],
                    [
                        [k, v["count"], _ms(v["ms"]), f"{v['percent']:.1f}"]
                        for k, v in list(prof.by_type().items())[:10]
                    ],
                ),
                "",
            ]
    gpu = [(m, m.gpu) for m in report.models if m.gpu]
    if gpu:
        parts += ["## Delegates", ""]
        parts += [
            _table(
                ["model", "precision", "GPU ops", "CPU fallback", "recommendation"],
                [
                    [
                        m.name,
                        compatibility.precision,
                        f"{compatibility.gpu_ops}/{compatibility.total_ops}",
                        ", ".join(compatibility.cpu_fallback) or "none",
                        compatibility.recommendation,
                    ]
                    for m, compatibility in gpu
                ],
            ),
            "",
        ]
    with_metrics = [(m, m.metrics) for m in report.models if m.metrics]
    if with_metrics:
        parts += ["## Accuracy (from the evaluate JSON)", ""]
        parts += [
            _table(
                ["model", "runtime", "mAP@[.5:.95]", "mAP@.5", "size MB"],
                [
                    [
                        m.name,
                        str(metrics.get("runtime", "litert")),
                        _pct(metrics.get("map")),
                        _pct(metrics.get("map50")),
                        f"{m.size_bytes / 1e6:.2f}",
                    ]
                    for m, metrics in with_metrics
                ],
            ),
            "",
        ]
    if images:
        parts += ["## Plots", ""] + [f"![{name}]({file})" for name, file in images.items()] + [""]
    return "\n".join(parts)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def html_page(report: BenchmarkReport, plots: dict[str, bytes]) -> str:
    """A self-contained HTML page: the Markdown tables as preformatted text plus embedded PNGs."""
    body = html.escape(markdown(report))
    images = "\n".join(
        f'<figure><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in plots.items()
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>ktp-tflite benchmark report</title>'
        "<style>body{font-family:sans-serif;margin:2em} pre{white-space:pre-wrap;font-size:12px}"
        "img{max-width:100%}</style></head><body>\n"
        f"<pre>{body}</pre>\n{images}\n</body></html>\n"
    )


def write_report(report: BenchmarkReport, folder: str | Path) -> dict[str, Path]:
    """Write report.json, report.md, report.html and the PNGs into ``folder`` (atomically, file by file).

    Raises:
      ReportError: the folder's parent does not exist.
    """
    from ktp_tflite.train.atomic_files import atomic_write_bytes

    folder = Path(folder)
    if not folder.parent.is_dir():
        raise ReportError(f"{folder}: parent folder {folder.parent} does not exist")
    folder.mkdir(exist_ok=True)
    plots = {
        "latency": plot_latency(report),
        "op_types": plot_op_breakdown(report),
        "size_latency_map": plot_tradeoff(report),
    }
    written = {}
    for name, png in plots.items():
        written[name] = folder / f"{name}.png"
        atomic_write_bytes(written[name], png)
    written["json"] = folder / "report.json"
    atomic_write_bytes(written["json"], (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    written["md"] = folder / "report.md"
    atomic_write_bytes(written["md"], markdown(report, {n: f"{n}.png" for n in plots}).encode())
    written["html"] = folder / "report.html"
    atomic_write_bytes(written["html"], html_page(report, plots).encode())
    return written
