"""Static cost of a .tflite graph: MACs and bytes moved per op, by op type and dtype.

Read from the file through :mod:`ktp_tflite.convert.tflite_model` (LiteRT's
generated schema), so it needs neither TensorFlow nor an interpreter.
Counting rules (per batch of the shapes stored in the file):

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

from ktp_tflite.convert.tflite_model import ModelLoadError, TensorInfo, TfliteModel, parse_model
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

# The cost model's name for the facade's error (not a TFLite model it can read).
GraphCostError = ModelLoadError


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


def _dtype_class(dtype: str) -> str:
    return "int8" if dtype in ("int8", "uint8", "int16") else "float"


def _macs(op: str, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> int:
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


def graph_cost(model: bytes | TfliteModel, source: str = "model") -> GraphCost:
    """Cost of every operator of subgraph 0.

    Raises:
      GraphCostError: not a readable TFLite model.
    """
    tflite = model if isinstance(model, TfliteModel) else parse_model(model, source)
    ops = []
    try:
        for op in tflite.ops:
            inputs, outputs = list(op.inputs), list(op.outputs)
            activations = [t for t in inputs if not t.constant] or inputs
            dtype = _dtype_class(activations[0].dtype if activations else "float32")
            ops.append(
                OpCost(
                    index=op.index,
                    op=op.code,
                    op_class=_op_class(op.code),
                    dtype=dtype,
                    macs=int(_macs(op.code, inputs, outputs)),
                    bytes_moved=sum(t.nbytes for t in inputs) + sum(t.nbytes for t in outputs),
                    runtime=not inputs or any(not t.constant for t in inputs),
                )
            )
    except (IndexError, ValueError) as error:
        raise GraphCostError(f"{tflite.source}: corrupt TFLite operator table ({error})") from error
    return GraphCost(source=tflite.source, ops=tuple(ops))


def precision_label(model: bytes | TfliteModel, source: str = "model") -> str:
    """The precision: "int8", "fp16" (float16 weights), "dynamic" (int8 weights, float math) or "fp32".

    The latency model's label: "int8" when int8 ops do most of the dense and
    depthwise MACs (a model with a few layers kept in float is still "int8"
    here, while :attr:`TfliteModel.precision` calls it "float").

    Raises:
      GraphCostError: not a readable TFLite model.
    """
    tflite = model if isinstance(model, TfliteModel) else parse_model(model, source)
    cost = graph_cost(tflite)
    compute = [op for op in cost.runtime_ops if op.op_class in ("dense", "depthwise")]
    int8 = sum(op.macs for op in compute if op.dtype == "int8")
    if compute and int8 * 2 > sum(op.macs for op in compute):
        return "int8"
    constant = {t.dtype for t in tflite.tensors if t.constant}
    if "float16" in constant:
        return "fp16"
    if "int8" in constant:
        return "dynamic"
    return "fp32"
