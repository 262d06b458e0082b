"""``ktpconvert train-reader``: train the field reader (CRNN + CTC) on rendered field crops.

Writes a run folder (layout in :mod:`ktp_tflite.train.reader_train`):
``config.json``, ``checkpoints/``, ``history.jsonl``, ``metrics.json``
(exact match and character error rate per field on the validation crops).
``--resume`` continues the newest checkpoint up to ``--steps``.

``ktpconvert export-reader``: a run's float and full-int8 .tflite with metadata
(:func:`ktp_tflite.convert.reader_quantize.export_reader`), each checked
against the Keras model in LiteRT and scored on the run's validation crops;
``--max-exact-drop`` gates int8 against float (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command("train-reader")
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder (created; holds config, checkpoints, history, metrics).",
)
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Total training steps [default: 20000].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Crops per step [default: 64].")
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak Adam learning rate (warm-up, cosine decay) [default: 0.001].",
)
@click.option(
    "--train-cards",
    type=click.IntRange(min=1),
    default=None,
    help="Rendered cards the training crops come from (5 fields x 2 crop kinds each) [default: 12000].",
)
@click.option(
    "--val-cards",
    type=click.IntRange(min=1),
    default=None,
    help="Rendered cards of the validation crops [default: 300].",
)
@click.option("--seed", type=int, default=None, help="Seed of the initial weights and batches [default: 0].")
@click.option(
    "--block-repeats",
    type=click.IntRange(min=0),
    default=None,
    help="Residual stride-1 blocks after each of the four strided blocks (a deeper reader) [default: 0].",
)
@click.option(
    "--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints [default: 500]."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes rendering the crops (the crops do not depend on it).",
)
@click.option(
    "--crop-width",
    type=click.IntRange(min=32),
    default=None,
    help="Crop width in pixels, a multiple of 4 (longer lines are squeezed to it) [default: 256].",
)
@click.option(
    "--side-margin",
    type=click.FloatRange(0.0, 2.0),
    default=None,
    help="Crop margin left and right, in text heights [default: 0.1].",
)
@click.option(
    "--box-jitter",
    type=click.FloatRange(0.0, 0.5),
    default=None,
    help="Training box crops move each edge by up to this many box heights [default: 0.12].",
)
@click.option(
    "--detector",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Also train on crops of this detector's boxes on the training photos (run through "
    "--detector-runtime with the app's box mapping).",
)
@click.option(
    "--detector-runtime",
    type=click.Choice(["litert", "task-library", "mediapipe"]),
    default="task-library",
    show_default=True,
    help="Runtime of --detector (the app's: task-library).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Start from the model weights of this reader run's newest checkpoint, or of a float reader "
    ".tflite (such as the bundled ktp_reader_float.tflite). Same channels and head; the crop width may "
    "differ, and residual blocks the start lacks (--block-repeats) begin as identities.",
)
@click.option(
    "--field-weight",
    "field_weights",
    multiple=True,
    metavar="FIELD=W",
    help="Draw training crops of FIELD (nik, nama, ...) with weight W (others: 1), e.g. --field-weight "
    "nama=3 for more names per batch; repeat for more fields.",
)
@click.option("--resume", is_flag=True, help="Continue the newest checkpoint in --out (its stored config).")
def train_reader_command(
    run_dir: Path,
    steps: int | None,
    batch_size: int | None,
    learning_rate: float | None,
    train_cards: int | None,
    val_cards: int | None,
    seed: int | None,
    block_repeats: int | None,
    checkpoint_every: int | None,
    workers: int,
    crop_width: int | None,
    side_margin: float | None,
    box_jitter: float | None,
    detector: Path | None,
    detector_runtime: str,
    init_from: Path | None,
    field_weights: tuple[str, ...],
    resume: bool,
) -> None:
    """Train the field reader; prints a JSON summary (steps, loss, metrics) on stdout."""
    import dataclasses

    from ktp_tflite.train.reader_crops import DETECTOR_KIND
    from ktp_tflite.train.reader_model import ReaderConfig
    from ktp_tflite.train.reader_train import newest_checkpoint, train_reader

    overrides = {
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "train_cards": train_cards,
        "val_cards": val_cards,
        "seed": seed,
        "block_repeats": block_repeats,
        "checkpoint_every": checkpoint_every,
        "box_jitter": box_jitter,
        "field_weights": _field_weights(field_weights) if field_weights else None,
    }
    crop_overrides = {"width": crop_width, "side_margin": side_margin}
    if resume and any(v is not None for k, v in {**overrides, **crop_overrides}.items() if k != "steps"):
        raise click.UsageError(
            "--resume keeps the stored config; pass only --steps (and --detector, "
            "when its crops are not rendered yet) with it"
        )
    if resume and init_from is not None:
        raise click.UsageError("--init-from starts a new run; --resume continues one: pass one of them")
    config = ReaderConfig()
    crop_changes: dict[str, Any] = {k: v for k, v in crop_overrides.items() if v is not None}
    changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(config, crop=dataclasses.replace(config.crop, **crop_changes), **changes)
    detect = None
    if detector is not None:
        from ktp_tflite.convert.reader_detector import app_box_detector, file_identity

        detect = app_box_detector(detector, detector_runtime)
        if not resume:
            config = dataclasses.replace(
                config,
                crop_kinds=(*config.crop_kinds, DETECTOR_KIND),
                detector=f"{file_identity(detector)} via {detector_runtime}",
            )
    warm_start = None
    if init_from is not None and init_from.is_file():
        from ktp_tflite.convert.reader import reader_convolutions
        from ktp_tflite.convert.reader_detector import file_identity

        warm_start = reader_convolutions(init_from)
        config = dataclasses.replace(config, init_from=file_identity(init_from))
    elif init_from is not None:
        config = dataclasses.replace(config, init_from=newest_checkpoint(init_from))
    try:
        result = train_reader(config, run_dir, resume=resume, workers=workers, detect=detect, warm_start=warm_start)
    except KeyboardInterrupt:
        from ktp_tflite.convert.cli import exit_interrupted

        exit_interrupted()
    click.echo(
        json.dumps(
            {
                "run_dir": str(run_dir),
                "first_step": result.first_step,
                "last_step": result.last_step,
                "final_loss": result.final_loss,
                "metrics": result.metrics,
            },
            indent=2,
        )
    )


def _field_weights(values: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """``--field-weight FIELD=W`` values as ReaderConfig.field_weights (which checks names and weights)."""
    pairs = []
    for value in values:
        name, sep, weight = value.partition("=")
        try:
            if not sep:
                raise ValueError
            pairs.append((name.strip(), float(weight)))
        except ValueError:
            raise click.BadParameter(
                f"{value!r}: give FIELD=WEIGHT, e.g. nama=3", param_hint="--field-weight"
            ) from None
    return tuple(pairs)


@click.command("export-reader")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for ktp_reader_float.tflite, ktp_reader_int8.tflite and reader_eval.json (created).",
)
@click.option(
    "--representative-cards",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Training cards whose crops calibrate int8 (5 fields x 2 crop kinds each).",
)
@click.option(
    "--max-exact-drop",
    type=click.FloatRange(min=0.0),
    default=None,
    metavar="POINTS",
    help="Exit with code 3 when int8's exact match is more than POINTS (1 point = 0.01) below "
    "float's on any field (files are still written).",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes rendering crops.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
def export_reader_command(
    run_dir: Path, out_dir: Path, representative_cards: int, max_exact_drop: float | None, workers: int, force: bool
) -> None:
    """Export a reader run to float and int8 TFLite with metadata; prints exact match and CER of both."""
    from ktp_tflite.convert.cli.evaluate import EXIT_DROP_TOO_LARGE
    from ktp_tflite.convert.reader import FLOAT_FILE, INT8_FILE, REPORT_FILE
    from ktp_tflite.convert.reader_quantize import export_reader
    from ktp_tflite.train.atomic_files import check_output, write_output

    paths = [out_dir / name for name in (FLOAT_FILE, INT8_FILE, REPORT_FILE)]
    if out_dir.exists():
        for path in paths:
            check_output(path, inputs=[run_dir], force=force)
    result = export_reader(run_dir, representative_cards, workers=workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"run_dir": str(run_dir), **result.report}
    for path, data in zip(
        paths, (result.float_model, result.int8_model, (json.dumps(report, indent=2) + "\n").encode())
    ):
        write_output(path, data, inputs=[run_dir], force=force)
    click.echo(f"{'field':<20} {'float exact':>12} {'int8 exact':>11} {'float CER':>10} {'int8 CER':>9}")
    for key, row in result.report["float"].items():
        q = result.report["int8"][key]
        click.echo(f"{key:<20} {row['exact']:>12.4f} {q['exact']:>11.4f} {row['cer']:>10.4f} {q['cer']:>9.4f}")
    click.echo(
        f"int8 {result.report['int8_bytes'] / 1024:.0f} KiB, float {result.report['float_bytes'] / 1024:.0f} "
        f"KiB; wrote {', '.join(str(p) for p in paths)}"
    )
    worst = max(result.report["drop_points"].items(), key=lambda item: item[1])
    if max_exact_drop is not None and worst[1] > max_exact_drop + 1e-9:  # 0.5 points is within 0.5
        click.echo(
            f"Error: int8 exact match drop {worst[1]:.2f} points ({worst[0]}) exceeds "
            f"--max-exact-drop {max_exact_drop}",
            err=True,
        )
        raise SystemExit(EXIT_DROP_TOO_LARGE)


COMMANDS = [train_reader_command, export_reader_command]
