"""Export: a SavedModel ending in the fused SSD post-process, and a float .tflite.

The serving function takes ``normalized_input_image_tensor`` [1, H, W, 3]
float32 in [-1, 1], runs the detector, applies the sigmoid score converter
and hands (box encodings [1, N, 4], scores [1, N, num_classes + 1] with
background first, anchors [N, 4] (ycenter, xcenter, h, w)) to a
``tf.function`` declared with ``experimental_implements`` =
``TFLite_Detection_PostProcess`` and its attributes, the technique of the OD
API's ``export_tflite_graph_tf2.py``. Its TensorFlow body is a placeholder
returning zeros of the right shapes; the TFLite converter replaces the whole
function by the custom op, which does the decoding and NMS. The SavedModel
itself is therefore only meant for conversion, not for TF inference.

Outputs, in TF1 order (the op's own): boxes [1, max_detections, 4] (ymin,
xmin, ymax, xmax), classes [1, max_detections] (0-based), scores
[1, max_detections], number of detections [1], all float32; signature keys
:data:`OUTPUT_KEYS`, named so that the converter emits them in that order.

The float .tflite is converted with ``from_concrete_functions`` on the
*loaded* SavedModel signature: with Keras 3, ``from_saved_model`` can
silently emit a model whose weights are not frozen (a file of a few hundred
KB); :func:`float_tflite` checks the size, the op list and the output order
(through LiteRT: this module reads no flatbuffer itself).

Functions return objects or bytes; only the CLI writes files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ktp_tflite.train.anchors import generate_anchors
from ktp_tflite.train.config import ModelConfig
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.run_folder import EXPORT_SUMMARY_FILE, ExportFolder
from ktp_tflite.train.scratch import private_tempdir

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
INPUT_NAME = "normalized_input_image_tensor"
SIGNATURE_KEY = "serving_default"
# Signature output keys, chosen for the order the converter gives the graph outputs. Its
# SavedModel importer (the only path that fuses the post-process op) sorts a signature's
# outputs by TensorFlow's Fingerprint64 of the key, "to avoid accidentally depending on the
# order" (SavedModelSignatureDefImporterLite::ConvertSignature, TF's
# compiler/mlir/tensorflow/translate/import_model.cc): the OD API's "num_detections" would
# come first. These four sort as the op's own outputs (boxes, classes, scores, count) both
# that way and alphabetically, as the TFLite signature lists them; float_tflite checks it.
OUTPUT_KEYS = ("detection_boxes", "detection_classes", "detection_scores", "num_detected")


class ExportError(KtpError, ValueError):
    """Export options that cannot be honoured, or a conversion that went wrong."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Options of the fused post-process (OD API defaults).

    Attributes:
      max_detections: detections returned.
      score_threshold: minimum score kept by NMS.
      iou_threshold: NMS IoU threshold.
      max_classes_per_detection: classes per box (fast NMS).
      detections_per_class: per-class limit (regular NMS).
      use_regular_nms: per-class NMS; False (fast NMS) is what the Task
        Library handles well (see
        docs/TRAINING-PROBE.md, 'Regular NMS and the Task Library').
    """

    max_detections: int = 10
    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_classes_per_detection: int = 1
    detections_per_class: int = 100
    use_regular_nms: bool = False

    def validate(self) -> None:
        """Raises ExportError on out-of-range values."""
        if self.max_detections < 1:
            raise ExportError(f"max detections must be >= 1, got {self.max_detections}")
        if not 0.0 <= self.score_threshold < 1.0:
            raise ExportError(f"score threshold must be in [0, 1), got {self.score_threshold}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ExportError(f"IoU threshold must be in (0, 1], got {self.iou_threshold}")


def _float_text(value: float) -> str:
    # repr keeps every digit (1e-08 stays 1e-08; "%f" would write 0.000000).
    return repr(float(value))


def postprocess_implements(model: ModelConfig, export: ExportConfig) -> str:
    """The ``experimental_implements`` string naming the op and its attributes."""
    y_scale, x_scale, h_scale, w_scale = model.box_coder_scales
    attrs = [
        ("max_detections", "i", str(export.max_detections)),
        ("max_classes_per_detection", "i", str(export.max_classes_per_detection)),
        ("detections_per_class", "i", str(export.detections_per_class)),
        ("use_regular_nms", "b", "true" if export.use_regular_nms else "false"),
        ("nms_score_threshold", "f", _float_text(export.score_threshold)),
        ("nms_iou_threshold", "f", _float_text(export.iou_threshold)),
        ("y_scale", "f", _float_text(y_scale)),
        ("x_scale", "f", _float_text(x_scale)),
        ("h_scale", "f", _float_text(h_scale)),
        ("w_scale", "f", _float_text(w_scale)),
        ("num_classes", "i", str(model.num_classes)),
    ]
    parts = [f'name: "{POSTPROCESS_OP}"']
    parts += [f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}' for key, kind, value in attrs]
    return " ".join(parts)


def serving_module(keras_model, model_config: ModelConfig, export: ExportConfig):
    """A ``tf.Module`` whose ``serving`` function ends in the fused post-process."""
    import tensorflow as tf

    export.validate()
    anchors = generate_anchors(model_config)
    height, width = model_config.input_size
    max_det = export.max_detections

    @tf.function(experimental_implements=postprocess_implements(model_config, export))
    def postprocess(box_encodings, class_scores, anchor_boxes):
        del box_encodings, class_scores, anchor_boxes  # the TFLite op does the work
        boxes = tf.zeros([1, max_det, 4], tf.float32, name="boxes")
        classes = tf.zeros([1, max_det], tf.float32, name="classes")
        scores = tf.zeros([1, max_det], tf.float32, name="scores")
        count = tf.zeros([1], tf.float32, name="num_detections")
        return boxes, classes, scores, count

    class _Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.detector = keras_model

        @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)])
        def serving(self, image):
            box_encodings, class_logits = self.detector(image, training=False)
            class_scores = tf.sigmoid(class_logits)
            boxes, classes, scores, count = postprocess(box_encodings, class_scores, tf.constant(anchors))
            return dict(zip(OUTPUT_KEYS, (boxes, classes, scores, count)))

    return _Serving()


def save_signatures(module):
    """The signature dict to pass to ``tf.saved_model.save``."""
    return {SIGNATURE_KEY: module.serving.get_concrete_function()}


def float_tflite(saved_model_dir: str | Path, min_bytes: int | None = None) -> bytes:
    """Convert the exported SavedModel to a float .tflite (bytes).

    Args:
      saved_model_dir: a folder written from :func:`serving_module`.
      min_bytes: fail if the result is smaller (unfrozen weights); default:
        half the float32 size of the SavedModel's variables.

    Raises:
      ExportError: the folder is not such a SavedModel, or the result lacks the
        post-process op or its weights, or lists the outputs in another order
        (:func:`check_postprocess_outputs`).
    """
    import tensorflow as tf

    folder = Path(saved_model_dir)
    if not (folder / "saved_model.pb").is_file():
        raise ExportError(f"{folder}: no saved_model.pb; pass the folder `ktpconvert export` wrote")
    loaded = tf.saved_model.load(str(folder))
    if SIGNATURE_KEY not in loaded.signatures:
        raise ExportError(f"{folder}: no '{SIGNATURE_KEY}' signature")
    concrete = loaded.signatures[SIGNATURE_KEY]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with private_tempdir("ktp-convert-"):  # the converter's own temporaries go in it too (Ctrl-C)
        result = converter.convert()
    if min_bytes is None:
        shapes = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
        weights = sum(
            int(np.prod(shape))
            for name, shape in shapes.get_variable_to_shape_map().items()
            if "VARIABLE_VALUE" in name and "moving_" not in name
        )
        min_bytes = weights * 4 // 2
    if len(result) < min_bytes:
        raise ExportError(
            f"float .tflite is {len(result)} bytes, expected at least {min_bytes}: "
            "the weights were not frozen into the model"
        )
    check_postprocess_outputs(result)
    return result


def _litert_interpreter(tflite_model: bytes):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=tflite_model)  # not allocated: the graph as converted


def tflite_op_names(tflite_model: bytes) -> list[str]:
    """Names of the main graph's operators in execution order (custom ops by their code), from LiteRT."""
    return [op["op_name"] for op in _litert_interpreter(tflite_model)._get_ops_details()]


def check_postprocess_outputs(tflite_model: bytes) -> None:
    """The model outputs and signature are the post-process op's outputs, in its order.

    The metadata writer and TF1-era apps expect boxes, classes, scores, count:
    the op's own output order, which :data:`OUTPUT_KEYS` gets from the converter.

    Raises:
      ExportError: not exactly one post-process op, or outputs in another order.
    """
    interpreter = _litert_interpreter(tflite_model)
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] == POSTPROCESS_OP]
    if len(ops) != 1:
        raise ExportError(f"float .tflite has {len(ops)} {POSTPROCESS_OP} ops, expected 1")
    wanted = [int(index) for index in ops[0]["outputs"]]
    outputs = [int(detail["index"]) for detail in interpreter.get_output_details()]
    signature = {}
    if SIGNATURE_KEY in interpreter.get_signature_list():
        details = interpreter.get_signature_runner(SIGNATURE_KEY).get_output_details()
        signature = {key: int(detail["index"]) for key, detail in details.items()}
    if outputs != wanted or signature != dict(zip(OUTPUT_KEYS, wanted)):
        raise ExportError(
            f"the converter listed the float .tflite outputs as tensors {outputs}, signature "
            f"'{SIGNATURE_KEY}' {signature}; expected the {POSTPROCESS_OP} outputs {wanted} "
            f"as {list(OUTPUT_KEYS)}"
        )


def save_serving(keras_model, model_config: ModelConfig, export: ExportConfig, folder: str | Path) -> Path:
    """Write ``folder`` as a SavedModel whose ``serving`` ends in the fused post-process."""
    import tensorflow as tf

    module = serving_module(keras_model, model_config, export)
    tf.saved_model.save(module, str(folder), signatures=save_signatures(module))
    return Path(folder)


def write_export(keras_model, model_config: ModelConfig, export: ExportConfig, folder: str | Path) -> bytes:
    """Fill ``folder`` as :class:`~ktp_tflite.train.run_folder.ExportFolder` lays it out, all but the summary.

    The SavedModel, the float .tflite and (five classes only) the labels.
    Returns the float .tflite. ``folder`` must exist; the caller makes it
    appear atomically (see :func:`export_run`).
    """
    from ktp_tflite.train.labels import CLASSES, labels_txt

    layout = ExportFolder(folder)
    tflite = float_tflite(save_serving(keras_model, model_config, export, layout.saved_model))
    layout.float_tflite.write_bytes(tflite)
    if model_config.num_classes == len(CLASSES):
        layout.labels.write_text(labels_txt())
    return tflite


def export_run(
    run_dir: str | Path, out: str | Path, export: ExportConfig = ExportConfig(), *, force: bool = False
) -> dict:
    """Export a run folder's newest checkpoint to ``out``; returns the summary written to export.json.

    ``out`` (an :class:`~ktp_tflite.train.run_folder.ExportFolder`) is built
    under a temporary name and renamed whole, under the project's output rule
    (:func:`ktp_tflite.train.atomic_files.atomic_output_dir`: never inside the
    run folder, an earlier export replaced only with ``force``).

    Raises:
      ExportError: bad export settings or conversion; RunDirError: nothing to export;
      OutputPathError (a KtpError): ``out`` is refused.
    """
    from ktp_tflite.train.atomic_files import atomic_output_dir
    from ktp_tflite.train.trainer import latest_checkpoint, restore_model

    export.validate()
    config, model = restore_model(run_dir)
    checkpoint = latest_checkpoint(run_dir)
    with atomic_output_dir(out, inputs=(run_dir,), force=force, marker=EXPORT_SUMMARY_FILE) as staging:
        tflite = write_export(model, config.model, export, staging)
        summary = {
            "checkpoint": Path(checkpoint).name if checkpoint else None,
            "preset": config.preset,
            "input_size": list(config.model.input_size),
            "num_classes": config.model.num_classes,
            "postprocess": {
                "max_detections": export.max_detections,
                "score_threshold": export.score_threshold,
                "iou_threshold": export.iou_threshold,
                "use_regular_nms": export.use_regular_nms,
            },
            "float_tflite_bytes": len(tflite),
        }
        ExportFolder(staging).summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
