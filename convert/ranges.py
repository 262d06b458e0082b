"""Activation ranges for int8: refined from the calibration samples.

TFLite calibration records each activation's minimum and maximum over the
representative set, and int8 spreads 256 steps over that range. A few rare
outliers then make every step coarser than it needs to be. Measured on the
bundled KTP model (benchmarks/tools/quantize_bench.py): the box codes range over
+-110 because nothing bounds the codes of anchors that match no field, while
the codes that become boxes lie within +-10; the class logits range over
-325..209 while the score sigmoid only resolves -6.2..6.2; and the linear
bottleneck ("project") outputs reach +-20 where all but 1e-4 of the values
lie within +-7. ``refine_ranges`` runs the calibrated float model on the
samples and sets every activation's range from what it sees there, by three
rules:

- "mse": every calibrated activation gets the range that minimises the
  expected squared error of int8 rounding plus clipping, from a histogram of
  its values (the "mse" method of histogram calibrators such as NVIDIA's
  pytorch-quantization);
- "box-codes": the box codes feeding the post-process op (and, through the
  concatenation and reshapes that share their scale, the box heads' outputs)
  get the MSE range of the codes of the CANDIDATE_ANCHORS best-scored
  anchors per sample, the only ones the post-process can turn into boxes;
- "logits": the inputs of the score sigmoid are cut to +-LOGIT_LIMIT, beyond
  which the int8 sigmoid output cannot change.

It is the one pass over the whole representative set: TFLite's calibrator only
needs a few samples to lay out the calibrated model (:data:`ktp_tflite.convert.quantize.STRUCTURE_SAMPLES`),
since this pass records each activation's exact minimum and maximum itself
(the "recorded" range, what the calibrator would have recorded over all
samples) in a histogram that doubles its span when a value falls outside it
(each new bin is two old ones, so no count moves).

Values beyond a new range saturate. Only the ``min``/``max`` fields of the
calibrated model change; the MLIR quantizer turns them into scales and zero
points as it would the recorded ones. Tensors whose int8 range TFLite fixes
(LOGISTIC, SOFTMAX, TANH outputs) and the model inputs (pinned to the pixel
range) are left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np

from ktp_tflite.convert.tflite_model import TfliteModel, parse_model
from ktp_tflite.train.export import POSTPROCESS_OP

BINS = 2048
LEVELS = 255  # int8 steps across a range
# TFLite fixes the int8 output range of these ops; a calibrated range is ignored.
_FIXED_RANGE_OPS = {"LOGISTIC", "SOFTMAX", "TANH", "LOG_SOFTMAX"}
# Ops that pass values through unchanged: the quantizer gives their input and
# output one scale, so a range chosen for the end of the chain holds for all of it.
_PASS_THROUGH_OPS = {"CONCATENATION", "RESHAPE", "SQUEEZE"}
# Candidate range ends, as fractions of the recorded end (1.0 = keep it).
_FRACTIONS = np.concatenate([np.geomspace(0.02, 1.0, 96)[:-1], [1.0]])
# int8 LOGISTIC output has scale 1/256: beyond +-ln(511) the sigmoid rounds to
# its first or last step, so logits outside that range carry nothing.
LOGIT_LIMIT = float(np.log(511.0))
# Box codes that matter: those of the anchors with the highest scores per
# image (ten times the default 10 detections), the post-process drops the rest.
CANDIDATE_ANCHORS = 100
# Values per tensor and sample that go into the histograms: a strided subset
# whose offset moves from sample to sample (300 samples still give ~20 M
# values per tensor; all 12.7 M values of a 320x320 model per sample would
# triple the refinement time).
MAX_VALUES_PER_SAMPLE = 1 << 16


@dataclasses.dataclass(frozen=True)
class RangeChange:
    """One activation's recorded and chosen int8 range.

    Attributes:
      tensor: tensor name.
      recorded: (min, max) over the representative set.
      chosen: the range written into the model.
      rule: "mse" (all values), "box-codes" (codes of candidate anchors) or
        "logits" (inputs of the score sigmoid, cut to +-LOGIT_LIMIT).
      clipped_fraction: "mse" and "box-codes": share of the values the rule
        looked at that fall outside ``chosen``.
      error_ratio: "mse" and "box-codes": expected squared error with
        ``chosen`` / with the recorded range.
    """

    tensor: str
    recorded: tuple[float, float]
    chosen: tuple[float, float]
    rule: str
    clipped_fraction: float = 0.0
    error_ratio: float = 1.0


class _Histogram:
    """BINS equal bins over [low, high], doubling the span to hold every value; the exact extent too."""

    def __init__(self, low: float, high: float):
        if not high > low:  # the structure samples gave one value: start around it
            low, high = low - 1.0, high + 1.0
        self.low, self.high = float(low), float(high)
        self.counts = np.zeros(BINS, np.int64)
        self.min, self.max = np.inf, -np.inf

    def _double(self, below: bool, above: bool) -> None:
        merged = self.counts.reshape(BINS // 2, 2).sum(axis=1)
        span = self.high - self.low
        quarter = np.zeros(BINS // 4, np.int64)
        if below and above:
            self.counts = np.concatenate([quarter, merged, quarter])
            self.low, self.high = self.low - span / 2, self.high + span / 2
        elif above:
            self.counts = np.concatenate([merged, np.zeros(BINS // 2, np.int64)])
            self.high = self.low + 2 * span
        else:
            self.counts = np.concatenate([np.zeros(BINS // 2, np.int64), merged])
            self.low = self.high - 2 * span

    def add(self, values: np.ndarray, extent: tuple[float, float]) -> None:
        """Count ``values``; ``extent`` is the (min, max) of all the values they were taken from."""
        self.min, self.max = min(self.min, extent[0]), max(self.max, extent[1])
        while self.min < self.low or self.max > self.high:
            self._double(self.min < self.low, self.max > self.high)
        bins = ((values - self.low) * (BINS / (self.high - self.low))).astype(np.int64)
        self.counts += np.bincount(np.clip(bins, 0, BINS - 1), minlength=BINS)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What to measure in the calibrated model."""

    recorded: dict[int, tuple[str, float, float]]  # every refinable activation
    box_chain: tuple[int, ...]  # tensors carrying the post-process box codes
    logit_chain: tuple[int, ...]  # tensors carrying the logits of the score sigmoid
    box_tensor: int | None  # post-process input 0
    score_tensor: int | None  # post-process input 1


def _upstream(start: int, producers: dict) -> list[int]:
    """``start`` and every tensor reaching it through pass-through ops."""
    chain, todo = [], [start]
    while todo:
        index = todo.pop()
        if index in chain:
            continue
        chain.append(index)
        op = producers.get(index)
        if op is not None and op.code in _PASS_THROUGH_OPS:
            todo.extend(t.index for t in op.inputs if t.index in producers)
    return chain


def _plan(model: TfliteModel) -> _Plan:
    ops = model.ops
    producers = {t.index: op for op in ops for t in op.outputs}
    inputs = {t.index for t in model.inputs}
    fixed: set[int] = set()  # tensor indices
    for op in ops:  # in execution order: a reshape of a sigmoid keeps the sigmoid's range
        sources = [t.index for t in op.inputs if t.index in producers]
        if op.code in _FIXED_RANGE_OPS or (
            op.code in _PASS_THROUGH_OPS and sources and all(i in fixed for i in sources)
        ):
            fixed.update(t.index for t in op.outputs)
    recorded = {}
    for index in producers:
        if index in inputs or index in fixed:
            continue
        tensor = model.tensors[index]
        quantization = tensor.quantization
        if (
            quantization is None
            or len(quantization.min) != 1
            or len(quantization.max) != 1
            or tensor.dtype != "float32"
        ):
            continue
        low, high = quantization.min[0], quantization.max[0]
        if high >= low:  # one value over the structure samples may be a range over all of them
            recorded[index] = (tensor.name, low, high)
    post = [op for op in ops if op.code == POSTPROCESS_OP]
    if len(post) != 1 or len(post[0].inputs) < 2:
        return _Plan(recorded, (), (), None, None)
    box_tensor, score_tensor = post[0].inputs[0].index, post[0].inputs[1].index
    box_chain = [i for i in _upstream(box_tensor, producers) if i in recorded]
    logit_chain = []
    # The converter may move the sigmoid before a reshape: look through those.
    sigmoids = [
        producers[i] for i in _upstream(score_tensor, producers) if i in producers and producers[i].code == "LOGISTIC"
    ]
    if sigmoids:
        logit_chain = [i for i in _upstream(sigmoids[0].inputs[0].index, producers) if i in recorded]
    return _Plan(recorded, tuple(box_chain), tuple(logit_chain), box_tensor, score_tensor)


def _histograms(
    model: TfliteModel, plan: _Plan, samples: Callable[[], Iterator[list[np.ndarray]]]
) -> tuple[dict[int, _Histogram], np.ndarray]:
    """(each activation's histogram and exact extent over the samples, box codes of candidate anchors).

    The activations are read as extra graph outputs (:meth:`TfliteModel.with_outputs`), so the
    model runs through XNNPACK, one thread: 300 samples of the 320x320 model took 19.6 s
    with the reference kernels that ``experimental_preserve_all_tensors`` needs.
    """
    from ai_edge_litert.interpreter import Interpreter

    read = [*plan.recorded, *(i for i in (plan.box_tensor, plan.score_tensor) if i is not None)]
    interpreter = Interpreter(model_content=model.with_outputs(read), num_threads=1)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    counts = {index: _Histogram(low, high) for index, (_, low, high) in plan.recorded.items()}
    candidates = []
    for position, sample in enumerate(samples()):
        for detail, value in zip(inputs, sample):
            interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interpreter.invoke()
        for index in plan.recorded:
            values = interpreter.get_tensor(index).ravel()
            stride = -(-values.size // MAX_VALUES_PER_SAMPLE)
            counts[index].add(values[position % stride :: stride], (float(values.min()), float(values.max())))
        if plan.box_tensor is not None:
            scores = interpreter.get_tensor(plan.score_tensor)[0]  # [anchors, 1 + classes]
            best = scores[:, 1:].max(axis=1) if scores.shape[1] > 1 else scores[:, 0]
            keep = np.argsort(-best)[:CANDIDATE_ANCHORS]
            candidates.append(interpreter.get_tensor(plan.box_tensor)[0][keep].ravel())
    codes = np.concatenate(candidates) if candidates else np.zeros(0, np.float32)
    return counts, codes


def _centres(low: float, high: float) -> np.ndarray:
    """Centres of the BINS equal bins over [low, high]."""
    return low + (np.arange(BINS) + 0.5) * ((high - low) / BINS)


def _expected_errors(counts: np.ndarray, low: float, high: float, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Expected squared error per value for every (lows[i], highs[j]) range.

    Values inside a range cost the rounding noise step^2 / 12; values outside
    cost their squared distance to the nearer end (saturation). Bins are
    represented by their centres.
    """
    centres = _centres(low, high)
    n = counts.astype(np.float64)
    total = n.sum()
    # Prefix sums of n, n*c, n*c^2 give each side's clipping error in O(1).
    s0 = np.concatenate([[0.0], np.cumsum(n)])
    s1 = np.concatenate([[0.0], np.cumsum(n * centres)])
    s2 = np.concatenate([[0.0], np.cumsum(n * centres**2)])
    lo_idx = np.clip(np.searchsorted(centres, lows), 0, BINS)  # bins below lows[i]
    hi_idx = np.clip(np.searchsorted(centres, highs, side="right"), 0, BINS)
    below = s2[lo_idx] - 2 * lows * s1[lo_idx] + lows**2 * s0[lo_idx]
    above_n = s0[-1] - s0[hi_idx]
    above = (s2[-1] - s2[hi_idx]) - 2 * highs * (s1[-1] - s1[hi_idx]) + highs**2 * above_n
    inside = s0[hi_idx][None, :] - s0[lo_idx][:, None]
    step = (highs[None, :] - lows[:, None]) / LEVELS
    return (below[:, None] + above[None, :] + inside * step**2 / 12.0) / max(total, 1.0)


def choose_range(
    counts: np.ndarray, low: float, high: float, extent: tuple[float, float] | None = None
) -> tuple[float, float, float, float]:
    """(min, max, clipped fraction, error ratio vs the recorded range) of one histogram.

    ``counts`` are BINS equal bins over [low, high]; ``extent`` is the
    recorded (min, max) of the values, inside it (default: [low, high]
    itself). The chosen range always holds 0 (int8 needs an exact zero) and
    each end is a fraction of the recorded end, so a one-sided activation
    (ReLU6) stays one-sided.
    """
    vmin, vmax = extent if extent is not None else (low, high)
    lows = min(vmin, 0.0) * _FRACTIONS if vmin < 0 else np.zeros(1)
    highs = max(vmax, 0.0) * _FRACTIONS if vmax > 0 else np.zeros(1)
    errors = _expected_errors(counts, low, high, lows, highs)
    i, j = np.unravel_index(np.argmin(errors), errors.shape)
    baseline = errors[-1, -1]  # both ends at the recorded values (fraction 1.0)
    centres = _centres(low, high)
    outside = counts[(centres < lows[i]) | (centres > highs[j])].sum()
    ratio = float(errors[i, j] / baseline) if baseline > 0 else 1.0
    return float(lows[i]), float(highs[j]), float(outside / max(counts.sum(), 1)), ratio


def _values_range(values: np.ndarray) -> tuple[float, float, float, float]:
    """:func:`choose_range` of raw values (histogram over their own extent)."""
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return min(low, 0.0), max(high, 0.0), 0.0, 1.0
    bins = ((values - low) * (BINS / (high - low))).astype(np.int64)
    return choose_range(np.bincount(np.clip(bins, 0, BINS - 1), minlength=BINS), low, high)


def refine_ranges(
    calibrated: bytes, samples: Callable[[], Iterator[list[np.ndarray]]]
) -> tuple[bytes, list[RangeChange]]:
    """The calibrated model with refined activation ranges, and what changed.

    Every calibrated activation gets its MSE-optimal range; then the two
    chains that feed the post-process op get ranges for what the post-process
    uses: the box codes (through their concatenation and reshapes, which
    share one scale) the range of the codes of the CANDIDATE_ANCHORS best
    scored anchors per image, and the logits before the score sigmoid
    +-LOGIT_LIMIT (clipped to the recorded range).

    Args:
      calibrated: a model from the converter's calibrate-only step.
      samples: the representative data (called once, as the converter does).

    Returns:
      (model bytes, one RangeChange per refined tensor, largest range cut first).
    """
    model = parse_model(calibrated, "calibrated model")
    plan = _plan(model)
    histograms, codes = _histograms(model, plan, samples)
    recorded = {index: (histograms[index].min, histograms[index].max) for index in plan.recorded}
    chosen = {}
    for index, (vmin, vmax) in recorded.items():
        histogram = histograms[index]
        if vmax > vmin:
            new_low, new_high, clipped, ratio = choose_range(
                histogram.counts, histogram.low, histogram.high, (vmin, vmax)
            )
            chosen[index] = ("mse", new_low, new_high, clipped, ratio)
        # else one value over all samples, so over the structure samples too: the calibrator's record stands
    if codes.size:
        box = ("box-codes", *_values_range(codes))
        chosen.update({index: box for index in plan.box_chain if index in chosen})
    for index in plan.logit_chain:
        vmin, vmax = recorded[index]
        if index in chosen:
            chosen[index] = ("logits", max(vmin, -LOGIT_LIMIT), min(vmax, LOGIT_LIMIT), 0.0, 1.0)

    changes = []
    for index, (rule, new_low, new_high, clipped, ratio) in chosen.items():
        name = plan.recorded[index][0]
        changes.append(RangeChange(name, recorded[index], (new_low, new_high), rule, clipped, ratio))
    changes.sort(key=lambda c: (c.chosen[1] - c.chosen[0]) / (c.recorded[1] - c.recorded[0]))
    refined = model.with_ranges({index: (low, high) for index, (_, low, high, _, _) in chosen.items()})
    return refined, changes
