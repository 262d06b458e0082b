"""A detector as the app runs it, for the reader's "detector" training crops.

:func:`app_box_detector` wraps a detector .tflite and one of the runtimes
(default the Task Library, with ktp-core's box mapping: what android_demo
crops from) into the :data:`ktp_tflite.train.reader_train.BoxDetector` that
:func:`ktp_tflite.train.reader_train.render_crops` calls on each chunk of
rendered photos. The reader then learns this detector's box errors (issue 14:
its boxes halved the NIKs read from exact boxes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ktp_tflite.convert.evaluate import card_boxes, detect_chunk
from ktp_tflite.convert.fields import to_pixels


def file_identity(path: str | Path) -> str:
    """``name sha256:<12 hex>`` of a model file: what a reader config records of its detector or warm start."""
    path = Path(path)
    return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def app_box_detector(path: str | Path, runtime: str = "task-library"):
    """Photos -> each photo's box per field in pixels, through ``runtime`` and the app's box mapping.

    The boxes a scan keeps (:func:`~ktp_tflite.convert.evaluate.card_boxes`).

    Raises:
      ModelLoadError: not a loadable five-field SSD detector (checked here, before any photo).
      RuntimeUnavailableError: the runtime is missing (when first called).
    """
    from ktp_tflite.convert.scan import bind_outputs, check_field_labels
    from ktp_tflite.convert.tflite_model import read_model

    path = Path(path)
    model = read_model(path)
    check_field_labels(bind_outputs(model))

    def detect(photos: list[np.ndarray]) -> list[dict[str, tuple[float, float, float, float]]]:
        found = detect_chunk(runtime, path, photos, [str(i) for i in range(len(photos))])
        return [
            {
                field: to_pixels(box, photo.shape[1], photo.shape[0])
                for field, box in card_boxes(one, photo.shape[1], photo.shape[0]).items()
            }
            for photo, one in zip(photos, found.app, strict=True)
        ]

    return detect
