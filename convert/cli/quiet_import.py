"""TensorFlow's load-time chatter kept off a CLI user's console.

TensorFlow 2.19 writes its CUDA probing (cuInit, the cuDNN/cuFFT/cuBLAS
factory lines, logged as errors, and absl's "All log messages before
absl::InitializeLog()" notice) to the process's standard error while it
loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442:
those lines come from absl logging, which that variable no longer reaches).
:func:`install` makes the first ``import tensorflow`` of the process run with
file descriptor 2 sent to a temporary file; when the import fails, what it
caught is written to standard error before the error goes on, so nothing a
user needs is lost. Only the CLI installs it (library code never touches
the process's descriptors), and only for that one import: TensorFlow's
messages later (a conversion's) are shown.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from types import ModuleType


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                self._loader.exec_module(module)
            except BaseException:
                sys.stderr.flush()
                os.dup2(saved, 2)
                caught.seek(0)
                sys.stderr.write(caught.read().decode("utf-8", "replace"))
                raise
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once: the real finders find it
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install(name: str = "tensorflow") -> None:
    """Quiet the first import of top-level module ``name`` in this process (no-op once it is loaded)."""
    if name in sys.modules or any(isinstance(f, _QuietFinder) and f.name == name for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder(name))
