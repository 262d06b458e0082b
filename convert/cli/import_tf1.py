"""``ktpconvert import-tf1``: a TF1 OD API checkpoint -> a run folder.

The run folder is built in a temporary folder beside ``--out`` and renamed
whole when complete (``atomic_output_dir``), so a failed or interrupted
import leaves nothing under the final name; an existing ``--out`` is only
replaced with ``--force``, and only if it is an earlier import (it holds
``tf1_import.json``); it may not hold the checkpoint or the config. The
summary (counts of weights filled and variables ignored, the checkpoint's
global step) goes to stdout as JSON, the hints to stderr.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import click


@click.command("import-tf1")
@click.argument("ckpt_prefix")
@click.option(
    "--pipeline-config",
    "pipeline_config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The pipeline.config the checkpoint was trained with.",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder to create (for export, quantize, train --resume).",
)
@click.option(
    "--use-moving-averages/--no-use-moving-averages",
    "use_moving_averages",
    default=None,
    help="Read the ExponentialMovingAverage shadow weights, as the OD API exporter "
    "does [default: eval_config.use_moving_averages of the config].",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def import_tf1(
    ckpt_prefix: str, pipeline_config: Path, run_dir: Path, use_moving_averages: bool | None, force: bool
) -> None:
    """Import CKPT_PREFIX (e.g. model.ckpt-12345) of a TF1 ssd_mobilenet_v2 model.

    Every weight of the model described by --pipeline-config is filled from the
    checkpoint; a missing, unexpected or wrongly shaped variable is an error
    listing them, and nothing is written.
    """
    from ktp_tflite.train.atomic_files import atomic_output_dir
    from ktp_tflite.train.tf1_import import IMPORT_FILE, import_checkpoint

    prefix = Path(ckpt_prefix)
    inputs = (pipeline_config, *prefix.parent.glob(f"{glob.escape(prefix.name)}.*"))
    with atomic_output_dir(run_dir, inputs=inputs, force=force, marker=IMPORT_FILE) as staging:
        report = import_checkpoint(ckpt_prefix, pipeline_config, staging, use_moving_averages=use_moving_averages)
    click.echo(
        f"imported {report.assigned} weights into {run_dir}; next: ktpconvert export {run_dir} --out EXPORT_DIR",
        err=True,
    )
    click.echo(json.dumps({"run_dir": str(run_dir), **report.to_dict()}, indent=2))


COMMANDS = [import_tf1]
