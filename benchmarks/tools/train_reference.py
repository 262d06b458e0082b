r"""Train the bundled reference model from scratch on synthetic KTP photos.

A long background run, not a test. It is safe to interrupt and re-run with
the same arguments: the data is rendered once into ``OUT/data`` (written as
COCO folders, reused afterwards) and training resumes from the newest
checkpoint in ``OUT/run``. Steps:

1. render ``--train-images`` photos with ``--train-seed`` and
   ``--val-images`` with ``--val-seed`` (a seed never used for training);
2. ``trainer.train`` on the ``--preset`` (default ``ktp``) from scratch
   (``--backbone-weights none``: nothing downloads here), evaluating every
   ``--eval-every`` steps;
3. export (SavedModel + float .tflite) into ``OUT/export``;
4. write ``OUT/reference.json`` (data, steps, preset, final COCO metrics,
   throughput, how to reproduce) and ``OUT/curve.png`` (loss and mAP by step).

Then copy ``OUT/export/model_float.tflite`` to ``train/reference/`` and fill
``train/reference/MODEL_CARD.md`` from ``reference.json``. Run::

    nohup python -m ktp_tflite.benchmarks.tools.train_reference --out runs/reference \
        --steps 20000 > runs/reference.log 2>&1 &

Progress goes to stderr (the log), the final summary JSON to stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

from ktp_tflite.train.run_folder import RunFolder, saved_model_variables


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def data_folder(out: Path, split: str, seed: int, count: int) -> Path:
    """``OUT/data/<split>_<seed>_<count>``: where the photos of one rendered set are kept."""
    return out / "data" / f"{split}_{seed}_{count}"


def rendered_dataset(folder: Path, count: int, seed: int, workers: int):
    """The COCO folder of ``count`` train-recipe 640x480 photos of ``seed``, rendered on first use.

    Written as ``ktpconvert data synth --format coco`` writes it.
    """
    from ktp_tflite.train.datasets import read_dataset
    from ktp_tflite.train.synth_writer import write_synthetic

    if not folder.is_dir():
        _log(f"rendering {count} photos (seed {seed}) into {folder}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic(folder, count, seed, fmt="coco", workers=workers)
    dataset = read_dataset(folder)
    if len(dataset) != count:
        raise SystemExit(f"{folder} holds {len(dataset)} photos, expected {count}; delete it")
    return dataset


def _plot(run: RunFolder, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ktp_tflite.train.atomic_files import atomic_write_bytes

    history = run.history_records()
    evals = run.eval_records()
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    loss_axis.plot([h["step"] for h in history], [h["loss"] for h in history], label="loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss")
    loss_axis.set_yscale("log")
    if evals:
        map_axis = loss_axis.twinx()
        steps = [e["step"] for e in evals]
        map_axis.plot(steps, [e["map50"] for e in evals], "g.-", label="mAP@.5")
        map_axis.plot(steps, [e["map"] for e in evals], "r.-", label="mAP@[.5:.95]")
        map_axis.set_ylim(0, 1)
        map_axis.set_ylabel("validation mAP")
        map_axis.legend(loc="lower right")
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(out, png.getvalue())


def export_model(model, model_config, out: Path) -> int:
    """Export a Keras detector to ``out`` as ``train.export.export_run`` lays it out; returns the .tflite size.

    ``out`` is replaced as a whole (an earlier export of this script).
    """
    from ktp_tflite.train.atomic_files import atomic_output_dir
    from ktp_tflite.train.export import ExportConfig, write_export

    with atomic_output_dir(out, force=True) as staging:
        return len(write_export(model, model_config, ExportConfig(), staging))


def init_from_saved_model(run_dir: Path, config, saved_model: Path) -> None:
    """Start ``run_dir`` at step 0 from the weights of one of our exported SavedModels.

    The SavedModel's variables are a checkpoint whose ``detector`` is the Keras
    model (``train.export.serving_module``); every weight of a model built from
    ``config`` must be found there. The optimizer starts fresh and the
    learning-rate schedule from step 0, so ``trainer.train(..., resume=True)``
    fine-tunes with ``config``'s schedule and augmentations.
    """
    import tensorflow as tf

    from ktp_tflite.train.atomic_files import atomic_output_dir
    from ktp_tflite.train.trainer import build_seeded_model, make_optimizer

    model = build_seeded_model(config.model, config.train.seed)
    source = tf.train.Checkpoint(detector=model)
    source.read(str(saved_model_variables(saved_model))).expect_partial().assert_existing_objects_matched()
    optimizer, _ = make_optimizer(config.train)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    with atomic_output_dir(run_dir) as staging:
        run = RunFolder(staging)
        run.config.write_text(config.to_json())
        tf.train.CheckpointManager(
            tf.train.Checkpoint(step=step, model=model, optimizer=optimizer), str(run.checkpoints), max_to_keep=1
        ).save(checkpoint_number=0)
    _log(f"{run_dir}: step 0 from the weights of {saved_model}")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="ktp", choices=("ktp", "coco-parity", "tiny"))
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--train-seed", type=int, default=1001)
    parser.add_argument("--val-seed", type=int, default=424242)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--render-workers", type=int, default=2)
    parser.add_argument(
        "--matched-threshold",
        type=float,
        default=None,
        help="IoU at or above which an anchor is positive (preset default if unset).",
    )
    parser.add_argument(
        "--unmatched-threshold",
        type=float,
        default=None,
        help="IoU below which an anchor is negative (preset default if unset).",
    )
    parser.add_argument("--learning-rate", type=float, default=None, help="Peak learning rate.")
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="SAVED_MODEL",
        help="Fine-tune: start from the weights of this exported SavedModel "
        "(e.g. train/reference/saved_model) with a fresh optimizer and schedule.",
    )
    args = parser.parse_args(argv)
    if args.train_seed == args.val_seed:
        raise SystemExit("--val-seed must differ from --train-seed")

    from ktp_tflite.train import config as config_lib
    from ktp_tflite.train.atomic_files import atomic_write_bytes
    from ktp_tflite.train.trainer import train

    args.out.mkdir(parents=True, exist_ok=True)
    train_data = rendered_dataset(
        data_folder(args.out, "train", args.train_seed, args.train_images),
        args.train_images,
        args.train_seed,
        args.render_workers,
    )
    val_data = rendered_dataset(
        data_folder(args.out, "val", args.val_seed, args.val_images),
        args.val_images,
        args.val_seed,
        args.render_workers,
    )
    run_dir = args.out / "run"
    run = RunFolder(run_dir)
    config = config_lib.with_overrides(
        config_lib.preset(args.preset),
        steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        matched_threshold=args.matched_threshold,
        unmatched_threshold=args.unmatched_threshold,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
    )
    if args.init_from is not None and not run_dir.exists():
        init_from_saved_model(run_dir, config, args.init_from)
    started = time.time()
    result = train(config, train_data, run_dir, val_data=val_data, resume=run.latest_checkpoint() is not None)
    from ktp_tflite.train.export import export_run

    tflite_bytes = export_run(run_dir, args.out / "export", force=True)["float_tflite_bytes"]
    _plot(run, args.out / "curve.png")
    metrics = run.read_metrics()
    summary = {
        "preset": args.preset,
        "config": json.loads(run.config.read_text()),
        "data": {
            "train": f"synth seed {args.train_seed}, {args.train_images} photos 640x480",
            "val": f"synth seed {args.val_seed}, {args.val_images} photos 640x480",
        },
        "steps": result.last_step,
        "images_per_second_this_session": result.images_per_second,
        "session_seconds": time.time() - started,
        "final_loss": result.final_loss,
        "metrics_float_keras": metrics,
        "float_tflite_bytes": tflite_bytes,
        "reproduce": "python -m ktp_tflite.benchmarks.tools.train_reference "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write_bytes(args.out / "reference.json", text.encode())
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
