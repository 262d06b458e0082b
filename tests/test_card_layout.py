"""Card from fields and the zoom crop: shared vectors, the renderer's template, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ktp_tflite.train import synth
from ktp_tflite.train.card_layout import (
    TEMPLATE,
    CardLayoutError,
    card_from_fields,
    card_width_fraction,
    zoom_crop,
)
from ktp_tflite.train.labels import CLASSES

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ktp_vectors.json").read_text(encoding="utf-8"))
SECTION = VECTORS["card_layout"]


def test_vectors_template_is_the_module_template():
    assert SECTION["card_size"] == [synth.CARD_W, synth.CARD_H]
    assert set(SECTION["template"]) == set(CLASSES) == set(TEMPLATE)
    for name, expected in SECTION["template"].items():
        assert TEMPLATE[name] == pytest.approx(tuple(expected), abs=1e-9), name


@pytest.mark.parametrize("case", SECTION["cards"], ids=lambda c: c["about"][:40])
def test_card_from_fields_and_crop_match_vectors(case):
    fields = {name: tuple(box) for name, box in case["fields"].items()}
    card = card_from_fields(fields)
    assert card == pytest.approx(tuple(case["expected_card"]), abs=1e-9)
    for crop in case["crops"]:
        found = zoom_crop(card, tuple(case["frame"]), threshold=crop["threshold"], margin=case["margin"])
        assert found == (None if crop["expected"] is None else tuple(crop["expected"])), crop


@pytest.mark.parametrize("case", SECTION["crops"], ids=lambda c: c["about"][:40])
def test_zoom_crop_matches_vectors(case):
    found = zoom_crop(tuple(case["card"]), tuple(case["frame"]), threshold=case["threshold"], margin=case["margin"])
    assert found == (None if case["expected"] is None else tuple(case["expected"]))


def _on_template(scale: float, x0: float, y0: float) -> dict[str, tuple[float, float, float, float]]:
    """Field boxes exactly where the template puts them, right edges 40 card px in."""
    return {name: (x0 + scale * left, y0 + scale * top, x0 + scale * (left + 40), y0 + scale * bottom)
            for name, (left, top, bottom) in TEMPLATE.items()}


@pytest.mark.parametrize("subset", [("nik",), ("kewarganegaraan",), ("nama", "status_perkawinan"),
                                    ("nik", "jenis_kelamin", "kewarganegaraan"), tuple(CLASSES)])
def test_any_subset_of_template_fields_gives_the_same_card(subset):
    boxes = _on_template(0.37, 55.0, 21.0)
    card = card_from_fields({name: boxes[name] for name in subset})
    assert card == pytest.approx((55.0, 21.0, 55.0 + 0.37 * 856, 21.0 + 0.37 * 540), abs=1e-9)
    assert card_width_fraction({name: boxes[name] for name in subset}, 640) == pytest.approx(0.37 * 856 / 640)


def test_template_is_where_the_renderer_prints_the_values():
    """Frontal cards: the mean ink box of each value (card px) is the template's within 3 px."""
    config = dataclasses.replace(synth.TRAIN, max_roll_deg=0.0, max_tilt_deg=0.0, photometric=False,
                                 thumb_share=0.0, object_share=0.0)
    edges = {name: [] for name in CLASSES}
    for index in range(40):
        card = synth.render_card(21, index, config)
        (x0, y0), (x1, _) = card.card_quad.min(axis=0), card.card_quad.max(axis=0)
        scale = (x1 - x0) / synth.CARD_W
        for box in card.boxes:
            edges[box.label].append(((box.xmin * config.width - x0) / scale,
                                     (box.ymin * config.height - y0) / scale,
                                     (box.ymax * config.height - y0) / scale))
    for name, (left, top, bottom) in TEMPLATE.items():
        mean = np.mean(edges[name], axis=0)
        assert mean == pytest.approx((left, top, bottom), abs=3.0), name


def test_card_from_rendered_fields_is_near_the_card():
    """Rendered photos (roll, tilt, every effect): the estimate covers the card's box well."""
    ious, ratios = [], []
    for index in range(30):
        card = synth.render_card(22, index, synth.TRAIN)
        w, h = synth.TRAIN.width, synth.TRAIN.height
        fields = {b.label: b.to_pixels(w, h) for b in card.boxes}
        left, top, right, bottom = card_from_fields(fields)
        (tx0, ty0), (tx1, ty1) = card.card_quad.min(axis=0), card.card_quad.max(axis=0)
        inter = max(0.0, min(right, tx1) - max(left, tx0)) * max(0.0, min(bottom, ty1) - max(top, ty0))
        ious.append(inter / ((right - left) * (bottom - top) + (tx1 - tx0) * (ty1 - ty0) - inter))
        ratios.append((right - left) / (tx1 - tx0))
    assert np.mean(ious) > 0.7
    # the card's own width, not its rolled extent: a little narrower on average (module docstring)
    assert 0.85 < np.mean(ratios) < 1.0


def test_errors_are_clear():
    with pytest.raises(CardLayoutError, match="no field box"):
        card_from_fields({})
    with pytest.raises(CardLayoutError, match="unknown field 'alamat'"):
        card_from_fields({"alamat": (0, 0, 10, 10)})
    with pytest.raises(CardLayoutError, match="the nama box .* is empty"):
        card_from_fields({"nama": (5, 5, 5, 9)})
    with pytest.raises(CardLayoutError, match="frame width must be positive"):
        card_width_fraction({"nama": (0, 0, 10, 10)}, 0)
    with pytest.raises(CardLayoutError, match="frame size must be positive"):
        zoom_crop((0, 0, 10, 10), (0, 480))
    with pytest.raises(CardLayoutError, match="card box .* is empty"):
        zoom_crop((10, 0, 10, 10), (640, 480))
    with pytest.raises(CardLayoutError, match="must be >= 0"):
        zoom_crop((0, 0, 10, 10), (640, 480), margin=-0.1)


def test_a_card_outside_the_frame_has_no_crop():
    assert zoom_crop((700.0, 10.0, 760.0, 50.0), (640, 480)) is None
