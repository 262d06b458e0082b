"""Field selection and geometry against the vectors shared with Kotlin ktp-core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ktp_tflite.convert.fields import (
    DetectionOutputError,
    iou,
    model_to_sensor,
    select_fields,
)
from ktp_tflite.train.labels import CLASSES

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ktp_vectors.json").read_text())
DETECTIONS = VECTORS["detections"]


def _select(case, **overrides):
    args = dict(
        sensor_width=case["sensor_width"],
        sensor_height=case["sensor_height"],
        rotation_degrees=case["rotation_degrees"],
        threshold=case["threshold"],
        overlap_iou=case["overlap_iou"],
    )
    args.update(overrides)
    return select_fields(
        case["boxes"], case["classes"], case["scores"], case["count"], DETECTIONS["labels"], **args
    )


def test_vector_labels_are_the_canonical_classes():
    assert tuple(DETECTIONS["labels"]) == CLASSES


@pytest.mark.parametrize("case", DETECTIONS["cases"], ids=lambda case: case["name"])
def test_selection_matches_vectors(case):
    result = _select(case)
    chosen = {f.label: f for f in result.fields}
    assert set(chosen) == set(case["expected_rows"])
    assert list(result.missing) == case["missing"]
    assert [f.label for f in result.fields] == [c for c in CLASSES if c in chosen]
    for label, row in case["expected_rows"].items():
        field = chosen[label]
        assert field.score == pytest.approx(case["scores"][row])
        assert field.class_id == CLASSES.index(label)
        clipped = [min(1.0, max(0.0, v)) for v in case["boxes"][row]]
        assert field.box_model == pytest.approx(clipped)
    for label, expected in case.get("expected_boxes", {}).items():
        for key, values in expected.items():
            assert getattr(chosen[label], key) == pytest.approx(values, abs=1e-3), key
    if "expected_image_size" in case:
        assert [result.image_width, result.image_height] == case["expected_image_size"]
    json.dumps(result.to_dict())


def test_numpy_float32_outputs_as_the_interpreter_gives_them():
    case = DETECTIONS["cases"][0]
    result = select_fields(
        np.asarray(case["boxes"], np.float32),
        np.asarray(case["classes"], np.float32),
        np.asarray(case["scores"], np.float32),
        np.float32(case["count"]),
        CLASSES,
        sensor_width=640,
        sensor_height=480,
    )
    assert [f.label for f in result.fields] == list(CLASSES)
    document = json.loads(json.dumps(result.to_dict()))
    assert document["fields"]["nik"]["box"] == pytest.approx([192.0, 96.0, 512.0, 124.8], abs=1e-3)
    assert document["image"] == {
        "width": 640,
        "height": 480,
        "sensor_width": 640,
        "sensor_height": 480,
        "rotation_degrees": 0,
    }


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_model_to_sensor_agrees_with_rotating_real_pixels(rotation):
    # Mark a rectangle in a sensor buffer, rotate the buffer upright the way
    # CameraX rotationDegrees means (clockwise), find the rectangle there,
    # and check that mapping it back lands on the marked pixels.
    sensor = np.zeros((48, 64), np.uint8)
    sensor[5:17, 10:40] = 1  # rows 5..16, columns 10..39
    upright = np.rot90(sensor, k=-rotation // 90)
    rows = np.flatnonzero(upright.any(axis=1))
    cols = np.flatnonzero(upright.any(axis=0))
    height, width = upright.shape
    box = (rows[0] / height, cols[0] / width, (rows[-1] + 1) / height, (cols[-1] + 1) / width)
    ymin, xmin, ymax, xmax = model_to_sensor(box, rotation)
    assert (ymin * 48, xmin * 64, ymax * 48, xmax * 64) == pytest.approx((5, 10, 17, 40))


def test_iou():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 0.5, 1), (0.5, 0, 1, 1)) == 0.0
    assert iou((0, 0, 0.2, 0.2), (0.1, 0.1, 0.3, 0.3)) == pytest.approx(0.01 / 0.07)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(rotation_degrees=45), "rotation"),
        (dict(sensor_width=0), "image size"),
        (dict(threshold=1.5), "threshold"),
    ],
)
def test_bad_arguments_raise(change, message):
    with pytest.raises(DetectionOutputError, match=message):
        _select(DETECTIONS["cases"][0], **change)


def test_inconsistent_outputs_raise():
    with pytest.raises(DetectionOutputError, match="disagree"):
        select_fields([[0, 0, 1, 1]], [0, 1], [0.9], 1, CLASSES, sensor_width=1, sensor_height=1)
    with pytest.raises(DetectionOutputError, match=r"\[N, 4\]"):
        select_fields([[0, 0, 1]], [0], [0.9], 1, CLASSES, sensor_width=1, sensor_height=1)
