"""The training loop: checkpoints, exact resume, TensorBoard, evaluation.

What the run folder (``RUN_DIR``, its layout in
:mod:`ktp_tflite.train.run_folder`) receives from training:

- ``config.json``: the full resolved :class:`~ktp_tflite.train.config.RunConfig`
  (the one source of truth when resuming or exporting);
- ``checkpoints/ckpt-N``: ``tf.train.Checkpoint`` of the step counter, the
  model and the optimizer, every ``checkpoint_every`` steps and at the end
  (also on Ctrl-C with one worker); the newest is the one ``--resume`` and
  ``export`` use;
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
statistics of the final weights (mAP 0.0 -> 0.40 in a probe run:
docs/TRAINING-PROBE.md, 'Batch-norm statistics after a custom training loop').
Evaluations during training use the running statistics; the final one uses
the re-estimated statistics, which are also what the last checkpoint holds.

Several workers (``tf.distribute.MultiWorkerMirroredStrategy``, made by
:func:`make_strategy` before any other TensorFlow call): ``batch_size`` is
the global batch, split across all replicas by
:func:`ktp_tflite.train.input_pipeline.train_dataset` (each worker decodes
only its share). The loss of each replica is normalised by the positive
anchors of the global batch and the gradients are summed and clipped after
the sum, so one step of W workers with B/W images each computes the gradient
of one worker with B images; batch-norm layers normalise with the statistics
of their replica's images (not synchronised), and their moving statistics
are averaged over the replicas after every step. Only the chief writes
``RUN_DIR``; the others save their (collective) checkpoints into a temporary
folder that is removed at the end. On ``--resume`` every worker restores the
chief's newest checkpoint, so ``RUN_DIR`` must be readable by all of them.

Why one file: one training flow whose parts share the distribution rules above: the step
(:func:`make_train_step`) normalises by the global batch, :func:`train` picks who writes RUN_DIR,
resume and precise BN keep every worker's weights equal. If it grows, the cluster setup
(:func:`make_strategy`, ``_check_tf_config``, ``_task``, ``_cluster_size``) could go to cluster.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from ktp_tflite.train import box_coder
from ktp_tflite.train.atomic_files import atomic_write_bytes
from ktp_tflite.train.config import ModelConfig, RunConfig, TrainConfig
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.input_pipeline import anchor_tensors, eval_dataset, train_dataset
from ktp_tflite.train.losses import LossConfig, detection_loss
from ktp_tflite.train.model import build_model
from ktp_tflite.train.records import Dataset
from ktp_tflite.train.run_folder import RunDirError, RunFolder

STRATEGIES = ("default", "mirrored", "multiworker")
GRADIENT_CLIP_NORM = 10.0  # global norm of the gradient of the global batch


class ClusterError(KtpError, RuntimeError):
    """A multi-worker cluster that cannot be set up, or lost a worker while training."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` did."""

    first_step: int
    last_step: int
    images_per_second: float
    final_loss: float
    metrics: dict | None
    weights_sha256: str = ""  # of every model weight; equal on all workers of one run
    chief: bool = True


class WarmupCosine:
    """Linear warm-up to ``peak``, then cosine decay to 0 at ``total`` steps."""

    def __init__(self, peak: float, warmup: int, total: int):
        self.peak, self.warmup, self.total = peak, warmup, max(total, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1.0) / max(self.warmup, 1)
        progress = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
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


def _check_tf_config(text: str) -> None:
    """Raise ClusterError unless ``text`` describes a worker of a worker cluster."""
    try:
        tf_config = json.loads(text)
        cluster, task = dict(tf_config["cluster"]), tf_config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, TypeError, KeyError) as error:
        raise ClusterError(
            f"TF_CONFIG is not a cluster description ({type(error).__name__}: {error}); it must be "
            'JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}'
        ) from error
    if task_type not in ("chief", "worker") or set(cluster) - {"chief", "worker"}:
        raise ClusterError(
            f"TF_CONFIG: MultiWorkerMirroredStrategy runs only 'chief' and 'worker' tasks; "
            f"this one has cluster {sorted(cluster)} and task type {task_type!r}"
        )
    members = cluster.get(task_type, [])
    if not 0 <= index < len(members):
        raise ClusterError(f"TF_CONFIG: task index {index} but the cluster lists {len(members)} {task_type}(s)")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """One device (default), MirroredStrategy or MultiWorkerMirroredStrategy.

    Call it before any other TensorFlow call of the process (reading a
    TFRecord, building a model, listing devices): MultiWorkerMirroredStrategy
    configures the collective ops, which TensorFlow accepts only before its
    runtime starts. The multiworker cluster comes from ``TF_CONFIG``.

    Raises:
      KtpError: unknown name.
      ClusterError: multiworker without a valid TF_CONFIG, or its server cannot start.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ClusterError(
                "--strategy multiworker needs the TF_CONFIG environment variable describing "
                "the cluster (see tf.distribute.MultiWorkerMirroredStrategy)"
            )
        _check_tf_config(os.environ["TF_CONFIG"])
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (tf.errors.UnknownError, tf.errors.UnavailableError, tf.errors.InvalidArgumentError) as error:
            raise ClusterError(
                f"cannot start this worker's server from TF_CONFIG (is its port free and the "
                f"address one of this machine's?): {error.message.splitlines()[0]}"
            ) from error
    raise KtpError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def _task(strategy: tf.distribute.Strategy) -> tuple[str, int]:
    """(task type, index) of this process in its cluster; ("worker", 0) without one."""
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return "worker", 0
    return resolver.task_type, int(resolver.task_id)


def _cluster_size(strategy: tf.distribute.Strategy) -> int:
    """Number of worker processes (tasks) the strategy trains with."""
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return 1
    return sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values())


def weights_sha256(model) -> str:
    """SHA-256 of every weight of ``model`` (order, shapes and values)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = weight.numpy()
        digest.update(weight.path.encode() + str(value.shape).encode() + value.tobytes())
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _append_line(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def latest_checkpoint(run_dir: str | Path) -> str | None:
    """Prefix of the newest checkpoint of a run folder, or None (:meth:`RunFolder.latest_checkpoint`)."""
    return RunFolder(run_dir).latest_checkpoint()


def restore_model(run_dir: str | Path):
    """(config, Keras model with the newest checkpoint's weights) of a run folder.

    Raises:
      RunDirError: no config or no checkpoint.
    """
    folder = RunFolder(run_dir)
    config = folder.read_config()
    prefix = folder.require_checkpoint()
    model = build_model(config.model)
    checkpoint = tf.train.Checkpoint(model=model)
    checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
    return config, model


def decode_detections(
    model,
    config: RunConfig,
    images: tf.Tensor,
    max_detections: int = 10,
    iou_threshold: float = 0.6,
    score_threshold: float = 1e-8,
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
        keep = tf.image.non_max_suppression(boxes[i], best[i], max_detections, iou_threshold, score_threshold)
        results.append(
            (
                tf.gather(boxes[i], keep).numpy(),
                tf.gather(labels[i], keep).numpy(),
                tf.gather(best[i], keep).numpy(),
            )
        )
    return results


def evaluate(model, config: RunConfig, dataset: Dataset, batch_size: int = 8):
    """COCO metrics of ``model`` on a labelled data set (fast NMS, 10 detections)."""
    from ktp_tflite.train.coco_eval import Detections, coco_metrics

    detections = []
    for images, indices in eval_dataset(dataset, config.model, batch_size):
        for index, (boxes, labels, scores) in zip(indices.numpy(), decode_detections(model, config, images)):
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
    """(Keras optimizer, its learning-rate schedule) for a training config.

    The optimizer does not clip: Keras would clip each replica's gradient
    before summing them; :func:`make_train_step` clips the summed gradient.
    """
    import keras

    tc = train_config
    schedule = _keras_schedule(WarmupCosine(tc.learning_rate, tc.warmup_steps, tc.steps))
    if tc.optimizer == "adam":
        return keras.optimizers.Adam(schedule), schedule
    return keras.optimizers.SGD(schedule, momentum=0.9), schedule


def make_train_step(
    model,
    optimizer,
    train_config: TrainConfig,
    strategy: tf.distribute.Strategy,
    *,
    freeze_batch_norm: bool = False,
):
    """A ``tf.function`` running one optimisation step on a (distributed) batch.

    Each replica's loss is divided by the positive anchors of the whole global
    batch (not of its own images), so the sum over replicas is the loss of the
    global batch; the L2 term is added once in total. The gradients are summed
    over the replicas, clipped to :data:`GRADIENT_CLIP_NORM` and applied. With
    more than one replica the batch-norm moving statistics are then set to
    their mean over the replicas, so that every replica holds the same weights.

    Args:
      model: the detector (built in ``strategy.scope()``).
      optimizer: from :func:`make_optimizer`, built on the trainable variables.
      train_config: loss settings and weight decay.
      strategy: the strategy the batches are distributed with.
      freeze_batch_norm: batch norm normalises with its moving statistics (as
        at inference) and leaves them unchanged; its scale and offset train.

    Returns a function of a ``(images, targets)`` batch giving the loss terms
    of the global batch and its number of positive anchors.
    """
    import keras

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
    kernels = [w for w in model.trainable_weights if w.path.endswith("kernel") and "depthwise" not in w.path]
    variables = model.trainable_variables
    moving_statistics = [
        w
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in (layer.moving_mean, layer.moving_variance)
    ]
    sum_, mean = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN

    def step_fn(images, targets):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            box_codes, logits = model(images, training=not freeze_batch_norm)
            losses = detection_loss(box_codes, logits, targets, loss_config)
            # detection_loss divides by this replica's positives (at least 1);
            # divide by those of the global batch instead.
            positives = tf.stop_gradient(losses["num_positives"])
            global_positives = context.all_reduce(sum_, positives)
            share = tf.maximum(positives, 1.0) / tf.maximum(global_positives, 1.0)
            regular = tc.weight_decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
            loss = losses["total"] * share + regular / replicas
        grads = tape.gradient(loss, variables)
        if replicas > 1:
            grads = context.all_reduce(sum_, grads)
        grads, _ = tf.clip_by_global_norm(grads, GRADIENT_CLIP_NORM)
        if replicas > 1:
            # The optimizer sums what each replica passes (Keras would clip before that
            # sum): each passes its share of the clipped sum (exact for 2, 4, 8 replicas).
            grads = [g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables))
        if replicas > 1 and not freeze_batch_norm:
            averaged = context.all_reduce(mean, [tf.identity(w) for w in moving_statistics])
            for w, value in zip(moving_statistics, averaged):
                w.assign(value)
        return {
            "loss": loss,
            "classification": losses["classification"] * share,
            "localization": losses["localization"] * share,
            "box_range": losses["box_range"] * share,
            "positives": positives,
        }

    @tf.function
    def distributed_step(batch):
        images, targets = batch
        per_replica = strategy.run(step_fn, args=(images, targets))
        return {k: strategy.reduce(sum_, v, axis=None) for k, v in per_replica.items()}

    return distributed_step


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare_run_dir(
    folder: RunFolder, config: RunConfig, resume: bool, write: bool = True
) -> tuple[RunConfig, ModelConfig | None]:
    """(config to train, the stored model config when the class count changes).

    ``write=False`` (a worker that is not the chief) checks and reads only.
    """
    has_checkpoint = folder.latest_checkpoint() is not None
    if resume:
        if not folder.config.is_file():
            where = (
                ""
                if write
                else (
                    " (every worker must be able to read the chief's run "
                    "folder: use the same path on a shared file system)"
                )
            )
            raise RunDirError(f"{folder.path}: nothing to resume (no {folder.config.name}){where}")
        stored = folder.read_config()
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
            f"{folder.path}: already holds checkpoints; pass --resume to continue, or choose a new --out folder"
        )
    if write:
        folder.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(folder.config, config.to_json())
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
    tf.train.Checkpoint(step=step, model=source).restore(prefix).expect_partial().assert_existing_objects_matched()
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


# What a collective op raises on a worker whose peer died or was restarted (after
# the strategy's health check, or when the peer's connection drops).
_LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
)


def train(
    config: RunConfig,
    train_data: Dataset,
    run_dir: str | Path,
    *,
    val_data: Dataset | None = None,
    resume: bool = False,
    backbone_weights: str = "none",
    strategy: tf.distribute.Strategy | None = None,
    freeze_batch_norm: bool = False,
    log: Callable[[str], None] = _stderr,
) -> TrainResult:
    """Train (or resume training) into ``run_dir`` up to ``config.train.steps``.

    Args:
      config: the run; on ``resume`` the stored one wins except for the step budget.
      train_data: training examples (the same on every worker).
      run_dir: the run folder (written by the chief only).
      val_data: evaluated (COCO mAP) by the chief.
      resume: continue from the newest checkpoint in ``run_dir``.
      backbone_weights: "none", "imagenet" or a Keras weights file (fresh runs).
      strategy: from :func:`make_strategy` (default: the default strategy).
      freeze_batch_norm: see :func:`make_train_step`; not stored in ``config.json``.
        Also skips the batch-norm re-estimation at the end.
      log: progress lines.

    Raises:
      RunDirError: checkpoints exist without ``resume``, or nothing to resume.
      ClusterError: another worker was lost while training.
      KtpError: bad data, weights or batch size.
    """
    folder = RunFolder(run_dir)
    strategy = strategy or tf.distribute.get_strategy()
    task_type, task_index = _task(strategy)
    chief = strategy.extended.should_checkpoint
    config, stored_model = _prepare_run_dir(folder, config, resume, write=chief)
    if resume:
        log(
            f"resuming with {folder.config} (preset {config.preset}); "
            "of the command-line options only the step budget applies"
        )
    tc = config.train
    replicas = strategy.num_replicas_in_sync
    if tc.batch_size % replicas:
        raise KtpError(f"batch size {tc.batch_size} is not divisible by {replicas} replicas")
    # Saving a checkpoint may be collective, so every worker saves; only the chief
    # into the run folder (the multi-worker guide's pattern).
    scratch = None
    if not chief:
        scratch = Path(tempfile.mkdtemp(prefix=f"ktp-{task_type}{task_index}-checkpoints-"))
        log(
            f"{task_type} {task_index}: the chief writes {folder.path}; this worker's checkpoints "
            f"go to {scratch}, removed at the end"
        )
    checkpoint_dir = folder.checkpoints if scratch is None else scratch
    try:
        return _train(
            config,
            train_data,
            folder,
            val_data=val_data,
            resume=resume,
            stored_model=stored_model,
            backbone_weights=backbone_weights,
            strategy=strategy,
            freeze_batch_norm=freeze_batch_norm,
            checkpoint_dir=checkpoint_dir,
            log=log,
        )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train(
    config: RunConfig,
    train_data: Dataset,
    folder: RunFolder,
    *,
    val_data: Dataset | None,
    resume: bool,
    stored_model: ModelConfig | None,
    backbone_weights: str,
    strategy: tf.distribute.Strategy,
    freeze_batch_norm: bool,
    checkpoint_dir: Path,
    log: Callable[[str], None],
) -> TrainResult:
    """The body of :func:`train`; this worker saves its checkpoints into ``checkpoint_dir``."""
    tc = config.train
    chief = strategy.extended.should_checkpoint
    replicas = strategy.num_replicas_in_sync
    multi_worker = _cluster_size(strategy) > 1
    with strategy.scope():
        model = build_seeded_model(config.model, tc.seed)
        optimizer, schedule = make_optimizer(tc)
        # Create the slot variables now so that a restore fills them (no deferred restore).
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(step=step, model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(
        checkpoint, str(checkpoint_dir), max_to_keep=tc.keep_checkpoints if chief else 1
    )
    # Every worker restores the chief's newest checkpoint.
    restored = folder.latest_checkpoint() if resume else None
    if restored and stored_model is not None:
        fresh = restore_with_new_class_heads(model, stored_model, restored, step)
        manager.save(checkpoint_number=int(step.numpy()))
        if chief:
            _atomic_write_text(folder.config, config.to_json())
        log(
            f"resumed from {restored} at step {int(step.numpy())} with "
            f"{config.model.num_classes} classes instead of {stored_model.num_classes}: "
            f"re-initialised {', '.join(fresh)}; fresh optimizer"
        )
    elif restored:
        checkpoint.restore(restored).assert_existing_objects_matched()
        log(f"resumed from {restored} at step {int(step.numpy())}")
    elif backbone_weights != "none":
        from ktp_tflite.train.backbone_weights import load_backbone_weights

        copied = load_backbone_weights(model, config.model, backbone_weights)
        log(f"backbone: {copied} layers initialised from {backbone_weights}")

    first_step = int(step.numpy())
    distributed_step = make_train_step(model, optimizer, tc, strategy, freeze_batch_norm=freeze_batch_norm)

    # Global batches of tc.batch_size, each input pipeline (worker) reading its share.
    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        return train_dataset(train_data, config.model, tc, seed=tc.seed + first_step, input_context=input_context)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    if chief:
        writer = tf.summary.create_file_writer(str(folder.tensorboard("train")))
        val_writer = tf.summary.create_file_writer(str(folder.tensorboard("val")))
    else:
        writer = val_writer = tf.summary.create_noop_writer()
    metrics = None
    final_loss = float("nan")
    window_start, window_images = time.perf_counter(), 0
    total_images, total_time = 0, 0.0
    current = first_step
    log(
        f"training {config.preset}: steps {first_step}->{tc.steps}, batch {tc.batch_size}, "
        f"{len(train_data)} training images, {replicas} replica(s)"
        + (", batch norm frozen" if freeze_batch_norm else "")
    )

    def run_eval(at_step: int, data: Dataset):
        result = evaluate(model, config, data, tc.batch_size)
        record = {"step": at_step, **result.to_dict()}
        _atomic_write_text(folder.metrics, json.dumps(record, indent=2) + "\n")
        _append_line(folder.eval_history, record)
        with val_writer.as_default(step=at_step):
            for key in ("map", "map50", "map75"):
                tf.summary.scalar(key, record[key])
        log(f"eval step {at_step}: mAP {result.map:.3f}  mAP@.5 {result.map50:.3f}  mAP@.75 {result.map75:.3f}")
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
                log(
                    f"step {current}/{tc.steps}  loss {values['loss']:.4f} ({terms})  "
                    f"lr {lr:.2e}  {rate:.1f} img/s  eta {remaining / 60:.0f} min"
                )
                record = {"step": current, **values, "lr": lr, "images_per_second": rate}
                if chief:
                    _append_line(folder.history, record)
                with writer.as_default(step=current):
                    for key, value in record.items():
                        if key != "step":
                            tf.summary.scalar(key, value)
                window_start, window_images = time.perf_counter(), 0
                if not math.isfinite(final_loss):
                    raise KtpError(
                        f"loss became {final_loss} at step {current}; lower the learning rate (--learning-rate)"
                    )
            if current % tc.checkpoint_every == 0:
                manager.save(checkpoint_number=current)
            if (
                chief and val_data is not None and tc.eval_every and current % tc.eval_every == 0 and current < tc.steps
            ):  # the last step is evaluated after precise BN
                metrics = run_eval(current, val_data)
    except KeyboardInterrupt:
        if multi_worker:
            # A save may wait for the other workers, which may be gone.
            log(
                f"interrupted at step {current}; restart every worker with --resume to continue "
                f"from the chief's last checkpoint ({folder.latest_checkpoint()})"
            )
        else:
            manager.save(checkpoint_number=current)
            log(f"interrupted at step {current}; checkpoint saved, continue with --resume")
        raise
    except _LOST_WORKER_ERRORS as error:
        if not multi_worker:
            raise
        own = _task(strategy)
        lost = sorted(
            {
                f"{kind} {index}"
                for kind, index in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", error.message or "")
                if (kind, int(index)) != own
            }
        )
        raise ClusterError(
            f"training stopped at step {current}: the cluster lost "
            f"{' and '.join(lost) if lost else 'a worker'} ({type(error).__name__}); restart "
            f"every worker with --resume to continue from the chief's last checkpoint "
            f"({folder.latest_checkpoint()})"
        ) from error

    # Stop the input pipeline (it keeps prefetching in the background) before the
    # CPU-heavy batch-norm pass and evaluation.
    del iterator
    if current > first_step or not restored:
        if tc.bn_reestimate_images > 0 and not freeze_batch_norm:
            # Every worker, on the same images: the weights stay equal everywhere.
            used = reestimate_batch_norm(model, config, train_data, tc.bn_reestimate_images)
            log(f"batch-norm statistics re-estimated on {used} training images")
        manager.save(checkpoint_number=current)
        if chief and val_data is not None:
            metrics = run_eval(current, val_data)
    writer.flush()
    val_writer.flush()
    return TrainResult(
        first_step=first_step,
        last_step=current,
        images_per_second=total_images / total_time if total_time else 0.0,
        final_loss=final_loss,
        metrics=metrics,
        weights_sha256=weights_sha256(model),
        chief=chief,
    )
