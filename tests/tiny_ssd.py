"""Test helper (not a test module): tiny SSD graphs shaped like the OD API's TF1 export.

``build_tf1_graph`` writes a frozen GraphDef with the node names and
attributes that ``object_detection/export_tflite_ssd_graph_lib.py`` writes:
input ``normalized_input_image_tensor`` [1, H, W, C], ``raw_outputs/box_encodings``
[1, A, 4], ``raw_outputs/class_predictions`` [1, A, C+1] (after the sigmoid
score converter), an ``anchors`` Const [A, 4] (ycenter, xcenter, h, w), and the
``TFLite_Detection_PostProcess`` node with its attrs. The backbone is three
tiny stride-2 convolutions.

With ``oracle`` the scores are fixed per anchor (plus a 1e-3 input-dependent
wobble so the graph is not constant-folded): the model then "detects"
exactly the given anchors, and ``oracle_dataset`` labels images with those
boxes, so COCO mAP must be 1.0.

Load it from a test module with ``load_helper()`` below (pytest's importlib
mode does not put tests/ on sys.path).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

ANCHORS_PER_CELL = 3
ANCHOR_SIZES = ((0.25, 0.5), (0.4, 0.4), (0.5, 0.25))  # (h, w)
NUM_CLASSES = 5


def anchor_table(height: int, width: int) -> np.ndarray:
    """Anchors [A, 4] (ycenter, xcenter, h, w) for the 1/8 feature map."""
    rows, cols = height // 8, width // 8
    anchors = []
    for i in range(rows):
        for j in range(cols):
            for h, w in ANCHOR_SIZES:
                anchors.append([(i + 0.5) / rows, (j + 0.5) / cols, h, w])
    return np.asarray(anchors, dtype=np.float32)


def default_oracle(height: int = 64, width: int = 64) -> dict[int, int]:
    """anchor index -> class index: five well separated anchors, one per class."""
    cols = width // 8
    cells = [(1, 1), (1, 6), (4, 3), (6, 1), (6, 6)]
    return {(r * cols + c) * ANCHORS_PER_CELL + 1: k for k, (r, c) in enumerate(cells)}


def build_tf1_graph(
    path: Path,
    *,
    height: int = 64,
    width: int = 64,
    channels: int = 3,
    num_classes: int = NUM_CLASSES,
    postprocess: bool = True,
    oracle: dict[int, int] | None = None,
    use_regular_nms: bool = False,
    max_detections: int = 10,
    seed: int = 0,
) -> Path:
    """Write a TF1 OD API style ``tflite_graph.pb`` to ``path``."""
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2, types_pb2

    tf1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    anchors = anchor_table(height, width)
    count = len(anchors)
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.float32, [1, height, width, channels],
                                name="normalized_input_image_tensor")

        def conv(x, depth, stride, name, scale):
            kernel = rng.normal(0.0, scale, (3, 3, int(x.shape[-1]), depth)).astype(np.float32)
            bias = rng.normal(0.0, 0.1, (depth,)).astype(np.float32)
            y = tf.nn.conv2d(x, tf.constant(kernel), [1, stride, stride, 1], "SAME", name=name)
            return tf.nn.bias_add(y, tf.constant(bias))

        x = image
        for k, depth in enumerate((8, 16, 16)):
            x = tf.nn.relu6(conv(x, depth, 2, f"FeatureExtractor/Conv_{k}", 0.4))
        boxes = conv(x, ANCHORS_PER_CELL * 4, 1, "BoxPredictor/BoxEncodingPredictor", 0.1)
        logits = conv(x, ANCHORS_PER_CELL * (num_classes + 1), 1,
                      "BoxPredictor/ClassPredictor", 0.3)
        boxes = tf.reshape(boxes, [1, count, 4])
        logits = tf.reshape(logits, [1, count, num_classes + 1])
        if oracle is not None:
            fixed = np.full((1, count, num_classes + 1), -4.0, np.float32)
            for anchor, cls in oracle.items():
                fixed[0, anchor, cls + 1] = 4.0
            boxes = boxes * 1e-3
            logits = tf.constant(fixed) + logits * 1e-3
        with tf.name_scope("raw_outputs"):
            tf.identity(boxes, name="box_encodings")
            tf.identity(tf.sigmoid(logits), name="class_predictions")
        tf.constant(anchors, name="anchors")
    graph_def = graph.as_graph_def()

    if postprocess:
        node = graph_def.node.add()
        node.op = node.name = "TFLite_Detection_PostProcess"
        node.input.extend(["raw_outputs/box_encodings", "raw_outputs/class_predictions", "anchors"])
        node.attr["_output_quantized"].CopyFrom(attr_value_pb2.AttrValue(b=True))
        node.attr["_output_types"].list.type.extend([types_pb2.DT_FLOAT] * 4)
        node.attr["_support_output_type_float_in_quantized_op"].CopyFrom(
            attr_value_pb2.AttrValue(b=True))
        for key, value in (("max_detections", max_detections), ("max_classes_per_detection", 1),
                           ("detections_per_class", 100), ("num_classes", num_classes)):
            node.attr[key].CopyFrom(attr_value_pb2.AttrValue(i=value))
        node.attr["use_regular_nms"].CopyFrom(attr_value_pb2.AttrValue(b=use_regular_nms))
        for key, value in (("nms_score_threshold", 1e-8), ("nms_iou_threshold", 0.6),
                           ("y_scale", 10.0), ("x_scale", 10.0), ("h_scale", 5.0), ("w_scale", 5.0)):
            node.attr[key].CopyFrom(attr_value_pb2.AttrValue(f=value))
    path.write_bytes(graph_def.SerializeToString())
    return path


def oracle_dataset(oracle: dict[int, int], *, images: int = 3, height: int = 64, width: int = 64,
                   size: tuple[int, int] = (128, 96)):
    """Images (noise, ``size`` = WxH) labelled with exactly the oracle anchors' boxes."""
    from PIL import Image

    from ktp_tflite.train.labels import CLASSES
    from ktp_tflite.train.records import Box, Dataset, Example

    anchors = anchor_table(height, width)
    boxes = []
    for anchor, cls in sorted(oracle.items()):
        yc, xc, h, w = (float(v) for v in anchors[anchor])
        boxes.append(Box(ymin=max(0.0, yc - h / 2), xmin=max(0.0, xc - w / 2),
                         ymax=min(1.0, yc + h / 2), xmax=min(1.0, xc + w / 2), label=CLASSES[cls]))
    rng = np.random.default_rng(3)
    examples = []
    for i in range(images):
        buffer = io.BytesIO()
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        examples.append(Example(image_id=f"noise_{i}.png", width=size[0], height=size[1],
                                boxes=tuple(boxes), image_bytes=buffer.getvalue(),
                                image_format="png"))
    return Dataset(examples=examples, source="oracle", format="synth")


def calibration(height: int = 64, width: int = 64, samples: int = 8):
    """A representative_dataset of uniform noise in [-1, 1]."""

    def generate():
        rng = np.random.default_rng(1)
        for _ in range(samples):
            yield [rng.uniform(-1, 1, (1, height, width, 3)).astype(np.float32)]

    return generate
