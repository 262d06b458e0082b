"""The CLI's quiet first import of TensorFlow (convert/cli/quiet_import.py), on stand-in modules.

A module that writes to file descriptor 2 while it loads, as TensorFlow 2.19's C++ start-up does:
nothing reaches standard error; when its import fails, what it wrote comes out before the error.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHATTY = 'import os\nos.write(2, b"E0000 cuda_dnn.cc] Unable to register cuDNN factory\\n")\n'


def _run(tmp_path, module_body: str, script: str) -> subprocess.CompletedProcess:
    (tmp_path / "chatty.py").write_text(module_body)
    code = "import sys\nsys.path.insert(0, sys.argv[1])\n" + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)


def test_the_first_import_writes_nothing_to_stderr(tmp_path):
    done = _run(tmp_path, CHATTY + "VALUE = 7\n", """
        from ktp_tflite.convert.cli import quiet_import
        quiet_import.install("chatty")
        import chatty
        print(chatty.VALUE)
        sys.stderr.write("ours\\n")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "7\n" and done.stderr == "ours\n"  # fd 2 is back after the import


def test_without_it_the_module_is_heard(tmp_path):  # the stand-in does what the test claims
    done = _run(tmp_path, CHATTY, "import chatty\n")
    assert "Unable to register cuDNN factory" in done.stderr


def test_a_failing_import_shows_what_it_wrote_and_the_error(tmp_path):
    done = _run(tmp_path, CHATTY + 'raise ImportError("libcudart.so: cannot open")\n', """
        from ktp_tflite.convert.cli import quiet_import
        quiet_import.install("chatty")
        import chatty
    """)
    assert done.returncode == 1
    assert done.stderr.index("Unable to register cuDNN factory") < done.stderr.index("libcudart.so: cannot open")


def test_the_cli_installs_it_for_tensorflow():
    code = """
import sys
from click.testing import CliRunner
from ktp_tflite.convert.cli import main, quiet_import
CliRunner().invoke(main, ["data", "--help"])  # the group callback runs first
print([getattr(f, "name", None) for f in sys.meta_path if isinstance(f, quiet_import._QuietFinder)])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.stdout.strip() == "['tensorflow']", done.stderr
