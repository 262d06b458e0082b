#!/usr/bin/env bash
# Install everything ktp-tflite needs on a fresh Debian machine with Python 3.11,
# then run the main job (`ktpconvert pipeline`) on the bundled defaults.
#
#   bash quickstart.sh            # install + run the pipeline into ./out
#   bash quickstart.sh --no-run   # install only
#
# Installs: Debian fonts for the synthetic KTP renderer, libusb (tflite-support),
# JUnit 5 and a JDK for the Android core tests; a virtualenv .venv with the
# pinned Python stack and this package (editable); the npm tools of android_demo.
set -euo pipefail
cd "$(dirname "$0")"

run=1
[[ "${1:-}" == "--no-run" ]] && run=0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
APT_PACKAGES=(python3-venv fonts-ocr-a fonts-liberation2 fonts-croscore fonts-dejavu-core fonts-freefont-ttf fonts-noto-core fonts-noto-mono libusb-1.0-0 junit5 default-jdk-headless npm)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# a JDK or npm installed outside apt (as on some images) is as good
if command -v javac >/dev/null; then missing=("${missing[@]/default-jdk-headless}"); fi
if command -v npm >/dev/null; then missing=("${missing[@]/npm}"); fi
if python3 -m venv --help >/dev/null 2>&1; then missing=("${missing[@]/python3-venv}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if (( ${#missing[@]} )); then
  echo "== apt-get install ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
echo "== pip install -e .[test,mediapipe]" >&2
.venv/bin/python -m pip install -q --upgrade pip
# One resolve for the package, its tests and MediaPipe Tasks (an app runtime that
# `evaluate` measures through): numpy 2.1, protobuf 3.20, absl-py 2.5, nothing pinned
# against anything else (the separate step was for tf-models-official, no longer a dependency).
# PYTHONWARNINGS drops the one notice setuptools' editable build gives every package_dir mapping
# ("Editable installation ... folders with the same name as your package"; strict and compat modes
# print one too): no folder here is named ktp_tflite, and only that message is filtered.
PYTHONWARNINGS='ignore:Editable installation.:UserWarning:setuptools.command.editable_wheel' \
  .venv/bin/python -m pip install -q -e '.[test,mediapipe]'

if [[ -f android_demo/package-lock.json ]]; then
  echo "== npm ci (android_demo tools: kotlinc, ktlint)" >&2
  (cd android_demo && npm ci --no-audit --no-fund --loglevel=error)
fi

if (( run )); then
  echo "== ktpconvert pipeline --out out --force" >&2
  .venv/bin/ktpconvert pipeline --out out --force
fi
