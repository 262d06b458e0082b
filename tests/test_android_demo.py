"""The Android demo's CI step (android_demo/ci.sh) and its static checks.

ci.sh compiles :ktp-core with the pinned npm kotlinc, runs its JUnit 5 tests
against tests/vectors/ktp_vectors.json, runs ktlint and check_static.py. It is
skipped only outside CI when a tool is missing; with CI=true a missing tool
fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktp_tflite.train.labels import CLASSES

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
MANIFEST = DEMO / "app" / "src" / "main" / "AndroidManifest.xml"
JUNIT_JAR = Path("/usr/share/java/junit-platform-console-standalone.jar")
CAMERA = '<uses-permission android:name="android.permission.CAMERA" />'


def _load_check_static():
    spec = importlib.util.spec_from_file_location("check_static", DEMO / "check_static.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_static = _load_check_static()


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("java", "node", "npm") if shutil.which(tool) is None]
    if not JUNIT_JAR.exists():
        missing.append(f"{JUNIT_JAR} (apt package junit5)")
    return missing


def test_ci_script_compiles_tests_and_lints_ktp_core():
    missing = _missing_tools()
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"tools missing outside CI: {', '.join(missing)}")
    assert not missing, f"CI needs {', '.join(missing)}"
    run = subprocess.run(
        ["bash", str(DEMO / "ci.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHON": sys.executable},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    found = int(re.search(r"\[\s*(\d+) tests found", output).group(1))
    succeeded = int(re.search(r"\[\s*(\d+) tests successful", output).group(1))
    failed = int(re.search(r"\[\s*(\d+) tests failed", output).group(1))
    # Every vector case is a test on the Kotlin side too.
    vectors = json.loads((DEMO.parent / "tests" / "vectors" / "ktp_vectors.json").read_text())
    vector_cases = sum(len(cases) for cases in vectors["nik"].values()) + len(vectors["detections"]["cases"])
    assert failed == 0 and succeeded == found
    assert found >= vector_cases
    assert "static checks: 8 passed, 0 failed" in output


def _run_static(manifest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEMO / "check_static.py"), "--manifest", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_static_checks_pass_on_the_shipped_manifest():
    run = _run_static(MANIFEST)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok   manifest" in run.stdout


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda text: text.replace(
                CAMERA, CAMERA + '\n    <uses-permission android:name="android.permission.INTERNET" />'
            ),
            "declares android.permission.INTERNET",
        ),
        (lambda text: text.replace(CAMERA, ""), "CAMERA is not declared"),
        (
            lambda text: text.replace("android.intent.category.LAUNCHER", "android.intent.category.DEFAULT"),
            "no activity with a MAIN/LAUNCHER",
        ),
        (lambda text: text.replace("</manifest>", ""), "cannot read the manifest"),
    ],
    ids=["internet_added", "camera_removed", "no_launcher", "broken_xml"],
)
def test_static_checks_fail_on_a_bad_manifest(tmp_path, edit, message):
    original = MANIFEST.read_text()
    bad = tmp_path / "AndroidManifest.xml"
    bad.write_text(edit(original))
    assert bad.read_text() != original
    run = _run_static(bad)
    assert run.returncode == 1
    assert f"FAIL manifest: {bad}: " in run.stdout and message in run.stdout


def test_removed_internet_entry_is_allowed():
    # The shipped manifest strips INTERNET merged in by ML Kit with tools:node="remove".
    assert 'android.permission.INTERNET" tools:node="remove"' in MANIFEST.read_text()
    assert check_static.check_manifest(MANIFEST) == []


def test_static_classes_match_the_label_source_of_truth():
    assert check_static.CLASSES == CLASSES


def test_asset_checks(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    assert check_static.check_assets(assets)[0] == []  # no model yet: nothing to check
    model = assets / check_static.MODEL_ASSET
    model.write_bytes(b"\x1c\0\0\0TFL3" + b"\0" * 32)
    problems = check_static.check_assets(assets)[0]
    assert any("no TFLite metadata" in p for p in problems)
    assert any("labels.txt: missing" in p for p in problems)
    model.write_bytes(b"\x1c\0\0\0TFL3" + b"\0" * 32 + b"TFLITE_METADATA")
    (assets / "labels.txt").write_text("\n".join(CLASSES[::-1]) + "\n")
    assert ["are not" in p for p in check_static.check_assets(assets)[0]] == [True]
    (assets / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    assert check_static.check_assets(assets)[0] == []


def test_source_and_version_checks(tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(DEMO / "gradle", root / "gradle")
    shutil.copy(DEMO / "package.json", root / "package.json")
    core = root / "ktp-core" / "src" / "main" / "kotlin"
    core.mkdir(parents=True)
    (core / "A.kt").write_text("package a\n\nimport android.graphics.RectF\n")
    app = root / "app" / "src"
    app.mkdir(parents=True)
    (app / "B.kt").write_text('val name = "other.tflite"\n')
    problems = check_static.check_sources(root)
    assert any("A.kt:3: ktp-core must not use Android APIs" in p for p in problems)
    assert any("no source loads the asset" in p for p in problems)
    assert check_static.check_versions(root) == []
    package = json.loads((root / "package.json").read_text())
    package["devDependencies"]["kotlin-compiler"] = "2.3.0"
    (root / "package.json").write_text(json.dumps(package))
    assert "differs from package.json" in check_static.check_versions(root)[0]
    assert check_static.check_sources(DEMO) == []


def test_npm_tools_are_pinned_in_the_lockfile():
    package = json.loads((DEMO / "package.json").read_text())
    lock = json.loads((DEMO / "package-lock.json").read_text())
    for name, version in package["devDependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly"
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version and locked["integrity"].startswith("sha512-")
    assert package["devDependencies"]["kotlin-compiler"].startswith("2.4.")


def test_min_sdk_check_catches_java_time_below_api_26(tmp_path):
    """ktp-core uses java.time: minSdk 24 without desugaring would crash on Android 7."""
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("check_static", DEMO / "check_static.py")
    check_static = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_static)
    root = tmp_path / "demo"
    shutil.copytree(DEMO / "ktp-core" / "src" / "main", root / "ktp-core" / "src" / "main")
    shutil.copytree(DEMO / "app" / "src" / "main" / "kotlin", root / "app" / "src" / "main" / "kotlin")
    gradle = (DEMO / "app" / "build.gradle.kts").read_text()
    assert check_static.check_min_sdk(DEMO) == []
    (root / "app" / "build.gradle.kts").write_text(gradle.replace("minSdk = 26", "minSdk = 24"))
    problems = check_static.check_min_sdk(root)
    assert len(problems) == 1 and "import java.time" in problems[0] and "minSdk 24" in problems[0]
    desugared = gradle.replace("minSdk = 26", "minSdk = 24").replace(
        "compileOptions {", "compileOptions {\n        isCoreLibraryDesugaringEnabled = true")
    (root / "app" / "build.gradle.kts").write_text(desugared)
    assert check_static.check_min_sdk(root) == []


APP = Path("app") / "src" / "main" / "kotlin" / "org" / "ktptflite" / "demo"


def _demo_copy(tmp_path: Path) -> Path:
    """The demo's sources, catalog and build files in ``tmp_path`` (no node_modules, no assets)."""
    root = tmp_path / "demo"
    shutil.copytree(DEMO / APP, root / APP)
    shutil.copytree(DEMO / "ktp-core" / "src" / "main", root / "ktp-core" / "src" / "main")
    shutil.copytree(DEMO / "gradle", root / "gradle")
    for name in check_static.BUILD_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / name, root / name)
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new))


def test_new_checks_pass_on_the_shipped_demo():
    assert check_static.check_catalog(DEMO) == []
    assert check_static.check_settings(DEMO) == []
    assert check_static.check_runtimes(DEMO) == []
    assert check_static.check_closing(DEMO) == []


def test_settings_check_catches_a_key_read_but_not_written(tmp_path):
    root = _demo_copy(tmp_path)
    settings = root / APP / "DetectorSettings.kt"
    assert check_static.check_settings(root) == []
    _edit(settings, "        putString(KEY_RUNTIME, runtime.name)\n", "")
    problems = check_static.check_settings(root)
    assert any("fromBundle reads KEY_RUNTIME that toBundle never writes" in p for p in problems)
    assert any("toBundle does not write the field runtime" in p for p in problems)


def test_settings_check_catches_types_duplicates_and_the_activity(tmp_path):
    root = _demo_copy(tmp_path)
    settings = root / APP / "DetectorSettings.kt"
    _edit(settings, "bundle.getFloat(KEY_THRESHOLD", "bundle.getInt(KEY_THRESHOLD")
    _edit(settings, 'KEY_READER = "reader"', 'KEY_READER = "runtime"')
    _edit(root / APP / "SettingsActivity.kt", "settings.toIntent()", "Intent()")
    problems = check_static.check_settings(root)
    assert any("reads KEY_THRESHOLD with getInt, toBundle writes it with putFloat" in p for p in problems)
    assert any("two setting keys are both 'runtime'" in p for p in problems)
    assert any("SettingsActivity does not return settings.toIntent()" in p for p in problems)
    assert len(problems) == 3


def test_runtime_check_catches_a_detector_with_another_box_rule(tmp_path):
    root = _demo_copy(tmp_path)
    assert check_static.check_runtimes(root) == []
    _edit(
        root / APP / "MediaPipeDetector.kt",
        "override val runtime = DetectorRuntime.MEDIAPIPE",
        "override val runtime = DetectorRuntime.TASK_LIBRARY",
    )
    problems = check_static.check_runtimes(root)
    assert len(problems) == 1
    assert "MediaPipeDetector maps its boxes as DetectorRuntime.TASK_LIBRARY" in problems[0]
    assert "RuntimeChoice.MEDIAPIPE (DetectorRuntime.MEDIAPIPE)" in problems[0]


def test_runtime_check_catches_unknown_runtimes_and_missing_branches(tmp_path):
    root = _demo_copy(tmp_path)
    _edit(
        root / APP / "DetectorSettings.kt",
        "TASK_LIBRARY(DetectorRuntime.TASK_LIBRARY,",
        "TASK_LIBRARY(DetectorRuntime.TFLITE_TASKS,",
    )
    helper = root / APP / "ObjectDetectorHelper.kt"
    text = helper.read_text()
    branch = next(line for line in text.splitlines() if "RuntimeChoice.MEDIAPIPE ->" in line)
    _edit(helper, branch + "\n", "")
    (root / APP / "Extra.kt").write_text('val r = org.ktptflite.core.DetectorRuntime.fromId("tflite")\n')
    problems = check_static.check_runtimes(root)
    assert any("DetectorRuntime.TFLITE_TASKS is not in" in p for p in problems)
    assert any("runtime id 'tflite' is not in" in p for p in problems)
    assert any("creates no detector for RuntimeChoice.MEDIAPIPE" in p for p in problems)


def test_closing_check_catches_unclosed_detectors_and_closed_frames(tmp_path):
    root = _demo_copy(tmp_path)
    assert check_static.check_closing(root) == []
    mediapipe = root / APP / "MediaPipeDetector.kt"
    _edit(mediapipe, "override fun close() = detector.close()", "override fun close() = Unit")
    built = "val image = BitmapImageBuilder(upright).build()\n"
    _edit(mediapipe, built, built + "        image.close()\n")
    _edit(root / APP / "ObjectDetectorHelper.kt", "        detector?.close()\n", "")
    _edit(root / APP / "MainActivity.kt", "            detectorHelper.clear()\n", "")
    problems = check_static.check_closing(root)
    assert any("MediaPipeDetector.kt: the ObjectDetector detector is not closed in close()" in p for p in problems)
    assert any("closes the MPImage image" in p for p in problems)
    assert any("clear() does not close the detector" in p for p in problems)
    assert any("onDestroy() does not clear() the detector helper" in p for p in problems)
    assert len(problems) == 4


def test_catalog_check_catches_loose_versions_and_unknown_accessors(tmp_path):
    root = _demo_copy(tmp_path)
    assert check_static.check_catalog(root) == []
    _edit(root / "gradle" / "libs.versions.toml", 'mediapipe-tasks = "1.0.0"', 'mediapipe-tasks = "latest.release"')
    _edit(root / "app" / "build.gradle.kts", "libs.mediapipe.tasks.vision", "libs.mediapipe.task.vision")
    problems = check_static.check_catalog(root)
    assert any("mediapipe-tasks = 'latest.release' is not an exact version" in p for p in problems)
    assert any("libs.mediapipe.task.vision is not in" in p for p in problems)
    assert len(problems) == 2
