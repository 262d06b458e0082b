"""COCO metrics on hand-made detections with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ktp_tflite.train.coco_eval import Detections, EvaluationError, coco_metrics
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Box, Dataset, Example

BOXES = (
    Box(0.10, 0.10, 0.20, 0.60, "nik"),
    Box(0.30, 0.10, 0.40, 0.70, "nama"),
    Box(0.50, 0.10, 0.60, 0.30, "jenis_kelamin"),
)


def _dataset(images: int = 2) -> Dataset:
    examples = [Example(image_id=f"img{i}.jpg", width=200, height=100, boxes=BOXES,
                        image_bytes=b"unused") for i in range(images)]
    return Dataset(examples=examples, source="test", format="synth")


def _perfect(dataset: Dataset, shift: float = 0.0, score: float = 0.9) -> list[Detections]:
    result = []
    for example in dataset.examples:
        boxes = np.array([[b.ymin, b.xmin + shift, b.ymax, b.xmax + shift] for b in example.boxes])
        result.append(Detections(example.image_id, boxes.astype(np.float32),
                                 np.array([b.class_index for b in example.boxes]),
                                 np.full(len(example.boxes), score, np.float32)))
    return result


def test_perfect_detections_score_one(capsys):
    dataset = _dataset()
    metrics = coco_metrics(dataset, _perfect(dataset))
    assert metrics.map == pytest.approx(1.0)
    assert metrics.map50 == pytest.approx(1.0) and metrics.map75 == pytest.approx(1.0)
    assert metrics.per_class_ap["nik"] == pytest.approx(1.0)
    assert metrics.per_class_ap["status_perkawinan"] is None  # no ground truth
    assert (metrics.num_images, metrics.num_boxes) == (2, 6)
    assert capsys.readouterr().out == ""  # pycocotools' prints went to stderr
    assert set(metrics.to_dict()) == {"map", "map50", "map75", "per_class_ap", "per_class_ap50",
                                      "num_images", "num_boxes"}


def test_shifted_boxes_pass_iou_half_but_not_tight():
    dataset = _dataset()
    # a shift of 0.05 of width: nik box 100 px wide -> IoU = 90/110 = 0.82
    metrics = coco_metrics(dataset, _perfect(dataset, shift=0.05))
    assert metrics.map50 == pytest.approx(1.0)
    assert metrics.per_class_ap50["jenis_kelamin"] == pytest.approx(1.0)  # 40 px wide: IoU 0.6
    assert metrics.per_class_ap["jenis_kelamin"] == pytest.approx(0.2, abs=0.01)  # .5, .55 of 10
    assert 0.3 < metrics.map < 0.9


def test_no_detections_and_missing_images_score_zero():
    dataset = _dataset()
    assert coco_metrics(dataset, []).map == 0.0
    half = coco_metrics(dataset, _perfect(dataset)[:1])
    assert half.map50 == pytest.approx(0.5, abs=0.01)


def test_wrong_class_scores_zero_for_that_class():
    dataset = _dataset(1)
    detections = _perfect(dataset)
    detections[0] = Detections("img0.jpg", detections[0].boxes, np.array([0, 1, 3]),
                               detections[0].scores)
    metrics = coco_metrics(dataset, detections)
    assert metrics.per_class_ap["jenis_kelamin"] == 0.0
    assert metrics.per_class_ap["status_perkawinan"] is None  # COCO: no ground truth, no AP
    assert metrics.per_class_ap["nik"] == pytest.approx(1.0)
    assert metrics.map == pytest.approx(2 / 3)  # mean over the classes with ground truth


def test_bad_detections_are_refused():
    dataset = _dataset(1)
    with pytest.raises(EvaluationError, match="not in test"):
        coco_metrics(dataset, [Detections("other.jpg", np.zeros((0, 4)), np.zeros(0), np.zeros(0))])
    with pytest.raises(EvaluationError, match="outside 0..4"):
        coco_metrics(dataset, [Detections("img0.jpg", np.zeros((1, 4)), np.array([len(CLASSES)]),
                                          np.ones(1))])
    empty = Dataset([Example("a.jpg", 10, 10, (), image_bytes=b"x")], "unlabelled", "images")
    with pytest.raises(EvaluationError, match="no labelled boxes"):
        coco_metrics(empty, [])
