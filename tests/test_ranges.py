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
