"""The one reader of .tflite files: parse the flatbuffer once, expose what every stage uses.

:func:`parse_model` (bytes) and :func:`read_model` (a file) return a
:class:`TfliteModel`: the operators of the main subgraph with their tensors
(dtype, shape, quantization, constant data), custom options decoded; the
input and its quantization; the four ``TFLite_Detection_PostProcess``
outputs by role, bound through the op itself (TF2 exports list the model
outputs in another order); the TFLite metadata and labels, read once with
tflite-support's ``MetadataDisplayer`` when first asked for; the input
normalisation; the precision. :meth:`TfliteModel.model_input` is the one way
to turn pixels into the input tensor.

This is the only module that imports a TFLite flatbuffer schema (LiteRT's
``ai_edge_litert.schema_py_generated``, which needs no TensorFlow) or the
metadata reader; ``tests/test_tflite_model.py`` fails when another one does.
Reading the metadata imports TensorFlow (tflite-support needs it); nothing
else here does.

Why one file: the rule above. The parser (``_parse``, ``_quantization``, ``_custom_options``)
and the byte rewrites (``with_ranges``, ``without_metadata``, ``single_op_model``) use the schema;
the :class:`TfliteModel` views read what the parser builds. If it grows, the rewrites are the seam,
as a second schema module, with ``FACADE`` in tests/test_tflite_model.py widened to allow it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.model_source import TFLITE_IDENTIFIER
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD

OUTPUT_ROLES = ("boxes", "classes", "scores", "count")
METADATA_NAME = "TFLITE_METADATA"  # the model metadata entry tflite-support writes
INPUT_DTYPES = ("uint8", "int8", "float32")  # what :meth:`TfliteModel.model_input` can feed
# Tensor types of a full-integer graph (int32: biases and shapes).
INT8_TENSOR_TYPES = ("int8", "int32")
DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "string": 1,
    "bool": 1,
    "int16": 2,
    "int8": 1,
    "float64": 8,
    "uint32": 4,
    "uint16": 2,
    "int4": 1,
}
_LOAD_HINT = "pass a .tflite file written by the TFLite converter or `ktpconvert quantize`"


class ModelLoadError(KtpError, ValueError):
    """A .tflite file cannot be loaded or is not an SSD detector with post-process."""


@dataclasses.dataclass(frozen=True)
class Quantization:
    """A tensor's quantization parameters as stored (per channel when more than one)."""

    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    min: tuple[float, ...] = ()
    max: tuple[float, ...] = ()

    @property
    def scale_zero_point(self) -> tuple[float, int]:
        """(scale, zero point) of a per-tensor quantization; (0.0, 0) otherwise."""
        if len(self.scale) == 1:
            return self.scale[0], self.zero_point[0] if self.zero_point else 0
        return 0.0, 0


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph.

    Attributes:
      index: position in the subgraph's tensor table.
      name: tensor name.
      dtype: "int8", "float32"... ("?" for a type this schema does not know).
      shape: the stored shape; () when the file leaves it to the runtime (the
        post-process op's outputs).
      quantization: None when the tensor has no quantization parameters.
      data_bytes: bytes of constant data the file holds for it (0: computed).
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    quantization: Quantization | None = None
    data_bytes: int = 0

    @property
    def constant(self) -> bool:
        """Whether the file holds the tensor's values (weights, anchors)."""
        return self.data_bytes > 0

    @property
    def elements(self) -> int:
        """Number of values (unknown dimensions count as 1)."""
        count = 1
        for d in self.shape:
            count *= max(int(d), 1)
        return count

    @property
    def nbytes(self) -> int:
        """Bytes of the values at runtime."""
        return self.elements * DTYPE_BYTES.get(self.dtype, 4)

    def summary(self) -> dict:
        """index, name, dtype and shape, for JSON reports."""
        return {"index": self.index, "name": self.name, "dtype": self.dtype, "shape": self.shape}


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator of the main subgraph: its code name and its tensors.

    ``options`` are a custom op's flexbuffer options ({} for builtin ops);
    optional inputs the op leaves out (index -1) are not listed.
    """

    code: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    options: dict = dataclasses.field(default_factory=dict)
    index: int = 0  # position in the subgraph's operator list

    @property
    def signature(self) -> str:
        """``CODE(input dtypes)->(output dtypes)``, e.g. ``CONV_2D(int8,int8,int32)->(int8)``."""
        ins = ",".join(t.dtype for t in self.inputs)
        outs = ",".join(t.dtype for t in self.outputs)
        return f"{self.code}({ins})->({outs})"


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """A model's TFLite metadata, as ``MetadataDisplayer`` reads it.

    Attributes:
      norm_mean, norm_std: the input's NormalizationOptions (() when absent).
      output_names: output tensor names of the metadata, in subgraph output order.
      labels: lines of the first packed TENSOR_VALUE_LABELS file of an output
        tensor, whatever its name (ours is labels.txt); None without one.
      associated_files: names of the packed files, sorted.
      document: the metadata JSON plus ``labels`` (a list, [] without) and
        ``packed_files``: what :func:`ktp_tflite.convert.metadata.read_metadata` returns.
    """

    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    output_names: tuple[str, ...]
    labels: tuple[str, ...] | None
    associated_files: tuple[str, ...]
    document: dict = dataclasses.field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Normalization:
    """Float input = (pixel - mean) / std, per channel or one value for all."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # "metadata", or "default" (the training constants of train/preprocess.py)


@dataclasses.dataclass(frozen=True, eq=False)
class TfliteModel:
    """A parsed .tflite (main subgraph). Build it with :func:`parse_model` or :func:`read_model`.

    Attributes:
      source: the file (or a name for bytes) that error messages name.
      data: the file's bytes.
      tensors: every tensor, by index.
      ops: every operator, in execution order.
      inputs, outputs: the subgraph's inputs and outputs, in their order.
      has_metadata: the file carries a TFLite metadata entry.
    """

    source: str
    data: bytes = dataclasses.field(repr=False)
    tensors: tuple[TensorInfo, ...] = dataclasses.field(repr=False)
    ops: tuple[OpInfo, ...] = dataclasses.field(repr=False)
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    has_metadata: bool

    @property
    def name(self) -> str:
        """File name of the source."""
        return Path(self.source).name

    @property
    def size_bytes(self) -> int:
        """File size."""
        return len(self.data)

    @property
    def input(self) -> TensorInfo:
        """The one input tensor.

        Raises:
          ModelLoadError: the model has more or fewer inputs than one.
        """
        if len(self.inputs) != 1:
            raise ModelLoadError(f"{self.source}: model has {len(self.inputs)} inputs; expected one image")
        return self.inputs[0]

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero point) of the input; (0.0, 0) for a float input."""
        quantization = self.input.quantization
        return quantization.scale_zero_point if quantization else (0.0, 0)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the image input.

        Raises:
          ModelLoadError: the input is not an RGB image [1, H, W, 3].
        """
        shape = list(self.input.shape)
        if len(shape) != 4 or shape[3] != 3:
            raise ModelLoadError(f"{self.source}: input shape {shape}; expected [1, H, W, 3]")
        return shape[1], shape[2]

    @property
    def postprocess_options(self) -> dict:
        """Settings of the (first) post-process op, sorted by key; {} without one."""
        found = [op for op in self.ops if op.code == POSTPROCESS_OP]
        return dict(sorted(found[0].options.items())) if found else {}

    @property
    def num_classes(self) -> int | None:
        """``num_classes`` of the post-process op, if it states it."""
        value = self.postprocess_options.get("num_classes")
        return int(value) if value is not None else None

    @property
    def is_detector(self) -> bool:
        """Exactly one post-process op, with 4 outputs (see :meth:`detection_outputs`)."""
        found = [op for op in self.ops if op.code == POSTPROCESS_OP]
        return len(found) == 1 and len(found[0].outputs) == 4

    def detection_outputs(self) -> dict[str, TensorInfo]:
        """boxes/classes/scores/count: the post-process op's output tensors.

        Raises:
          ModelLoadError: no (or more than one) post-process op, or not 4 outputs.
        """
        found = [op for op in self.ops if op.code == POSTPROCESS_OP]
        if len(found) != 1:
            raise ModelLoadError(
                f"{self.source}: model has {len(found)} {POSTPROCESS_OP} ops; an SSD detector for the "
                "Task Library needs exactly one, with exactly 4 outputs (re-export with the "
                "post-process op: export_tflite_ssd_graph.py --add_postprocessing_op=true, "
                "export_tflite_graph_tf2.py, or `ktpconvert export`)"
            )
        outputs = found[0].outputs
        if len(outputs) != 4:
            raise ModelLoadError(f"{self.source}: {POSTPROCESS_OP} has {len(outputs)} outputs, expected 4")
        return dict(zip(OUTPUT_ROLES, outputs, strict=True))

    @property
    def float_compute_ops(self) -> tuple[OpInfo, ...]:
        """Ops that compute in float, except the post-process op and the DEQUANTIZE ops feeding it.

        A QUANTIZE of the (float or uint8) input to int8 does not count either,
        nor a DEQUANTIZE that only makes a float model output (the reader's logits).
        """
        post_inputs = {t.index for op in self.ops if op.code == POSTPROCESS_OP for t in op.inputs}
        post_inputs |= {t.index for t in self.outputs}
        found = []
        for op in self.ops:
            if op.code == POSTPROCESS_OP:
                continue
            if op.code == "DEQUANTIZE" and all(t.index in post_inputs for t in op.outputs):
                continue
            if op.code == "QUANTIZE" and all(t.dtype in INT8_TENSOR_TYPES for t in op.outputs):
                continue
            if any(t.dtype not in INT8_TENSOR_TYPES for t in (*op.inputs, *op.outputs)):
                found.append(op)
        return tuple(found)

    @property
    def precision(self) -> str:
        """Compute precision: "int8" when no op computes in float (:attr:`float_compute_ops`), else "float"."""
        return "float" if self.float_compute_ops else "int8"

    @functools.cached_property
    def metadata(self) -> ModelMetadata | None:
        """The TFLite metadata (read on first use, then kept), or None without any.

        Raises:
          ModelLoadError: the file has a metadata entry that tflite-support cannot
            read, or that names associated files the file does not hold (a copy
            cut inside the label file packed at its end).
        """
        if not self.has_metadata:
            return None
        from tensorflow_lite_support.metadata.python import metadata as tflite_metadata

        try:
            displayer = tflite_metadata.MetadataDisplayer.with_model_buffer(self.data)
            document = json.loads(displayer.get_metadata_json())
            files = displayer.get_packed_associated_file_list()
            subgraph = (document.get("subgraph_metadata") or [{}])[0]
            label_files = [
                file["name"]
                for output in subgraph.get("output_tensor_metadata") or []
                for file in output.get("associated_files") or []
                if file.get("type") == "TENSOR_VALUE_LABELS" and file["name"] in files
            ]
            labels = []
            if label_files:
                text = displayer.get_associated_file_buffer(label_files[0]).decode("utf-8")
                labels = [line.strip() for line in text.splitlines() if line.strip()]
        except (ValueError, RuntimeError, KeyError, TypeError) as error:
            raise ModelLoadError(
                f"{self.source}: its TFLite metadata cannot be read ({error}); write it again "
                "with `ktpconvert metadata`"
            ) from None
        missing = sorted(_associated_file_names(document) - set(files))
        if missing:
            raise ModelLoadError(
                f"{self.source}: the metadata names associated file(s) {', '.join(missing)} that the "
                "file does not hold (a truncated copy loses the files packed at its end); copy the "
                "file again or write the metadata again with `ktpconvert metadata`"
            )
        document["labels"] = labels
        document["packed_files"] = sorted(files)
        mean: tuple[float, ...] = ()
        std: tuple[float, ...] = ()
        for unit in (subgraph.get("input_tensor_metadata") or [{}])[0].get("process_units") or []:
            if unit.get("options_type") == "NormalizationOptions":
                mean = tuple(float(v) for v in unit["options"].get("mean", ()))
                std = tuple(float(v) for v in unit["options"].get("std", ()))
        return ModelMetadata(
            norm_mean=mean,
            norm_std=std,
            output_names=tuple(o.get("name", "") for o in subgraph.get("output_tensor_metadata") or []),
            labels=tuple(labels) or None,
            associated_files=tuple(sorted(files)),
            document=document,
        )

    def associated_file(self, name: str) -> bytes:
        """The bytes of a file packed with the metadata (e.g. the reader's charset.txt).

        Raises:
          ModelLoadError: the model has no metadata or no such packed file (names both).
        """
        meta = self.metadata
        if meta is None or name not in meta.associated_files:
            raise ModelLoadError(
                f"{self.source}: no packed file {name!r} in its TFLite metadata "
                f"(packed: {', '.join(meta.associated_files) if meta else 'none'})"
            )
        from tensorflow_lite_support.metadata.python import metadata as tflite_metadata

        return tflite_metadata.MetadataDisplayer.with_model_buffer(self.data).get_associated_file_buffer(name)

    def metadata_document(self) -> dict | None:
        """A copy of :attr:`ModelMetadata.document` (callers may change it), or None."""
        return copy.deepcopy(self.metadata.document) if self.metadata else None

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Labels from the metadata's label file, or None."""
        return self.metadata.labels if self.metadata else None

    @property
    def normalization(self) -> Normalization:
        """The metadata's NormalizationOptions, else the training constants (train/preprocess.py)."""
        meta = self.metadata
        if meta and meta.norm_mean and meta.norm_std:
            return Normalization(meta.norm_mean, meta.norm_std, "metadata")
        return Normalization((INPUT_MEAN,), (INPUT_STD,), "default")

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """The ``[1, H, W, 3]`` input value for uint8 RGB pixels already at the input size.

        uint8 inputs get the pixels as they are (as the Task Library feeds
        them); float32 inputs ``(x - mean) / std`` with :attr:`normalization`;
        int8 inputs that value quantized with the input's scale and zero point.

        Raises:
          ModelLoadError: the input dtype is not uint8, int8 or float32.
          ValueError: ``pixels`` are not uint8 [H, W, 3] at the input size.
        """
        height, width = self.input_size
        if pixels.dtype != np.uint8 or pixels.shape != (height, width, 3):
            raise ValueError(
                f"expected uint8 pixels [{height}, {width}, 3], got {pixels.dtype} "
                f"{list(pixels.shape)}; resize with train.preprocess.resize_rgb first"
            )
        dtype = self.input.dtype
        if dtype not in INPUT_DTYPES:
            raise ModelLoadError(f"{self.source}: unsupported input dtype {dtype}; expected {', '.join(INPUT_DTYPES)}")
        if dtype == "uint8":
            return pixels[np.newaxis]
        norm = self.normalization
        mean = np.asarray(norm.mean, np.float32)
        std = np.asarray(norm.std, np.float32)
        real = (pixels.astype(np.float32) - mean) / std
        if dtype == "float32":
            return real[np.newaxis]
        scale, zero_point = self.input_quantization
        if not scale > 0:
            raise ModelLoadError(f"{self.source}: the int8 input has no per-tensor scale")
        return np.clip(np.round(real / scale) + zero_point, -128, 127).astype(np.int8)[np.newaxis]

    def with_ranges(self, ranges: Mapping[int, tuple[float, float]]) -> bytes:
        """A copy of the file with new calibrated (min, max) ranges for some tensors.

        Only the stored ``min``/``max`` values change (the converter's
        calibrate-only output carries one of each per activation).

        Raises:
          ModelLoadError: a tensor has no single recorded min and max.
        """
        from ai_edge_litert import schema_py_generated as schema

        buffer = bytearray(self.data)
        graph = schema.Model.GetRootAs(buffer, 0).Subgraphs(0)
        for index, (low, high) in ranges.items():
            quantization = graph.Tensors(index).Quantization()
            if quantization is None or quantization.MinLength() != 1 or quantization.MaxLength() != 1:
                raise ModelLoadError(
                    f"{self.source}: tensor {self.tensors[index].name!r} has no calibrated range to "
                    "replace; pass the converter's calibrate-only model"
                )
            quantization.MinAsNumpy()[0] = low  # views into ``buffer``: edited in place
            quantization.MaxAsNumpy()[0] = high
        return bytes(buffer)

    def constant_values(self, tensor: TensorInfo) -> np.ndarray:
        """A constant tensor's stored values (a copy, in its stored shape and dtype).

        Raises:
          ModelLoadError: the tensor holds no data in the file, or a dtype this reader cannot unpack.
        """
        from ai_edge_litert import schema_py_generated as schema

        if not tensor.constant:
            raise ModelLoadError(f"{self.source}: tensor {tensor.index} ({tensor.name!r}) holds no values to read")
        if tensor.dtype not in DTYPE_BYTES or tensor.dtype in ("string", "int4"):  # int4: two to a byte
            raise ModelLoadError(
                f"{self.source}: tensor {tensor.index} ({tensor.name!r}) is {tensor.dtype}; only fixed-size "
                "types of whole bytes are read"
            )
        root = schema.Model.GetRootAs(self.data, 0)
        buffer = root.Buffers(root.Subgraphs(0).Tensors(tensor.index).Buffer())
        if buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        else:  # stored after the flatbuffer (checked to lie inside the file when parsed)
            raw = self.data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        if len(raw) != tensor.nbytes:
            raise ModelLoadError(
                f"{self.source}: tensor {tensor.index} ({tensor.name!r}) stores {len(raw)} bytes for "
                f"{tensor.elements} {tensor.dtype} values"
            )
        return np.frombuffer(raw, dtype=np.dtype(tensor.dtype).newbyteorder("<")).reshape(tensor.shape).copy()

    @functools.cached_property
    def _object_tree(self):
        from ai_edge_litert import schema_py_generated as schema

        return schema.ModelT.InitFromPackedBuf(bytearray(self.data), 0)

    def with_outputs(self, indices: Sequence[int]) -> bytes:
        """A copy whose main graph also outputs tensors ``indices`` (after its own outputs, in that order).

        An intermediate tensor that is a graph output is kept by every
        runtime, XNNPACK's delegate included, so its values can be read after
        ``invoke`` without ``experimental_preserve_all_tensors`` (which needs
        the reference kernels). The signatures are dropped (they would list
        the old outputs).
        """
        model = copy.deepcopy(self._object_tree)
        graph = model.subgraphs[0]
        graph.outputs = list(dict.fromkeys([*(int(i) for i in graph.outputs), *(int(i) for i in indices)]))
        model.signatureDefs = None
        return _packed(model)

    def without_metadata(self) -> bytes:
        """A copy of the model without its TFLite metadata and packed files (labels.txt).

        The metadata entry and its buffer are dropped; the packed files, a zip
        appended after the flatbuffer, do not survive re-serialisation.
        """
        model = copy.deepcopy(self._object_tree)
        entries = [m for m in (model.metadata or []) if _name(m.name) == METADATA_NAME]
        dropped = {m.buffer for m in entries}
        model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] or None
        for index in dropped:  # emptied, not removed: other tables refer to buffers by index
            model.buffers[index].data = None
        return _packed(model)

    def single_op_model(self, op_index: int, producers: tuple[int, ...] = ()) -> bytes:
        """A .tflite that runs only operator ``op_index`` of the main subgraph.

        ``producers`` are load-time ops (all inputs constant, e.g. the
        DEQUANTIZE of float16 weights) whose outputs the op reads; they are
        kept before it so its weights stay static, as in the full model. The
        tensor table is kept (tensor indices stay the same); buffers nothing
        reads are emptied; the remaining non-constant inputs become the model
        inputs and the op's outputs the model outputs.
        """
        from ai_edge_litert import schema_py_generated as schema

        model_t = self._object_tree
        graph = model_t.subgraphs[0]
        operators = [graph.operators[k] for k in (*producers, op_index)]
        op = operators[-1]
        produced = {int(i) for other in operators[:-1] for i in other.outputs}
        used = [int(i) for other in operators for i in other.inputs if i >= 0]
        keep = {graph.tensors[i].buffer for i in used}
        for other in model_t.subgraphs[1:]:
            keep.update(t.buffer for t in other.tensors or [])
        constant = {i for i in used if self.tensors[i].constant}
        new_graph = schema.SubGraphT()
        new_graph.tensors = graph.tensors
        new_graph.operators = operators
        new_graph.inputs = list(dict.fromkeys(i for i in used if i not in constant and i not in produced))
        new_graph.outputs = [int(i) for i in op.outputs]
        new_graph.name = graph.name
        new_model = schema.ModelT()
        new_model.version = model_t.version
        new_model.operatorCodes = model_t.operatorCodes
        new_model.subgraphs = [new_graph, *model_t.subgraphs[1:]]
        new_model.description = model_t.description
        empty = schema.BufferT()
        new_model.buffers = [b if k in keep else empty for k, b in enumerate(model_t.buffers)]
        return _packed(new_model)


def _packed(model_t) -> bytes:
    """A ``schema.ModelT`` object tree serialised as a .tflite file."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def read_model(path: str | Path) -> TfliteModel:
    """:func:`parse_model` of a file (the file is only read).

    Raises:
      ModelLoadError: the file cannot be read or is no TFLite model.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read ({error})") from error
    return parse_model(data, str(path))


def parse_model(data: bytes, source: str = "model") -> TfliteModel:
    """Parse a .tflite flatbuffer: main subgraph, tensors, ops (metadata on first use).

    Raises:
      ModelLoadError: empty, foreign (no 'TFL3' identifier), truncated or corrupt.
    """
    data = bytes(data)
    if not data:
        raise ModelLoadError(f"{source}: not a TFLite model (the file is empty); {_LOAD_HINT}")
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(f"{source}: not a TFLite model (no 'TFL3' flatbuffer identifier); {_LOAD_HINT}")
    try:
        return _parse(data, source)
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError, struct.error) as error:
        if isinstance(error, ModelLoadError):
            raise
        raise ModelLoadError(
            f"{source}: truncated or corrupt TFLite flatbuffer ({type(error).__name__}: {error}); "
            f"copy the file again or {_LOAD_HINT}"
        ) from None


def _count(length: int, item_bytes: int, data: bytes, what: str, source: str) -> int:
    """A vector length that fits in the file (garbage offsets of a corrupt file give huge ones)."""
    if length < 0 or length * item_bytes > len(data):
        raise ModelLoadError(
            f"{source}: truncated or corrupt TFLite flatbuffer ({what} lists {length} "
            f"entries in a {len(data)}-byte file); {_LOAD_HINT}"
        )
    return length


def _parse(data: bytes, source: str) -> TfliteModel:
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(data, 0)
    if _count(root.SubgraphsLength(), 4, data, "the subgraph table", source) < 1:
        raise ModelLoadError(f"{source}: the model has no subgraph; {_LOAD_HINT}")
    graph = root.Subgraphs(0)
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    buffer_bytes = []
    for k in range(_count(root.BuffersLength(), 4, data, "the buffer table", source)):
        buffer = root.Buffers(k)
        size = buffer.DataLength()
        if size:
            buffer.DataAsNumpy()  # a view; raises ValueError when the data runs past the file's end
        elif buffer.Size():  # data stored after the flatbuffer (models over 2 GB)
            if buffer.Offset() + buffer.Size() > len(data):
                raise ModelLoadError(
                    f"{source}: truncated TFLite file (buffer {k} ends past the end of the file); {_LOAD_HINT}"
                )
            size = buffer.Size()
        buffer_bytes.append(int(size))

    tensors = []
    for i in range(_count(graph.TensorsLength(), 4, data, "the tensor table", source)):
        t = graph.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(
            TensorInfo(
                index=i,
                name=(t.Name() or b"").decode("utf-8", "replace"),
                dtype=type_names.get(t.Type(), "?"),
                shape=shape,
                quantization=_quantization(t.Quantization()),
                data_bytes=buffer_bytes[t.Buffer()] if 0 <= t.Buffer() < len(buffer_bytes) else 0,
            )
        )

    def listed(indices) -> tuple[TensorInfo, ...]:
        return tuple(tensors[int(j)] for j in indices if j >= 0)

    codes = []
    for k in range(_count(root.OperatorCodesLength(), 4, data, "the operator code table", source)):
        code = root.OperatorCodes(k)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"").decode("utf-8", "replace"))
        else:
            codes.append(op_names.get(builtin, f"BUILTIN_{builtin}"))
    ops = []
    for k in range(_count(graph.OperatorsLength(), 4, data, "the operator table", source)):
        op = graph.Operators(k)
        inputs = listed(op.InputsAsNumpy()) if op.InputsLength() else ()
        outputs = listed(op.OutputsAsNumpy()) if op.OutputsLength() else ()
        options = _custom_options(op.CustomOptionsAsNumpy().tobytes()) if op.CustomOptionsLength() else {}
        ops.append(OpInfo(codes[op.OpcodeIndex()], inputs, outputs, options, k))

    has_metadata = False
    for k in range(_count(root.MetadataLength(), 4, data, "the metadata table", source)):
        entry = root.Metadata(k)
        if entry.Name() == METADATA_NAME.encode() and 0 <= entry.Buffer() < len(buffer_bytes):
            has_metadata = True
    return TfliteModel(
        source=source,
        data=data,
        tensors=tuple(tensors),
        ops=tuple(ops),
        inputs=listed(graph.InputsAsNumpy()) if graph.InputsLength() else (),
        outputs=listed(graph.OutputsAsNumpy()) if graph.OutputsLength() else (),
        has_metadata=has_metadata,
    )


def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _quantization(table) -> Quantization | None:
    if table is None:
        return None

    def values(length: int, as_numpy, cast) -> tuple:
        return tuple(cast(v) for v in as_numpy()) if length else ()

    quantization = Quantization(
        scale=values(table.ScaleLength(), table.ScaleAsNumpy, float),
        zero_point=values(table.ZeroPointLength(), table.ZeroPointAsNumpy, int),
        min=values(table.MinLength(), table.MinAsNumpy, float),
        max=values(table.MaxLength(), table.MaxAsNumpy, float),
    )
    return quantization if quantization != Quantization() else None


def _associated_file_names(document) -> set[str]:
    """Names of every associated file the metadata JSON lists, at any level."""
    names: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "associated_files" and isinstance(value, list):
                names.update(f["name"] for f in value if isinstance(f, dict) and "name" in f)
            else:
                names |= _associated_file_names(value)
    elif isinstance(document, list):
        for value in document:
            names |= _associated_file_names(value)
    return names


def _custom_options(blob: bytes) -> dict:
    """A custom op's flexbuffer map ({} when it is not one)."""
    from flatbuffers import flexbuffers

    try:
        decoded = flexbuffers.Loads(blob)
    except (ValueError, IndexError, TypeError, struct.error):
        decoded = None
    return decoded if isinstance(decoded, dict) else {}


def rgb_color_space() -> int:
    """tflite-support's metadata ``ColorSpaceType.RGB``, for the metadata writer."""
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_schema

    return metadata_schema.ColorSpaceType.RGB


def axis_labels_file_type() -> int:
    """tflite-support's metadata ``AssociatedFileType.TENSOR_AXIS_LABELS``, for the metadata writer."""
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_schema

    return metadata_schema.AssociatedFileType.TENSOR_AXIS_LABELS


def description_file_type() -> int:
    """tflite-support's metadata ``AssociatedFileType.DESCRIPTIONS``, for the metadata writer."""
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_schema

    return metadata_schema.AssociatedFileType.DESCRIPTIONS
