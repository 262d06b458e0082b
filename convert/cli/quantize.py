"""``ktpconvert quantize``, ``metadata`` and ``inspect``: from a trained graph to a verified .tflite."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

_MODEL = click.Path(exists=True, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


def _inputs(
    model: Path, pipeline_config: Path | None, labels: Path | None, representative: str | None = None
) -> tuple[Path, ...]:
    """Every file or folder the command reads: no output may be, hold or sit inside one."""
    paths = [model, pipeline_config, labels]
    if representative and not representative.startswith("synth:"):
        paths.append(Path(representative))
    return tuple(p for p in paths if p is not None)


def _model_info(
    labels: Path | None, pipeline, name: str | None, version: str | None, author: str | None, license_: str | None
):
    import dataclasses

    from ktp_tflite.convert.metadata import ModelInfo, read_labels

    info = ModelInfo()
    changes: dict[str, Any] = {
        key: value
        for key, value in (("name", name), ("version", version), ("author", author), ("license", license_))
        if value is not None
    }
    if labels is not None:
        changes["labels"] = read_labels(labels)
    if pipeline is not None:
        changes["input_mean"] = pipeline.input_mean
        changes["input_std"] = pipeline.input_std
    return dataclasses.replace(info, **changes)


def _metadata_options(function):
    options = [
        click.option(
            "--labels",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="labels.txt, one class per line in class-id order [default: the five KTP field classes].",
        ),
        click.option("--name", default=None, help="Model name in the metadata."),
        click.option(
            "--model-version", "version", default=None, help="Model version in the metadata [default: package version]."
        ),
        click.option("--author", default=None, help="Author in the metadata."),
        click.option("--license", "license_", default=None, help="License in the metadata [Apache-2.0]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _echo_agreement(agreement) -> None:
    """The runtimes' box offsets against LiteRT on stderr, and a warning beyond 1 px on the app's path."""
    if agreement is None:
        return
    width, height = agreement.photo_size
    parts = [
        f"{runtime} {o['returned']:.1f} px as returned (mean edges t/l/b/r "
        f"{'/'.join(f'{v:+.2f}' for v in o['returned_mean_edges'])}), {o['ktp_core']:.1f} px "
        f"with ktp-core boxes ({'/'.join(f'{v:+.2f}' for v in o['ktp_core_mean_edges'])}), {o['app']:.1f} px "
        f"as the app runs it (presized frame; {'/'.join(f'{v:+.2f}' for v in o['app_mean_edges'])})"
        for runtime, o in agreement.max_offset_px.items()
    ]
    click.echo(
        f"largest box offset from LiteRT on {agreement.photos} rendered {width}x{height} photos: "
        + ("; ".join(parts) or "no app runtime installed"),
        err=True,
    )
    for warning in agreement.warnings:
        click.echo(f"Warning: {warning}", err=True)


@click.command()
@click.argument("model", type=_MODEL)
@click.option("--out", type=_OUT, required=True, help="Output .tflite file.")
@click.option(
    "--mode",
    type=click.Choice(["int8", "float16", "dynamic", "float"]),
    default="int8",
    show_default=True,
    help="int8: full integer (CPU/NNAPI); float16/float: GPU delegate; dynamic: int8 weights, float compute.",
)
@click.option(
    "--representative",
    metavar="DATA",
    help="Calibration images: a data set (TFRecord, COCO, VOC, image folder) or synth:N. "
    "Required for --mode int8. Images over 50 megapixels are refused before "
    "decoding (raise with the environment variable KTP_MAX_PIXELS).",
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Calibration images drawn from --representative.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes which images are drawn.")
@click.option(
    "--input-type",
    type=click.Choice(["uint8", "float32"]),
    default="uint8",
    show_default=True,
    help="int8 model input (the Task Library and MediaPipe refuse int8).",
)
@click.option(
    "--pipeline-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The model's OD API pipeline.config: input size, num_classes, NMS settings.",
)
@_metadata_options
@click.option("--no-metadata", is_flag=True, help="Do not attach TFLite metadata (and skip the Task Library check).")
@click.option(
    "--debug-report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write per-layer int8 error (QuantizationDebugger) into this new folder "
    "(an earlier debug report there only with --force).",
)
@click.option(
    "--keep-float",
    multiple=True,
    metavar="LAYER",
    help="Leave this layer in float (tensor name from --debug-report); repeatable.",
)
@click.option(
    "--ranges",
    type=click.Choice(["refined", "minmax"]),
    default="refined",
    show_default=True,
    help="int8 activation ranges: 'refined' clips each to its MSE-optimal range and "
    "fits the box-code and score-logit ranges to what the post-process uses; "
    "'minmax' keeps the calibrated min/max (the plain TFLite converter).",
)
@click.option("--force", is_flag=True, help="Replace --out (and --debug-report) if it exists.")
def quantize(
    model: Path,
    out: Path,
    mode: str,
    representative: str | None,
    num_samples: int,
    seed: int,
    input_type: str,
    pipeline_config: Path | None,
    labels: Path | None,
    name: str | None,
    version: str | None,
    author: str | None,
    license_: str | None,
    no_metadata: bool,
    debug_report: Path | None,
    keep_float: tuple[str, ...],
    ranges: str,
    force: bool,
) -> None:
    """Convert MODEL (tflite_graph.pb or SavedModel) to a verified TFLite detector.

    Full-integer int8 by default: every op int8 except the detection
    post-process, uint8 input, float32 outputs, calibrated on
    --representative, with activation ranges refined for the detector
    (--ranges). Metadata (labels, normalization) is attached and the
    result is checked in the interpreter and the TFLite Task Library before
    it is written. Prints a JSON summary on stdout.
    """
    if mode == "int8" and not representative:
        raise click.UsageError("--mode int8 needs --representative DATA (a data set or synth:N)")
    if no_metadata and (labels or name or version or author or license_):
        raise click.UsageError("--no-metadata conflicts with --labels/--name/--model-version/--author/--license")
    if mode != "int8" and (keep_float or debug_report or ranges != "refined"):
        raise click.UsageError("--keep-float, --debug-report and --ranges apply to --mode int8 only")

    try:  # Ctrl-C: the temporaries are removed (atomic_files); one line, not click's "Aborted!"
        from ktp_tflite.train.atomic_files import atomic_output_dir, check_output, write_output

        inputs = _inputs(model, pipeline_config, labels, representative)
        check_output(out, inputs=inputs, force=force)
        if debug_report is not None:
            from ktp_tflite.convert.quant_debug import REPORT_JSON

            check_output(debug_report, inputs=inputs + (out,), force=force, folder=True, marker=REPORT_JSON)

        from ktp_tflite.convert.quantize import QuantizeConfig
        from ktp_tflite.convert.quantize_flow import debug_layers, quantize_detector
        from ktp_tflite.train.pipeline_config import load_ssd_config

        pipeline = load_ssd_config(pipeline_config) if pipeline_config else None
        config = QuantizeConfig(
            mode=mode,
            input_type=input_type if mode == "int8" else "float32",
            keep_float=tuple(keep_float),
            ranges=ranges,
        )
        info = None if no_metadata else _model_info(labels, pipeline, name, version, author, license_)
        result = quantize_detector(
            model,
            config,
            representative=representative,
            num_samples=num_samples,
            seed=seed,
            pipeline=pipeline,
            info=info,
            labels_source=str(labels or "default labels"),
            name=str(out),
            log=lambda message: click.echo(message, err=True),
        )
        _echo_agreement(result.task_report.agreement if result.task_report else None)
        summary = {"out": str(out), **result.to_dict()}
        if debug_report is not None:
            from ktp_tflite.convert.quant_debug import write_debug_report

            layers = debug_layers(result)
            with atomic_output_dir(debug_report, inputs=inputs + (out,), force=force, marker=REPORT_JSON) as staging:
                written = write_debug_report(staging, layers)
            summary["debug_report"] = str(debug_report / written.relative_to(staging))
            for layer in layers[:5]:
                click.echo(f"  rmse/scale {layer.rmse_per_scale:7.3f}  {layer.tensor_name}", err=True)
        write_output(out, result.model, inputs=inputs, force=force)
    except KeyboardInterrupt:
        from ktp_tflite.convert.cli import exit_interrupted

        click.echo(f"Interrupted: {out} was not written", err=True)
        exit_interrupted()
    _echo_json(summary)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=_OUT, required=True, help="Output .tflite with metadata.")
@click.option(
    "--pipeline-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Take the input normalization from this pipeline.config.",
)
@_metadata_options
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def metadata(
    model: Path,
    out: Path,
    pipeline_config: Path | None,
    labels: Path | None,
    name: str | None,
    version: str | None,
    author: str | None,
    license_: str | None,
    force: bool,
) -> None:
    """Attach TFLite metadata (labels, normalization, name...) to a detector .tflite.

    Reads it back, checks it, runs the Task Library on a rendered card, then
    writes OUT. Prints the metadata as JSON.
    """
    from ktp_tflite.train.atomic_files import check_output, write_output

    inputs = _inputs(model, pipeline_config, labels)
    check_output(out, inputs=inputs, force=force)
    from ktp_tflite.convert.metadata import attach_metadata
    from ktp_tflite.convert.quantize_flow import model_summary
    from ktp_tflite.convert.verify import verify_model
    from ktp_tflite.train.pipeline_config import load_ssd_config

    pipeline = load_ssd_config(pipeline_config) if pipeline_config else None
    info = _model_info(labels, pipeline, name, version, author, license_)
    tflite = attach_metadata(model.read_bytes(), info, str(model))
    report, task_report = verify_model(tflite, source=str(out))
    _echo_agreement(task_report.agreement if task_report else None)
    write_output(out, tflite, inputs=inputs, force=force)
    _echo_json({"out": str(out), **model_summary(report, task_report)})


@click.command("inspect")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--task-library/--no-task-library",
    default=True,
    show_default=True,
    help="Also run the TFLite Task Library on a rendered card (needs metadata).",
)
def inspect_command(model: Path, task_library: bool) -> None:
    """Print the facts of a detector .tflite as JSON: input, outputs, ops by dtype, metadata.

    Exit code 1 when the model is broken for the Task Library (no post-process
    op, int8 outputs, labels that do not match num_classes...).
    """
    from ktp_tflite.convert.verify import (
        VerificationError,
        check_model,
        inspect_model,
        runtime_agreement,
        task_library_check,
    )

    data = model.read_bytes()
    report = inspect_model(data, str(model))
    result = report.to_dict()
    problems = check_model(report, expect_metadata=False)
    if report.metadata is not None and report.postprocess.get("num_classes") not in (
        None,
        len(report.metadata["labels"]),
    ):
        problems.append(f"{len(report.metadata['labels'])} labels for {report.postprocess['num_classes']} classes")
    if task_library and report.metadata is not None:
        try:
            task = task_library_check(data, report.metadata["labels"])
            result["task_library"] = task.to_dict()
            problems.extend(task.problems)
            agreement = runtime_agreement(model, report.metadata["labels"])
            result["runtimes"] = agreement.to_dict()
            _echo_agreement(agreement)
        except VerificationError as error:
            problems.append(str(error))
    elif task_library:
        result["task_library"] = "skipped: no metadata (run `ktpconvert metadata`)"
    result["problems"] = problems
    _echo_json(result)
    if problems:
        click.echo("Error: " + "; ".join(problems), err=True)
        sys.exit(1)


COMMANDS = [quantize, metadata, inspect_command]
