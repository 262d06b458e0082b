"""Detections of a .tflite detector through the runtimes apps use.

Three runtimes, each taken exactly as an app gets it:

- ``litert``: the LiteRT interpreter fed by this toolkit
  (:class:`~ktp_tflite.convert.detector.TfliteDetector`: our resize, float
  boxes);
- ``task-library``: tflite-support's ``ObjectDetector`` (the TFLite Task
  Library that ``android_demo`` runs);
- ``mediapipe``: MediaPipe Tasks ``ObjectDetector``.

The last two resize the photo themselves and return boxes in whole pixels of
the photo; they run in subprocesses of their own
(:mod:`ktp_tflite.convert.runtime_probe` says why). Every runtime gets the
same decoded pixels, or, with ``presize``, a *pre-sized frame*
(:func:`presized_frame`): the photo already resized to the model input by this
toolkit's resize, each pixel repeated ``presize`` x ``presize`` times. Both
runtimes' resizes of such a frame give back exactly that model input (each of
their sample points falls inside one repeated block), and their whole pixels
are ``presize`` times finer in model units (convert/RUNTIMES.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.scratch import private_tempdir

RUNTIMES = ("litert", "task-library", "mediapipe")
_MODULES = {"litert": "ai_edge_litert", "task-library": "tflite_support", "mediapipe": "mediapipe"}
PROBE_TIMEOUT_S = 120
PROBE_SECONDS_PER_IMAGE = 1.0
PRESIZE_FACTORS = (2, 3, 4, 5, 6, 7, 8)  # factor 1 would hand back model-input whole pixels, 1-2 px of a photo
APP_PRESIZE = 4  # android_demo's factor (ktp-core ModelInput.PRESIZE_FACTOR): a 1280x1280 frame for 320x320
APP_RUNTIME = "mediapipe"  # android_demo's default runtime


class RuntimeUnavailableError(KtpError, RuntimeError):
    """A runtime is not installed, cannot load the model, or crashed."""


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes whose Python package is installed, in :data:`RUNTIMES` order."""
    return tuple(r for r in RUNTIMES if importlib.util.find_spec(_MODULES[r]) is not None)


def run_probe(runtime: str, model_path: str | Path, images: Sequence[np.ndarray]) -> list[list[dict]]:
    """Raw detections of ``runtime`` (task-library or mediapipe) per image, from a subprocess.

    Each detection is ``{"index", "label", "score", "box": [x, y, w, h]}`` in
    whole pixels of the image, as the runtime returned it.

    Raises:
      RuntimeUnavailableError: not installed, the model is refused, or the probe crashed.
    """
    if runtime not in RUNTIMES[1:]:
        raise ValueError(f"no probe for runtime {runtime!r}")
    if importlib.util.find_spec(_MODULES[runtime]) is None:
        raise RuntimeUnavailableError(
            f"runtime {runtime} is not installed (pip install {_MODULES[runtime].replace('_', '-')})"
        )
    with private_tempdir("ktp-probe-") as folder:  # the probe's own temporaries go in it too (Ctrl-C)
        paths = []
        for number, image in enumerate(images):
            path = Path(folder) / f"{number}.npy"
            np.save(path, np.ascontiguousarray(image, dtype=np.uint8))
            paths.append(str(path))
        listing = Path(folder) / "images.txt"
        listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "ktp_tflite.convert.runtime_probe", runtime, str(model_path), str(listing)]
        timeout = PROBE_TIMEOUT_S + PROBE_SECONDS_PER_IMAGE * len(paths)
        try:
            done = subprocess.run(
                command,
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={
                    **os.environ,
                    "TF_CPP_MIN_LOG_LEVEL": "2",  # TMPDIR is the folder
                    "GLOG_minloglevel": "2",
                },
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeUnavailableError(f"{model_path}: {runtime} probe timed out") from error
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeUnavailableError(
            f"{model_path}: {runtime} probe crashed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeUnavailableError(f"{model_path}: {runtime} cannot use the model: {result['error']}")
    if len(result["images"]) != len(images):
        raise RuntimeUnavailableError(
            f"{model_path}: {runtime} probe answered for {len(result['images'])} of {len(images)} images"
        )
    return result["images"]


def presized_frame(image: np.ndarray, model_size: tuple[int, int], factor: int) -> np.ndarray:
    """``image`` resized to ``model_size`` (width, height) as we resize, each pixel repeated ``factor`` x ``factor``.

    What an app hands a runtime so that the runtime's own resize changes
    nothing: the Task Library samples block ``x`` at ``(x + 0.5) * factor -
    0.5`` and MediaPipe at ``x * factor``, both inside block ``x``, so both
    feed the model exactly :func:`ktp_tflite.train.preprocess.resize_rgb`'s
    pixels, and their whole-pixel boxes are ``factor`` times finer.
    """
    from ktp_tflite.train.preprocess import resize_rgb

    if factor not in PRESIZE_FACTORS:
        raise ValueError(f"presize factor must be one of {', '.join(map(str, PRESIZE_FACTORS))}, got {factor}")
    model_input = resize_rgb(image, model_size[1], model_size[0])
    return np.repeat(np.repeat(model_input, factor, axis=0), factor, axis=1)


def photo_box(
    runtime: str,
    box: Sequence[float],
    photo_size: tuple[int, int],
    model_size: tuple[int, int],
    *,
    presized: bool = False,
) -> tuple[float, float, float, float]:
    """A runtime's returned box ``[x, y, w, h]`` as ``(left, top, right, bottom)`` photo pixels, de-biased.

    What each runtime does to a box (read from their sources and measured by
    :mod:`ktp_tflite.convert.resize_probe`; convert/RUNTIMES.md):

    - task-library: samples the photo on our half-pixel grid; the origin is
      truncated to whole pixels (float -> int), the size rounded. So the
      origin is on average 0.5 px low: add 0.5.
    - mediapipe: samples at ``x * scale`` (corner-aligned), 0.5 * (scale - 1)
      photo px left of our grid, so the model sees the card that far right
      and so are its boxes; origin and size are both truncated.
    - litert (this toolkit's resize and float boxes): unchanged.

    ``presized``: the photo given was a :func:`presized_frame`, whose repeated
    blocks make MediaPipe's grid sample the same pixels as ours: no shift,
    the truncation alone is undone.

    ``photo_size`` and ``model_size`` are (width, height). ktp-core's
    ``RuntimeBoxes`` applies the same rule (shared vectors:
    tests/vectors/ktp_vectors.json, runtime_boxes).
    """
    x, y, w, h = (float(v) for v in box)
    if runtime == "litert":
        return x, y, x + w, y + h
    if runtime == "task-library":
        return x + 0.5, y + 0.5, x + 0.5 + w, y + 0.5 + h
    if runtime == "mediapipe":
        shift_x = 0.0 if presized else 0.5 * (photo_size[0] / model_size[0] - 1.0)
        shift_y = 0.0 if presized else 0.5 * (photo_size[1] / model_size[1] - 1.0)
        left, top = x + 0.5 - shift_x, y + 0.5 - shift_y
        return left, top, left + w + 0.5, top + h + 0.5
    raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")


def pixel_detections(
    raw: list[dict],
    width: int,
    height: int,
    image_id: str,
    labels: Sequence[str],
    *,
    app_mapping: tuple[str, tuple[int, int], bool] | None = None,
) -> Detections:
    """A runtime's whole-pixel ``[x, y, w, h]`` boxes as normalised :class:`Detections`.

    ``width`` and ``height`` are those of the image the runtime was given.
    Boxes are taken exactly as returned, or, with ``app_mapping`` = (runtime,
    model (width, height), presized), through :func:`photo_box` as ktp-core
    maps them.
    MediaPipe leaves the category index unset and names the label; the index
    is then the label's position in ``labels`` (the model's label file).
    """
    corners = [
        photo_box(app_mapping[0], d["box"], (width, height), app_mapping[1], presized=app_mapping[2])
        if app_mapping
        else (d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3])
        for d in raw
    ]
    boxes = np.array(
        [[top / height, left / width, bottom / height, right / width] for left, top, right, bottom in corners],
        dtype=np.float64,
    ).reshape(-1, 4)
    return Detections(
        image_id=image_id,
        boxes=boxes,
        classes=np.array(
            [d["index"] if d["index"] is not None else labels.index(d["label"]) for d in raw], dtype=np.int64
        ),
        scores=np.array([d["score"] for d in raw], dtype=np.float32),
    )


@dataclasses.dataclass(frozen=True)
class RuntimeDetections:
    """One model's detections through one runtime, two ways.

    ``returned``: boxes exactly as the runtime returned them. ``app``: the
    same detections with boxes mapped as ktp-core maps them
    (:func:`photo_box`); for litert both are the same.
    """

    runtime: str
    returned: list[Detections]
    app: list[Detections]


def detect_images(
    runtime: str,
    model_path: str | Path,
    images: Sequence[np.ndarray],
    image_ids: Sequence[str],
    *,
    presize: int | None = None,
) -> RuntimeDetections:
    """Detections of one model on ``images`` through ``runtime``.

    ``presize``: hand the task-library or mediapipe runtime each photo as a
    :func:`presized_frame` of this factor instead of the photo (litert, which
    this toolkit feeds itself, is unchanged). Boxes are normalised, so they
    are the photo's either way.

    Raises:
      RuntimeUnavailableError: the runtime is missing or cannot run the model.
      ModelLoadError: the file is not a loadable SSD detector.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "litert":
        from ktp_tflite.convert.detector import load_detector

        detector = load_detector(model_path)
        found = [detector.detect(image, image_id) for image, image_id in zip(images, image_ids, strict=True)]
        return RuntimeDetections(runtime, found, found)
    from ktp_tflite.convert.tflite_model import read_model

    model = read_model(model_path)  # parsed once: the labels and the input size, no interpreter
    labels = model.labels or ()
    model_height, model_width = model.input_size
    model_size = (model_width, model_height)
    given = [presized_frame(image, model_size, presize) for image in images] if presize else images
    raw = run_probe(runtime, model_path, given)
    returned, app = [], []
    mapping = (runtime, model_size, bool(presize))
    for answer, image, image_id in zip(raw, given, image_ids, strict=True):
        height, width = image.shape[:2]
        returned.append(pixel_detections(answer, width, height, image_id, labels))
        app.append(pixel_detections(answer, width, height, image_id, labels, app_mapping=mapping))
    return RuntimeDetections(runtime, returned, app)
