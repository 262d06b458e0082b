"""``ktpconvert pipeline``: the main job, every stage on the bundled defaults.

1. data: synthetic training and validation photos (TFRecord + COCO), inspected;
2. quantize: the bundled reference model (``train/reference/saved_model``) to
   full-integer int8 with metadata, calibrated on rendered cards;
3. metadata: the bundled float .tflite with the same metadata;
4. evaluate: float vs int8 COCO mAP on the validation photos through every
   installed runtime, the Task Library and MediaPipe handed presized frames as
   android_demo hands them (``--presize 4``);
5. read: whole scans with the bundled field reader
   (``train/reference/reader``): the int8 detector through the app's runtime
   (MediaPipe, presized frames, ktp-core boxes; the Task Library or LiteRT
   when MediaPipe is not installed), then the reader; field exact match and
   cards fully read;
6. benchmark: host latency of both detectors, Pixel projections, report.md/json/html;
7. android-assets: the int8 model and the bundled reader into the Android demo's assets.

Each stage runs the same command a user would type, so the job shows (and
tests) exactly what the CLI does.
"""

from __future__ import annotations

import importlib.resources
import time
from pathlib import Path

import click

from ktp_tflite.convert.cli.data import stderr_progressbar
from ktp_tflite.train.run_folder import ExportFolder
from ktp_tflite.train.synth_writer import write_synthetic

STAGES = ("data", "quantize", "metadata", "evaluate", "read", "benchmark", "android-assets")


def bundled_model() -> Path:
    """Folder of the bundled reference model (SavedModel + float .tflite + MODEL_CARD.md)."""
    return Path(str(importlib.resources.files("ktp_tflite.train") / "reference"))


def bundled_reader() -> Path:
    """The bundled reference field reader (int8, with metadata)."""
    from ktp_tflite.convert.reader import INT8_FILE

    return bundled_model() / "reader" / INT8_FILE


def _run(ctx: click.Context, name: str, args: list[str]) -> None:
    """Run a sibling command of the top-level group with command-line arguments."""
    group = ctx.parent.command if ctx.parent else None
    command = group.get_command(ctx.parent, name) if ctx.parent and isinstance(group, click.Group) else None
    if command is None:
        raise click.ClickException(f"command {name!r} is not available in this installation")
    click.echo(f"== ktpconvert {name} {' '.join(args)}", err=True)
    start = time.perf_counter()
    try:
        command.main(args=args, prog_name=f"ktpconvert {name}", standalone_mode=False)
    except SystemExit as exit_:
        if exit_.code in (130, 143):  # interrupted (Ctrl-C, SIGTERM): the job ends the same way
            raise
        if exit_.code not in (0, None):
            raise click.ClickException(f"stage {name} failed (exit code {exit_.code})") from exit_
    click.echo(f"-- {name} took {time.perf_counter() - start:.1f} s", err=True)


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for everything the job writes.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder with saved_model/ and model_float.tflite [default: the bundled reference model].",
)
@click.option("--train-count", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--val-count", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--calibration",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Rendered cards used to calibrate int8.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Training data seed; validation uses seed+1000 so the sets never share a card.",
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--stages", default=",".join(STAGES), show_default=True, help="Comma-separated stages to run, in pipeline order."
)
@click.option("--force", is_flag=True, help="Overwrite what an earlier run wrote in --out.")
@click.pass_context
def pipeline(
    ctx: click.Context,
    out: Path,
    model_dir: Path | None,
    train_count: int,
    val_count: int,
    calibration: int,
    seed: int,
    workers: int,
    stages: str,
    force: bool,
) -> None:
    """Run the whole pipeline on bundled defaults (synthetic KTP data, reference model)."""
    chosen = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise click.BadParameter(
            f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}", param_hint="--stages"
        )
    model_dir = model_dir or bundled_model()
    export = ExportFolder(model_dir)
    saved_model, float_model = export.saved_model, export.float_tflite
    val = out / "data" / "val" / "coco"
    int8_out, float_out = out / "model" / "ktp_int8.tflite", out / "model" / "ktp_float.tflite"
    forced = ["--force"] if force else []

    if "data" in chosen:
        from ktp_tflite.train.datasets import read_dataset
        from ktp_tflite.train.inspect_data import inspect_dataset

        sets = {"train": (train_count, seed), "val": (val_count, seed + 1000)}
        for name, (count, set_seed) in sets.items():
            click.echo(f"== data: {name} ({count} synthetic photos, seed {set_seed})", err=True)
            write_synthetic(
                out / "data" / name, count, set_seed, (640, 480), "both", workers, force, progress=stderr_progressbar
            )
            report = inspect_dataset(read_dataset(out / "data" / name / "coco"))
            click.echo(f"-- {name}: {out / 'data' / name}")
            click.echo(report.to_text())
            if report.problems:
                raise click.ClickException(f"{name} set has problems (listed above)")
    if {"quantize", "metadata"} & set(chosen):
        (out / "model").mkdir(parents=True, exist_ok=True)
    if "quantize" in chosen:
        _run(
            ctx,
            "quantize",
            [
                str(saved_model),
                "--out",
                str(int8_out),
                "--representative",
                f"synth:{calibration}",
                "--num-samples",
                str(calibration),
                *forced,
            ],
        )
    if "metadata" in chosen:
        _run(ctx, "metadata", [str(float_model), "--out", str(float_out), *forced])
    from ktp_tflite.convert.runtimes import APP_PRESIZE, APP_RUNTIME, installed_runtimes

    presize = ["--presize", str(APP_PRESIZE)]
    if "evaluate" in chosen:
        _run(
            ctx,
            "evaluate",
            [str(float_out), str(int8_out), "--data", str(val), *presize, "--json", str(out / "eval.json"), *forced],
        )
    if "read" in chosen:
        installed = installed_runtimes()
        scan_runtime = next(r for r in (APP_RUNTIME, "task-library", "litert") if r in installed)
        runtime = ["--runtime", scan_runtime, *(presize if scan_runtime != "litert" else [])]
        _run(
            ctx,
            "evaluate-scan",
            [
                "--model",
                str(int8_out),
                "--reader",
                str(bundled_reader()),
                "--data",
                str(val),
                *runtime,
                "--json",
                str(out / "scan_eval.json"),
                *forced,
            ],
        )
    if "benchmark" in chosen:
        _run(
            ctx,
            "benchmark",
            [str(float_out), str(int8_out), "--eval", str(out / "eval.json"), "--report", str(out / "report"), *forced],
        )
    if "android-assets" in chosen:
        _run(ctx, "android-assets", [str(int8_out), "--reader", str(bundled_reader())])


COMMANDS = [pipeline]
