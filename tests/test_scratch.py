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


def test_a_ctrl_c_just_after_the_folder_is_made_leaves_nothing(tmp_path, monkeypatch):
    import signal

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    real_mkdir = Path.mkdir

    def mkdir_then_ctrl_c(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # lands just after the folder exists, before the block runs

    monkeypatch.setattr(Path, "mkdir", mkdir_then_ctrl_c)
    ran = []
    # Ctrl-C as a terminal delivers it, even when the suite runs with SIGINT ignored (nohup, `cmd &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with private_tempdir("ktp-test-"):
                ran.append(True)
                import time

                time.sleep(1)  # not reached: the Ctrl-C comes first
    finally:
        signal.signal(signal.SIGINT, previous)
    assert list(tmp_path.iterdir()) == [] and ran == []  # the folder went with it
