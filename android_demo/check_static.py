"""Static checks of the Android demo that need no Android SDK (run by ci.sh).

Checks:
  manifest  CAMERA is requested; INTERNET is not (an entry with
            tools:node="remove" is allowed: it strips the permission that a
            library would merge in); a launcher activity exists.
  assets    if a model is in app/src/main/assets, it is a TFLite file with
            metadata and labels.txt holds the five KTP classes in order; if
            the field reader is there, it is a TFLite file whose metadata
            packs charset.txt.
  sources   :ktp-core imports no android.* API; the app loads the same asset
            names that `ktpconvert android-assets` (detector) and
            `ktpconvert export-reader` (reader) write.
  versions  the Kotlin version of the Gradle catalog equals the npm
            kotlin-compiler that CI compiles with.

Usage: python3 check_static.py [--root DIR] [--manifest FILE]
Prints one line per check; exit status 1 if any check fails. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ANDROID = "{http://schemas.android.com/apk/res/android}"
TOOLS = "{http://schemas.android.com/tools}"
# Same as ktp_tflite.train.labels.CLASSES (tests/test_android_demo.py checks it).
CLASSES = ("nik", "nama", "jenis_kelamin", "status_perkawinan", "kewarganegaraan")
MODEL_ASSET = "ktp_detector.tflite"
LABELS_ASSET = "labels.txt"
# Same as ktp_tflite.convert.cli.reader.READER_INT8 and the reader's packed CHARSET_FILE.
READER_ASSET = "ktp_reader_int8.tflite"
READER_CHARSET = "charset.txt"


def check_manifest(path: Path) -> list[str]:
    """Problems of the AndroidManifest.xml at ``path`` (empty list: fine)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        return [f"{path}: cannot read the manifest: {error}"]
    problems = []
    granted = set()
    for element in root.iter("uses-permission"):
        name = element.get(f"{ANDROID}name", "")
        if element.get(f"{TOOLS}node") != "remove":
            granted.add(name)
    if "android.permission.CAMERA" not in granted:
        problems.append(f"{path}: android.permission.CAMERA is not declared")
    if "android.permission.INTERNET" in granted:
        problems.append(
            f"{path}: declares android.permission.INTERNET; the app must work offline and "
            "never send images or field values (remove it)"
        )
    launcher = False
    for activity in root.iter("activity"):
        for intent_filter in activity.iter("intent-filter"):
            actions = {a.get(f"{ANDROID}name") for a in intent_filter.iter("action")}
            categories = {c.get(f"{ANDROID}name") for c in intent_filter.iter("category")}
            if "android.intent.action.MAIN" in actions and "android.intent.category.LAUNCHER" in categories:
                launcher = True
    if not launcher:
        problems.append(f"{path}: no activity with a MAIN/LAUNCHER intent filter")
    return problems


def check_reader_asset(assets: Path) -> tuple[list[str], str]:
    """Problems of the field reader in the assets folder (none when it is absent), and a note."""
    reader = assets / READER_ASSET
    if not reader.exists():
        return [], f"no {READER_ASSET} (copy it from `ktpconvert export-reader --out DIR`)"
    data = reader.read_bytes()
    if data[4:8] != b"TFL3":
        return [f"{reader}: not a TFLite model"], ""
    if b"TFLITE_METADATA" not in data or READER_CHARSET.encode() not in data:
        return [f"{reader}: has no metadata with {READER_CHARSET}; export it with `ktpconvert export-reader`"], ""
    return [], f"{READER_ASSET} checked"


def check_assets(assets: Path) -> tuple[list[str], str]:
    """Problems of the assets folder, and a note on what was checked."""
    reader_problems, reader_note = check_reader_asset(assets)
    detector_problems, detector_note = _check_detector_asset(assets)
    return detector_problems + reader_problems, "; ".join(n for n in (detector_note, reader_note) if n)


def _check_detector_asset(assets: Path) -> tuple[list[str], str]:
    model = assets / MODEL_ASSET
    if not model.exists():
        return [], f"no {MODEL_ASSET} in {assets} (deliver one with `ktpconvert android-assets`)"
    problems = []
    data = model.read_bytes()
    if data[4:8] != b"TFL3":
        problems.append(f"{model}: not a TFLite model")
    elif b"TFLITE_METADATA" not in data:
        problems.append(f"{model}: has no TFLite metadata; the app reads its labels from it")
    labels = assets / LABELS_ASSET
    if not labels.exists():
        problems.append(f"{labels}: missing; `ktpconvert android-assets` writes it")
    else:
        names = tuple(line.strip() for line in labels.read_text().splitlines() if line.strip())
        if names != CLASSES:
            problems.append(f"{labels}: labels {list(names)} are not {list(CLASSES)}")
    return problems, f"{MODEL_ASSET} and {LABELS_ASSET} checked"


def check_sources(root: Path) -> list[str]:
    """ktp-core stays plain JVM; the app loads the asset android-assets writes."""
    problems = []
    for source in sorted((root / "ktp-core" / "src").rglob("*.kt")):
        for number, line in enumerate(source.read_text().splitlines(), start=1):
            if re.match(r"\s*import\s+(android|androidx)\.", line):
                problems.append(f"{source}:{number}: ktp-core must not use Android APIs ({line.strip()})")
    app_sources = "".join(p.read_text() for p in (root / "app" / "src").rglob("*.kt"))
    if f'"{MODEL_ASSET}"' not in app_sources:
        problems.append(f"{root / 'app'}: no source loads the asset {MODEL_ASSET!r}")
    # The reader's asset name is a ktp-core constant (ReaderModel.ASSET) that the app loads.
    core_sources = "".join(p.read_text() for p in (root / "ktp-core" / "src" / "main").rglob("*.kt"))
    if f'"{READER_ASSET}"' not in app_sources + core_sources:
        problems.append(f"{root}: no app or ktp-core source names the reader asset {READER_ASSET!r}")
    return problems


def check_versions(root: Path) -> list[str]:
    """The Gradle catalog's Kotlin version equals the npm kotlin-compiler used by CI."""
    catalog = (root / "gradle" / "libs.versions.toml").read_text()
    match = re.search(r'^kotlin\s*=\s*"([^"]+)"', catalog, flags=re.M)
    package = json.loads((root / "package.json").read_text())
    npm_version = package.get("devDependencies", {}).get("kotlin-compiler")
    if match is None:
        return [f"{root / 'gradle/libs.versions.toml'}: no kotlin version"]
    if match.group(1) != npm_version:
        return [
            f"{root / 'gradle/libs.versions.toml'}: kotlin {match.group(1)} differs from "
            f"package.json kotlin-compiler {npm_version}; keep them equal"
        ]
    return []


JAVA_TIME_MIN_SDK = 26  # java.time is in the Android platform from API 26 (Android 8.0)


def check_min_sdk(root: Path) -> list[str]:
    """java.time in ktp-core or the app needs minSdk >= 26 or core-library desugaring.

    On API 24-25 without desugaring, the first LocalDate call crashes the app
    (NoClassDefFoundError); nothing on the JVM, where ktp-core is tested, shows it.
    """
    gradle = (root / "app" / "build.gradle.kts").read_text()
    match = re.search(r"\bminSdk\s*=\s*(\d+)", gradle)
    if match is None:
        return [f"{root / 'app/build.gradle.kts'}: no minSdk"]
    desugared = re.search(r"isCoreLibraryDesugaringEnabled\s*=\s*true", gradle) is not None
    users = [
        f"{source}:{number}"
        for folder in (root / "ktp-core" / "src" / "main", root / "app" / "src" / "main")
        for source in sorted(folder.rglob("*.kt"))
        for number, line in enumerate(source.read_text().splitlines(), start=1)
        if re.match(r"\s*import\s+java\.time\b", line)
    ]
    if users and int(match.group(1)) < JAVA_TIME_MIN_SDK and not desugared:
        return [f"{users[0]} (and {len(users) - 1} more) import java.time, but "
                f"{root / 'app/build.gradle.kts'} has minSdk {match.group(1)} and no core-library "
                f"desugaring: raise minSdk to {JAVA_TIME_MIN_SDK} or enable desugaring"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--manifest", type=Path, help="default: ROOT/app/src/main/AndroidManifest.xml")
    args = parser.parse_args(argv)
    manifest = args.manifest or args.root / "app" / "src" / "main" / "AndroidManifest.xml"
    asset_problems, asset_note = check_assets(args.root / "app" / "src" / "main" / "assets")
    checks = {
        "manifest": (check_manifest(manifest), str(manifest)),
        "assets": (asset_problems, asset_note),
        "sources": (check_sources(args.root), f"ktp-core is plain JVM; app loads {MODEL_ASSET} and {READER_ASSET}"),
        "versions": (check_versions(args.root), "Gradle Kotlin == npm kotlin-compiler"),
        "min-sdk": (check_min_sdk(args.root), f"java.time only with minSdk >= {JAVA_TIME_MIN_SDK}"),
    }
    failed = 0
    for name, (problems, note) in checks.items():
        if problems:
            failed += 1
            for problem in problems:
                print(f"FAIL {name}: {problem}")
        else:
            print(f"ok   {name}: {note}")
    print(f"static checks: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
