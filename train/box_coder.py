"""Faster R-CNN box coder (the OD API's ``FasterRcnnBoxCoder``).

A box relative to its anchor is encoded as
``[ty, tx, th, tw] = [(y - ya) / ha * sy, (x - xa) / wa * sx,
log(h / ha) * sh, log(w / wa) * sw]`` with centres, sizes and the scales
(sy, sx, sh, sw), 10/10/5/5 by default. ``decode`` inverts it, exactly as
``TFLite_Detection_PostProcess`` does with its y/x/h/w_scale attributes.
Anchors come in (ycenter, xcenter, h, w) layout (see
:mod:`ktp_tflite.train.anchors`); boxes in (ymin, xmin, ymax, xmax).

Both NumPy and TensorFlow inputs work (the functions only use arithmetic
and ``log``/``exp`` from the module passed as ``xp``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The OD API adds this to sizes before division and log, so degenerate boxes
# encode to finite numbers.
EPSILON = 1e-8


def _ops(values: Any):
    if isinstance(values, np.ndarray):
        return np
    import tensorflow as tf

    return tf.math


def encode(boxes: Any, anchors: Any, scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)) -> Any:
    """Encode corner boxes [N, 4] against anchors [N, 4] (ycenter, xcenter, h, w)."""
    ops = _ops(boxes)
    ymin, xmin, ymax, xmax = (boxes[..., i] for i in range(4))
    ya, xa, ha, wa = (anchors[..., i] for i in range(4))
    h = ymax - ymin + EPSILON
    w = xmax - xmin + EPSILON
    y = ymin + 0.5 * (ymax - ymin)
    x = xmin + 0.5 * (xmax - xmin)
    ha = ha + EPSILON
    wa = wa + EPSILON
    codes = [
        (y - ya) / ha * scales[0],
        (x - xa) / wa * scales[1],
        ops.log(h / ha) * scales[2],
        ops.log(w / wa) * scales[3],
    ]
    if ops is np:
        return np.stack(codes, axis=-1).astype(np.float32)
    import tensorflow as tf

    return tf.stack(codes, axis=-1)


def decode(codes: Any, anchors: Any, scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)) -> Any:
    """Decode [..., N, 4] codes against anchors [N, 4] into (ymin, xmin, ymax, xmax)."""
    ops = _ops(codes)
    ty, tx, th, tw = (codes[..., i] for i in range(4))
    ya, xa, ha, wa = (anchors[..., i] for i in range(4))
    h = ops.exp(th / scales[2]) * ha
    w = ops.exp(tw / scales[3]) * wa
    y = ty / scales[0] * ha + ya
    x = tx / scales[1] * wa + xa
    corners = [y - 0.5 * h, x - 0.5 * w, y + 0.5 * h, x + 0.5 * w]
    if ops is np:
        return np.stack(corners, axis=-1).astype(np.float32)
    import tensorflow as tf

    return tf.stack(corners, axis=-1)
