"""Run an SSD detector .tflite in the LiteRT interpreter, the way apps feed it.

The four post-process outputs are bound through the ``TFLite_Detection_PostProcess``
op itself (its outputs are always boxes, classes, scores, count), never by
output index or name: TF2 exports list them in another order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP

OUTPUT_ROLES = ("boxes", "classes", "scores", "count")


class ModelLoadError(KtpError, ValueError):
    """A .tflite file cannot be loaded or is not an SSD detector with post-process."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor: name, dtype name ("int8", "float32"...) and shape."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]


def _flatbuffer_model(model: bytes, source: str):
    from tensorflow.lite.python import schema_py_generated as schema

    if model[4:8] != b"TFL3":
        raise ModelLoadError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    return schema, schema.Model.GetRootAsModel(model, 0)


def _op_code_name(schema, model, code_index: int) -> str:
    code = model.OperatorCodes(code_index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode("utf-8")
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator of subgraph 0: its code name and its tensors."""

    code: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    options: dict = dataclasses.field(default_factory=dict)  # custom ops' flexbuffer options


def read_ops(model: bytes, source: str = "model") -> list[OpInfo]:
    """Parse the flatbuffer: every operator of the main subgraph with tensor dtypes.

    Raises:
      ModelLoadError: not a TFLite flatbuffer.
    """
    schema, root = _flatbuffer_model(model, source)
    dtype_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = root.Subgraphs(0)

    def tensor(index: int) -> TensorInfo:
        t = graph.Tensors(index)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        return TensorInfo(index, t.Name().decode("utf-8"), dtype_names.get(t.Type(), "?"), shape)

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        inputs = tuple(tensor(int(j)) for j in op.InputsAsNumpy() if j >= 0) if op.InputsLength() else ()
        outputs = tuple(tensor(int(j)) for j in op.OutputsAsNumpy()) if op.OutputsLength() else ()
        options = {}
        if op.CustomOptionsLength():
            from flatbuffers import flexbuffers

            try:
                decoded = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
            except (ValueError, IndexError, TypeError):
                decoded = None
            options = decoded if isinstance(decoded, dict) else {}
        code = _op_code_name(schema, root, op.OpcodeIndex())
        ops.append(OpInfo(code, inputs, outputs, options))
    return ops


def postprocess_outputs(ops: list[OpInfo], source: str = "model") -> dict[str, TensorInfo]:
    """Map boxes/classes/scores/count to the post-process op's output tensors.

    Raises:
      ModelLoadError: no (or more than one) post-process op, or not 4 outputs.
    """
    found = [op for op in ops if op.code == POSTPROCESS_OP]
    if len(found) != 1:
        raise ModelLoadError(
            f"{source}: model has {len(found)} {POSTPROCESS_OP} ops; an SSD detector for the "
            "Task Library needs exactly one, with exactly 4 outputs (re-export with the "
            "post-process op: export_tflite_ssd_graph.py --add_postprocessing_op=true, "
            "export_tflite_graph_tf2.py, or `ktpconvert export`)"
        )
    outputs = found[0].outputs
    if len(outputs) != 4:
        raise ModelLoadError(f"{source}: {POSTPROCESS_OP} has {len(outputs)} outputs, expected 4")
    return dict(zip(OUTPUT_ROLES, outputs, strict=True))


class TfliteDetector:
    """An SSD .tflite in the LiteRT interpreter: stretch-resize, feed, read 4 outputs."""

    def __init__(self, model: bytes, source: str = "model", num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.source = source
        roles = postprocess_outputs(read_ops(model, source), source)
        try:
            self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"{source}: the LiteRT interpreter cannot load it ({error})") from error
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise ModelLoadError(f"{source}: model has {len(details)} inputs; expected one image")
        self.input = details[0]
        shape = [int(d) for d in self.input["shape"]]
        if len(shape) != 4 or shape[3] != 3:
            raise ModelLoadError(f"{source}: input shape {shape}; expected [1, H, W, 3]")
        self.height, self.width = shape[1], shape[2]
        output_indices = {d["index"] for d in self.interpreter.get_output_details()}
        missing = [role for role, t in roles.items() if t.index not in output_indices]
        if missing:
            raise ModelLoadError(
                f"{source}: post-process outputs {', '.join(missing)} are not model outputs"
            )
        self.outputs = {role: t.index for role, t in roles.items()}

    @property
    def input_dtype(self) -> str:
        return np.dtype(self.input["dtype"]).name

    def feed(self, pixels: np.ndarray) -> None:
        """Set the input from uint8 pixels already at the model's size."""
        from ktp_tflite.train.preprocess import to_model_input

        dtype = np.dtype(self.input["dtype"])
        if dtype == np.uint8:
            value = pixels  # uint8 models take raw pixels, as the Task Library feeds them
        elif dtype == np.float32:
            value = to_model_input(pixels)
        elif dtype == np.int8:
            scale, zero_point = self.input["quantization"]
            real = to_model_input(pixels)
            value = np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)
        else:
            raise ModelLoadError(f"{self.source}: unsupported input dtype {dtype.name}")
        self.interpreter.set_tensor(self.input["index"], value[np.newaxis])

    def raw(self) -> dict[str, np.ndarray]:
        """Invoke and return the four outputs by role."""
        self.interpreter.invoke()
        return {role: self.interpreter.get_tensor(i) for role, i in self.outputs.items()}

    def detect(self, image: np.ndarray, image_id: str = "") -> Detections:
        """Detect on a uint8 RGB image of any size (stretched to the input size)."""
        from ktp_tflite.train.preprocess import resize_rgb

        self.feed(resize_rgb(image, self.height, self.width))
        out = self.raw()
        count = int(round(float(np.ravel(out["count"])[0])))
        boxes = np.clip(out["boxes"][0][:count].astype(np.float32), 0.0, 1.0)
        return Detections(
            image_id=image_id,
            boxes=boxes.reshape(-1, 4),
            classes=np.round(out["classes"][0][:count]).astype(np.int64),
            scores=out["scores"][0][:count].astype(np.float32),
        )


def load_detector(path: str | Path, num_threads: int = 2) -> TfliteDetector:
    """A :class:`TfliteDetector` for a .tflite file."""
    path = Path(path)
    try:
        model = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read ({error})") from error
    return TfliteDetector(model, str(path), num_threads)
