"""train/scratch.py: a library's temporaries made inside private_tempdir go with it."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ktp_tflite.train.scratch import private_tempdir


def test_temporaries_of_this_process_and_its_children_land_inside_and_go(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(KeyboardInterrupt), private_tempdir("ktp-test-") as folder:
        assert folder.parent == tmp_path
        made = Path(tempfile.mkdtemp())  # as TF's converter does
        child = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert made.parent == folder and Path(child).parent == folder
        raise KeyboardInterrupt  # a Ctrl-C inside the block
    assert not folder.exists() and list(tmp_path.iterdir()) == []
    assert os.environ["TMPDIR"] == str(tmp_path) and tempfile.tempdir is None
