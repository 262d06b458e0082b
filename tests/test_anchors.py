"""SSD anchors (OD API create_ssd_anchors) and the faster-rcnn box coder."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ktp_tflite.train import box_coder
from ktp_tflite.train.anchors import (
    anchors_per_location,
    feature_map_sizes,
    generate_anchors,
    layer_box_specs,
    num_anchors,
)
from ktp_tflite.train.config import preset


@pytest.fixture(scope="module")
def coco():
    return preset("coco-parity").model


def test_coco_parity_has_1917_anchors_in_six_layers(coco):
    assert feature_map_sizes(coco) == [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert anchors_per_location(coco) == [3, 6, 6, 6, 6, 6]
    anchors = generate_anchors(coco)
    assert anchors.shape == (1917, 4) and anchors.dtype == np.float32
    assert num_anchors(coco) == 1917


def test_coco_parity_scales_and_aspect_ratios(coco):
    specs = layer_box_specs(coco.anchors, 6)
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    scales = [0.2, 0.35, 0.5, 0.65, 0.8, 0.95]
    for layer in range(1, 6):
        got = specs[layer]
        assert [a for _, a in got] == [1.0, 2.0, 0.5, 3.0, 0.3333, 1.0]
        assert all(s == pytest.approx(scales[layer]) for s, _ in got[:5])
        following = scales[layer + 1] if layer < 5 else 1.0
        assert got[5][0] == pytest.approx(math.sqrt(scales[layer] * following))


def test_layout_is_ycenter_xcenter_h_w_in_y_x_anchor_order(coco):
    anchors = generate_anchors(coco)
    step = 1.0 / 19
    # First location (row 0, col 0): three anchors of layer 0.
    np.testing.assert_allclose(anchors[0], [step / 2, step / 2, 0.1, 0.1], rtol=1e-6)
    root2 = math.sqrt(2.0)
    np.testing.assert_allclose(anchors[1], [step / 2, step / 2, 0.2 / root2, 0.2 * root2], rtol=1e-6)
    np.testing.assert_allclose(anchors[2], [step / 2, step / 2, 0.2 * root2, 0.2 / root2], rtol=1e-6)
    # Next location moves along x first.
    np.testing.assert_allclose(anchors[3, :2], [step / 2, 1.5 * step], rtol=1e-6)
    # Row 1 starts after 19 locations.
    np.testing.assert_allclose(anchors[19 * 3, :2], [1.5 * step, step / 2], rtol=1e-6)
    # Layer 1 (10x10, 6 anchors) starts at 19*19*3 = 1083.
    np.testing.assert_allclose(anchors[1083], [0.05, 0.05, 0.35, 0.35], rtol=1e-6)
    # The last anchor: the 1x1 layer's interpolated anchor, centred.
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)


def test_other_presets_count_matches_their_grids():
    for name in ("ktp", "tiny"):
        model = preset(name).model
        sizes = feature_map_sizes(model)
        per = anchors_per_location(model)
        assert generate_anchors(model).shape[0] == sum(h * w * n for (h, w), n in zip(sizes, per))
    assert feature_map_sizes(preset("ktp").model) == [(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)]


def test_box_coder_round_trip_and_known_code():
    anchors = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.05, 0.05]], np.float32)
    boxes = np.array([[0.45, 0.35, 0.65, 0.75], [0.05, 0.85, 0.2, 0.95]], np.float32)
    codes = box_coder.encode(boxes, anchors)
    # Box 0: centre (0.55, 0.55), size (0.2, 0.4): ty = 0.05 / 0.2 * 10, tx = 0.05 / 0.4 * 10.
    np.testing.assert_allclose(codes[0], [2.5, 1.25, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(box_coder.decode(codes, anchors), boxes, atol=1e-6)


def test_box_coder_tensorflow_matches_numpy():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    anchors = generate_anchors(preset("tiny").model)
    codes = rng.normal(size=anchors.shape).astype(np.float32)
    np.testing.assert_allclose(
        box_coder.decode(tf.constant(codes), tf.constant(anchors)).numpy(),
        box_coder.decode(codes, anchors),
        atol=1e-6,
    )
