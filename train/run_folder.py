"""The layout of a detector run folder and of an export folder: the one place that names their files.

A run folder (``RUN_DIR``) is written by ``ktpconvert train`` (or
``import-tf1``) and read by ``export``, ``train --resume`` and the tools:

- ``config.json``: the full resolved :class:`~ktp_tflite.train.config.RunConfig`;
- ``checkpoints/ckpt-N``: ``tf.train.Checkpoint`` files (step, model,
  optimizer) with TensorFlow's ``checkpoint`` index naming the newest;
- ``tensorboard/train``, ``tensorboard/val``: TensorBoard event files;
- ``history.jsonl``: one JSON line per progress line (the training curve);
- ``metrics.json``: the latest validation metrics; ``eval_history.jsonl``
  every evaluation;
- ``tf1_import.json``: only in a folder ``import-tf1`` wrote (what was
  imported; ``import-tf1 --force`` replaces only such folders).

An export folder (``ktpconvert export RUN_DIR --out DIR``) holds
``saved_model/`` (the SavedModel ending in the fused post-process),
``model_float.tflite``, ``labels.txt`` (five classes only) and ``export.json``.

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ktp_tflite.train.config import RunConfig, run_config_from_json
from ktp_tflite.train.errors import KtpError

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
HISTORY_FILE = "history.jsonl"
METRICS_FILE = "metrics.json"
EVAL_HISTORY_FILE = "eval_history.jsonl"
IMPORT_FILE = "tf1_import.json"

SAVED_MODEL_DIR = "saved_model"
FLOAT_TFLITE_FILE = "model_float.tflite"
LABELS_FILE = "labels.txt"
EXPORT_SUMMARY_FILE = "export.json"


class RunDirError(KtpError, ValueError):
    """A run folder that is missing, incomplete, or would be overwritten."""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True, init=False)
class RunFolder:
    """A detector training run folder (see the module docstring for its layout).

    Attributes:
      path: the folder; it need not exist yet (``train`` creates it).
    """

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        """``config.json``: the resolved run config."""
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: the folder of ``tf.train.CheckpointManager``."""
        return self.path / CHECKPOINT_DIR

    def tensorboard(self, split: str) -> Path:
        """``tensorboard/<split>`` ("train" or "val"): a TensorBoard log folder."""
        return self.path / TENSORBOARD_DIR / split

    @property
    def history(self) -> Path:
        """``history.jsonl``: one record per progress line."""
        return self.path / HISTORY_FILE

    @property
    def metrics(self) -> Path:
        """``metrics.json``: the latest validation metrics and their step."""
        return self.path / METRICS_FILE

    @property
    def eval_history(self) -> Path:
        """``eval_history.jsonl``: every validation run."""
        return self.path / EVAL_HISTORY_FILE

    @property
    def tf1_import(self) -> Path:
        """``tf1_import.json``: what ``import-tf1`` imported (only in such folders)."""
        return self.path / IMPORT_FILE

    def check(self) -> RunFolder:
        """This folder, if it is a run folder (it holds ``config.json``).

        Raises:
          RunDirError: no such folder, or no config in it (names the folder
            and what to pass instead).
        """
        if not self.config.is_file():
            raise RunDirError(
                f"{self.path}: no {CONFIG_FILE}, so not a run folder; pass a folder "
                "that `ktpconvert train` or `ktpconvert import-tf1` wrote"
            )
        return self

    def read_config(self) -> RunConfig:
        """The run's ``config.json``.

        Raises:
          RunDirError: not a run folder (see :meth:`check`).
          ConfigError: the config is not valid (names the file).
        """
        self.check()
        return run_config_from_json(self.config.read_text(encoding="utf-8"), str(self.config))

    def latest_checkpoint(self) -> str | None:
        """Prefix of the newest checkpoint (``.../checkpoints/ckpt-N``), or None."""
        import tensorflow as tf

        return tf.train.latest_checkpoint(str(self.checkpoints))

    def require_checkpoint(self) -> str:
        """Prefix of the newest checkpoint of a run folder.

        Raises:
          RunDirError: not a run folder, or it holds no checkpoint yet.
        """
        self.check()
        prefix = self.latest_checkpoint()
        if prefix is None:
            raise RunDirError(f"{self.path}: no checkpoint in {CHECKPOINT_DIR}/; train first")
        return prefix

    def history_records(self) -> list[dict[str, Any]]:
        """The records of ``history.jsonl`` ([] before the first progress line)."""
        return _jsonl(self.history)

    def eval_records(self) -> list[dict[str, Any]]:
        """The records of ``eval_history.jsonl`` ([] before the first evaluation)."""
        return _jsonl(self.eval_history)

    def read_metrics(self) -> dict[str, Any]:
        """The latest validation metrics (``metrics.json``).

        Raises:
          RunDirError: the run has not been evaluated (no ``--val`` data?).
        """
        if not self.metrics.is_file():
            raise RunDirError(f"{self.path}: no {METRICS_FILE}; train with validation data to evaluate the run")
        return json.loads(self.metrics.read_text(encoding="utf-8"))


def saved_model_variables(saved_model: str | os.PathLike[str]) -> Path:
    """The checkpoint prefix of a SavedModel's variables (``variables/variables``)."""
    return Path(saved_model) / "variables" / "variables"


@dataclasses.dataclass(frozen=True, init=False)
class ExportFolder:
    """The folder ``ktpconvert export`` writes (see the module docstring).

    Attributes:
      path: the folder.
    """

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def saved_model(self) -> Path:
        """``saved_model/``: the input of ``ktpconvert quantize``."""
        return self.path / SAVED_MODEL_DIR

    @property
    def float_tflite(self) -> Path:
        """``model_float.tflite``."""
        return self.path / FLOAT_TFLITE_FILE

    @property
    def labels(self) -> Path:
        """``labels.txt`` (written for the five KTP classes only)."""
        return self.path / LABELS_FILE

    @property
    def summary(self) -> Path:
        """``export.json``: post-process options, input size, source checkpoint."""
        return self.path / EXPORT_SUMMARY_FILE
