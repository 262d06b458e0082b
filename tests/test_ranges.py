"""Range refinement for int8 (convert/ranges.py): the error model and the choice."""

from __future__ import annotations

import numpy as np
import pytest

from ktp_tflite.convert import ranges


def _histogram(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    low, high = float(values.min()), float(values.max())
    bins = ((values - low) * (ranges.BINS / (high - low))).astype(np.int64)
    return np.bincount(np.clip(bins, 0, ranges.BINS - 1), minlength=ranges.BINS), low, high


def _fake_quant_mse(values: np.ndarray, low: float, high: float) -> float:
    scale = (high - low) / ranges.LEVELS
    q = np.clip(np.round((values - low) / scale), 0, ranges.LEVELS)
    return float(np.mean((q * scale + low - values) ** 2))


def test_expected_error_matches_simulated_int8_rounding_and_clipping():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.0, 1.0, 400_000), rng.uniform(20, 60, 40)])
    counts, low, high = _histogram(values)
    lows = np.array([low, -4.0, -2.0])
    highs = np.array([high, 4.0, 2.0])
    predicted = ranges._expected_errors(counts, low, high, lows, highs)
    for i in range(3):
        for j in range(3):
            actual = _fake_quant_mse(values, lows[i], highs[j])
            assert predicted[i, j] == pytest.approx(actual, rel=0.1), (lows[i], highs[j])


def test_choose_range_cuts_rare_outliers():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.0, 1.0, 1_000_000), [-20.0, 22.0, 25.0]])
    counts, low, high = _histogram(values)
    new_low, new_high, clipped, ratio = ranges.choose_range(counts, low, high)
    # Two outliers above weigh as much as the rounding noise of a million values:
    # the high end stays above the body, the low end (one outlier) closes in.
    assert -6.0 < new_low < -3.0 and 3.0 < new_high < 15.0
    assert clipped < 1e-4  # the outliers and the normal tail below about -4
    assert ratio < 0.4
    # The choice beats the recorded range on the real values, not only on the model.
    assert _fake_quant_mse(values, new_low, new_high) < 0.4 * _fake_quant_mse(values, low, high)


def test_choose_range_keeps_a_tight_range_and_one_sided_activations():
    rng = np.random.default_rng(2)
    uniform = rng.uniform(-1.0, 1.0, 200_000)
    counts, low, high = _histogram(uniform)
    new_low, new_high, _, ratio = ranges.choose_range(counts, low, high)
    assert new_low == pytest.approx(low, rel=0.05) and new_high == pytest.approx(high, rel=0.05)
    assert ratio == pytest.approx(1.0, abs=0.05)
    relu6 = np.minimum(np.abs(rng.normal(0.0, 2.0, 200_000)), 6.0)
    counts, low, high = _histogram(relu6)
    new_low, new_high, _, _ = ranges.choose_range(counts, low, high)
    assert new_low == 0.0 and 0.0 < new_high <= high


def test_logit_limit_is_where_the_int8_sigmoid_saturates():
    # int8 LOGISTIC output: scale 1/256, zero point -128.
    def quantized_sigmoid(x):
        return np.clip(np.round(256.0 / (1.0 + np.exp(-x))) - 128, -128, 127)

    limit = ranges.LOGIT_LIMIT
    assert quantized_sigmoid(limit + 1e-3) == quantized_sigmoid(50.0) == 127
    assert quantized_sigmoid(-limit - 1e-3) == quantized_sigmoid(-50.0) == -128
    # Inside, the output still moves: the lower end saturates exactly at -limit
    # (the upper end earlier, at ln(254.5 / 1.5)).
    assert quantized_sigmoid(-limit + 0.1) > -128
    assert quantized_sigmoid(np.log(254.5 / 1.5) - 0.01) < 127


@pytest.mark.parametrize("later", ["above", "below", "both"])
def test_histogram_doubles_its_span_without_moving_a_count(later):
    rng = np.random.default_rng(3)
    first = rng.integers(0, ranges.BINS, 5000) + 0.5  # inside [0, BINS): one value per unit bin
    far = {"above": [3.5 * ranges.BINS], "below": [-2.5 * ranges.BINS], "both": [-2.5 * ranges.BINS,
                                                                               3.5 * ranges.BINS]}[later]
    second = np.concatenate([rng.integers(0, ranges.BINS, 100) + 0.5, far])
    histogram = ranges._Histogram(0.0, float(ranges.BINS))
    for values in (first, second):
        histogram.add(values, (float(values.min()), float(values.max())))
    assert histogram.low <= min(far + [0.0]) and histogram.high >= max(far + [float(ranges.BINS)])
    assert histogram.counts.sum() == first.size + second.size
    # the same counts as binning every value over the final span at once
    everything = np.concatenate([first, second])
    direct = np.histogram(everything, bins=ranges.BINS, range=(histogram.low, histogram.high))[0]
    np.testing.assert_array_equal(histogram.counts, direct)
    assert (histogram.min, histogram.max) == (everything.min(), everything.max())


def test_choose_range_over_a_wider_histogram_uses_the_recorded_extent():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(0.0, 1.0, 200_000), [-9.0, 12.0]])
    tight = np.histogram(values, bins=ranges.BINS, range=(values.min(), values.max()))[0]
    low, high = float(values.min()), float(values.max())
    alone = ranges.choose_range(tight, low, high)
    histogram = ranges._Histogram(-1.0, 1.0)  # the structure samples saw less; the span grew to 32
    histogram.add(values, (low, high))
    wide = ranges.choose_range(histogram.counts, histogram.low, histogram.high, (low, high))
    assert histogram.high - histogram.low == 32.0
    # ends are fractions of the recorded extent, never beyond it; the coarser bins choose nearly the same
    assert low <= wide[0] < 0 < wide[1] <= high
    assert wide[0] == pytest.approx(alone[0], rel=0.1) and wide[1] == pytest.approx(alone[1], rel=0.1)
    assert wide[3] < 1.0 and wide[3] == pytest.approx(alone[3], abs=0.05)  # as much better than the recorded range
