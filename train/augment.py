"""Training augmentations that keep KTP text legible (TensorFlow graph code).

Applied to one decoded photo before it is stretched to the model input:

0. second look (``AugmentConfig.second_look_probability``): a photo whose card
   is small enough for the app's two-pass zoom is cut to the crop pass 2 runs
   on (:func:`second_look_window`, the zoom's own rule in
   :mod:`ktp_tflite.train.card_layout`), so the detector learns a card that
   fills the input with the detail of a small one; such a photo skips steps 3
   and 4;
1. colour: brightness, contrast, saturation, hue (small, as lighting varies);
2. small rotation (+-2 degrees by default) about the image centre. A box
   keeps its size and moves with its centre: the enclosing box of a rotated
   15:1 text line would be twice as tall as the line, which teaches loose
   boxes; an annotator of a slightly tilted card draws the line's own box;
3. zoom out: the photo on a larger grey canvas (cards further away);
4. random crop that always keeps every box whole (a half text line is a
   wrong label), with independent side fractions (aspect jitter);
5. the resize to the model input: the shared one
   (:func:`ktp_tflite.train.preprocess.tf_resize_rgb`, the one calibration and
   evaluation use) or, per ``AugmentConfig.resize_methods``, the way an app
   runtime resizes (:func:`resize_sampled`), with an optional sub-pixel shift
   of the photo and its boxes together;
6. Gaussian blur in model-input pixels (focus and motion softness).

No horizontal flip: mirrored text is not a KTP. Boxes are normalised
(ymin, xmin, ymax, xmax); rows >= ``num_boxes`` are padding and pass through.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ktp_tflite.train.card_layout import CardLayoutError, card_from_fields, zoom_crop
from ktp_tflite.train.config import AugmentConfig
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.preprocess import tf_resize_rgb

FILL_VALUE = 127.5  # grey: 0 after the [-1, 1] normalisation


def _chance(probability: float) -> tf.Tensor:
    return tf.random.uniform([]) < probability


def colour(image: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Random brightness, contrast, saturation and hue; float [0, 255] in and out."""
    x = image / 255.0
    x = tf.image.random_brightness(x, config.brightness_delta)
    x = tf.image.random_contrast(x, *config.contrast_range)
    x = tf.clip_by_value(x, 0.0, 1.0)
    x = tf.image.random_saturation(x, *config.saturation_range)
    if config.hue_delta > 0:
        x = tf.image.random_hue(x, config.hue_delta)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def rotate(image: tf.Tensor, boxes: tf.Tensor, degrees: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Rotate the image about its centre; boxes follow their centres, keep their size."""
    shape = tf.shape(image)
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    theta = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    transform = tf.stack(
        [
            cos,
            sin,
            cx - cos * cx - sin * cy,
            -sin,
            cos,
            cy + sin * cx - cos * cy,
            0.0,
            0.0,
        ]
    )[None, :]
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=shape[:2],
        fill_value=FILL_VALUE,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    yc = (ymin + ymax) / 2.0 * height
    xc = (xmin + xmax) / 2.0 * width
    new_x = cos * (xc - cx) - sin * (yc - cy) + cx
    new_y = sin * (xc - cx) + cos * (yc - cy) + cy
    dy = new_y / height - (ymin + ymax) / 2.0
    dx = new_x / width - (xmin + xmax) / 2.0
    moved = tf.stack([ymin + dy, xmin + dx, ymax + dy, xmax + dx], axis=-1)
    return rotated, tf.clip_by_value(moved, 0.0, 1.0)


def zoom_out(image: tf.Tensor, boxes: tf.Tensor, factor: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Place the image at a random spot of a canvas ``factor`` times larger."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    canvas_h = tf.cast(tf.math.round(tf.cast(height, tf.float32) * factor), tf.int32)
    canvas_w = tf.cast(tf.math.round(tf.cast(width, tf.float32) * factor), tf.int32)
    top = tf.random.uniform([], 0, canvas_h - height + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, canvas_w - width + 1, dtype=tf.int32)
    padded = tf.image.pad_to_bounding_box(image - FILL_VALUE, top, left, canvas_h, canvas_w)
    scale = tf.cast(tf.stack([height, width, height, width]), tf.float32)
    offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
    canvas = tf.cast(tf.stack([canvas_h, canvas_w, canvas_h, canvas_w]), tf.float32)
    return padded + FILL_VALUE, (boxes * scale + offset) / canvas


def crop_keeping_boxes(
    image: tf.Tensor, boxes: tf.Tensor, num_boxes: tf.Tensor, min_fraction: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Random crop whose window contains every real box whole."""
    shape = tf.shape(image)
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    real = tf.range(tf.shape(boxes)[0]) < tf.cast(num_boxes, tf.int32)
    big = tf.fill(tf.shape(boxes[:, 0]), 2.0)
    ymin = tf.reduce_min(tf.where(real, boxes[:, 0], big))
    xmin = tf.reduce_min(tf.where(real, boxes[:, 1], big))
    ymax = tf.reduce_max(tf.where(real, boxes[:, 2], -big))
    xmax = tf.reduce_max(tf.where(real, boxes[:, 3], -big))
    ymin, xmin = tf.clip_by_value(ymin, 0.0, 1.0), tf.clip_by_value(xmin, 0.0, 1.0)
    ymax, xmax = tf.clip_by_value(ymax, 0.0, 1.0), tf.clip_by_value(xmax, 0.0, 1.0)
    frac_h = tf.maximum(tf.random.uniform([], min_fraction, 1.0), ymax - ymin)
    frac_w = tf.maximum(tf.random.uniform([], min_fraction, 1.0), xmax - xmin)
    low_y = tf.maximum(0.0, ymax - frac_h)
    high_y = tf.maximum(low_y, tf.minimum(ymin, 1.0 - frac_h))
    low_x = tf.maximum(0.0, xmax - frac_w)
    high_x = tf.maximum(low_x, tf.minimum(xmin, 1.0 - frac_w))
    top_f = tf.random.uniform([], low_y, high_y + 1e-6)
    left_f = tf.random.uniform([], low_x, high_x + 1e-6)
    # Whole pixels, rounded outwards so the boxes stay inside.
    top = tf.cast(tf.floor(tf.minimum(top_f, ymin) * height), tf.int32)
    left = tf.cast(tf.floor(tf.minimum(left_f, xmin) * width), tf.int32)
    bottom = tf.cast(tf.math.ceil(tf.maximum(top_f + frac_h, ymax) * height), tf.int32)
    right = tf.cast(tf.math.ceil(tf.maximum(left_f + frac_w, xmax) * width), tf.int32)
    top = tf.clip_by_value(top, 0, shape[0] - 1)
    left = tf.clip_by_value(left, 0, shape[1] - 1)
    bottom = tf.clip_by_value(bottom, top + 1, shape[0])
    right = tf.clip_by_value(right, left + 1, shape[1])
    return _cut(image, boxes, top, left, bottom, right)


def _cut(
    image: tf.Tensor, boxes: tf.Tensor, top: tf.Tensor, left: tf.Tensor, bottom: tf.Tensor, right: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The image's pixels [top:bottom, left:right] and its normalised boxes re-normalised to them (clipped)."""
    shape = tf.shape(image)
    cropped = tf.image.crop_to_bounding_box(image, top, left, bottom - top, right - left)
    offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
    size = tf.cast(tf.stack([bottom - top, right - left, bottom - top, right - left]), tf.float32)
    scale = tf.cast(tf.stack([shape[0], shape[1], shape[0], shape[1]]), tf.float32)
    return cropped, tf.clip_by_value((boxes * scale - offset) / size, 0.0, 1.0)


def second_look_window(
    boxes: np.ndarray, classes: np.ndarray, num_boxes: int, frame_size: tuple[int, int], margin: float
) -> tuple[int, int, int, int] | None:
    """The crop (left, top, right, bottom) the app's second pass would run on, or None.

    The zoom's rule (:func:`ktp_tflite.train.card_layout.zoom_crop` of the card
    :func:`~ktp_tflite.train.card_layout.card_from_fields` estimates) on the
    photo's labelled field boxes, at the default zoom threshold and ``margin``.

    Args:
      boxes: [N, 4] normalised (ymin, xmin, ymax, xmax); rows >= ``num_boxes`` are padding.
      classes: [N] class ids (indices of ``CLASSES``).
      num_boxes: real rows.
      frame_size: (width, height) of the photo in pixels.
      margin: card widths around the card.

    Returns:
      None when the photo has no usable field box or its card is too large to zoom.
    """
    width, height = frame_size
    fields = {}
    for (ymin, xmin, ymax, xmax), cls in zip(boxes[:num_boxes], classes[:num_boxes], strict=True):
        if 0 <= int(cls) < len(CLASSES) and xmax > xmin and ymax > ymin:
            fields[CLASSES[int(cls)]] = (xmin * width, ymin * height, xmax * width, ymax * height)
    if not fields:
        return None
    return zoom_crop(card_from_fields(fields), (width, height), margin=margin)


def _second_look_window_np(boxes, classes, num_boxes, height, width, margin) -> np.ndarray:
    """:func:`second_look_window` for ``tf.numpy_function``: int32 [top, left, bottom, right], [-1]*4 for None."""
    try:
        crop = second_look_window(
            np.asarray(boxes, np.float64), np.asarray(classes), int(num_boxes), (int(width), int(height)), float(margin)
        )
    except CardLayoutError:  # boxes no card can be made of: no second look
        crop = None
    if crop is None:
        return np.full(4, -1, np.int32)
    left, top, right, bottom = crop
    return np.array([top, left, bottom, right], np.int32)


def second_look(
    image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, num_boxes: tf.Tensor, margin: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The photo cut to :func:`second_look_window` with its boxes, and whether it was cut.

    Boxes are re-normalised to the crop (every labelled box lies inside it:
    the card estimate encloses the fields).
    """
    shape = tf.shape(image)
    window = tf.numpy_function(
        _second_look_window_np,
        [boxes, classes, num_boxes, shape[0], shape[1], margin],
        tf.int32,
        stateful=False,
    )
    window = tf.ensure_shape(window, [4])
    cut = window[0] >= 0

    cropped, moved = tf.cond(
        cut, lambda: _cut(image, boxes, window[0], window[1], window[2], window[3]), lambda: (image, boxes)
    )
    return cropped, moved, cut


def gaussian_blur(image: tf.Tensor, sigma: tf.Tensor, radius: int = 2) -> tf.Tensor:
    """Separable Gaussian blur of a [H, W, 3] float image."""
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = 3
    k_y = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    k_x = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    x = image[None]
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    x = tf.nn.depthwise_conv2d(x, k_y, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, k_x, [1, 1, 1, 1], "VALID")
    return x[0]


# method -> (ScaleAndTranslate kernel, antialias, corner-aligned grid). Measured for
# the runtimes in convert/RUNTIMES.md: the Task Library samples on the half-pixel
# grid with a 2-tap bilinear filter, MediaPipe at x * scale (corner-aligned).
RESIZE_METHODS = {
    "antialias": ("triangle", True, False),  # ours (PIL BILINEAR, tf_resize_rgb)
    "bilinear": ("triangle", False, False),  # Task Library (libyuv)
    "corner": ("triangle", False, True),  # MediaPipe (cv::warpPerspective)
    "area": ("box", True, False),
    "nearest": ("box", False, False),
}


def resize_sampled(
    image: tf.Tensor,
    boxes: tf.Tensor,
    output_size: tuple[int, int],
    method: tf.Tensor,
    methods: tuple[str, ...],
    shift: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Stretch ``image`` to ``output_size`` with ``methods[method]``, moved by ``shift``.

    ``shift`` is [dy, dx] in output pixels (ignored by the box-kernel methods
    "area" and "nearest"); the boxes (normalised) move with the pixels exactly,
    including the corner-aligned grid's own offset of ``0.5 - 0.5 * scale``
    output pixels, so every method keeps them aligned.
    ``methods[i] == "antialias"`` with zero shift is :func:`tf_resize_rgb`.

    Returns:
      float32 image [h, w, 3] in [0, 255] and the moved boxes, clipped to [0, 1].
    """
    height, width = output_size
    shape = tf.shape(image)
    scale = tf.stack([height / tf.cast(shape[0], tf.float32), width / tf.cast(shape[1], tf.float32)])

    def branch(name: str):
        kernel, antialias, corner = RESIZE_METHODS[name]

        def run():
            # ScaleAndTranslate's box kernel moves in whole input pixels (measured in
            # tests/test_runtimes.py), so the box-kernel methods are not shifted.
            moved_by = tf.zeros([2]) if kernel == "box" else shift
            translation = moved_by + ((0.5 - 0.5 * scale) if corner else 0.0)
            resized = tf.raw_ops.ScaleAndTranslate(
                images=image[tf.newaxis],
                size=tf.constant([height, width], tf.int32),
                scale=scale,
                translation=translation,
                kernel_type=kernel,
                antialias=antialias,
            )[0]
            return resized, translation

        return run

    resized, translation = tf.switch_case(method, [branch(name) for name in methods])
    offset = tf.stack(
        [translation[0] / height, translation[1] / width, translation[0] / height, translation[1] / width]
    )
    moved = tf.clip_by_value(boxes + offset, 0.0, 1.0)
    return tf.clip_by_value(tf.ensure_shape(resized, [height, width, 3]), 0.0, 255.0), moved


def augment_and_resize(
    image: tf.Tensor,
    boxes: tf.Tensor,
    num_boxes: tf.Tensor,
    output_size: tuple[int, int],
    config: AugmentConfig,
    classes: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment a decoded uint8 photo and stretch it to the model input.

    ``classes`` (the boxes' class ids) is needed for the second look; without
    it there is none.

    Returns:
      float32 image [h, w, 3] in [0, 255] and the transformed boxes.
    """
    x = tf.cast(image, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    looked = tf.constant(False)
    if classes is not None and config.second_look_probability > 0:
        margin = tf.random.uniform([], *config.second_look_margin, dtype=tf.float64)
        x, boxes, looked = tf.cond(
            _chance(config.second_look_probability),
            lambda: second_look(x, boxes, classes, num_boxes, margin),
            lambda: (x, boxes, tf.constant(False)),
        )
    x = colour(x, config)
    if config.max_rotation_degrees > 0:
        degrees = tf.random.uniform([], -config.max_rotation_degrees, config.max_rotation_degrees)
        x, boxes = rotate(x, boxes, degrees)
    if config.zoom_out_probability > 0 and config.max_zoom_out > 1.0:
        factor = tf.random.uniform([], 1.0, config.max_zoom_out)
        x, boxes = tf.cond(
            tf.logical_and(tf.logical_not(looked), _chance(config.zoom_out_probability)),
            lambda: zoom_out(x, boxes, factor),
            lambda: (x, boxes),
        )
    if config.crop_probability > 0 and config.min_crop_fraction < 1.0:
        x, boxes = tf.cond(
            tf.logical_and(tf.logical_not(looked), _chance(config.crop_probability)),
            lambda: crop_keeping_boxes(x, boxes, num_boxes, config.min_crop_fraction),
            lambda: (x, boxes),
        )
    if config.resize_methods == ("antialias",) and config.max_subpixel_shift == 0:
        x = tf_resize_rgb(x, *output_size)
    else:
        unknown = sorted(set(config.resize_methods) - set(RESIZE_METHODS))
        if unknown or not config.resize_methods:
            raise ValueError(f"unknown resize method(s) {unknown}; use {', '.join(RESIZE_METHODS)}")
        method = tf.random.uniform([], 0, len(config.resize_methods), dtype=tf.int32)
        limit = config.max_subpixel_shift
        shift = tf.random.uniform([2], -limit, limit) if limit > 0 else tf.zeros([2])
        x, boxes = resize_sampled(x, boxes, output_size, method, config.resize_methods, shift)
    if config.blur_probability > 0 and config.max_blur_sigma > 0:
        sigma = tf.random.uniform([], 0.3, config.max_blur_sigma)
        x = tf.cond(_chance(config.blur_probability), lambda: gaussian_blur(x, sigma), lambda: x)
    x = tf.ensure_shape(x, [output_size[0], output_size[1], 3])
    return x, boxes
