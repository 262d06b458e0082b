"""Packaging traps of the package_dir mapping (see STYLE.md)."""

import configparser
import re
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


# A citation of the project's reference documents: "docs/REFERENCES.md, '<heading>'"
# on one line (optionally followed by ", item 6" and the like). "NOT in docs/X.md" says a
# fact is absent from the whole document and needs no section.
CITATION = re.compile(
    r"(?P<negation>NOT in )?"
    r"(?P<path>[\w./-]*(?:REFERENCES|TRAINING-PROBE)\.md)"
    r"(?:, '(?P<section>[^']+)')?"
)
CITING_FOLDERS = ("train", "convert", "benchmarks")


def markdown_headings(path: Path) -> set[str]:
    """The text of every ATX heading (``## Title``) outside code fences."""
    headings, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            headings.add(heading.group(1))
    return headings


def citation_problems(text: str, where: str) -> tuple[list[str], list[str]]:
    """(problems, cited document paths) of every reference-document citation in ``text``."""
    problems, cited = [], []
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        path, section = match["path"], match["section"]
        document = (ROOT / path).resolve()
        cited.append(path)
        if path.startswith("/") or not document.is_relative_to(ROOT) or not document.is_file():
            problems.append(f"{where}:{line}: cites {path}, which is not a file of the repository")
        elif section is None and not match["negation"]:
            problems.append(f"{where}:{line}: cites {path} without a section ({path}, '<heading>')")
        elif section is not None and section not in markdown_headings(document):
            problems.append(f"{where}:{line}: {path} has no heading {section!r}")
    return problems, cited


def test_reference_citations_name_a_repo_file_and_heading():
    problems, cited = [], []
    for folder in CITING_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8")
                found, names = citation_problems(text, str(path.relative_to(ROOT)))
                problems += found
                cited += names
    assert problems == []
    # the scan did see the citations (profiles, projection, trainer), so it cannot pass empty
    assert set(cited) == {"docs/REFERENCES.md", "docs/TRAINING-PROBE.md"}
    assert len(cited) > 50


def test_citation_check_flags_stale_citations():
    good = "from docs/REFERENCES.md, 'Pixel CPU cores'; NOT in docs/REFERENCES.md: A75 pipes"
    assert citation_problems(good, "x.py") == ([], ["docs/REFERENCES.md", "docs/REFERENCES.md"])
    stale = (
        "GPU fallback (REFERENCES.md pitfall 6)\n"
        "see docs/REFERENCES.md 'Pixel CPU cores'\n"
        "docs/TRAINING-PROBE.md, 'No such heading'\n"
        "/work/shared/REFERENCES.md, 'Pixel CPU cores'\n"
    )
    problems, _ = citation_problems(stale, "x.py")
    assert problems == [
        "x.py:1: cites REFERENCES.md, which is not a file of the repository",
        "x.py:2: cites docs/REFERENCES.md without a section (docs/REFERENCES.md, '<heading>')",
        "x.py:3: docs/TRAINING-PROBE.md has no heading 'No such heading'",
        "x.py:4: cites /work/shared/REFERENCES.md, which is not a file of the repository",
    ]
