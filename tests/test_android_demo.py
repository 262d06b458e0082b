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
    assert "static checks: 5 passed, 0 failed" in output


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
