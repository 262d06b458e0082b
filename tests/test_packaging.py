"""Packaging traps of the package_dir mapping (see STYLE.md) and honest dependencies."""

import ast
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
    assert found <= listed
    # the rest are data-only folders (package_data, no Python), listed so setuptools does not warn
    for extra in listed - found:
        top = next(name for name in MAPPED.values() if extra.startswith(name + "."))
        folder = ROOT / next(f for f, name in MAPPED.items() if name == top) / Path(*extra[len(top) + 1:].split("."))
        assert folder.is_dir() and not list(folder.glob("*.py")) and any(folder.iterdir()), extra
        assert extra in config["options.package_data"], extra


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ktp_tflite.convert.cli import main\n"
        "for args in (['--help'], ['data', '--help'], ['data', 'synth', '--help']):\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = ('tensorflow', 'keras', 'tflite_support', 'ai_edge_litert', 'numpy', 'PIL')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_console_script_runs():
    command = [sys.executable, "-m", "ktp_tflite.convert.cli", "--help"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
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


# Import names whose distribution is named differently (the longest dotted prefix wins); any
# other import name is taken as its own distribution name. cv2 comes from any OpenCV build.
DISTRIBUTIONS = {
    "PIL": ("pillow",),
    "cv2": ("opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless"),
    "fontTools": ("fonttools",),
    "google.protobuf": ("protobuf",),
    "official": ("tf-models-official",),
    "tensorflow_lite_support": ("tflite-support",),
    "tflite_support": ("tflite-support",),
}
FIRST_PARTY = "ktp_tflite"


def distribution_key(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Pillow`` and ``pillow`` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(setup_cfg: Path) -> set[str]:
    """Normalised names of install_requires and of every extra in ``setup_cfg``."""
    config = configparser.ConfigParser()
    config.read(setup_cfg)
    lines = config["options"]["install_requires"].splitlines()
    for requirements in config["options.extras_require"].values():
        lines += requirements.splitlines()
    names = (re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line) for line in lines)
    return {distribution_key(name.group(1)) for name in names if name}


def imported_modules(text: str, where: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``text``, function-level ones too."""
    found = []
    for node in ast.walk(ast.parse(text, where)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return sorted(found)


def distributions_of(module: str) -> tuple[str, ...] | None:
    """The distributions that may provide ``module``; None for the standard library and ktp_tflite."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == FIRST_PARTY:
        return None
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        if ".".join(parts[:length]) in DISTRIBUTIONS:
            return DISTRIBUTIONS[".".join(parts[:length])]
    return (top,)


def undeclared_imports(text: str, where: str, declared: set[str]) -> tuple[list[str], set[str]]:
    """(problems, distributions imported) of the third-party imports in ``text``."""
    problems, used = [], set()
    for line, module in imported_modules(text, where):
        candidates = distributions_of(module)
        if candidates is None:
            continue
        keys = {distribution_key(name) for name in candidates}
        if keys & declared:
            used |= keys & declared
        else:
            problems.append(
                f"{where}:{line}: imports {module} (distribution {' or '.join(candidates)}), which setup.cfg "
                "does not declare: add it to install_requires or an extra (or map the import name in "
                "tests/test_packaging.py DISTRIBUTIONS)"
            )
    return problems, used


def test_every_third_party_import_is_declared_in_setup_cfg():
    declared = declared_distributions(ROOT / "setup.cfg")
    problems, used = [], set()
    for folder in MAPPED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found, names = undeclared_imports(
                    path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), declared
                )
                problems += found
                used |= names
    assert problems == []
    # the scan did see the imports, so it cannot pass empty (these are imported today)
    assert {"tensorflow", "keras", "flatbuffers", "protobuf", "mediapipe", "pillow", "numpy", "click"} <= used


def test_undeclared_import_check_flags_missing_distributions():
    text = (
        "from __future__ import annotations\n"
        "import os, json\n"
        "from . import sibling\n"
        "from ktp_tflite.train.labels import CLASSES\n"
        "import numpy as np\n"
        "def lazy():\n"
        "    import cv2\n"
        "    from google.protobuf.message import DecodeError\n"
        "    from PIL import Image\n"
        "    import yaml\n"
        "import train.labels\n"
    )
    problems, used = undeclared_imports(text, "x.py", {"numpy", "pillow", "opencv-contrib-python"})
    assert used == {"numpy", "pillow", "opencv-contrib-python"}
    assert [p.split(" (")[0] for p in problems] == [
        "x.py:8: imports google.protobuf.message",
        "x.py:10: imports yaml",
        "x.py:11: imports train.labels",  # the repo folder, not the installed ktp_tflite.train
    ]
    assert "(distribution protobuf)" in problems[0]
    assert declared_distributions(ROOT / "setup.cfg") >= {"tensorflow", "pillow", "mediapipe", "pytest"}


# Issue 15: no module over ~400 lines without a written reason, given in its module docstring.
LONG_MODULE_LINES = 400
ONE_FILE_REASON = "Why one file:"


def long_modules_without_reason(root: Path) -> tuple[int, list[str]]:
    """(.py files scanned, "path (N lines)" of each one over the limit without the reason)."""
    scanned, offenders = 0, []
    for folder in MAPPED:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            scanned += 1
            text = path.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            name = path.relative_to(root).as_posix()
            if lines > LONG_MODULE_LINES and ONE_FILE_REASON not in (ast.get_docstring(ast.parse(text, name)) or ""):
                offenders.append(f"{name} ({lines} lines)")
    return scanned, offenders


def test_long_modules_say_why_they_are_one_file():
    scanned, offenders = long_modules_without_reason(ROOT)
    assert scanned > 50  # the scan saw the library folders, so it cannot pass empty
    assert offenders == [], (
        f"modules over {LONG_MODULE_LINES} lines need a short paragraph starting {ONE_FILE_REASON!r} at the end "
        "of their module docstring (what single concept or flow they hold, why the parts change together, "
        f"where they would split), or a split: {', '.join(offenders)}"
    )


def test_long_module_check_flags_modules_without_a_reason(tmp_path):
    body = "".join(f"X{k} = {k}\n" for k in range(LONG_MODULE_LINES))
    files = {
        "train/long.py": f'"""A long module."""\n{body}',  # 401 lines
        "train/short.py": '"""Short, no reason needed."""\nX = 1\n',
        "train/exact.py": f'"""Exactly at the limit."""\n{body[: body.rindex("X")]}',  # 400 lines
        "convert/reasoned.py": f'"""A long module.\n\nWhy one file: one concept.\n"""\n{body}',
        "convert/comment_only.py": f"# Why one file: said in a comment, not the docstring\n{body}",
        "benchmarks/tools/no_docstring.py": body + "Y = 0\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert long_modules_without_reason(tmp_path) == (6, [
        "train/long.py (401 lines)",
        "convert/comment_only.py (401 lines)",
        "benchmarks/tools/no_docstring.py (401 lines)",
    ])
