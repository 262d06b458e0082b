"""The card fit (ktp_tflite.train.card_layout.card_fit_choice) and section "card_fit" of the shared vectors.

Cases are cards placed by a similarity (scale, roll, shift) of the template:
each field's value is a rectangle from the template's left edge, top and
bottom, as long as the case says, and its detection is that rectangle's
axis-aligned box. A confusion is the same field's box one row off (the row
spacing along the card's own vertical). ktp-core's ``CardFitTest`` reads the
same cases and checks ``CardFit.choice`` and ``DetectionSelector`` against
them. Regenerate after a deliberate change of the rule:
``.venv/bin/python tests/test_card_fit.py --write``.
"""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest

from ktp_tflite.convert.evaluate import card_boxes
from ktp_tflite.convert.fields import select_fields
from ktp_tflite.train import card_layout
from ktp_tflite.train.card_layout import (
    FIT_CANDIDATES,
    ROW_SPACING,
    TEMPLATE,
    CardLayoutError,
    card_fit_choice,
)
from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.labels import CLASSES

vector_file = sys.modules.get("ktp_tests_vector_file") or importlib.import_module("vector_file")  # see vector_file.py
SECTION = "card_fit"
FRAME = (640, 480)
# Value lengths in card pixels (the right end is the text's: the fit must not depend on it).
LENGTHS = {"nik": 330.0, "nama": 260.0, "jenis_kelamin": 110.0, "status_perkawinan": 150.0, "kewarganegaraan": 45.0}


def placed_box(
    field: str,
    scale: float,
    roll_deg: float,
    shift: tuple[float, float],
    rows_off: float = 0.0,
    length: float | None = None,
) -> list[float]:
    """[left, top, right, bottom] frame pixels of ``field``'s value on a card placed by the similarity."""
    left, top, bottom = TEMPLATE[field]
    top, bottom = top + rows_off * ROW_SPACING, bottom + rows_off * ROW_SPACING
    right = left + (LENGTHS[field] if length is None else length)
    cos, sin = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    xs, ys = [], []
    for x, y in ((left, top), (right, top), (right, bottom), (left, bottom)):
        xs.append(scale * (cos * x - sin * y) + shift[0])
        ys.append(scale * (sin * x + cos * y) + shift[1])
    return [min(xs), min(ys), max(xs), max(ys)]


def _card(scale, roll, shift, detections: dict[str, list[tuple[float, float]]], lengths: float = 1.0) -> dict:
    """Field -> [[box, score], ...] best first, each detection (rows off, score) on the placed card."""
    return {
        field: [[placed_box(field, scale, roll, shift, off, lengths * LENGTHS[field]), score] for off, score in found]
        for field, found in detections.items()
    }


RIGHT = {"nik": [(0, 0.95)], "nama": [(0, 0.9)], "jenis_kelamin": [(0, 0.9)], "kewarganegaraan": [(0, 0.85)]}
ROLLED = {**RIGHT, "kewarganegaraan": [(-1, 0.5), (0, 0.44)], "status_perkawinan": [(0, 0.8)]}


def _specs() -> list[dict]:
    right = RIGHT
    return [
        {
            "about": "frontal card, every top box in place (the others elsewhere): the top boxes",
            "candidates": _card(
                0.5,
                0.0,
                (100.0, 90.0),
                {**right, "nama": [(0, 0.9), (1, 0.5)], "status_perkawinan": [(0, 0.8), (-1, 0.6)]},
            ),
        },
        {
            "about": "frontal card, Status Perkawinan's top box one row up (Agama), the right one second",
            "candidates": _card(0.5, 0.0, (100.0, 90.0), {**right, "status_perkawinan": [(-1, 0.62), (0, 0.59)]}),
        },
        {
            "about": "card rolled 10 degrees clockwise, Kewarganegaraan's top box one row up, the right one second",
            "candidates": _card(0.6, 10.0, (120.0, 40.0), ROLLED),
        },
        {
            "about": "card rolled 8 degrees counter-clockwise, Nama's top box one row down, the right one third",
            "candidates": _card(
                0.55,
                -8.0,
                (80.0, 150.0),
                {**right, "nama": [(1, 0.6), (3, 0.3), (0, 0.4)], "status_perkawinan": [(0, 0.8)]},
            ),
        },
        {
            "about": "the right box scores under FIT_MIN_SCORE_RATIO of the top one: not tried, the top box stays",
            "candidates": _card(0.5, 0.0, (100.0, 90.0), {**right, "status_perkawinan": [(-1, 0.95), (0, 0.05)]}),
        },
        {
            "about": "the right box is fourth (beyond FIT_CANDIDATES): the best of the first three",
            "candidates": _card(
                0.5, 0.0, (100.0, 90.0), {**right, "status_perkawinan": [(-1, 0.6), (1, 0.58), (-2, 0.5), (0, 0.45)]}
            ),
        },
        {
            "about": "two fields only (fewer than FIT_MIN_FIELDS): the top boxes, whatever the geometry",
            "candidates": _card(
                0.5, 0.0, (100.0, 90.0), {"nik": [(0, 0.9)], "status_perkawinan": [(-1, 0.6), (0, 0.59)]}
            ),
        },
        {
            "about": "three fields (Nama and Jenis Kelamin not found), Status Perkawinan one row down first",
            "candidates": _card(
                0.45,
                3.0,
                (150.0, 120.0),
                {"nik": [(0, 0.9)], "kewarganegaraan": [(0, 0.7)], "status_perkawinan": [(1, 0.55), (0, 0.5)]},
            ),
        },
    ]


def _tuples(candidates: dict[str, list]) -> dict[str, list[tuple[tuple[float, ...], float]]]:
    return {field: [(tuple(box), score) for box, score in found] for field, found in candidates.items()}


def _costs(candidates: dict[str, list]) -> list[tuple[float, tuple[int, ...]]]:
    """Every combination's total cost, as card_fit_choice weighs them (for the margin and the stored cost)."""
    import itertools

    names = [n for n in candidates if candidates[n]]
    options = []
    for name in names:
        found = candidates[name]
        options.append(
            [
                i
                for i, (_, s) in enumerate(found[:FIT_CANDIDATES])
                if i == 0 or s >= card_layout.FIT_MIN_SCORE_RATIO * found[0][1]
            ]
        )
    costs = []
    for combo in itertools.product(*options):
        geometric = card_layout._fit_cost(
            [TEMPLATE[n] for n in names], [tuple(candidates[n][i][0]) for n, i in zip(names, combo)]
        )
        if geometric is not None:
            costs.append((geometric - sum(math.log(candidates[n][i][1]) for n, i in zip(names, combo)), combo))
    return sorted(costs)


def card_fit_case(spec: dict) -> dict:
    candidates = spec["candidates"]
    choice = card_fit_choice(_tuples(candidates))
    case = {"about": spec["about"], "candidates": candidates, "choice": choice}
    names = list(choice)
    if len(names) >= card_layout.FIT_MIN_FIELDS:
        costs = _costs(candidates)
        assert costs[0][1] == tuple(choice[n] for n in names)
        if len(costs) > 1:  # no near tie: the other language's last bits cannot flip the choice
            assert costs[1][0] - costs[0][0] > 1e-6, spec["about"]
        case["cost"] = costs[0][0]
    else:
        case["cost"] = None
    return case


def build_section() -> dict:
    return {
        "about": (
            "The card fit (ktp_tflite.train.card_layout.card_fit_choice; ktp-core CardFit). candidates: "
            "field -> its detections best first, [[left, top, right, bottom] pixels of a 640 x 480 frame, "
            "score]; choice: field -> the index the fit picks; cost: that combination's total cost "
            "(geometric - sum ln score; null with fewer than FIT_MIN_FIELDS fields), compare within 1e-9. "
            "Every other combination costs more than 1e-6 above it. DetectionSelector at threshold 0 on "
            "these boxes (normalised to the frame, rows in field then candidate order) keeps the chosen "
            "boxes. Regenerate: python tests/test_card_fit.py --write."
        ),
        "cases": [card_fit_case(spec) for spec in _specs()],
    }


def test_vectors_are_what_the_code_makes():
    stored = json.loads(vector_file.VECTORS_PATH.read_text(encoding="utf-8"))[SECTION]
    assert stored == json.loads(json.dumps(build_section()))
    choices = [case["choice"] for case in stored["cases"]]
    assert choices[0] == dict.fromkeys(choices[0], 0)  # everything in place: the top boxes
    assert choices[1]["status_perkawinan"] == 1 and choices[2]["kewarganegaraan"] == 1  # the confusions undone
    assert choices[3]["nama"] == 2  # rolled the other way: the third candidate
    assert choices[4]["status_perkawinan"] == 0 and choices[6]["status_perkawinan"] == 0  # too weak / too few
    assert choices[5]["status_perkawinan"] in (0, 1, 2)  # the fourth is never tried
    assert choices[7]["status_perkawinan"] == 1


def test_the_fit_does_not_depend_on_the_value_lengths():
    # The right end of a value is its text's: shorter or longer values, same choice.
    for lengths in (0.4, 1.0, 1.8):
        assert card_fit_choice(_tuples(_card(0.6, 10.0, (120.0, 40.0), ROLLED, lengths)))["kewarganegaraan"] == 1


def _raw(candidates: dict[str, list]) -> tuple[list, list, list]:
    """Post-process rows of the candidates: boxes normalised to FRAME, classes, scores (field then candidate order)."""
    width, height = FRAME
    boxes, classes, scores = [], [], []
    for field, found in candidates.items():
        for (left, top, right, bottom), score in found:
            boxes.append([top / height, left / width, bottom / height, right / width])
            classes.append(CLASSES.index(field))
            scores.append(score)
    return boxes, classes, scores


@pytest.mark.parametrize("index", range(len(_specs())))
def test_scans_and_cards_read_keep_the_chosen_boxes(index):
    case = card_fit_case(_specs()[index])
    boxes, classes, scores = _raw(case["candidates"])
    result = select_fields(
        boxes, classes, scores, len(boxes), CLASSES, sensor_width=FRAME[0], sensor_height=FRAME[1], threshold=0.0
    )
    kept = card_boxes(
        Detections("", np.array(boxes, np.float64), np.array(classes), np.array(scores, np.float32)), *FRAME
    )
    for field, pick in case["choice"].items():
        want = case["candidates"][field][pick][0]
        np.testing.assert_allclose(result.get(field).box, want, atol=1e-6)
        np.testing.assert_allclose(np.array(kept[field])[[1, 0, 3, 2]] * (FRAME * 2), want, atol=1e-3)


def test_bad_candidates_are_refused_with_the_field_named():
    with pytest.raises(CardLayoutError, match="unknown field 'alamat'"):
        card_fit_choice({"alamat": [((0, 0, 10, 10), 0.5)]})
    with pytest.raises(CardLayoutError, match=r"a nama box .* is empty"):
        card_fit_choice({"nama": [((10, 0, 10, 10), 0.5)]})
    assert card_fit_choice({}) == {} and card_fit_choice({"nik": []}) == {}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write   (rewrites section {SECTION!r} of {vector_file.VECTORS_PATH})")
    vector_file.write_section(SECTION, build_section())
    print(f"wrote section {SECTION!r} of {vector_file.VECTORS_PATH}", file=sys.stderr)
