"""Packaging traps of the package_dir mapping (see STYLE.md)."""

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"train": "ktp_tflite.train", "convert": "ktp_tflite.convert", "benchmarks": "ktp_tflite.benchmarks"}


def test_every_python_folder_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for folder, package in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == listed


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ktp_tflite.convert.cli import main\n"
        "for args in (['--help'], ['data', '--help'], ['data', 'synth', '--help']):\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tflite_support', 'ai_edge_litert', 'numpy', 'PIL') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "ktp_tflite.convert.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "data" in out.stdout
