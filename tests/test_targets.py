"""Target assignment and losses on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ktp_tflite.train import box_coder, targets
from ktp_tflite.train.anchors import corners_to_center_size
from ktp_tflite.train.losses import LossConfig, detection_loss, focal_loss

# Four quadrant anchors and one wide top-half anchor.
ANCHORS = np.array(
    [
        [0.0, 0.0, 0.5, 0.5],  # 0: top-left
        [0.0, 0.5, 0.5, 1.0],  # 1: top-right
        [0.5, 0.0, 1.0, 0.5],  # 2: bottom-left
        [0.5, 0.5, 1.0, 1.0],  # 3: bottom-right
        [0.0, 0.0, 0.5, 1.0],  # 4: top half
    ],
    np.float32,
)
GT = np.array(
    [
        [0.0, 0.0, 0.5, 0.45],  # IoU 0.9 with anchor 0, 0.45 with anchor 4
        [0.6, 0.6, 0.65, 0.65],  # tiny: IoU 0.01 with anchor 3, below every threshold
        [0.0, 0.5, 0.5, 1.0],  # padding row, identical to anchor 1
    ],
    np.float32,
)


def _match(num_boxes=2, matched=0.5, unmatched=0.4):
    return targets.match(
        tf.constant(GT), tf.constant(num_boxes), tf.constant(ANCHORS), matched, unmatched
    ).numpy()


def test_iou_of_hand_made_boxes():
    overlaps = targets.iou(tf.constant(GT[:2]), tf.constant(ANCHORS)).numpy()
    np.testing.assert_allclose(overlaps[0], [0.9, 0.0, 0.0, 0.0, 0.45], atol=1e-6)
    np.testing.assert_allclose(overlaps[1, 3], 0.0025 / 0.25, atol=1e-6)


def test_thresholds_force_match_and_padding():
    matches = _match()
    # anchor 0 positive for box 0; anchor 3 force-matched to the tiny box 1;
    # anchor 4 (IoU 0.45, between 0.4 and 0.5) ignored; anchor 1 stays
    # negative although the padding row covers it exactly.
    assert matches.tolist() == [0, -1, -1, 1, -2]


def test_equal_thresholds_leave_nothing_ignored():
    assert _match(matched=0.5, unmatched=0.5).tolist() == [0, -1, -1, 1, -1]


def test_low_threshold_makes_the_wide_anchor_positive():
    assert _match(matched=0.4, unmatched=0.4).tolist() == [0, -1, -1, 1, 0]


def test_image_without_boxes_is_all_background():
    assert _match(num_boxes=0).tolist() == [-1] * 5


def test_assign_targets_encode_the_matched_boxes():
    centers = corners_to_center_size(ANCHORS)
    result = targets.assign(
        tf.constant(GT), tf.constant([3, 1, 0]), tf.constant(2), tf.constant(centers),
        tf.constant(ANCHORS), (10.0, 10.0, 5.0, 5.0), 0.5, 0.4,
    )
    assert result["cls_targets"].numpy().tolist() == [4, 0, 0, 2, 0]  # class + 1
    assert result["cls_weights"].numpy().tolist() == [1, 1, 1, 1, 0]  # anchor 4 ignored
    assert result["box_weights"].numpy().tolist() == [1, 0, 0, 1, 0]
    decoded = box_coder.decode(result["box_targets"].numpy(), centers)
    np.testing.assert_allclose(decoded[[0, 3]], GT[:2], atol=1e-6)
    assert not result["box_targets"].numpy()[[1, 2, 4]].any()


def test_focal_loss_matches_formula():
    logits = tf.constant([[2.0, -1.0]])
    labels = tf.constant([[1.0, 0.0]])
    got = focal_loss(logits, labels, alpha=0.25, gamma=2.0).numpy()
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
    expected = [0.25 * (1 - p[0]) ** 2 * -np.log(p[0]), 0.75 * p[1] ** 2 * -np.log(1 - p[1])]
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def _batch(cls_targets, box_weights, cls_weights=None):
    n = len(cls_targets)
    return {
        "cls_targets": tf.constant([cls_targets]),
        "cls_weights": tf.constant([cls_weights or [1.0] * n]),
        "box_targets": tf.zeros([1, n, 4]),
        "box_weights": tf.constant([box_weights]),
    }


@pytest.mark.parametrize("kind", ["focal", "hard_negative_mining"])
def test_loss_is_small_for_right_and_large_for_wrong_predictions(kind):
    config = LossConfig(classification_loss=kind)
    batch = _batch([2, 0, 0, 0], [1.0, 0.0, 0.0, 0.0])
    right = 15.0 * tf.constant([[[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [1.0, -1.0, -1.0]]])
    wrong = -right
    boxes = tf.zeros([1, 4, 4])
    good = detection_loss(boxes, right, batch, config)
    bad = detection_loss(boxes + 1.0, wrong, batch, config)
    assert float(good["total"]) < 1e-3
    assert float(bad["classification"]) > 1.0
    assert float(bad["localization"]) == pytest.approx(4 * 0.5)  # smooth L1 of 1.0 on 4 coords
    assert float(good["num_positives"]) == 1.0


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    config = LossConfig(classification_loss="hard_negative_mining")
    n = 10
    batch = _batch([1] + [0] * (n - 1), [1.0] + [0.0] * (n - 1))
    # Negatives get increasing (wrong) foreground logits; the positive is right.
    logits = np.full([1, n, 2], -20.0, np.float32)
    logits[0, 0] = [-20.0, 20.0]
    logits[0, 1:, 0] = 20.0
    logits[0, 1:, 1] = np.arange(1, n, dtype=np.float32)
    loss = float(detection_loss(tf.zeros([1, n, 4]), tf.constant(logits), batch, config)["total"])
    softplus = np.log1p(np.exp(np.arange(1, n, dtype=np.float64)))
    # Only the 3 hardest negatives (logits 9, 8, 7) count; normalised by 1 positive.
    assert loss == pytest.approx(softplus[-3:].sum(), rel=1e-4)


def test_box_code_limit_charges_codes_beyond_the_limit_on_every_anchor():
    batch = _batch([2, 0, 0, 0], [1.0, 0.0, 0.0, 0.0])
    logits = 15.0 * tf.constant([[[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0], [1.0, -1.0, -1.0],
                                  [1.0, -1.0, -1.0]]])
    # Anchor 0 is the positive (codes 0 = its target); anchors 1-3 are unmatched,
    # with codes 5 (inside the limit), -30 and 112 (18 and 100 beyond it).
    boxes = tf.constant([[[0.0, 0.0, 0.0, 0.0], [5.0, -5.0, 5.0, 5.0],
                          [-30.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 112.0]]])
    off = detection_loss(boxes, logits, batch, LossConfig())
    on = detection_loss(boxes, logits, batch,
                        LossConfig(box_code_limit=12.0, box_code_limit_weight=0.5))
    assert float(off["box_range"]) == 0.0
    assert float(on["box_range"]) == pytest.approx(18.0 + 100.0)  # one positive: normaliser 1
    assert float(on["total"]) == pytest.approx(float(off["total"]) + 0.5 * 118.0, rel=1e-5)
    # The penalty's gradient reaches only the codes beyond the limit.
    with tf.GradientTape() as tape:
        tape.watch(boxes)
        penalty = detection_loss(boxes, logits, batch, LossConfig(box_code_limit=12.0))["box_range"]
    grad = tape.gradient(penalty, boxes).numpy()[0]
    expected = np.zeros((4, 4), np.float32)
    expected[2, 0], expected[3, 3] = -1.0, 1.0
    np.testing.assert_allclose(grad, expected)
