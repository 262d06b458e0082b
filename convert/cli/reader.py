"""``ktpconvert train-reader``: train the field reader (CRNN + CTC) on rendered field crops.

Writes a run folder (layout in :mod:`ktp_tflite.train.reader_train`):
``config.json``, ``checkpoints/``, ``history.jsonl``, ``metrics.json``
(exact match and character error rate per field on the validation crops).
``--resume`` continues the newest checkpoint up to ``--steps``. Export to
TFLite is a library call for now (:mod:`ktp_tflite.train.reader_export`, int8 in :mod:`ktp_tflite.convert.reader_quantize`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command("train-reader")
@click.option("--out", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder (created; holds config, checkpoints, history, metrics).")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Total training steps [default: 3000].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Crops per step [default: 32].")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate [default: 0.001].")
@click.option("--train-cards", type=click.IntRange(min=1), default=None,
              help="Rendered cards the training crops come from (5 fields x 2 crop kinds each) [default: 400].")
@click.option("--val-cards", type=click.IntRange(min=1), default=None,
              help="Rendered cards of the validation crops [default: 50].")
@click.option("--seed", type=int, default=None, help="Seed of the initial weights and batches [default: 0].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None,
              help="Steps between checkpoints [default: 500].")
@click.option("--resume", is_flag=True, help="Continue the newest checkpoint in --out (its stored config).")
def train_reader_command(run_dir: Path, steps: int | None, batch_size: int | None, learning_rate: float | None,
                         train_cards: int | None, val_cards: int | None, seed: int | None,
                         checkpoint_every: int | None, resume: bool) -> None:
    """Train the field reader; prints a JSON summary (steps, loss, metrics) on stdout."""
    import dataclasses

    from ktp_tflite.train.reader_model import ReaderConfig
    from ktp_tflite.train.reader_train import train_reader

    overrides = {"steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                 "train_cards": train_cards, "val_cards": val_cards, "seed": seed,
                 "checkpoint_every": checkpoint_every}
    config = dataclasses.replace(ReaderConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if resume and any(v is not None for k, v in overrides.items() if k != "steps"):
        raise click.UsageError("--resume keeps the stored config; pass only --steps with it")
    try:
        result = train_reader(config, run_dir, resume=resume)
    except KeyboardInterrupt:
        sys.exit(130)
    click.echo(json.dumps({"run_dir": str(run_dir), "first_step": result.first_step,
                           "last_step": result.last_step, "final_loss": result.final_loss,
                           "metrics": result.metrics}, indent=2))


COMMANDS = [train_reader_command]
