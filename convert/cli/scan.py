"""``ktpconvert scan``: run a detector .tflite on one photo, print the fields as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Detector .tflite with the four SSD post-process outputs.",
)
@click.option(
    "--threshold",
    default=0.15,  # convert.fields.DEFAULT_THRESHOLD (not imported: --help stays light); test_scan checks
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Minimum score of a field box.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the JSON document to this file (never IMAGE or --model; an existing file only with --force).",
)
@click.option("--force", is_flag=True, help="Replace --json if it exists.")
@click.option(
    "--reader",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Field reader .tflite (`ktpconvert export-reader`): read each found field's value from "
    "the photo through its box and check the NIK against the Jenis Kelamin.",
)
@click.option(
    "--zoom",
    is_flag=True,
    help="Two-pass zoom: when the fields found put the card under 45 % of the photo width, "
    "run the model again on the card's crop and map its boxes back (stderr says so).",
)
def scan(
    image: Path, model: Path, threshold: float, json_path: Path | None, force: bool, reader: Path | None, zoom: bool
) -> None:
    """Detect the five KTP fields on IMAGE and print JSON.

    The photo is turned upright from its EXIF orientation, stretched to the
    model input and normalised as the model's metadata says (uint8 models get
    raw pixels; float models (x - mean) / std, 127.5/127.5 without metadata).
    For each field the best box over --threshold is printed: "box" in pixels
    of the upright photo (left, top, right, bottom), "box_sensor" in stored
    pixels, and the score.

    Photos over 50 megapixels are refused from their header, before
    decoding (raise the limit with the environment variable KTP_MAX_PIXELS).

    With --reader, "text" holds each found field's value as read from the
    photo's pixels through its box (crops of the full photo, not of the model
    input), its confidence, the printed text height in pixels, and
    "nik_check": what the NIK encodes (province, birth date, gender) and
    whether its gender agrees with the Jenis Kelamin read. Without it "text" is
    null. The values are the card's personal data: they go to stdout and
    --json only.
    """
    from ktp_tflite.convert.scan import scan_image
    from ktp_tflite.train.atomic_files import check_output, write_output
    from ktp_tflite.train.images import check_image

    inputs = (image, model, reader)
    if json_path is not None:
        check_output(json_path, inputs=inputs, force=force)
    # The one image loader vets the photo first: the pixel limit from the header,
    # then a full decode, so a bomb, a truncated or a corrupt file is an
    # `Error:` naming it whatever the detector's own loader would raise.
    check_image(image)
    field_reader = None
    if reader is not None:  # before the detector: a wrong file fails first
        from ktp_tflite.convert.reader import load_reader, read_card

        field_reader = load_reader(reader)
    if zoom:
        from ktp_tflite.convert.zoom import scan_image_zoomed

        result, spec, crop, upright = scan_image_zoomed(model, image, threshold=threshold)
        click.echo(
            f"zoom: second pass on crop {list(crop)} (upright pixels)"
            if crop
            else "zoom: no second pass (card large enough, or no field found)",
            err=True,
        )
    else:
        result, spec, upright = scan_image(model, image, threshold=threshold)
    text_document = None
    if field_reader is not None:
        text_document = read_card(field_reader, upright, {f.label: f.box for f in result.fields})
    document = {
        "model": {
            "file": model.name,
            "input": [spec.height, spec.width, 3],
            "input_dtype": spec.input_dtype,
            "normalization": {
                "mean": spec.norm_mean,
                "std": spec.norm_std,
                "source": spec.normalization_source,
            },
            "output_binding": spec.binding,
            "labels": list(spec.labels),
        },
        "threshold": threshold,
        **result.to_dict(),
        "text": text_document,
    }
    text = json.dumps(document, indent=2) + "\n"
    if json_path is not None:
        write_output(json_path, text.encode(), inputs=inputs, force=force)
    click.echo(text, nl=False)


COMMANDS = [scan]
