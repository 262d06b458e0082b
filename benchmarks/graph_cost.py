"""Static cost of a .tflite graph: MACs and bytes moved per op, by op type and dtype.

Read straight from the flatbuffer (LiteRT's generated schema), so it needs
neither TensorFlow nor an interpreter. Counting rules (per batch of the
shapes stored in the file):

- ``CONV_2D``: filter [O, KH, KW, I], output [N, OH, OW, O]:
  ``N * OH * OW * O * KH * KW * I`` MACs.
- ``DEPTHWISE_CONV_2D``: filter [1, KH, KW, O]: ``N * OH * OW * O * KH * KW``.
- ``FULLY_CONNECTED``: weights [O, I]: ``(elements(input) / I) * O * I``.
- ``TRANSPOSE_CONV``: filter [O, KH, KW, I], input [N, H, W, I]:
  ``N * H * W * I * KH * KW * O``.
- ``TFLite_Detection_PostProcess``: "MACs" are anchor x class score entries
  (the work of the per-anchor class maximum before NMS).
- element-wise and pooling ops: one MAC per output (pooling: per input)
  element, reported but priced by bytes in the latency model.

Bytes moved are the sizes of every input (weights included) and output tensor.
Ops whose inputs are all constant run once at load time (e.g. the float16
weight ``DEQUANTIZE``) and are marked ``runtime=False``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.export import POSTPROCESS_OP

DENSE_OPS = ("CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D")
DEPTHWISE_OPS = ("DEPTHWISE_CONV_2D",)
POOL_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "REDUCE_MAX", "L2_POOL_2D")
ELEMENTWISE_OPS = (
    "ADD",
    "SUB",
    "MUL",
    "DIV",
    "LOGISTIC",
    "TANH",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "HARD_SWISH",
    "SOFTMAX",
    "EXP",
    "SQUARED_DIFFERENCE",
    "RSQRT",
    "SQRT",
    "MAXIMUM",
    "MINIMUM",
    "LEAKY_RELU",
    "PRELU",
    "QUANTIZE",
    "DEQUANTIZE",
    "GELU",
)
# Op classes the latency model prices separately (see projection.py).
OP_CLASSES = ("dense", "depthwise", "other", "postprocess")
DTYPE_CLASSES = ("float", "int8")

_DTYPE_BYTES = {
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


class GraphCostError(KtpError, ValueError):
    """The file is not a TFLite model the cost model can read."""


@dataclasses.dataclass(frozen=True)
class Tensor:
    """A tensor of subgraph 0: shape, dtype name and whether its data is constant."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    constant: bool

    @property
    def elements(self) -> int:
        count = 1
        for d in self.shape:
            count *= max(int(d), 1)
        return count

    @property
    def nbytes(self) -> int:
        return self.elements * _DTYPE_BYTES.get(self.dtype, 4)


@dataclasses.dataclass(frozen=True)
class OpCost:
    """One operator's static cost."""

    index: int
    op: str
    op_class: str  # one of OP_CLASSES
    dtype: str  # compute dtype class: "float" or "int8"
    macs: int
    bytes_moved: int
    runtime: bool  # False when all inputs are constant (evaluated at load time)


@dataclasses.dataclass(frozen=True)
class GraphCost:
    """Every op's cost plus the totals the latency model needs."""

    source: str
    ops: tuple[OpCost, ...]

    @property
    def runtime_ops(self) -> tuple[OpCost, ...]:
        return tuple(op for op in self.ops if op.runtime)

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.runtime_ops if op.op_class in ("dense", "depthwise"))

    def by_type(self) -> dict[str, dict[str, int]]:
        """{"CONV_2D/int8": {"count", "macs", "bytes"}} over runtime ops."""
        table: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "macs": 0, "bytes": 0})
        for op in self.runtime_ops:
            row = table[f"{op.op}/{op.dtype}"]
            row["count"] += 1
            row["macs"] += op.macs
            row["bytes"] += op.bytes_moved
        return dict(sorted(table.items(), key=lambda kv: -kv[1]["macs"]))

    def summary(self) -> dict[str, dict[str, int]]:
        """{"dense/int8": {"count", "macs", "bytes"}}: the latency model's input."""
        table = {f"{c}/{d}": {"count": 0, "macs": 0, "bytes": 0} for c in OP_CLASSES for d in DTYPE_CLASSES}
        for op in self.runtime_ops:
            row = table[f"{op.op_class}/{op.dtype}"]
            row["count"] += 1
            row["macs"] += op.macs
            row["bytes"] += op.bytes_moved
        return table

    def to_dict(self) -> dict:
        """Totals, per-type and per-class tables for JSON reports."""
        return {
            "total_macs": self.total_macs,
            "runtime_ops": len(self.runtime_ops),
            "by_type": self.by_type(),
            "summary": self.summary(),
        }


def _op_name(schema, root, code_index: int) -> str:
    code = root.OperatorCodes(code_index)
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode("utf-8")
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


def read_tensors(model: bytes, source: str = "model"):
    """(schema, root, subgraph, tensors) for subgraph 0 of ``model``.

    Raises:
      GraphCostError: not a TFLite flatbuffer, or no subgraph.
    """
    from ai_edge_litert import schema_py_generated as schema

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise GraphCostError(f"{source}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        root = schema.Model.GetRootAs(model, 0)
        if root.SubgraphsLength() < 1:
            raise GraphCostError(f"{source}: the model has no subgraph")
        graph = root.Subgraphs(0)
        names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        tensors = []
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            buffer = root.Buffers(t.Buffer()) if t.Buffer() < root.BuffersLength() else None
            constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            tensors.append(
                Tensor(
                    i, (t.Name() or b"").decode("utf-8", "replace"), names.get(t.Type(), "?"), shape, constant
                )
            )
    except (IndexError, ValueError, TypeError) as error:  # truncated / corrupt flatbuffer
        raise GraphCostError(f"{source}: corrupt TFLite flatbuffer ({error})") from error
    return schema, root, graph, tensors


def _dtype_class(dtype: str) -> str:
    return "int8" if dtype in ("int8", "uint8", "int16") else "float"


def _macs(op: str, inputs: list[Tensor], outputs: list[Tensor]) -> int:
    out = outputs[0] if outputs else None
    if op == "CONV_2D" and len(inputs) >= 2 and out is not None:
        o, kh, kw, i = inputs[1].shape
        n, oh, ow, _ = out.shape
        return n * oh * ow * o * kh * kw * i
    if op == "DEPTHWISE_CONV_2D" and len(inputs) >= 2 and out is not None:
        _, kh, kw, o = inputs[1].shape
        n, oh, ow, _ = out.shape
        return n * oh * ow * o * kh * kw
    if op == "FULLY_CONNECTED" and len(inputs) >= 2:
        o, i = inputs[1].shape[0], inputs[1].shape[-1]
        return (inputs[0].elements // max(i, 1)) * o * i
    if op == "TRANSPOSE_CONV" and len(inputs) >= 3:
        o, kh, kw, i = inputs[1].shape
        return inputs[2].elements * kh * kw * o
    if op == "BATCH_MATMUL" and len(inputs) >= 2 and out is not None:
        return out.elements * inputs[0].shape[-1]
    if op == POSTPROCESS_OP and len(inputs) >= 2:
        return inputs[1].elements  # anchors x (classes + 1)
    if op in POOL_OPS and inputs:
        return inputs[0].elements
    if op in ELEMENTWISE_OPS and out is not None:
        return out.elements
    return 0


def _op_class(op: str) -> str:
    if op in DENSE_OPS:
        return "dense"
    if op in DEPTHWISE_OPS:
        return "depthwise"
    if op == POSTPROCESS_OP:
        return "postprocess"
    return "other"


def graph_cost(model: bytes, source: str = "model") -> GraphCost:
    """Cost of every operator of subgraph 0.

    Raises:
      GraphCostError: not a readable TFLite model.
    """
    schema, root, graph, tensors = read_tensors(model, source)
    ops = []
    try:
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            name = _op_name(schema, root, op.OpcodeIndex())
            inputs = [tensors[int(j)] for j in op.InputsAsNumpy() if j >= 0] if op.InputsLength() else []
            outputs = [tensors[int(j)] for j in op.OutputsAsNumpy()] if op.OutputsLength() else []
            activations = [t for t in inputs if not t.constant] or inputs
            dtype = _dtype_class(activations[0].dtype if activations else "float32")
            ops.append(
                OpCost(
                    index=k,
                    op=name,
                    op_class=_op_class(name),
                    dtype=dtype,
                    macs=int(_macs(name, inputs, outputs)),
                    bytes_moved=sum(t.nbytes for t in inputs) + sum(t.nbytes for t in outputs),
                    runtime=not inputs or any(not t.constant for t in inputs),
                )
            )
    except (IndexError, ValueError) as error:
        raise GraphCostError(f"{source}: corrupt TFLite operator table ({error})") from error
    return GraphCost(source=source, ops=tuple(ops))


def postprocess_output_tensors(model: bytes, source: str = "model") -> tuple[int, ...] | None:
    """Tensor indices of the post-process op's outputs (boxes, classes, scores, count), or None.

    Bound through the op itself, not by output order (TF2 exports differ).
    """
    schema, root, graph, _ = read_tensors(model, source)
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        if _op_name(schema, root, op.OpcodeIndex()) == POSTPROCESS_OP and op.OutputsLength() == 4:
            return tuple(int(j) for j in op.OutputsAsNumpy())
    return None


def precision_label(model: bytes, source: str = "model") -> str:
    """ "int8", "fp16" (float16 weights), "dynamic" (int8 weights, float math) or "fp32".

    Raises:
      GraphCostError: not a readable TFLite model.
    """
    cost = graph_cost(model, source)
    compute = [op for op in cost.runtime_ops if op.op_class in ("dense", "depthwise")]
    int8 = sum(op.macs for op in compute if op.dtype == "int8")
    if compute and int8 * 2 > sum(op.macs for op in compute):
        return "int8"
    _, _, _, tensors = read_tensors(model, source)
    constant = {t.dtype for t in tensors if t.constant}
    if "float16" in constant:
        return "fp16"
    if "int8" in constant:
        return "dynamic"
    return "fp32"
