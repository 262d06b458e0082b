"""``ktpconvert``: the command-line entry point.

Each command lives in its own module of this package and imports TensorFlow
(and every other heavy library) inside the command function only, so that
``ktpconvert --help`` stays fast and TF-free (tests/test_cli.py checks it).
Library errors (:class:`ktp_tflite.train.errors.KtpError`) become
``click.ClickException`` here and nowhere else: exit code 1, ``Error: ...``.
Ctrl-C ends a command with one line and exit code 130 (not click's
"Aborted!" and 1); while a command runs, SIGTERM ends it like Ctrl-C (exit
code 143), so the temporary files and folders of its outputs are removed
(``ktp_tflite.train.atomic_files``) instead of left behind.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import NoReturn

import click

from ktp_tflite.convert.cli import quiet_import
from ktp_tflite.train.errors import KtpError

# Modules of this package that define commands; each exposes COMMANDS, a list
# of click commands or groups to register on the top-level group.
_COMMAND_MODULES = (
    "data",
    "pipeline",
    "scan",
    "android_assets",
    "quantize",
    "evaluate",
    "train",
    "import_tf1",
    "reader",
)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143), so ``finally`` blocks clean up as on Ctrl-C.

    Only in the main thread and only when nobody else handles SIGTERM; like
    Ctrl-C it takes effect when Python regains control from a long C call.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_interrupted() -> NoReturn:
    """End a command after Ctrl-C with exit code 130, and no teardown noise after its message.

    A Ctrl-C inside TensorFlow's Session constructor leaves a half-built session
    whose ``__del__`` fails at exit ("Exception ignored ... no attribute
    '_session'", seen once in tests/test_quantize_interrupt.py under load):
    after the user's interrupt such noise is not theirs to read.
    """
    sys.unraisablehook = lambda unraisable: None
    raise SystemExit(130)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        with _terminate_as_exit():
            try:
                return super().invoke(ctx)
            except KtpError as error:
                raise click.ClickException(str(error)) from error
            except KeyboardInterrupt:  # outputs' temporaries are already removed (atomic_files)
                click.echo("Interrupted: no output was left half-written", err=True)
                exit_interrupted()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ktp-tflite")
def main() -> None:
    """ktp-tflite: KTP field detector from training data to an int8 TFLite model and an app.

    Pipeline: data -> train -> export -> quantize -> metadata -> evaluate ->
    benchmark -> android-assets. Run `ktpconvert COMMAND --help` for each step.
    """
    # TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines: cuInit,
    # the cuDNN/cuFFT/cuBLAS factory lines are logged as errors) and MediaPipe's
    # glog lines are noise for a CLI user: TensorFlow's own failures reach us as
    # Python exceptions. Explicit TF_CPP_MIN_LOG_LEVEL / GLOG_minloglevel win.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI (or
    # newer); without them its CPU kernels cannot take the gradient of a depthwise
    # convolution with unequal strides (the reader's 2x1), so `train-reader` failed on
    # AVX2-only machines. On everywhere, unless the user says otherwise (library users get
    # ktp_tflite.train.reader_train.require_onednn's error instead).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] not in ("0", "1"):  # TF 2.19 ignores the variable while it loads
        quiet_import.install("tensorflow")
    # google-api-core warns about Python 3.11's end of life (a venv made while
    # tf-models-official was a dependency still has it)
    warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(f"{__name__}.{_name}").COMMANDS:
        main.add_command(_command)

# Commands of higher layers (ktp_tflite.benchmarks) and plugins, declared in
# setup.cfg under [options.entry_points] ktp_tflite.commands.
for _entry in importlib.metadata.entry_points(group="ktp_tflite.commands"):
    main.add_command(_entry.load(), name=_entry.name)
