"""Target assignment: which anchor learns which ground-truth box.

The OD API's argmax matcher as configured for SSD (``matched_threshold``,
``unmatched_threshold``, ``force_match_for_each_row: true``):

1. IoU between every ground-truth box and every anchor (corner boxes).
2. Each anchor takes its best ground truth (argmax over boxes). It is
   *positive* when that IoU >= ``matched_threshold``, *negative*
   (background) when < ``unmatched_threshold``, and *ignored* (no loss) in
   between.
3. Force match: each ground-truth box also claims its single best anchor,
   whatever the IoU, so that no box goes without a positive (small, thin
   text lines often overlap no anchor by 0.5). When two boxes claim the same
   anchor, the later box wins here on the CPU (``tensor_scatter_nd_update``,
   whose order for duplicate indices TF leaves undefined); the OD API's
   ``ArgMaxMatcher`` gives it to the first (an argmax over the boxes), a
   difference on rare collisions only, kept because the reference was trained
   this way (issue 15 check against official.vision's copy of the matcher).

Padding rows (``num_boxes`` beyond the real count) never match.
All functions are TensorFlow graph code (used inside ``tf.data.map``).
"""

from __future__ import annotations

import tensorflow as tf

from ktp_tflite.train import box_coder

POSITIVE_WEIGHT = 1.0


def iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Pairwise IoU of corner boxes [M, 4] x [N, 4] -> [M, N]."""
    ya0, xa0, ya1, xa1 = tf.unstack(boxes_a[:, None, :], axis=-1)
    yb0, xb0, yb1, xb1 = tf.unstack(boxes_b[None, :, :], axis=-1)
    inter_h = tf.maximum(0.0, tf.minimum(ya1, yb1) - tf.maximum(ya0, yb0))
    inter_w = tf.maximum(0.0, tf.minimum(xa1, xb1) - tf.maximum(xa0, xb0))
    inter = inter_h * inter_w
    area_a = (ya1 - ya0) * (xa1 - xa0)
    area_b = (yb1 - yb0) * (xb1 - xb0)
    union = area_a + area_b - inter
    return tf.where(union > 0.0, inter / tf.maximum(union, 1e-12), tf.zeros_like(inter))


def match(
    gt_boxes: tf.Tensor,
    num_boxes: tf.Tensor,
    anchor_corners: tf.Tensor,
    matched_threshold: float = 0.5,
    unmatched_threshold: float = 0.5,
) -> tf.Tensor:
    """Match anchors to ground truth.

    Args:
      gt_boxes: [M, 4] corner boxes; rows >= num_boxes are padding.
      num_boxes: scalar int, real rows of ``gt_boxes``.
      anchor_corners: [N, 4] anchors as (ymin, xmin, ymax, xmax).
      matched_threshold: IoU at or above which an anchor is positive.
      unmatched_threshold: IoU below which an anchor is negative.

    Returns:
      int32 [N]: the matched box index (>= 0), -1 for negative, -2 for ignored.
    """
    num_gt = tf.shape(gt_boxes)[0]
    valid = tf.range(num_gt) < tf.cast(num_boxes, tf.int32)
    overlaps = iou(gt_boxes, anchor_corners)  # [M, N]
    overlaps = tf.where(valid[:, None], overlaps, -tf.ones_like(overlaps))
    num_anchors = tf.shape(anchor_corners)[0]

    def no_boxes():
        return -tf.ones([num_anchors], tf.int32)

    def some_boxes():
        best_gt = tf.argmax(overlaps, axis=0, output_type=tf.int32)
        best_iou = tf.reduce_max(overlaps, axis=0)
        matches = tf.where(best_iou >= matched_threshold, best_gt, -2 * tf.ones_like(best_gt))
        matches = tf.where(best_iou < unmatched_threshold, -tf.ones_like(best_gt), matches)
        # Force match: each real box claims its best anchor.
        best_anchor = tf.argmax(overlaps, axis=1, output_type=tf.int32)  # [M]
        rows = tf.boolean_mask(tf.range(num_gt), valid)
        anchors_of_rows = tf.boolean_mask(best_anchor, valid)
        forced = tf.tensor_scatter_nd_update(-tf.ones([num_anchors], tf.int32), anchors_of_rows[:, None], rows)
        return tf.where(forced >= 0, forced, matches)

    return tf.cond(tf.reduce_any(valid), some_boxes, no_boxes)


def assign(
    gt_boxes: tf.Tensor,
    gt_classes: tf.Tensor,
    num_boxes: tf.Tensor,
    anchors_center: tf.Tensor,
    anchor_corners: tf.Tensor,
    scales: tuple[float, float, float, float],
    matched_threshold: float = 0.5,
    unmatched_threshold: float = 0.5,
) -> dict[str, tf.Tensor]:
    """Training targets of one image.

    Args:
      gt_boxes: [M, 4] corner boxes, M >= 1 (an image without boxes carries
        one padding row and ``num_boxes`` 0).
      gt_classes: [M] int, 0-based class ids (no background).
      num_boxes: real rows.
      anchors_center: [N, 4] anchors (ycenter, xcenter, h, w).
      anchor_corners: [N, 4] the same anchors as corners.
      scales: box coder scales.
      matched_threshold: see :func:`match`.
      unmatched_threshold: see :func:`match`.

    Returns:
      ``cls_targets`` int32 [N] (0 background, k + 1 for class k; ignored
      anchors also 0), ``cls_weights`` float [N] (0 for ignored anchors),
      ``box_targets`` float [N, 4] encoded (zeros where not positive),
      ``box_weights`` float [N] (1 for positives), ``matches`` int32 [N].
    """
    matches = match(gt_boxes, num_boxes, anchor_corners, matched_threshold, unmatched_threshold)
    positive = matches >= 0
    index = tf.maximum(matches, 0)
    matched_boxes = tf.gather(gt_boxes, index)
    matched_classes = tf.gather(tf.cast(gt_classes, tf.int32), index)
    codes = box_coder.encode(matched_boxes, anchors_center, scales)
    return {
        "cls_targets": tf.where(positive, matched_classes + 1, tf.zeros_like(matched_classes)),
        "cls_weights": tf.cast(matches != -2, tf.float32),
        "box_targets": tf.where(positive[:, None], codes, tf.zeros_like(codes)),
        "box_weights": tf.cast(positive, tf.float32) * POSITIVE_WEIGHT,
        "matches": matches,
    }
