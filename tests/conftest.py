"""Shared fixtures: tiny synthetic data sets rendered once per session."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as the CLI sets it (convert/cli/__init__.py says why)


def _register_helpers() -> None:
    """Make the test helpers importable: tests/tiny_ssd.py as ``ktp_tests_tiny_ssd``, vector_file.py as ``ktp_tests_vector_file``.

    With ``--import-mode=importlib`` test files cannot import each other; the
    builder of tiny OD-API-style SSD graphs and the shared vectors' writer are
    shared through these names.
    """
    for name, file in (("ktp_tests_tiny_ssd", "tiny_ssd.py"), ("ktp_tests_vector_file", "vector_file.py")):
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


_register_helpers()


@pytest.fixture(scope="session")
def small_synth():
    """12 synthetic 320x240 photos (seed 7), in memory."""
    from ktp_tflite.train.synth import SynthConfig, render_dataset

    return render_dataset(12, seed=7, config=SynthConfig(width=320, height=240))
