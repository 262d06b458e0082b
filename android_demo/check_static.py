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
            kotlin-compiler that CI compiles with; every catalog version is
            exact (no "+", no latest.release); every libs.* accessor of the
            build files names a catalog entry.
  settings  DetectorSettings reads back exactly the keys its toBundle writes
            (same type), writes every field, and SettingsActivity returns it
            through toIntent: a key read that is never written would silently
            fall back to the default.
  runtimes  every DetectorRuntime entry the app names exists in ktp-core;
            every RuntimeChoice is created in ObjectDetectorHelper by a
            detector whose `runtime` (the box rule applied to its boxes) is
            that choice's DetectorRuntime.
  closing   every class holding a MediaPipe or Task Library ObjectDetector
            closes it in close(); the helper closes its detector in clear(),
            setup() clears first and MainActivity.onDestroy clears; no
            MPImage made from a frame is closed (that recycles the bitmap the
            overlay and the readers still use).

Usage: python3 check_static.py [--root DIR] [--manifest FILE]
Prints one line per check; exit status 1 if any check fails. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
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


EXACT_VERSION = re.compile(r"\d+(\.\d+)*")
BUILD_FILES = ("build.gradle.kts", "settings.gradle.kts", "app/build.gradle.kts", "ktp-core/build.gradle.kts")


def _accessor(name: str) -> str:
    """The Gradle accessor path of a catalog alias: '-', '_' and '.' all separate."""
    return re.sub(r"[-_.]", ".", name)


def check_catalog(root: Path) -> list[str]:
    """Catalog versions are exact and every libs.* accessor of the build files exists in the catalog."""
    path = root / "gradle" / "libs.versions.toml"
    try:
        catalog = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        return [f"{path}: cannot read the catalog: {error}"]
    problems = []
    versions = catalog.get("versions", {})
    for name, version in versions.items():
        if not isinstance(version, str) or not EXACT_VERSION.fullmatch(version):
            problems.append(f"{path}: version {name} = {version!r} is not an exact version (pin it)")
    for section in ("libraries", "plugins"):
        for name, entry in catalog.get(section, {}).items():
            version = entry.get("version") if isinstance(entry, dict) else None
            ref = version.get("ref") if isinstance(version, dict) else None  # version.ref = "..."
            if ref is not None and ref not in versions:
                problems.append(f"{path}: {section}.{name} refers to version {ref!r}, not in [versions]")
    libraries = {_accessor(name) for name in catalog.get("libraries", {})}
    plugins = {_accessor(name) for name in catalog.get("plugins", {})}
    for relative in BUILD_FILES:
        build = root / relative
        if not build.exists():
            continue
        for number, line in enumerate(build.read_text().splitlines(), start=1):
            code = line.split("//", 1)[0]  # comments may name the file libs.versions.toml
            for accessor in re.findall(r"\blibs\.([\w.]+)", code):
                if accessor.startswith("plugins."):
                    known = accessor[len("plugins."):] in plugins
                elif accessor.startswith("versions."):
                    known = _accessor(accessor[len("versions."):]) in {_accessor(v) for v in versions}
                else:
                    known = accessor in libraries
                if not known:
                    problems.append(f"{build}:{number}: libs.{accessor} is not in {path}")
    return problems


def _body(text: str, start: re.Pattern[str] | str) -> str | None:
    """The text inside the braces that open after the first match of ``start`` (None: no match)."""
    match = re.search(start, text)
    if match is None:
        return None
    opening = text.find("{", match.end() - 1)
    if opening < 0:
        return None
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[opening + 1 : index]
    return None


def _parens(text: str, start: str) -> str | None:
    """The text inside the parentheses that open at the end of the first match of ``start``."""
    match = re.search(start, text)
    if match is None:
        return None
    depth = 0
    for index in range(match.end() - 1, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[match.end() : index]
    return None


def _app_file(root: Path, name: str) -> Path | None:
    found = sorted((root / "app" / "src").rglob(name))
    return found[0] if found else None


def check_settings(root: Path) -> list[str]:
    """DetectorSettings' Bundle round trip: keys read == keys written, same types, every field written."""
    source = _app_file(root, "DetectorSettings.kt")
    if source is None:
        return [f"{root / 'app/src'}: no DetectorSettings.kt"]
    text = source.read_text()
    keys = dict(re.findall(r'const val (KEY_\w+) = "([^"]*)"', text))
    problems = []
    values = list(keys.values())
    for value in sorted({v for v in values if values.count(v) > 1}):
        problems.append(f"{source}: two setting keys are both {value!r}")
    to_bundle = _body(text, r"fun toBundle\(\)")
    from_bundle = _body(text, r"fun fromBundle\(")
    fields = _parens(text, r"data class DetectorSettings\(")
    if to_bundle is None or from_bundle is None or fields is None:
        return problems + [f"{source}: no data class DetectorSettings with toBundle() and fromBundle()"]
    writes = {key: (kind, value) for kind, key, value in re.findall(r"\bput(\w+)\((KEY_\w+),\s*([\w.]+)", to_bundle)}
    reads = {key: kind for kind, key in re.findall(r"\bget(\w+)\((KEY_\w+)", from_bundle)}
    for key in sorted(set(writes) | set(reads)):
        if key not in keys:
            problems.append(f"{source}: {key} is used but not declared")
    for key, kind in sorted(reads.items()):
        if key not in writes:
            problems.append(
                f"{source}: fromBundle reads {key} that toBundle never writes (SettingsActivity returns it)"
            )
        elif writes[key][0] != kind:
            problems.append(
                f"{source}: fromBundle reads {key} with get{kind}, toBundle writes it with put{writes[key][0]}"
            )
    for key in sorted(set(writes) - set(reads)):
        problems.append(f"{source}: toBundle writes {key} that fromBundle never reads")
    written = {value.split(".")[0] for _, value in writes.values()}
    for field in re.findall(r"\bval (\w+)\s*:", fields):
        if field not in written:
            problems.append(f"{source}: toBundle does not write the field {field}; the settings screen would drop it")
    activity = _app_file(root, "SettingsActivity.kt")
    if activity is None or not re.search(r"setResult\([^)]*settings\.toIntent\(\)\)", activity.read_text()):
        problems.append(f"{activity or root / 'app/src'}: SettingsActivity does not return settings.toIntent()")
    main = _app_file(root, "MainActivity.kt")
    if main is None or "DetectorSettings.fromBundle(data.extras)" not in main.read_text():
        problems.append(
            f"{main or root / 'app/src'}: MainActivity does not read the result with DetectorSettings.fromBundle"
        )
    return problems


def _enum_entries(text: str, name: str) -> list[tuple[str, str]]:
    """(entry, first constructor argument) of ``enum class name`` in ``text``."""
    body = _body(text, rf"enum class {name}\b")
    if body is None:
        return []
    return re.findall(r"^\s*([A-Z][A-Z0-9_]*)\(\s*([^,)]+)", body, flags=re.M)


def check_runtimes(root: Path) -> list[str]:
    """The app's runtimes exist in ktp-core, and each choice is run by a detector with its box rule."""
    core = root / "ktp-core" / "src" / "main" / "kotlin" / "org" / "ktptflite" / "core" / "RuntimeBoxes.kt"
    if not core.exists():
        return [f"{core}: missing (enum class DetectorRuntime)"]
    runtimes = dict(_enum_entries(core.read_text(), "DetectorRuntime"))
    if not runtimes:
        return [f"{core}: no enum class DetectorRuntime entries"]
    ids = {value.strip('"') for value in runtimes.values()}
    problems = []
    sources = {p: p.read_text() for p in sorted((root / "app" / "src").rglob("*.kt"))}
    for path, text in sources.items():
        for number, line in enumerate(text.splitlines(), start=1):
            for entry in re.findall(r"\bDetectorRuntime\.([A-Z][A-Z0-9_]*)\b", line):
                if entry not in runtimes:
                    problems.append(f"{path}:{number}: DetectorRuntime.{entry} is not in {core}")
            for runtime_id in re.findall(r'DetectorRuntime\.fromId\("([^"]*)"\)', line):
                if runtime_id not in ids:
                    problems.append(f"{path}:{number}: runtime id {runtime_id!r} is not in {core}")
    settings = _app_file(root, "DetectorSettings.kt")
    choices = _enum_entries(settings.read_text(), "RuntimeChoice") if settings else []
    if not choices:
        return problems + [f"{settings or root / 'app/src'}: no enum class RuntimeChoice"]
    helper = _app_file(root, "ObjectDetectorHelper.kt")
    branch = r"RuntimeChoice\.([A-Z][A-Z0-9_]*)\s*->\s*(\w+)\.create\("
    created = dict(re.findall(branch, helper.read_text())) if helper else {}
    seen = set()
    for choice, argument in choices:
        match = re.fullmatch(r"DetectorRuntime\.([A-Z][A-Z0-9_]*)", argument.strip())
        if match is None:
            problems.append(f"{settings}: RuntimeChoice.{choice} does not name a DetectorRuntime first")
            continue
        runtime = match.group(1)
        if runtime in seen:
            problems.append(f"{settings}: two RuntimeChoice entries run DetectorRuntime.{runtime}")
        seen.add(runtime)
        if choice not in created:
            problems.append(f"{helper}: ObjectDetectorHelper creates no detector for RuntimeChoice.{choice}")
            continue
        detector = created[choice]
        declared = [p for p, t in sources.items() if re.search(rf"\bclass {detector}\b", t)]
        rule_pattern = r"override val runtime\s*=\s*DetectorRuntime\.(\w+)"
        rule = re.search(rule_pattern, sources[declared[0]]) if declared else None
        if rule is None:
            problems.append(f"{root / 'app/src'}: {detector} declares no `override val runtime = DetectorRuntime.X`")
        elif rule.group(1) != runtime:
            problems.append(
                f"{declared[0]}: {detector} maps its boxes as DetectorRuntime.{rule.group(1)}, "
                f"but runs RuntimeChoice.{choice} (DetectorRuntime.{runtime})"
            )
    return problems


DETECTOR_IMPORTS = (
    "com.google.mediapipe.tasks.vision.objectdetector.ObjectDetector",
    "org.tensorflow.lite.task.vision.detector.ObjectDetector",
)


def check_closing(root: Path) -> list[str]:
    """Detectors are closed with their owner; frames handed to MediaPipe are not."""
    problems = []
    for path in sorted((root / "app" / "src").rglob("*.kt")):
        text = path.read_text()
        if any(re.search(rf"^import {re.escape(name)}$", text, flags=re.M) for name in DETECTOR_IMPORTS):
            held = re.findall(r"\bval (\w+): ObjectDetector\b", text)
            if "ObjectDetector.createFrom" in text and not held:
                problems.append(f"{path}: creates an ObjectDetector but holds none in a property it can close")
            close = _body(text, r"override fun close\(\)\s*\{") or ""
            one_line = re.findall(r"override fun close\(\)\s*=\s*(\w+)\??\.close\(\)", text)
            for name in held:
                if name not in one_line and not re.search(rf"\b{name}\??\.close\(\)", close):
                    problems.append(f"{path}: the ObjectDetector {name} is not closed in close()")
        for name in re.findall(r"\bval (\w+) = BitmapImageBuilder\(", text):
            if re.search(rf"\b{name}\.(close\(\)|use\b)", text):
                problems.append(
                    f"{path}: closes the MPImage {name}; MPImage.close() recycles the frame's bitmap, "
                    "which the overlay and the readers still use"
                )
        if re.search(r"BitmapImageBuilder\([^)]*\)\.build\(\)\.use\b", text):
            problems.append(f"{path}: closes an MPImage made from a frame (MPImage.close() recycles the bitmap)")
    helper = _app_file(root, "ObjectDetectorHelper.kt")
    main = _app_file(root, "MainActivity.kt")
    if helper is None or main is None:
        return problems + [f"{root / 'app/src'}: no ObjectDetectorHelper.kt or MainActivity.kt"]
    text = helper.read_text()
    if "detector?.close()" not in (_body(text, r"fun clear\(\)") or ""):
        problems.append(f"{helper}: clear() does not close the detector")
    if not re.match(r"\s*clear\(\)", _body(text, r"fun setup\(\)") or ""):
        problems.append(f"{helper}: setup() does not clear() the old detector first")
    if "detectorHelper.clear()" not in (_body(main.read_text(), r"override fun onDestroy\(\)") or ""):
        problems.append(f"{main}: onDestroy() does not clear() the detector helper")
    return problems


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
        "versions": (
            check_versions(args.root) + check_catalog(args.root),
            "Gradle Kotlin == npm kotlin-compiler; catalog versions exact; libs.* accessors exist",
        ),
        "settings": (check_settings(args.root), "DetectorSettings reads what SettingsActivity returns"),
        "runtimes": (check_runtimes(args.root), "app runtimes are ktp-core's, each with its own box rule"),
        "closing": (check_closing(args.root), "detectors closed with their owner; MediaPipe frames not closed"),
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
