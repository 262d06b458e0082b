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
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _remove(folder: Path) -> None:
    for _ in range(5):  # a library thread may still be closing a file in it
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.05)


@contextlib.contextmanager
def private_tempdir(prefix: str = "ktp-") -> Iterator[Path]:
    """Yield a new folder that is the process's temporary folder until the block ends; then remove it.

    The folder's name is chosen before it is made, so a Ctrl-C at any moment,
    even just after ``mkdir``, finds the cleanup knowing what to remove. Not
    for concurrent use from threads: ``tempfile.tempdir`` and ``TMPDIR`` are
    process-wide (restored on exit).
    """
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    base = Path(tempfile.gettempdir())
    folder = base / f"{prefix}{secrets.token_hex(8)}"
    while folder.exists():  # 64 random bits: practically never
        folder = base / f"{prefix}{secrets.token_hex(8)}"
    try:
        folder.mkdir(mode=0o700)
        tempfile.tempdir = str(folder)
        os.environ["TMPDIR"] = str(folder)
        yield folder
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        _remove(folder)
