"""Shared fixtures: tiny synthetic data sets rendered once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def small_synth():
    """12 synthetic 320x240 photos (seed 7), in memory."""
    from ktp_tflite.train.synth import SynthConfig, render_dataset

    return render_dataset(12, seed=7, config=SynthConfig(width=320, height=240))
