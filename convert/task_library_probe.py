"""Run the TFLite Task Library ObjectDetector on images; print detections as JSON.

Run as ``python -m ktp_tflite.convert.task_library_probe MODEL IMAGE...`` in a
process of its own: tflite-support's task bindings crash when TensorFlow was
imported first, so this module blocks TensorFlow before importing them and
imports nothing else of the project. Prints one JSON document on stdout:
``{"images": [{"image": path, "detections": [{"index", "label", "score",
"box": [x, y, w, h]}]}]}`` or ``{"error": message}`` with exit code 1.
"""

from __future__ import annotations

import json
import sys


def _detect(model_path: str, image_paths: list[str]) -> dict:
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # see module docstring
    from tflite_support.task import core, processor, vision

    options = vision.ObjectDetectorOptions(
        base_options=core.BaseOptions(file_name=model_path, num_threads=1),
        detection_options=processor.DetectionOptions(score_threshold=0.0),
    )
    detector = vision.ObjectDetector.create_from_options(options)
    images = []
    for path in image_paths:
        result = detector.detect(vision.TensorImage.create_from_file(path))
        detections = []
        for detection in result.detections:
            box = detection.bounding_box
            category = detection.categories[0]
            detections.append({
                "index": int(category.index),
                "label": category.category_name,
                "score": float(category.score),
                "box": [box.origin_x, box.origin_y, box.width, box.height],
            })
        images.append({"image": path, "detections": detections})
    return {"images": images}


def main(argv: list[str]) -> int:
    """Entry point; returns the exit code."""
    if len(argv) < 2:
        print(json.dumps({"error": "usage: task_library_probe MODEL IMAGE..."}))
        return 2
    try:
        result = _detect(argv[0], argv[1:])
    except Exception as error:  # noqa: BLE001 - reported to the parent as data
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
