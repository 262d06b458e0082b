"""Issue 16: `ktpconvert quantize` stopped with Ctrl-C (SIGINT) while it converts.

The real command in a subprocess on a tiny TF1 graph: exit code 130, one
line saying what was not written, no file under --out or --debug-report and
no temporary in the output folder (TF's converter may leave its own scratch
folder in the system temporary folder when the signal lands inside it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action, as in a terminal.

    A test runner started in the background inherits SIGINT ignored, and a
    Python started with SIGINT ignored never raises KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return tiny_ssd.build_tf1_graph(tmp_path_factory.mktemp("graph") / "tflite_graph.pb")


@pytest.mark.parametrize("stage", [
    "converting",  # the line before the converter loads and converts the graph (C++)
    "calibrating",  # the calibration pass (TF's calibrator pulls our Python generator)
])
def test_sigint_exits_130_in_one_line_and_leaves_nothing(graph, tmp_path, stage):
    out_dir, scratch = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    scratch.mkdir()
    out, debug = out_dir / "ktp_int8.tflite", out_dir / "debug"
    # 200 cards to render keep it calibrating for many seconds after the signal's moment
    process = subprocess.Popen(
        [sys.executable, "-m", "ktp_tflite.convert.cli", "quantize", str(graph), "--out", str(out),
         "--representative", "synth:200", "--num-samples", "200", "--debug-report", str(debug)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(scratch)}, preexec_fn=_default_sigint)
    seen = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if line.startswith(stage):
            break
    assert seen and seen[-1].startswith(stage), "".join(seen)
    # TensorFlow loaded before it (reading the graph) without a line: cli/quiet_import.py
    assert seen[0].startswith("converting"), "".join(seen)
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=120)
    stderr = "".join(seen) + rest

    assert process.returncode == 130, stderr
    lines = stderr.splitlines()
    assert lines[-1] == f"Interrupted: {out} was not written"
    assert lines[-2].strip(), stderr  # no blank line before it, as click's "Aborted!" prints
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert stdout == ""  # no summary: nothing was made
    assert os.listdir(out_dir) == []  # neither output, no .NAME.*.tmp beside them
    # nothing in the temporary folder either: TF's converter's own mkdtemp folders were made
    # inside ours (train/scratch.py private_tempdir), which went with them
    assert list(scratch.iterdir()) == []
