"""``ktpconvert evaluate``: COCO metrics of .tflite models through the app runtimes, and the cost of quantization."""

from __future__ import annotations

import json
from pathlib import Path

import click

EXIT_DROP_TOO_LARGE = 3

zoom_threshold_option = click.option(
    "--zoom-threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Card width / frame width below which --zoom takes a second look "
    "[default: 0.45, the card layout's DEFAULT_ZOOM_THRESHOLD].",
)
presize_option = click.option(
    "--presize",
    type=click.IntRange(2, 8),
    default=None,
    metavar="FACTOR",
    help="Hand the Task Library and MediaPipe each photo already resized to the model "
    "input by this toolkit's resize, each pixel repeated FACTOR x FACTOR times (what "
    "android_demo does, factor 4): their own resize then changes nothing and their "
    "whole-pixel boxes are FACTOR times finer. LiteRT is unchanged.",
)


def _zoom_settings(zoom: bool, threshold: float | None):
    """The two-pass zoom's settings for ``--zoom`` / ``--zoom-threshold``, or None without ``--zoom``."""
    if not zoom:
        return None
    from ktp_tflite.convert.zoom import ZoomSettings

    return ZoomSettings() if threshold is None else ZoomSettings(threshold=threshold)


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Labelled set: TFRecord (+ label_map.pbtxt), COCO JSON or Pascal VOC.",
)
@click.option(
    "--runtime",
    "runtime_names",
    multiple=True,
    type=click.Choice(["litert", "task-library", "mediapipe", "all"]),
    help="Runtime(s) to evaluate through (repeatable): litert (LiteRT fed by this "
    "toolkit), task-library (TFLite Task Library ObjectDetector), mediapipe "
    "(MediaPipe Tasks ObjectDetector), all. Default: every installed runtime.",
)
@click.option(
    "--max-map-drop",
    type=click.FloatRange(min=0.0),
    default=None,
    metavar="POINTS",
    help="Exit with code 3 when any model's mAP@[.5:.95] is more than POINTS "
    "(1 point = 0.01 mAP) below the float baseline in any runtime (the worst "
    "runtime decides).",
)
@click.option(
    "--zoom",
    is_flag=True,
    help="Two-pass zoom: when pass 1's fields put the card under --zoom-threshold of the "
    "frame width, run the model again on the card's crop through the same runtime "
    "and map its boxes back (as `scan --zoom`). Every metric is then of the final boxes.",
)
@zoom_threshold_option
@presize_option
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the full report (per-class AP, drops) as JSON here.",
)
@click.option("--force", is_flag=True, help="Overwrite --json if it exists.")
def evaluate(
    models: tuple[Path, ...],
    data_path: Path,
    runtime_names: tuple[str, ...],
    max_map_drop: float | None,
    zoom: bool,
    zoom_threshold: float | None,
    presize: int | None,
    json_out: Path | None,
    force: bool,
) -> None:
    """Run each MODEL .tflite on a labelled set through each runtime; print COCO mAP side by side.

    Beside mAP: cards read, the % of images whose five fields are all found
    (the box the app keeps per field: score >= 0.15, the card fit; at IoU >=
    0.5, and >= 0.7), overall and by card
    width (under 45 %, 45-65 %, 65 % or more of the frame width, estimated
    from the ground-truth field boxes).

    Boxes are taken exactly as each runtime returns them (the Task Library and
    MediaPipe: whole pixels, after their own resize). In each runtime the
    first float model is the baseline; each other model's drop is shown in
    points, and each runtime's gap to LiteRT. Reports hold metrics only,
    never image content or field text.
    """
    from ktp_tflite.train.atomic_files import check_output, write_output

    inputs = (*models, data_path)
    if json_out is not None:  # refused before any work: an input, an existing file without --force
        check_output(json_out, inputs=inputs, force=force)
    from ktp_tflite.convert.evaluate import evaluate_models, format_table
    from ktp_tflite.convert.runtimes import RUNTIMES, installed_runtimes
    from ktp_tflite.train.datasets import read_dataset

    if not runtime_names:
        runtimes = installed_runtimes()
        from ktp_tflite.convert.tflite_model import read_model

        bare = [m for m in models if not read_model(m).has_metadata]
        if bare and runtimes != ("litert",):
            click.echo(
                f"{bare[0]} has no TFLite metadata, which the Task Library and MediaPipe "
                "need: evaluating through LiteRT only (add it with `ktpconvert metadata`)",
                err=True,
            )
            runtimes = ("litert",)
    elif "all" in runtime_names:
        runtimes = RUNTIMES
    else:
        runtimes = tuple(r for r in RUNTIMES if r in runtime_names)
    dataset = read_dataset(data_path)
    click.echo(
        f"evaluating {len(models)} model(s) through {', '.join(runtimes)} on {len(dataset)} photos of {data_path}",
        err=True,
    )
    settings = _zoom_settings(zoom, zoom_threshold)
    report = evaluate_models(list(models), dataset, runtimes, zoom=settings, presize=presize)
    click.echo(format_table(report))
    if json_out is not None:
        write_output(json_out, (json.dumps(report.to_dict(), indent=2) + "\n").encode(), inputs=inputs, force=force)
    if max_map_drop is not None and report.max_map_drop() > max_map_drop:
        click.echo(
            f"Error: mAP@[.5:.95] drop {report.max_map_drop():.2f} points "
            f"({report.worst_runtime()}) exceeds --max-map-drop {max_map_drop}",
            err=True,
        )
        raise SystemExit(EXIT_DROP_TOO_LARGE)


@click.command("evaluate-scan")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Detector .tflite (with metadata for the Task Library and MediaPipe).",
)
@click.option(
    "--reader",
    "reader_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Field reader .tflite (`ktpconvert export-reader`).",
)
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Labelled set: TFRecord (+ label_map.pbtxt), COCO JSON or Pascal VOC.",
)
@click.option(
    "--texts",
    "texts_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="fields.jsonl with the printed values [default: the one in --data's folder or its parent].",
)
@click.option(
    "--runtime",
    type=click.Choice(["litert", "task-library", "mediapipe"]),
    default="task-library",
    show_default=True,
    help="Runtime of the detector (task-library: android_demo's, with its ktp-core box mapping).",
)
@click.option("--zoom", is_flag=True, help="Two-pass zoom of the detector (as `evaluate --zoom`).")
@zoom_threshold_option
@presize_option
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the full report as JSON here.",
)
@click.option("--force", is_flag=True, help="Overwrite --json if it exists.")
def evaluate_scan_command(
    model_path: Path,
    reader_path: Path,
    data_path: Path,
    texts_path: Path | None,
    runtime: str,
    zoom: bool,
    zoom_threshold: float | None,
    presize: int | None,
    json_out: Path | None,
    force: bool,
) -> None:
    """Measure whole scans: the detector through an app runtime, then the reader on its boxes.

    Prints exact match per field and cards fully read (all five values
    exact), overall and by card width, for the detector's boxes and, beside
    them, for the ground-truth boxes (reading errors alone); the JSON adds
    CER, exact match by printed text height, the NIK checks and the reader's
    host time per field. Reports hold shares and counts only, never texts.
    """
    from ktp_tflite.train.atomic_files import check_output, write_output

    inputs = (model_path, reader_path, data_path, texts_path)
    if json_out is not None:
        check_output(json_out, inputs=inputs, force=force)
    from ktp_tflite.convert.evaluate_scan import evaluate_scan, format_scan_table
    from ktp_tflite.convert.reader import load_reader
    from ktp_tflite.convert.runtimes import installed_runtimes
    from ktp_tflite.train.datasets import read_dataset
    from ktp_tflite.train.field_texts import find_field_texts, read_field_texts

    if runtime not in installed_runtimes():
        raise click.UsageError(f"runtime {runtime} is not installed here; use --runtime litert")
    reader = load_reader(reader_path)
    texts = read_field_texts(texts_path or find_field_texts(data_path))
    dataset = read_dataset(data_path)
    click.echo(f"reading the fields of {len(dataset)} photos of {data_path} through {runtime}", err=True)
    settings = _zoom_settings(zoom, zoom_threshold)
    report = evaluate_scan(model_path, reader, dataset, texts, runtime, zoom=settings, presize=presize)
    click.echo(format_scan_table(report))
    if json_out is not None:
        write_output(json_out, (json.dumps(report, indent=2) + "\n").encode(), inputs=inputs, force=force)


COMMANDS = [evaluate, evaluate_scan_command]
