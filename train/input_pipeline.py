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
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ktp_tflite.train import targets as target_lib
from ktp_tflite.train.anchors import anchor_corners, corners_to_center_size
from ktp_tflite.train.augment import augment_and_resize
from ktp_tflite.train.config import ModelConfig, TrainConfig
from ktp_tflite.train.preprocess import tf_resize_rgb, tf_to_model_input
from ktp_tflite.train.records import Dataset, DatasetError


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
) -> tf.data.Dataset:
    """Endless, shuffled, augmented, batched training data with targets."""
    images, from_files, boxes, classes, num_boxes = _source_tensors(dataset, model.num_classes)
    centers, corners = anchor_tensors(model)
    centers_t, corners_t = tf.constant(centers), tf.constant(corners)
    size = model.input_size
    seed = train.seed if seed is None else seed

    def prepare(image, gt_boxes, gt_classes, count):
        pixels = _decode(image, from_files)
        if augment:
            resized, gt_boxes = augment_and_resize(pixels, gt_boxes, count, size, train.augment)
        else:
            resized = tf_resize_rgb(pixels, *size)
        targets = target_lib.assign(
            gt_boxes, gt_classes, count, centers_t, corners_t, model.box_coder_scales,
            train.matched_threshold, train.unmatched_threshold,
        )
        targets.pop("matches")
        return tf_to_model_input(resized), targets

    options = tf.data.Options()
    options.deterministic = False
    data = tf.data.Dataset.from_tensor_slices((images, boxes, classes, num_boxes))
    data = data.shuffle(min(train.shuffle_buffer, len(images)), seed=seed,
                        reshuffle_each_iteration=True)
    data = data.repeat()
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(train.batch_size, drop_remainder=True)
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
