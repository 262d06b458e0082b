"""``ktpconvert pipeline``: the main job, every stage on the bundled defaults.

Stages so far: synthetic training, validation and calibration data, and an
inspection of each set. Later stages (quantize, metadata, evaluate,
benchmark, android-assets) join as they land.
"""

from __future__ import annotations

from pathlib import Path

import click

from ktp_tflite.convert.cli.data import write_synthetic


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Folder for everything the job writes.")
@click.option("--train-count", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--val-count", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Training data seed; validation uses seed+1000 so the sets never share a card.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite what an earlier run wrote in --out.")
def pipeline(out: Path, train_count: int, val_count: int, seed: int, workers: int, force: bool) -> None:
    """Run the whole pipeline on bundled defaults (synthetic KTP data)."""
    from ktp_tflite.train.datasets import read_dataset
    from ktp_tflite.train.inspect_data import inspect_dataset

    sets = {"train": (train_count, seed), "val": (val_count, seed + 1000)}
    for name, (count, set_seed) in sets.items():
        click.echo(f"== data: {name} ({count} synthetic photos, seed {set_seed})", err=True)
        write_synthetic(out / "data" / name, count, set_seed, (640, 480), "both", workers, force)
        report = inspect_dataset(read_dataset(out / "data" / name / "coco"))
        click.echo(f"-- {name}: {out / 'data' / name}")
        click.echo(report.to_text())
        if report.problems:
            raise click.ClickException(f"{name} set has problems (listed above)")


COMMANDS = [pipeline]
