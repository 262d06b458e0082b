"""``ktpconvert``: the command-line entry point.

Each command lives in its own module of this package and imports TensorFlow
(and every other heavy library) inside the command function only, so that
``ktpconvert --help`` stays fast and TF-free (tests/test_cli.py checks it).
Library errors (:class:`ktp_tflite.train.errors.KtpError`) become
``click.ClickException`` here and nowhere else: exit code 1, ``Error: ...``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os

import click

from ktp_tflite.train.errors import KtpError

# Modules of this package that define commands; each exposes COMMANDS, a list
# of click commands or groups to register on the top-level group.
_COMMAND_MODULES = ("data", "pipeline", "scan", "android_assets", "quantize", "evaluate", "train",
                    "import_tf1")


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KtpError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ktp-tflite")
def main() -> None:
    """ktp-tflite: KTP field detector from training data to an int8 TFLite model and an app.

    Pipeline: data -> train -> export -> quantize -> metadata -> evaluate ->
    benchmark -> android-assets. Run `ktpconvert COMMAND --help` for each step.
    """
    # TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is
    # noise for a CLI user; an explicit TF_CPP_MIN_LOG_LEVEL wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(f"{__name__}.{_name}").COMMANDS:
        main.add_command(_command)

# Commands of higher layers (ktp_tflite.benchmarks) and plugins, declared in
# setup.cfg under [options.entry_points] ktp_tflite.commands.
for _entry in importlib.metadata.entry_points(group="ktp_tflite.commands"):
    main.add_command(_entry.load(), name=_entry.name)
