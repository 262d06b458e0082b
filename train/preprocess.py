"""Model input preprocessing: the one definition every stage shares.

The detector sees the whole photo stretched to the model's input size (no
letterbox, the geometry the TFLite Task Library and MediaPipe use), then
scaled to [-1, 1] (MobileNet's range: ``(x - 127.5) / 127.5``). Training,
calibration for int8, evaluation and ``ktpconvert scan`` must all do exactly
this; a mismatch here is the most common cause of int8 accuracy collapse.

Resizing is bilinear with half-pixel centres and antialiasing when shrinking
(PIL's BILINEAR filter). ``tf_resize_rgb`` is the TensorFlow twin used inside
``tf.data``; tests check that both agree. The Task Library's own resize uses
a different filter, so its scores differ slightly from ours on the same photo
(0.776 vs 0.784 on the test model of tests/test_scan.py); boxes agree.
"""

from __future__ import annotations

import numpy as np

INPUT_MEAN = 127.5
INPUT_STD = 127.5


def resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch a uint8 [H, W, 3] image to [height, width, 3] uint8 (bilinear)."""
    from PIL import Image

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    if image.shape[0] == height and image.shape[1] == width:
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def to_model_input(image: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]."""
    return (image.astype(np.float32) - INPUT_MEAN) / INPUT_STD


def tf_resize_rgb(image, height: int, width: int):
    """TensorFlow twin of :func:`resize_rgb` for ``tf.data``; returns float32 in [0, 255].

    ``tf.image.resize`` with ``antialias=True`` uses the same triangle filter as
    PIL's BILINEAR when shrinking, so both produce the same pixels to within
    rounding.
    """
    import tensorflow as tf

    resized = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear", antialias=True)
    return tf.clip_by_value(resized, 0.0, 255.0)


def tf_to_model_input(image_0_255):
    """TensorFlow twin of :func:`to_model_input`."""
    return (image_0_255 - INPUT_MEAN) / INPUT_STD
