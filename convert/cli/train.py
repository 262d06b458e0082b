"""``ktpconvert train`` and ``ktpconvert export``.

``train`` writes a run folder (layout in :mod:`ktp_tflite.train.run_folder`):
``config.json`` (full resolved config), ``checkpoints/``, ``tensorboard/``,
``history.jsonl`` (training curve), ``metrics.json`` and
``eval_history.jsonl`` (COCO metrics on ``--val``). ``--resume`` continues
the newest checkpoint up to ``--steps`` (the stored architecture is kept).
With ``--strategy multiworker`` (cluster in ``TF_CONFIG``) every worker runs
the same command; only the chief writes the run folder.

``export RUN_DIR --out DIR`` writes, atomically (a temporary folder beside
DIR, renamed when complete):

- ``DIR/saved_model/``: serving signature [1, H, W, 3] float in [-1, 1] ->
  fused ``TFLite_Detection_PostProcess`` (input for ``ktpconvert quantize``);
- ``DIR/model_float.tflite``: the float TFLite model;
- ``DIR/labels.txt`` (for the five KTP classes) and ``DIR/export.json``
  (post-process options, input size, source checkpoint).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

_PRESETS = ("ktp", "coco-parity", "tiny")  # = ktp_tflite.train.config.PRESETS (TF-free import)
_STRATEGIES = ("default", "mirrored", "multiworker")


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.command("train")
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Training data: TFRecord (+ label_map.pbtxt), COCO JSON or Pascal VOC.",
)
@click.option(
    "--val",
    "val_path",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Validation data (same formats), evaluated with COCO mAP.",
)
@click.option(
    "--out",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run folder (created; holds config, checkpoints, logs, metrics).",
)
@click.option(
    "--preset", type=click.Choice(_PRESETS), default="ktp", show_default=True, help="Model and training preset."
)
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Total training steps [default: the preset's].")
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Training budget in passes over --data (instead of --steps).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Global batch size [default: the preset's]."
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate [default: the preset's].",
)
@click.option(
    "--width",
    type=click.FloatRange(0.35, 1.0),
    default=None,
    help="MobileNetV2 width multiplier [default: the preset's].",
)
@click.option(
    "--input-size",
    type=click.IntRange(min=32),
    default=None,
    help="Square input size in pixels (preset: ktp 320, coco-parity 300); "
    "see benchmarks/results/preset_sweep.md for what it costs and gains.",
)
@click.option("--ssdlite", is_flag=True, help="Depthwise (SSDLite) heads and extra layers.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the newest checkpoint in --out (also a run from `import-tf1`: when its "
    "class count differs, the class heads are re-initialised and the rest kept).",
)
@click.option(
    "--backbone-weights",
    default="none",
    show_default=True,
    help="'imagenet' (Keras download), 'none', or a local Keras MobileNetV2 .h5/.weights.h5/.keras file.",
)
@click.option(
    "--strategy",
    type=click.Choice(_STRATEGIES),
    default="default",
    show_default=True,
    help="tf.distribute strategy: one device, Mirrored (the GPUs of this machine), "
    "MultiWorkerMirrored (run the same command on every worker, cluster in "
    "TF_CONFIG; the chief writes --out). --batch-size is the global batch.",
)
@click.option(
    "--freeze-batch-norm",
    is_flag=True,
    help="Batch norm normalises with its moving statistics and keeps them (its scale "
    "and offset still train): for fine-tuning with few images per replica. "
    "Not stored in config.json: pass it again with --resume.",
)
@click.option(
    "--no-augment", is_flag=True, help="Train on the photos as they are (only resized), stored in config.json."
)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, help="Steps between checkpoints.")
@click.option(
    "--eval-every", type=click.IntRange(min=0), default=None, help="Steps between validation runs (0: only at the end)."
)
@click.option(
    "--seed", type=int, default=None, help="Seed of the initial weights, shuffling and augmentation (preset: 0)."
)
@click.option("--skip-bad", is_flag=True, help="Leave out unreadable records instead of failing.")
def train_command(
    data_path: Path,
    val_path: Path | None,
    run_dir: Path,
    preset: str,
    steps: int | None,
    epochs: float | None,
    batch_size: int | None,
    learning_rate: float | None,
    width: float | None,
    input_size: int | None,
    ssdlite: bool,
    resume: bool,
    backbone_weights: str,
    strategy: str,
    freeze_batch_norm: bool,
    no_augment: bool,
    checkpoint_every: int | None,
    eval_every: int | None,
    seed: int | None,
    skip_bad: bool,
) -> None:
    """Train the SSD MobileNetV2 detector; prints a JSON summary on stdout."""
    if steps is not None and epochs is not None:
        raise click.UsageError("pass either --steps or --epochs, not both")
    from ktp_tflite.train import config as config_lib
    from ktp_tflite.train.datasets import read_dataset
    from ktp_tflite.train.input_pipeline import NO_AUGMENTATION
    from ktp_tflite.train.trainer import make_strategy, train

    # First TensorFlow call of the command: MultiWorkerMirroredStrategy must
    # configure the collective ops before the runtime starts (reading a TFRecord
    # starts it).
    distribution = make_strategy(strategy)
    train_data = read_dataset(data_path, skip_bad=skip_bad)
    val_data = read_dataset(val_path, skip_bad=skip_bad) if val_path is not None else None
    for dataset in (train_data, val_data):
        if dataset is not None and dataset.skipped:
            click.echo(f"{dataset.source}: skipped {len(dataset.skipped)} bad records", err=True)
    config = config_lib.preset(preset)
    batch = batch_size or config.train.batch_size
    if epochs is not None:
        steps = math.ceil(epochs * len(train_data) / batch)
    keras_layout = backbone_weights != "none"
    config = config_lib.with_overrides(
        config,
        width_multiplier=width,
        input_size=input_size,
        ssdlite=ssdlite,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        checkpoint_every=checkpoint_every,
        eval_every=eval_every,
        seed=seed,
        keras_backbone_layout=keras_layout,
        augment=NO_AUGMENTATION if no_augment else None,
    )
    if keras_layout and not resume:
        click.echo(
            "--backbone-weights: building the backbone in the Keras MobileNetV2 layout "
            "(min depth 8, Conv_1 1280 channels)",
            err=True,
        )
    try:
        result = train(
            config,
            train_data,
            run_dir,
            val_data=val_data,
            resume=resume,
            backbone_weights=backbone_weights,
            strategy=distribution,
            freeze_batch_norm=freeze_batch_norm,
        )
    except KeyboardInterrupt:
        from ktp_tflite.convert.cli import exit_interrupted

        exit_interrupted()
    _echo_json(
        {
            "run_dir": str(run_dir),
            "chief": result.chief,
            "first_step": result.first_step,
            "last_step": result.last_step,
            "images_per_second": result.images_per_second,
            "final_loss": result.final_loss,
            "metrics": result.metrics,
            "weights_sha256": result.weights_sha256,
        }
    )


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (saved_model/, model_float.tflite, labels.txt, export.json).",
)
@click.option("--max-detections", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--score-threshold",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=1e-8,
    show_default=True,
    help="NMS score threshold (written exactly into the op).",
)
@click.option(
    "--iou-threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.6,
    show_default=True,
    help="NMS IoU threshold.",
)
@click.option(
    "--regular-nms", is_flag=True, help="Per-class NMS (default: fast NMS, which the Task Library handles well)."
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export_command(
    run_dir: Path,
    out: Path,
    max_detections: int,
    score_threshold: float,
    iou_threshold: float,
    regular_nms: bool,
    force: bool,
) -> None:
    """Export a run folder's newest checkpoint to a SavedModel and a float .tflite."""
    from ktp_tflite.train.export import ExportConfig, export_run
    from ktp_tflite.train.run_folder import RunFolder

    export = ExportConfig(
        max_detections=max_detections,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        use_regular_nms=regular_nms,
    )
    click.echo(f"exporting {RunFolder(run_dir).require_checkpoint()}", err=True)
    summary = export_run(run_dir, out, export, force=force)
    _echo_json({"out": str(out), **summary})


COMMANDS = [train_command, export_command]
