"""A scratch folder that also holds whatever libraries put in "the" temporary folder.

TensorFlow's converter and the runtime probes make temporary files and
folders of their own (``tempfile.mkdtemp()`` in ``tensorflow/lite/python``)
and leave them behind when a Ctrl-C lands at the wrong moment. Inside
:func:`private_tempdir` the process's temporary folder (``tempfile`` and
``TMPDIR``, which child processes inherit) is a fresh folder of ours, and
that folder goes, with everything in it, when the block ends, whatever
ended it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_tempdir(prefix: str = "ktp-") -> Iterator[Path]:
    """Yield a new folder that is the process's temporary folder until the block ends; then remove it.

    Not for concurrent use from threads: ``tempfile.tempdir`` and ``TMPDIR``
    are process-wide (restored on exit).
    """
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")  # before mkdtemp caches one
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(folder, ignore_errors=True)
