"""The training loop: checkpoints, exact resume, TensorBoard, evaluation.

Run folder (``RUN_DIR``), read by ``ktpconvert export``, ``quantize`` and
later ``import-tf1``:

- ``config.json``: the full resolved :class:`~ktp_tflite.train.config.RunConfig`
  (the one source of truth when resuming or exporting);
- ``checkpoints/ckpt-N``: ``tf.train.Checkpoint`` of the step counter, the
  model and the optimizer, every ``checkpoint_every`` steps and at the end
  (also on Ctrl-C); the newest is the one ``--resume`` and ``export`` use;
- ``tensorboard/train``, ``tensorboard/val``: scalars (loss terms, learning
  rate, images/s; COCO metrics);
- ``history.jsonl``: one JSON line per progress line (the training curve);
- ``metrics.json``: the latest validation metrics (COCO mAP@[.5:.95], @.5,
  @.75, per-class AP) with the step they belong to; ``eval_history.jsonl``
  keeps every evaluation.

Resume restores model, optimizer (with its step count, so the learning-rate
schedule continues) and the step counter; the data order is reshuffled with
the step as seed (the tf.data iterator is not checkpointed: its shuffle
buffer would put hundreds of images into every checkpoint).

At the end, batch-norm moving statistics are re-estimated on clean training
images (precise BN): a short or from-scratch run leaves them far from the
statistics of the final weights (TRAINING-PROBE.md measured mAP 0.0 -> 0.40).
Evaluations during training use the running statistics; the final one uses
the re-estimated statistics, which are also what the last checkpoint holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from ktp_tflite.train import box_coder
from ktp_tflite.train.config import ModelConfig, RunConfig, TrainConfig, run_config_from_json
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.input_pipeline import anchor_tensors, eval_dataset, train_dataset
from ktp_tflite.train.losses import LossConfig, detection_loss
from ktp_tflite.train.model import build_model
from ktp_tflite.train.records import Dataset

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.jsonl"
EVAL_HISTORY_FILE = "eval_history.jsonl"
STRATEGIES = ("default", "mirrored", "multiworker")


class RunDirError(KtpError, ValueError):
    """A run folder that is missing, incomplete, or would be overwritten."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    first_step: int
    last_step: int
    images_per_second: float
    final_loss: float
    metrics: dict | None


class WarmupCosine:
    """Linear warm-up to ``peak``, then cosine decay to 0 at ``total`` steps."""

    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = peak, warmup, max(total, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1.0) / max(self.warmup, 1)
        progress = tf.clip_by_value(
            (step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0
        )
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup, warm, cosine)


def _keras_schedule(schedule: WarmupCosine):
    import keras

    class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return schedule(step)

        def get_config(self):
            return {"peak": schedule.peak, "warmup": schedule.warmup, "total": schedule.total}

    return _Schedule()


def make_strategy(name: str) -> tf.distribute.Strategy:
    """One device (default), MirroredStrategy or MultiWorkerMirroredStrategy.

    Raises:
      KtpError: unknown name, or multiworker without TF_CONFIG.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise KtpError(
                "--strategy multiworker needs the TF_CONFIG environment variable describing "
                "the cluster (see tf.distribute.MultiWorkerMirroredStrategy)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise KtpError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _append_line(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The ``config.json`` of a run folder.

    Raises:
      RunDirError: the folder or its config is missing.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no {CONFIG_FILE}; is this a folder `ktpconvert train` wrote?")
    return run_config_from_json(path.read_text(), str(path))


def latest_checkpoint(run_dir: str | Path) -> str | None:
    """Prefix of the newest checkpoint of a run folder, or None."""
    return tf.train.latest_checkpoint(str(Path(run_dir) / CHECKPOINT_DIR))


def restore_model(run_dir: str | Path):
    """(config, Keras model with the newest checkpoint's weights) of a run folder.

    Raises:
      RunDirError: no config or no checkpoint.
    """
    config = read_run_config(run_dir)
    prefix = latest_checkpoint(run_dir)
    if prefix is None:
        raise RunDirError(f"{run_dir}: no checkpoint in {CHECKPOINT_DIR}/; train first")
    model = build_model(config.model)
    checkpoint = tf.train.Checkpoint(model=model)
    checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
    return config, model


def decode_detections(
    model, config: RunConfig, images: tf.Tensor, max_detections: int = 10,
    iou_threshold: float = 0.6, score_threshold: float = 1e-8,
):
    """Boxes, classes and scores per image, with the exported model's fast NMS.

    As ``TFLite_Detection_PostProcess`` with ``use_regular_nms=false``: each
    anchor keeps its best class, then one class-agnostic NMS.
    """
    centers, _ = anchor_tensors(config.model)
    box_codes, logits = model(images, training=False)
    boxes = box_coder.decode(box_codes, tf.constant(centers), config.model.box_coder_scales)
    scores = tf.sigmoid(logits)[..., 1:]
    best = tf.reduce_max(scores, axis=-1)
    labels = tf.argmax(scores, axis=-1, output_type=tf.int32)
    results = []
    for i in range(int(images.shape[0])):
        keep = tf.image.non_max_suppression(
            boxes[i], best[i], max_detections, iou_threshold, score_threshold
        )
        results.append((
            tf.gather(boxes[i], keep).numpy(),
            tf.gather(labels[i], keep).numpy(),
            tf.gather(best[i], keep).numpy(),
        ))
    return results


def evaluate(model, config: RunConfig, dataset: Dataset, batch_size: int = 8):
    """COCO metrics of ``model`` on a labelled data set (fast NMS, 10 detections)."""
    from ktp_tflite.train.coco_eval import Detections, coco_metrics

    detections = []
    for images, indices in eval_dataset(dataset, config.model, batch_size):
        for index, (boxes, labels, scores) in zip(
            indices.numpy(), decode_detections(model, config, images)
        ):
            example = dataset.examples[int(index)]
            detections.append(Detections(example.image_id, boxes, labels, scores))
    return coco_metrics(dataset, detections)


def reestimate_batch_norm(model, config: RunConfig, dataset: Dataset, num_images: int) -> int:
    """Set BN moving statistics to the population statistics of clean training images.

    Each batch runs in training mode with momentum 0, so every BN layer's
    moving mean and variance become that batch's statistics; they are pooled
    per layer as mean = E[batch mean], variance = E[batch variance] +
    Var[batch means] (weighted by batch size), i.e. the statistics of all
    images at once, given the batch-normalised inputs of earlier layers.

    Returns the number of images used.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or num_images <= 0:
        return 0
    subset = dataclasses.replace(dataset, examples=dataset.examples[:num_images])
    saved = [layer.momentum for layer in layers]
    sizes: list[int] = []
    means: list[list] = [[] for _ in layers]
    variances: list[list] = [[] for _ in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for images, _ in eval_dataset(subset, config.model, config.train.batch_size):
            model(images, training=True)
            sizes.append(int(images.shape[0]))
            for i, layer in enumerate(layers):
                means[i].append(layer.moving_mean.numpy())
                variances[i].append(layer.moving_variance.numpy())
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    weights = tf.constant(sizes, tf.float64) / sum(sizes)
    for i, layer in enumerate(layers):
        batch_means = tf.constant(means[i], tf.float64)
        mean = tf.tensordot(weights, batch_means, 1)
        spread = tf.tensordot(weights, tf.square(batch_means - mean), 1)
        variance = tf.tensordot(weights, tf.constant(variances[i], tf.float64), 1) + spread
        layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
        layer.moving_variance.assign(tf.cast(variance, layer.moving_variance.dtype))
    return sum(sizes)


def make_optimizer(train_config: TrainConfig):
    """(Keras optimizer, its learning-rate schedule) for a training config."""
    import keras

    tc = train_config
    schedule = _keras_schedule(WarmupCosine(tc.learning_rate, tc.warmup_steps, tc.steps))
    if tc.optimizer == "adam":
        return keras.optimizers.Adam(schedule, global_clipnorm=10.0), schedule
    return keras.optimizers.SGD(schedule, momentum=0.9, global_clipnorm=10.0), schedule


def make_train_step(model, optimizer, train_config: TrainConfig, strategy: tf.distribute.Strategy):
    """A ``tf.function`` running one optimisation step on a (distributed) batch.

    Returns a function of ``(images, targets)`` giving the mean loss terms.
    """
    tc = train_config
    replicas = strategy.num_replicas_in_sync
    loss_config = LossConfig(
        classification_loss=tc.classification_loss,
        focal_alpha=tc.focal_alpha,
        focal_gamma=tc.focal_gamma,
        localization_weight=tc.localization_weight,
        box_code_limit=tc.box_code_limit,
        box_code_limit_weight=tc.box_code_limit_weight,
    )
    # L2 on convolution kernels, not on depthwise ones (slim's MobileNet default).
    kernels = [
        w for w in model.trainable_weights
        if w.path.endswith("kernel") and "depthwise" not in w.path
    ]

    def step_fn(images, targets):
        with tf.GradientTape() as tape:
            box_codes, logits = model(images, training=True)
            losses = detection_loss(box_codes, logits, targets, loss_config)
            regular = tc.weight_decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
            total = losses["total"] + regular
            scaled = total / replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return {"loss": total, "classification": losses["classification"],
                "localization": losses["localization"], "box_range": losses["box_range"],
                "positives": losses["num_positives"]}

    @tf.function
    def distributed_step(batch):
        images, targets = batch
        per_replica = strategy.run(step_fn, args=(images, targets))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    return distributed_step


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare_run_dir(
    run_dir: Path, config: RunConfig, resume: bool
) -> tuple[RunConfig, ModelConfig | None]:
    """(config to train, the stored model config when the class count changes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / CONFIG_FILE
    has_checkpoint = latest_checkpoint(run_dir) is not None
    if resume:
        if not config_path.is_file():
            raise RunDirError(f"{run_dir}: nothing to resume (no {CONFIG_FILE})")
        stored = read_run_config(run_dir)
        # The stored architecture wins; only the step budget may grow, and the
        # class count (fine-tuning a run, e.g. an imported TF1 one, on a new label
        # map: the class heads are re-initialised).
        model = dataclasses.replace(stored.model, num_classes=config.model.num_classes)
        config = dataclasses.replace(
            stored, model=model, train=dataclasses.replace(stored.train, steps=config.train.steps)
        )
        if model != stored.model and has_checkpoint:
            # config.json is rewritten once a checkpoint with the new heads exists.
            return config, stored.model
    elif has_checkpoint:
        raise RunDirError(
            f"{run_dir}: already holds checkpoints; pass --resume to continue, "
            "or choose a new --out folder"
        )
    _atomic_write_text(config_path, config.to_json())
    return config, None


def restore_with_new_class_heads(model, stored: ModelConfig, prefix: str, step) -> list[str]:
    """Restore ``step`` and every weight of ``model`` whose shape is unchanged.

    ``stored`` is the architecture the checkpoint at ``prefix`` was saved with;
    it differs from ``model``'s only in the class count, so the layers left at
    their initial values are the class predictors. The optimizer is not
    restored (its slots of the class heads have the old shapes).

    Returns the names of the re-initialised layers.
    """
    source = build_model(stored)
    tf.train.Checkpoint(step=step, model=source).restore(
        prefix).expect_partial().assert_existing_objects_matched()
    fresh = []
    for layer in model.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        if [tuple(v.shape) for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
        else:
            fresh.append(layer.name)
    return fresh


def build_seeded_model(model_config: ModelConfig, seed: int) -> tf.keras.Model:
    """The model with its initial weights fixed by ``seed`` (Python, NumPy and TF seeds).

    Runs that differ only in ``seed`` differ in initial weights, data order and
    augmentation: the spread of their metrics is the run-to-run noise.
    """
    tf.keras.utils.set_random_seed(seed)
    return build_model(model_config)


def train(
    config: RunConfig,
    train_data: Dataset,
    run_dir: str | Path,
    *,
    val_data: Dataset | None = None,
    resume: bool = False,
    backbone_weights: str = "none",
    strategy_name: str = "default",
    log: Callable[[str], None] = _stderr,
) -> TrainResult:
    """Train (or resume training) into ``run_dir`` up to ``config.train.steps``.

    Raises:
      RunDirError: checkpoints exist without ``resume``, or nothing to resume.
      KtpError: bad data, weights or strategy.
    """
    run_dir = Path(run_dir)
    config, stored_model = _prepare_run_dir(run_dir, config, resume)
    if resume:
        log(f"resuming with {run_dir / CONFIG_FILE} (preset {config.preset}); "
            "of the command-line options only the step budget applies")
    tc = config.train
    strategy = make_strategy(strategy_name)
    replicas = strategy.num_replicas_in_sync
    if tc.batch_size % replicas:
        raise KtpError(f"batch size {tc.batch_size} is not divisible by {replicas} replicas")

    with strategy.scope():
        model = build_seeded_model(config.model, tc.seed)
        optimizer, schedule = make_optimizer(tc)
        # Create the slot variables now so that a restore fills them (no deferred restore).
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(
        checkpoint, str(run_dir / CHECKPOINT_DIR), max_to_keep=tc.keep_checkpoints
    )
    if resume and manager.latest_checkpoint and stored_model is not None:
        fresh = restore_with_new_class_heads(model, stored_model, manager.latest_checkpoint, step)
        manager.save(checkpoint_number=int(step.numpy()))
        _atomic_write_text(run_dir / CONFIG_FILE, config.to_json())
        log(f"resumed from {manager.latest_checkpoint} at step {int(step.numpy())} with "
            f"{config.model.num_classes} classes instead of {stored_model.num_classes}: "
            f"re-initialised {', '.join(fresh)}; fresh optimizer")
    elif resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"resumed from {manager.latest_checkpoint} at step {int(step.numpy())}")
    elif backbone_weights != "none":
        from ktp_tflite.train.backbone_weights import load_backbone_weights

        copied = load_backbone_weights(model, config.model, backbone_weights)
        log(f"backbone: {copied} layers initialised from {backbone_weights}")

    first_step = int(step.numpy())
    distributed_step = make_train_step(model, optimizer, tc, strategy)

    # The global batch; experimental_distribute_dataset splits it across replicas.
    data = train_dataset(train_data, config.model, tc, seed=tc.seed + first_step)
    iterator = iter(strategy.experimental_distribute_dataset(data))
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "train"))
    val_writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "val"))
    metrics = None
    final_loss = float("nan")
    window_start, window_images = time.perf_counter(), 0
    total_images, total_time = 0, 0.0
    current = first_step
    log(f"training {config.preset}: steps {first_step}->{tc.steps}, batch {tc.batch_size}, "
        f"{len(train_data)} training images, {replicas} replica(s)")

    def run_eval(at_step: int):
        result = evaluate(model, config, val_data, tc.batch_size)
        record = {"step": at_step, **result.to_dict()}
        _atomic_write_text(run_dir / METRICS_FILE, json.dumps(record, indent=2) + "\n")
        _append_line(run_dir / EVAL_HISTORY_FILE, record)
        with val_writer.as_default(step=at_step):
            for key in ("map", "map50", "map75"):
                tf.summary.scalar(key, record[key])
        log(f"eval step {at_step}: mAP {result.map:.3f}  mAP@.5 {result.map50:.3f}  "
            f"mAP@.75 {result.map75:.3f}")
        return record

    try:
        while current < tc.steps:
            values = distributed_step(next(iterator))
            current = int(step.assign_add(1).numpy())
            window_images += tc.batch_size
            if current % tc.log_every == 0 or current == tc.steps:
                values = {k: float(v.numpy()) for k, v in values.items()}
                elapsed = time.perf_counter() - window_start
                rate = window_images / max(elapsed, 1e-9)
                total_images += window_images
                total_time += elapsed
                final_loss = values["loss"]
                lr = float(schedule(current))
                remaining = (tc.steps - current) * tc.batch_size / max(rate, 1e-9)
                terms = f"cls {values['classification']:.4f} loc {values['localization']:.4f}"
                if tc.box_code_limit > 0:
                    terms += f" range {values['box_range']:.4f}"
                log(f"step {current}/{tc.steps}  loss {values['loss']:.4f} ({terms})  "
                    f"lr {lr:.2e}  {rate:.1f} img/s  eta {remaining / 60:.0f} min")
                record = {"step": current, **values, "lr": lr, "images_per_second": rate}
                _append_line(run_dir / HISTORY_FILE, record)
                with writer.as_default(step=current):
                    for key, value in record.items():
                        if key != "step":
                            tf.summary.scalar(key, value)
                window_start, window_images = time.perf_counter(), 0
                if not math.isfinite(final_loss):
                    raise KtpError(f"loss became {final_loss} at step {current}; "
                                   "lower the learning rate (--learning-rate)")
            if current % tc.checkpoint_every == 0:
                manager.save(checkpoint_number=current)
            if (val_data is not None and tc.eval_every and current % tc.eval_every == 0
                    and current < tc.steps):  # the last step is evaluated after precise BN
                metrics = run_eval(current)
    except KeyboardInterrupt:
        manager.save(checkpoint_number=current)
        log(f"interrupted at step {current}; checkpoint saved, continue with --resume")
        raise

    # Stop the input pipeline (it keeps prefetching in the background) before the
    # CPU-heavy batch-norm pass and evaluation.
    del iterator
    if current > first_step or not manager.latest_checkpoint:
        if tc.bn_reestimate_images > 0:
            used = reestimate_batch_norm(model, config, train_data, tc.bn_reestimate_images)
            log(f"batch-norm statistics re-estimated on {used} training images")
        manager.save(checkpoint_number=current)
        if val_data is not None:
            metrics = run_eval(current)
    writer.flush()
    val_writer.flush()
    return TrainResult(
        first_step=first_step,
        last_step=current,
        images_per_second=total_images / total_time if total_time else 0.0,
        final_loss=final_loss,
        metrics=metrics,
    )
