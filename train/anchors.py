"""SSD anchors, generated as the TF1 OD API's ``create_ssd_anchors`` does.

Scales are spaced linearly from ``min_scale`` to ``max_scale`` over the
layers (with 1.0 appended for the interpolated anchor of the last layer).
Layer 0 with ``reduce_boxes_in_lowest_layer`` gets (0.1, 1.0), (scale, 2.0),
(scale, 0.5); every other layer gets one anchor per aspect ratio plus one at
scale sqrt(s_i * s_{i+1}) and ``interpolated_scale_aspect_ratio``. An anchor
of scale s and aspect ratio a is s / sqrt(a) high and s * sqrt(a) wide
(times ``base_anchor_size``), in normalised image coordinates.

Order: per layer, row-major over the grid with the anchors of one location
adjacent ((y, x, anchor)), then the layers concatenated. This is the order in
which the box predictor heads are flattened, and the layout the
``TFLite_Detection_PostProcess`` op reads: (ycenter, xcenter, height, width).
The arithmetic runs in float32 in the same order as the OD API (centres from
``i * (1 / size) + 0.5 / size``, then corners, then back to centre and size as
its TFLite exporter does), so anchors agree with a TF1 export bit for bit or
within one float32 ulp.
"""

from __future__ import annotations

import math

import numpy as np

from ktp_tflite.train.config import AnchorConfig, ModelConfig, endpoint_stride_count


def layer_box_specs(config: AnchorConfig, num_layers: int) -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) of each anchor of each layer, in OD API order."""
    if num_layers == 1:
        scales = [config.min_scale]
    else:
        scales = [
            config.min_scale + (config.max_scale - config.min_scale) * i / (num_layers - 1) for i in range(num_layers)
        ]
    scales.append(1.0)
    specs = []
    for layer in range(num_layers):
        scale, scale_next = scales[layer], scales[layer + 1]
        if layer == 0 and config.reduce_boxes_in_lowest_layer:
            layer_specs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            layer_specs = [(scale, ratio) for ratio in config.aspect_ratios]
            if config.interpolated_scale_aspect_ratio > 0.0:
                layer_specs.append((math.sqrt(scale * scale_next), config.interpolated_scale_aspect_ratio))
        specs.append(layer_specs)
    return specs


def feature_map_sizes(config: ModelConfig) -> list[tuple[int, int]]:
    """(height, width) of every SSD feature map for the configured input size.

    Every stride-2 layer maps n to ceil(n / 2) ('SAME' padding, and also the
    OD API's explicit padding).
    """

    def halve(size: int, times: int) -> int:
        for _ in range(times):
            size = (size + 1) // 2
        return size

    counts = [endpoint_stride_count(name) for name in config.feature_endpoints]
    last = counts[-1]
    counts += [last + i + 1 for i in range(len(config.extra_layer_depths))]
    height, width = config.input_size
    return [(halve(height, c), halve(width, c)) for c in counts]


def anchors_per_location(config: ModelConfig) -> list[int]:
    """Number of anchors at each location, per SSD layer."""
    return [len(s) for s in layer_box_specs(config.anchors, config.num_feature_maps)]


def _tile_layer(grid: tuple[int, int], specs: list[tuple[float, float]], base: tuple[float, float]) -> np.ndarray:
    f32 = np.float32
    scales = np.array([s for s, _ in specs], dtype=f32)
    ratio_sqrts = np.sqrt(np.array([a for _, a in specs], dtype=f32))
    heights = scales / ratio_sqrts * f32(base[0])
    widths = scales * ratio_sqrts * f32(base[1])
    stride_y, stride_x = f32(1.0) / f32(grid[0]), f32(1.0) / f32(grid[1])
    y_centers = np.arange(grid[0], dtype=f32) * stride_y + f32(0.5) * stride_y
    x_centers = np.arange(grid[1], dtype=f32) * stride_x + f32(0.5) * stride_x
    # [rows, cols, anchors]
    yc = np.broadcast_to(y_centers[:, None, None], (grid[0], grid[1], len(specs)))
    xc = np.broadcast_to(x_centers[None, :, None], (grid[0], grid[1], len(specs)))
    hh = np.broadcast_to(heights[None, None, :], yc.shape)
    ww = np.broadcast_to(widths[None, None, :], yc.shape)
    corners = np.stack([yc - f32(0.5) * hh, xc - f32(0.5) * ww, yc + f32(0.5) * hh, xc + f32(0.5) * ww], axis=-1)
    return corners.reshape(-1, 4)


def anchor_corners(config: ModelConfig) -> np.ndarray:
    """Anchors as (ymin, xmin, ymax, xmax), float32 [num_anchors, 4]."""
    specs = layer_box_specs(config.anchors, config.num_feature_maps)
    sizes = feature_map_sizes(config)
    base = config.anchors.base_anchor_size
    return np.concatenate([_tile_layer(g, s, base) for g, s in zip(sizes, specs)], axis=0)


def corners_to_center_size(corners: np.ndarray) -> np.ndarray:
    """(ymin, xmin, ymax, xmax) -> (ycenter, xcenter, height, width), float32."""
    corners = corners.astype(np.float32)
    ymin, xmin, ymax, xmax = (corners[:, i] for i in range(4))
    height = ymax - ymin
    width = xmax - xmin
    return np.stack([ymin + height / np.float32(2.0), xmin + width / np.float32(2.0), height, width], axis=1).astype(
        np.float32
    )


def generate_anchors(config: ModelConfig) -> np.ndarray:
    """Anchors in the post-process layout (ycenter, xcenter, h, w), float32 [N, 4]."""
    return corners_to_center_size(anchor_corners(config))


def num_anchors(config: ModelConfig) -> int:
    """Total number of anchors."""
    sizes = feature_map_sizes(config)
    return sum(h * w * n for (h, w), n in zip(sizes, anchors_per_location(config)))
