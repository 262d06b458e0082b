"""``ktpconvert benchmark``: host latency, device projections, GPU compatibility, reports.

Imports only click at module level (``ktpconvert --help`` must stay TF-free);
everything else is imported inside the command.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

DEFAULT_PROFILES = ("pixel4", "pixel6", "pixel7", "pixel8")
# The file an earlier --report folder holds (write_report writes it).
REPORT_MARKER = "report.json"
EVAL_FIX = "pass the file written by `ktpconvert evaluate --json`"


def check_eval_json(path: Path) -> None:
    """Validate ``--eval`` before any measuring: the shape ``load_eval_metrics`` reads.

    Raises:
      KtpError: unreadable, not JSON (or NaN, or nested beyond parsing), no
        "models" list of {"model": name, "metrics": {map, map50, map75}} with
        numbers or null (names the file, the entry and the fix).
    """
    from ktp_tflite.train.datasets import describe, read_json
    from ktp_tflite.train.errors import KtpError

    data = read_json(path, what="evaluation JSON", fix=EVAL_FIX, error=KtpError)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise KtpError(f"{path}: no 'models' list; {EVAL_FIX}")
    for index, entry in enumerate(models):
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(metrics, dict) or not isinstance(entry.get("model"), str):
            raise KtpError(f"{path}: models[{index}] lacks a 'model' name or a 'metrics' object; {EVAL_FIX}")
        for key in ("map", "map50", "map75"):
            value = metrics.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise KtpError(
                    f"{path}: models[{index}].metrics.{key} is {describe(value)}; expected a number; {EVAL_FIX}"
                )


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Interpreter threads on this host [default: min(4, CPUs)].",
)
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Warm-up runs.")
@click.option(
    "--kernels",
    type=click.Choice(["xnnpack", "builtin", "both"]),
    default="xnnpack",
    show_default=True,
    help="XNNPACK (LiteRT default), builtin kernels only, or both.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Measure each model this many times back to back (repeatability of p50).",
)
@click.option(
    "--op-profile/--no-op-profile",
    default=True,
    show_default=True,
    help="Time every op alone for the per-op-type breakdown.",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME|PATH",
    help="Device profile to project onto: pixel3, pixel4, pixel6, pixel7, pixel8 or a JSON "
    "file; repeatable [default: pixel4 pixel6 pixel7 pixel8].",
)
@click.option(
    "--gpu-check/--no-gpu-check",
    default=True,
    show_default=True,
    help="GPU delegate compatibility with the TFLite analyzer (imports TensorFlow).",
)
@click.option(
    "--eval",
    "eval_json",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="`ktpconvert evaluate --json` output: adds mAP to the report.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.md, report.json, report.html and PNG plots into this new folder "
    "(built whole under a temporary name, then renamed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report JSON on stdout.")
@click.option(
    "--adb",
    "use_adb",
    is_flag=True,
    help="Also run TFLite's benchmark_model on a phone over adb (needs --benchmark-binary).",
)
@click.option("--serial", help="adb device serial (adb -s).")
@click.option(
    "--benchmark-binary",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The android_aarch64 benchmark_model binary to push.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --report if it holds an earlier report (a folder of other files is never replaced).",
)
def benchmark(
    models: tuple[Path, ...],
    threads: int | None,
    runs: int,
    warmup: int,
    kernels: str,
    repeat: int,
    op_profile: bool,
    profiles: tuple[str, ...],
    gpu_check: bool,
    eval_json: Path | None,
    report_dir: Path | None,
    as_json: bool,
    use_adb: bool,
    serial: str | None,
    benchmark_binary: Path | None,
    force: bool,
) -> None:
    """Measure each MODEL .tflite here and project it onto Pixel-class phones.

    Host latency (p50/p90/p99, init, peak memory, pre/post-processing, time by
    op type) is measured in a fresh process per model. Projections are
    estimates from a per-op cost model fitted to published Pixel figures and
    are always printed with their error band and the word "projected".
    """
    from ktp_tflite.train.atomic_files import atomic_output_dir, check_output
    from ktp_tflite.train.errors import KtpError

    if use_adb and benchmark_binary is None:
        raise click.UsageError("--adb needs --benchmark-binary PATH (TFLite's benchmark_model for android)")
    inputs = (*models, eval_json, benchmark_binary, *(Path(p) for p in profiles if p.endswith(".json")))
    try:
        if report_dir is not None:
            check_output(report_dir, inputs=inputs, force=force, folder=True, marker=REPORT_MARKER)
        if eval_json is not None:
            check_eval_json(eval_json)
        report = _run(
            models,
            threads or min(4, os.cpu_count() or 1),
            runs,
            warmup,
            kernels,
            repeat,
            op_profile,
            profiles or DEFAULT_PROFILES,
            gpu_check,
            eval_json,
            use_adb,
            serial,
            benchmark_binary,
        )
        if report_dir is not None:
            from ktp_tflite.benchmarks.report import write_report

            with atomic_output_dir(report_dir, inputs=inputs, force=force, marker=REPORT_MARKER) as staging:
                written = {k: report_dir / p.relative_to(staging) for k, p in write_report(report, staging).items()}
            click.echo(f"report: {written['md']}, {written['html']}, {written['json']}", err=True)
    except KtpError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(_summary(report))


def _run(
    models,
    threads,
    runs,
    warmup,
    kernels,
    repeat,
    op_profile,
    profile_names,
    gpu_check,
    eval_json,
    use_adb,
    serial,
    binary,
):
    from ktp_tflite.benchmarks.graph_cost import graph_cost, precision_label
    from ktp_tflite.benchmarks.host_latency import HostConfig, measure
    from ktp_tflite.benchmarks.profiles import load_profile
    from ktp_tflite.benchmarks.projection import project, rows_from_cost
    from ktp_tflite.benchmarks.report import BenchmarkReport, ModelEntry, load_eval_metrics

    profiles = [load_profile(name) for name in profile_names]
    metrics = load_eval_metrics(eval_json) if eval_json else {}
    kernel_sets = ("xnnpack", "builtin") if kernels == "both" else (kernels,)
    # the op profile is taken on the first repeat only
    configs = [
        HostConfig(threads=threads, runs=runs, warmup=warmup, kernels=k, op_profile=op_profile and r == 0)
        for r in range(repeat)
        for k in kernel_sets
    ]
    from ktp_tflite.convert.scan import bind_outputs, check_field_labels
    from ktp_tflite.convert.tflite_model import read_model

    for path in models:  # before anything is timed: a detector reads the five fields, in order
        model = read_model(path)
        if model.is_detector:
            check_field_labels(bind_outputs(model))
    entries = []
    for path in models:
        data = path.read_bytes()
        cost = graph_cost(data, str(path))
        rows = rows_from_cost(cost)
        host = []
        for config in configs:
            click.echo(f"measuring {path.name} ({config.kernels}, {threads} threads)", err=True)
            host.append(measure(path, config))
        device_runs = []
        if use_adb:
            from ktp_tflite.benchmarks.adb import run_on_device

            device_runs.append(
                run_on_device(
                    path,
                    binary,
                    threads=profiles[0].threads,
                    device=serial or "adb device",
                    serial=serial,
                    runs=runs,
                    warmup=warmup,
                )
            )
        gpu = None
        if gpu_check:
            from ktp_tflite.benchmarks.delegates import gpu_compatibility

            gpu = gpu_compatibility(path)
        entries.append(
            ModelEntry(
                name=path.name,
                size_bytes=len(data),
                precision=precision_label(data, str(path)),
                total_macs=cost.total_macs,
                host=tuple(host),
                projections=tuple(project(rows, p, path.name) for p in profiles),
                device_runs=tuple(device_runs),
                gpu=gpu,
                metrics=metrics.get(path.name),
            )
        )
    summaries = tuple(
        {
            "name": p.name,
            "display_name": p.display_name,
            "status": p.status,
            "band_percent": p.error_band_percent,
            "loo_mean": float(p.fit.get("leave_one_out_mean_abs_percent", float("nan"))),
            "loo_worst": float(p.fit.get("leave_one_out_worst_abs_percent", float("nan"))),
            "source": p.source,
            "rows_over_target": list(p.fit.get("rows_over_target", [])),
            "notes": list(p.notes),
        }
        for p in profiles
    )
    config = {
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "kernels": list(kernel_sets),
        "repeat": repeat,
        "op_profile": op_profile,
        "profiles": list(profile_names),
    }
    return BenchmarkReport(models=tuple(entries), profiles=summaries, config=config)


def _summary(report) -> str:
    lines = []
    ratios = report.ratios()
    for m in report.models:
        lines.append(f"{m.name}  ({m.precision}, {m.size_bytes / 1e6:.2f} MB, {m.total_macs / 1e6:.0f} M MACs)")
        for h in m.host:
            pre = f", pre-proc {h.preprocess.p50_ms:.2f} ms" if h.preprocess else ""
            lines.append(
                f"  host {h.kernels} x{h.threads}: p50 {h.latency.p50_ms:.2f} ms "
                f"(p90 {h.latency.p90_ms:.2f}, p99 {h.latency.p99_ms:.2f}), "
                f"ratio {ratios[h.kernels][m.name]:.2f}, init {h.init_ms:.1f} ms, "
                f"peak mem {h.peak_memory_kb / 1024:.1f} MB{pre}, measured"
            )
        for d in m.device_runs:
            lines.append(f"  {d.device} x{d.threads}: avg {d.avg_ms:.2f} ms, init {d.init_ms:.1f} ms, measured")
        for p in m.projections:
            lines.append(f"  {p.text()}")
        for kernels, row in report.repeatability().get(m.name, {}).items():
            lines.append(
                f"  repeatability ({kernels}): p50 spread {row['spread_percent']:.1f} % over "
                f"{len(row['p50_ms'])} back-to-back runs"
            )
        if m.gpu:
            lines.append(
                f"  GPU delegate: {m.gpu.gpu_ops}/{m.gpu.total_ops} ops; CPU fallback: "
                f"{', '.join(m.gpu.cpu_fallback) or 'none'}"
            )
    return "\n".join(lines)


COMMANDS = [benchmark]

if __name__ == "__main__":
    sys.exit(benchmark())
