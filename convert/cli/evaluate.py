"""``ktpconvert evaluate``: COCO metrics of .tflite models and the cost of quantization."""

from __future__ import annotations

import json
from pathlib import Path

import click

EXIT_DROP_TOO_LARGE = 3


@click.command()
@click.argument("models", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="Labelled set: TFRecord (+ label_map.pbtxt), COCO JSON or Pascal VOC.")
@click.option("--max-map-drop", type=click.FloatRange(min=0.0), default=None, metavar="POINTS",
              help="Exit with code 3 when any model's mAP@[.5:.95] is more than POINTS "
                   "(1 point = 0.01 mAP) below the float baseline.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full report (per-class AP, drops) as JSON here.")
@click.option("--force", is_flag=True, help="Overwrite --json if it exists.")
def evaluate(models: tuple[Path, ...], data_path: Path, max_map_drop: float | None,
             json_out: Path | None, force: bool) -> None:
    """Run each MODEL .tflite on a labelled set; print COCO mAP side by side.

    The first float model is the baseline; each other model's drop is shown
    in points. Reports hold metrics only, never image content or field text.
    """
    if json_out is not None:
        if not json_out.parent.is_dir():
            raise click.ClickException(f"{json_out}: folder {json_out.parent} does not exist")
        if json_out.exists() and not force:
            raise click.ClickException(f"{json_out} exists; pass --force to overwrite it")
    from ktp_tflite.convert.evaluate import evaluate_models, format_table
    from ktp_tflite.train.atomic_files import atomic_write_bytes
    from ktp_tflite.train.datasets import read_dataset

    dataset = read_dataset(data_path)
    report = evaluate_models(list(models), dataset)
    click.echo(format_table(report))
    if json_out is not None:
        atomic_write_bytes(json_out, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    if max_map_drop is not None and report.max_map_drop() > max_map_drop:
        click.echo(
            f"Error: mAP@[.5:.95] drop {report.max_map_drop():.2f} points exceeds "
            f"--max-map-drop {max_map_drop}", err=True,
        )
        raise SystemExit(EXIT_DROP_TOO_LARGE)


COMMANDS = [evaluate]
