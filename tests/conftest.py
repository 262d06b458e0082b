"""Shared fixtures: tiny synthetic data sets rendered once per session."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _register_tiny_ssd() -> None:
    """Make tests/tiny_ssd.py importable as ``ktp_tests_tiny_ssd``.

    With ``--import-mode=importlib`` test files cannot import each other; the
    builder of tiny OD-API-style SSD graphs is shared through this one name.
    """
    name = "ktp_tests_tiny_ssd"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tiny_ssd.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_register_tiny_ssd()


@pytest.fixture(scope="session")
def small_synth():
    """12 synthetic 320x240 photos (seed 7), in memory."""
    from ktp_tflite.train.synth import SynthConfig, render_dataset

    return render_dataset(12, seed=7, config=SynthConfig(width=320, height=240))
