"""``ktpconvert data``: synthetic KTP photos, data set inspection, Roboflow download."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ktp_tflite.train.synth_writer import FORMATS, write_synthetic


def _parse_size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected WxH, e.g. 640x480") from None
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise click.BadParameter(f"{value!r}: width and height must be 64-4096")
    return width, height


def stderr_progressbar(length: int, label: str):
    """A progress bar on stderr for the library's ``progress`` callbacks (``update(n)``)."""
    return click.progressbar(length=length, label=label, file=sys.stderr)


@click.group()
def data() -> None:
    """Synthetic KTP data, data set inspection and download."""


@data.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (new, or an earlier data synth output with --force).",
)
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of photos.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Data set seed: photo i of seed s is always the same."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="both",
    show_default=True,
    help="Roboflow-style TFRecord + label map, COCO JSON + images, or both.",
)
@click.option("--size", default="640x480", show_default=True, help="Photo size WxH.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Rendering processes (the output does not depend on it).",
)
@click.option(
    "--preset",
    type=click.Choice(["train", "stress"]),
    default="train",
    show_default=True,
    help="Recipe: train (the training distribution) or stress (held-out fonts FreeSans / FreeMono "
    "Bold and harsher ranges than train draws: a generalisation test set; never train on it).",
)
@click.option("--force", is_flag=True, help="Replace OUT (an earlier data synth output) as a whole.")
def synth(out: Path, count: int, seed: int, fmt: str, size: str, workers: int, preset: str, force: bool) -> None:
    """Render synthetic KTP photos with exact boxes around the five field values.

    Writes the data set(s), fields.jsonl (the printed field texts of each
    synthetic card) and labels.txt into OUT.
    """
    paths = write_synthetic(
        out, count, seed, _parse_size(size), fmt, workers, force, preset=preset, progress=stderr_progressbar
    )
    for path in paths:
        click.echo(str(path))


@data.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--label-map",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Label map of a TFRecord when it is not beside it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(path: Path, label_map: Path | None, as_json: bool) -> None:
    """Count images and boxes per class, box sizes, and every problem found.

    Exits with 1 when any problem is found. Prints no image content or field text.
    """
    from ktp_tflite.train.datasets import read_dataset
    from ktp_tflite.train.inspect_data import inspect_dataset

    dataset = read_dataset(path, skip_bad=True, label_map=label_map)
    report = inspect_dataset(dataset)
    click.echo(json.dumps(report.to_dict(), indent=1) if as_json else report.to_text())
    if report.problems:
        sys.exit(1)


@data.command()
@click.option(
    "--roboflow",
    "reference",
    required=True,
    metavar="WORKSPACE/PROJECT/VERSION",
    help="Roboflow data set version, e.g. ktp-2wl90/final-ktp-od-v2/1.",
)
@click.option("--format", "fmt", type=click.Choice(["tfrecord", "coco", "voc"]), default="tfrecord", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def download(reference: str, fmt: str, out: Path) -> None:
    """Download a Roboflow data set (needs the roboflow extra and ROBOFLOW_API_KEY)."""
    from ktp_tflite.train.roboflow_download import download as run

    click.echo(str(run(reference, out, fmt)))


COMMANDS = [data]
