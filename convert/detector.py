"""Run an SSD detector .tflite in the LiteRT interpreter, the way apps feed it.

The model is read through :mod:`ktp_tflite.convert.tflite_model`: the four
post-process outputs are bound through the ``TFLite_Detection_PostProcess``
op itself (its outputs are always boxes, classes, scores, count), never by
output index or name (TF2 exports list them in another order), and the
input is fed by :meth:`TfliteModel.model_input` (normalisation from the
metadata, the input's quantization).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ktp_tflite.convert.tflite_model import (
    OUTPUT_ROLES,
    ModelLoadError,
    OpInfo,
    TensorInfo,
    TfliteModel,
    parse_model,
    read_model,
)
from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.export import POSTPROCESS_OP

__all__ = [
    "OUTPUT_ROLES",
    "POSTPROCESS_OP",
    "ModelLoadError",
    "OpInfo",
    "TensorInfo",
    "TfliteDetector",
    "load_detector",
    "read_ops",
]


def read_ops(model: bytes, source: str = "model") -> list[OpInfo]:
    """Every operator of the main subgraph: ``parse_model(model, source).ops`` as a list.

    Kept for callers not yet on :func:`ktp_tflite.convert.tflite_model.parse_model`.

    Raises:
      ModelLoadError: not a TFLite flatbuffer.
    """
    return list(parse_model(model, source).ops)


class TfliteDetector:
    """An SSD .tflite in the LiteRT interpreter: stretch-resize, feed, read 4 outputs.

    Attributes:
      model: the parsed file (:class:`TfliteModel`).
      interpreter: the LiteRT interpreter, tensors allocated.
      input: the interpreter's input details.
      height, width: the input size.
      outputs: role ("boxes", "classes", "scores", "count") -> tensor index.
    """

    def __init__(self, model: bytes | TfliteModel, source: str | None = None, num_threads: int = 2):
        """Load ``model`` (bytes, or an already parsed :class:`TfliteModel`).

        Raises:
          ModelLoadError: not a TFLite file, no single post-process op with 4
            outputs, not loadable by LiteRT, or not one RGB image input.
        """
        from ai_edge_litert.interpreter import Interpreter

        if not isinstance(model, TfliteModel):
            model = parse_model(model, source or "model")
        self.model = model
        self.source = source or model.source
        roles = model.detection_outputs()
        try:
            self.interpreter = Interpreter(model_content=model.data, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"{self.source}: the LiteRT interpreter cannot load it ({error})") from error
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise ModelLoadError(f"{self.source}: model has {len(details)} inputs; expected one image")
        self.input = details[0]
        self.height, self.width = model.input_size
        output_indices = {d["index"] for d in self.interpreter.get_output_details()}
        missing = [role for role, t in roles.items() if t.index not in output_indices]
        if missing:
            raise ModelLoadError(f"{self.source}: post-process outputs {', '.join(missing)} are not model outputs")
        self.outputs = {role: t.index for role, t in roles.items()}

    @property
    def input_dtype(self) -> str:
        """The input's dtype name ("uint8", "int8" or "float32")."""
        return np.dtype(self.input["dtype"]).name

    def feed(self, pixels: np.ndarray) -> None:
        """Set the input from uint8 pixels already at the model's size (:meth:`TfliteModel.model_input`)."""
        self.interpreter.set_tensor(self.input["index"], self.model.model_input(pixels))

    def raw(self) -> dict[str, np.ndarray]:
        """Invoke and return the four outputs by role."""
        self.interpreter.invoke()
        return {role: self.interpreter.get_tensor(i) for role, i in self.outputs.items()}

    def detect(self, image: np.ndarray, image_id: str = "") -> Detections:
        """Detect on a uint8 RGB image of any size (stretched to the input size)."""
        from ktp_tflite.train.preprocess import resize_rgb

        self.feed(resize_rgb(image, self.height, self.width))
        out = self.raw()
        count = round(float(np.ravel(out["count"])[0]))
        boxes = np.clip(out["boxes"][0][:count].astype(np.float32), 0.0, 1.0)
        return Detections(
            image_id=image_id,
            boxes=boxes.reshape(-1, 4),
            classes=np.round(out["classes"][0][:count]).astype(np.int64),
            scores=out["scores"][0][:count].astype(np.float32),
        )


def load_detector(path: str | Path, num_threads: int = 2) -> TfliteDetector:
    """A :class:`TfliteDetector` for a .tflite file.

    Raises:
      ModelLoadError: the file cannot be read or is not a loadable SSD detector.
    """
    return TfliteDetector(read_model(path), str(path), num_threads)
