"""``tf.data`` input: decode, augment, resize, normalise, assign targets.

Source: a :class:`ktp_tflite.train.records.Dataset` (from
``ktp_tflite.train.datasets.read_dataset`` or the synthetic renderer). Images
stay encoded until the parallel map decodes them (files are read by
``tf.io.read_file`` when every example has a path, otherwise the encoded
bytes are held in memory). Every per-image step, target assignment included,
runs in the parallel map, so the training step only does the network.

Training elements: ``image`` float32 [B, H, W, 3] in [-1, 1] and the
:func:`ktp_tflite.train.targets.assign` tensors batched. Evaluation
elements: ``image`` and ``index`` (position in ``dataset.examples``),
resized exactly as at inference (no augmentation).

Sharding across workers (``tf.distribute`` input pipelines): every reader
gives an in-memory :class:`Dataset` (a TFRecord is read whole; COCO and VOC
give image paths), so the pipeline starts from ``from_tensor_slices`` and
there are no files for ``AutoShardPolicy.FILE`` to split (one TFRecord file
could not be split by file anyway), while ``DATA`` would make every worker
decode and augment every image and drop most of them. So auto-sharding is
off and the pipeline shards itself, before the expensive map: every worker
shuffles with the same seed (one global order), cuts it into slices of
``batch_size / workers`` examples, and keeps every ``workers``-th slice
starting at its own index. Global batch ``k`` is therefore exactly the
examples a single worker would put in its batch ``k``, split in order.
Element order is deterministic (``options.deterministic``) for the same
reason.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ktp_tflite.train import targets as target_lib
from ktp_tflite.train.anchors import anchor_corners, corners_to_center_size
from ktp_tflite.train.augment import augment_and_resize
from ktp_tflite.train.config import AugmentConfig, ModelConfig, TrainConfig
from ktp_tflite.train.preprocess import tf_resize_rgb, tf_to_model_input
from ktp_tflite.train.records import Dataset, DatasetError

# Every random change disabled (``ktpconvert train --no-augment``). TF's random
# contrast and saturation reject an empty range, so this value is recognised
# and the photo is only resized, which is what augmenting with it would do.
NO_AUGMENTATION = AugmentConfig(
    zoom_out_probability=0.0,
    max_zoom_out=1.0,
    crop_probability=0.0,
    min_crop_fraction=1.0,
    max_rotation_degrees=0.0,
    brightness_delta=0.0,
    contrast_range=(1.0, 1.0),
    saturation_range=(1.0, 1.0),
    hue_delta=0.0,
    blur_probability=0.0,
    max_blur_sigma=0.0,
)


def _source_tensors(dataset: Dataset, num_classes: int):
    if not dataset.examples:
        raise DatasetError(f"{dataset.source}: the data set holds no images")
    max_boxes = max(1, max(len(e.boxes) for e in dataset.examples))
    count = len(dataset.examples)
    boxes = np.zeros([count, max_boxes, 4], np.float32)
    classes = np.zeros([count, max_boxes], np.int32)
    num_boxes = np.zeros([count], np.int32)
    for i, example in enumerate(dataset.examples):
        for j, box in enumerate(example.boxes):
            if box.class_index >= num_classes:
                raise DatasetError(
                    f"{dataset.source}: {example.image_id} has class {box.label!r} "
                    f"(id {box.class_index}) but the model has {num_classes} classes"
                )
            boxes[i, j] = (box.ymin, box.xmin, box.ymax, box.xmax)
            classes[i, j] = box.class_index
        num_boxes[i] = len(example.boxes)
    images: list[str] | list[bytes]  # file paths, or the encoded images themselves
    if all(e.image_path is not None for e in dataset.examples):
        images = [str(e.image_path) for e in dataset.examples]
        from_files = True
    else:
        images = [e.encoded() for e in dataset.examples]
        from_files = False
    return images, from_files, boxes, classes, num_boxes


def _decode(image, from_files: bool):
    data = tf.io.read_file(image) if from_files else image
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def anchor_tensors(model: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Anchors as (center layout, corner layout), float32 [N, 4] each."""
    corners = anchor_corners(model)
    return corners_to_center_size(corners), corners


def train_dataset(
    dataset: Dataset,
    model: ModelConfig,
    train: TrainConfig,
    *,
    seed: int | None = None,
    augment: bool = True,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Endless, shuffled, augmented, batched training data with targets.

    Args:
      dataset: the training examples (the same, in the same order, on every worker).
      model: input size, classes and anchors.
      train: batch size (global), shuffle buffer, augmentation settings.
      seed: shuffle seed (default ``train.seed``); the same on every worker.
      augment: False (or ``train.augment == NO_AUGMENTATION``) only resizes.
      input_context: from ``Strategy.distribute_datasets_from_function``: this
        pipeline's shard (see the module docstring) and per-replica batches of
        ``batch_size / num_replicas_in_sync``. None: one pipeline, global batches.
    """
    images, from_files, boxes, classes, num_boxes = _source_tensors(dataset, model.num_classes)
    centers, corners = anchor_tensors(model)
    centers_t, corners_t = tf.constant(centers), tf.constant(corners)
    size = model.input_size
    seed = train.seed if seed is None else seed
    augment = augment and train.augment != NO_AUGMENTATION
    pipelines, pipeline_id, batch = 1, 0, train.batch_size
    if input_context is not None:
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch = input_context.get_per_replica_batch_size(train.batch_size)

    def prepare(image, gt_boxes, gt_classes, count):
        pixels = _decode(image, from_files)
        if augment:
            resized, gt_boxes = augment_and_resize(pixels, gt_boxes, count, size, train.augment, gt_classes)
        else:
            resized = tf_resize_rgb(pixels, *size)
        targets = target_lib.assign(
            gt_boxes,
            gt_classes,
            count,
            centers_t,
            corners_t,
            model.box_coder_scales,
            train.matched_threshold,
            train.unmatched_threshold,
        )
        targets.pop("matches")
        return tf_to_model_input(resized), targets

    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    data = tf.data.Dataset.from_tensor_slices((images, boxes, classes, num_boxes))
    data = data.shuffle(min(train.shuffle_buffer, len(images)), seed=seed, reshuffle_each_iteration=True)
    data = data.repeat()
    if pipelines > 1:
        slice_size = train.batch_size // pipelines  # this pipeline's part of one global batch
        data = data.batch(slice_size).shard(pipelines, pipeline_id).unbatch()
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(batch, drop_remainder=True)
    return data.prefetch(tf.data.AUTOTUNE).with_options(options)


def eval_dataset(dataset: Dataset, model: ModelConfig, batch_size: int = 8) -> tf.data.Dataset:
    """Validation images (resized as at inference) with their example index."""
    images, from_files, _, _, _ = _source_tensors(dataset, model.num_classes)
    size = model.input_size

    def prepare(image, index):
        pixels = _decode(image, from_files)
        return tf_to_model_input(tf_resize_rgb(pixels, *size)), index

    data = tf.data.Dataset.from_tensor_slices((images, np.arange(len(images), dtype=np.int32)))
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
