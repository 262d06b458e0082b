"""``ktpconvert android-assets``: check a model's metadata contract, copy it to the app."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("android-assets")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--assets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("android_demo/app/src/main/assets"),
    show_default=True,
    help="The Android app's assets folder.",
)
@click.option(
    "--reader",
    "reader",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also deliver this int8 field reader (`ktpconvert export-reader`) as ktp_reader_int8.tflite.",
)
def android_assets(model: Path, assets_dir: Path, reader: Path | None) -> None:
    """Copy MODEL (with metadata) and labels.txt into the Android demo's assets.

    First checks the contract the app relies on: four SSD outputs named in the
    metadata, uint8 input or float32 input with normalisation metadata, and
    the five KTP labels in canonical order in the metadata's label file.
    Nothing is written if a check fails, and MODEL itself is never written
    over (the assets' earlier model and labels.txt are replaced by design).
    Prints what was written as JSON.
    """
    from ktp_tflite.convert.android_assets import LABELS_ASSET, MODEL_ASSET, READER_ASSET, install_assets
    from ktp_tflite.train.atomic_files import check_output

    if assets_dir.is_dir():
        for name in (MODEL_ASSET, LABELS_ASSET) + ((READER_ASSET,) if reader else ()):
            check_output(assets_dir / name, inputs=(model, reader), force=True)

    report = install_assets(model, assets_dir, reader)
    click.echo(json.dumps(report.to_dict(), indent=2))


COMMANDS = [android_assets]
