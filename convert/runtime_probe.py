"""Run an app runtime's ObjectDetector on images; print its detections as JSON.

Run as ``python -m ktp_tflite.convert.runtime_probe RUNTIME MODEL LIST_FILE``
in a process of its own, where RUNTIME is ``task-library`` (tflite-support's
``ObjectDetector``, what the Android Task Library runs) or ``mediapipe``
(MediaPipe Tasks ``ObjectDetector``). Each runtime is imported alone: the
Task Library's bindings crash in a process that imported TensorFlow, and the
Task Library and MediaPipe cannot be imported into one process (both register
a pybind11 type ``StatusCode``). So this module blocks the other two before
importing its runtime and imports nothing of the project.

LIST_FILE holds one ``.npy`` path per line: a uint8 RGB [H, W, 3] array, the
decoded photo. Arrays, not image files, so that every runtime sees exactly the
pixels the parent decoded (as an app hands its runtime a decoded bitmap) and
only the runtime's own resizing differs.

Prints one JSON document on stdout: ``{"runtime", "images": [[{"index",
"label", "score", "box": [x, y, w, h]}...]...]}`` with the boxes exactly as
the runtime returns them (whole pixels of the photo), or ``{"error": message}``
with exit code 1.
"""

from __future__ import annotations

import json
import sys

RUNTIMES = ("task-library", "mediapipe")


def _block(*modules: str) -> None:
    for name in modules:
        sys.modules[name] = None  # type: ignore[assignment]  # see module docstring


def _as_dict(detection) -> dict:
    """One detection of either runtime (both have ``categories`` and a pixel ``bounding_box``)."""
    category, box = detection.categories[0], detection.bounding_box
    return {
        "index": None if category.index is None else int(category.index),  # None: MediaPipe
        "label": category.category_name,
        "score": float(category.score),
        "box": [box.origin_x, box.origin_y, box.width, box.height],
    }


def _task_library(model_path: str, arrays: list) -> list[list[dict]]:
    _block("tensorflow", "mediapipe")
    from tflite_support.task import core, processor, vision

    options = vision.ObjectDetectorOptions(
        base_options=core.BaseOptions(file_name=model_path, num_threads=1),
        detection_options=processor.DetectionOptions(score_threshold=0.0),
    )
    detector = vision.ObjectDetector.create_from_options(options)
    images = []
    for array in arrays:
        result = detector.detect(vision.TensorImage.create_from_array(array))
        images.append([_as_dict(d) for d in result.detections])
    return images


def _mediapipe(model_path: str, arrays: list) -> list[list[dict]]:
    _block("tensorflow", "tflite_support")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ObjectDetectorOptions(
        base_options=BaseOptions(model_asset_path=model_path),
        running_mode=vision.RunningMode.IMAGE,
        score_threshold=0.0,
        max_results=-1,
    )
    detector = vision.ObjectDetector.create_from_options(options)
    images = []
    try:
        for array in arrays:
            result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=array))
            images.append([_as_dict(d) for d in result.detections])
    finally:
        detector.close()  # its __del__ raises a TypeError at interpreter exit otherwise
    return images


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    if len(argv) != 3 or argv[0] not in RUNTIMES:
        print(json.dumps({"error": f"usage: runtime_probe {{{'|'.join(RUNTIMES)}}} MODEL LIST_FILE"}))
        return 2
    runtime, model_path, list_file = argv
    try:
        import numpy as np

        with open(list_file, encoding="utf-8") as listing:
            arrays = [np.ascontiguousarray(np.load(line.strip())) for line in listing if line.strip()]
        run = _task_library if runtime == "task-library" else _mediapipe
        images = run(model_path, arrays)
    except Exception as error:  # noqa: BLE001 - reported to the parent as data
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps({"runtime": runtime, "images": images}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
