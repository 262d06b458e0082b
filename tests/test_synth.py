"""The synthetic KTP renderer: determinism, identities, and boxes around the value ink."""

import dataclasses

import numpy as np
import pytest

from ktp_tflite.train import synth
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.nik import parse_nik

CLEAN = synth.SynthConfig(width=640, height=480, photometric=False, distractors=False)


def test_same_seed_and_index_give_the_same_photo_whatever_the_workers():
    config = synth.SynthConfig(width=320, height=240)
    one = synth.render_dataset(4, seed=11, config=config, workers=1)
    two = synth.render_dataset(4, seed=11, config=config, workers=2)
    assert [e.encoded() for e in one.examples] == [e.encoded() for e in two.examples]
    assert [e.boxes for e in one.examples] == [e.boxes for e in two.examples]
    other = synth.render_dataset(4, seed=12, config=config)
    assert [e.encoded() for e in other.examples] != [e.encoded() for e in one.examples]


def test_every_card_has_one_box_per_field_inside_the_frame(small_synth):
    for example in small_synth.examples:
        assert [b.label for b in example.boxes] == list(CLASSES)
        for box in example.boxes:
            assert 0.0 <= box.xmin < box.xmax <= 1.0
            assert 0.0 <= box.ymin < box.ymax <= 1.0
            # text lines are wider than tall unless heavily rotated
            assert (box.xmax - box.xmin) * example.width > 0.8 * (box.ymax - box.ymin) * example.height


def test_identities_are_structurally_valid_and_consistent(small_synth):
    for fields in small_synth.texts.values():
        info = parse_nik(fields["nik"], today=synth.TODAY)
        assert info.gender == fields["jenis_kelamin"]
        assert fields["status_perkawinan"] in ("BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI")
        assert fields["kewarganegaraan"] == "WNI"
        assert fields["nama"] == fields["nama"].upper()


def test_women_have_forty_added_to_the_day():
    women = 0
    for index in range(40):
        card = synth.render_card(5, index, synth.SynthConfig(width=160, height=120, photometric=False))
        day = int(card.texts["nik"][6:8])
        if card.texts["jenis_kelamin"] == "PEREMPUAN":
            assert 41 <= day <= 71
            women += 1
        else:
            assert 1 <= day <= 31
    assert 5 < women < 35


def _diff_mask(seed: int, index: int, element: str) -> np.ndarray:
    full = synth.render_card(seed, index, CLEAN).image.astype(np.int16)
    without = synth.render_card(seed, index, CLEAN, omit=frozenset({element})).image.astype(np.int16)
    return np.abs(full - without).max(axis=2) > 30


@pytest.mark.parametrize("index", range(6))
def test_box_holds_the_value_ink_and_not_the_label(index):
    card = synth.render_card(21, index, CLEAN)
    for box in card.boxes:
        x0, y0, x1, y1 = box.to_pixels(CLEAN.width, CLEAN.height)
        value = _diff_mask(21, index, f"value:{box.label}")
        ys, xs = np.nonzero(value)
        assert len(xs) > 5, f"{box.label}: the value left no ink"
        # all the value's ink lies in the box (1 px for bilinear spread) ...
        assert xs.min() >= x0 - 1 and xs.max() + 1 <= x1 + 1, box.label
        assert ys.min() >= y0 - 1 and ys.max() + 1 <= y1 + 1, box.label
        # ... and the box is tight around it
        assert xs.min() - x0 < 2 and x1 - (xs.max() + 1) < 2, box.label
        assert ys.min() - y0 < 2 and y1 - (ys.max() + 1) < 2, box.label
        label = _diff_mask(21, index, f"label:{box.label}")
        colon = _diff_mask(21, index, f"colon:{box.label}")
        for mask, what in ((label, "label"), (colon, "colon")):
            ys, xs = np.nonzero(mask)
            assert len(xs) > 0
            inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            # with a rolled card an axis-aligned box may graze a neighbour's corner, never its body
            assert inside.mean() < 0.05, f"{box.label}: {what} ink inside the value box"


def test_camera_variation_covers_the_promised_ranges():
    config = synth.SynthConfig(width=320, height=240)
    widths, rolls = [], []
    for index in range(60):
        card = synth.render_card(3, index, config)
        quad = card.card_quad
        widths.append((quad[:, 0].max() - quad[:, 0].min()) / config.width)
        top = quad[1] - quad[0]
        rolls.append(np.degrees(np.arctan2(top[1], top[0])))
        left = quad[3] - quad[0]
        assert top[0] * left[1] - top[1] * left[0] > 0  # corners keep their order: not mirrored
        assert quad[:, 0].min() >= -1 and quad[:, 0].max() <= config.width + 1
        assert quad[:, 1].min() >= -1 and quad[:, 1].max() <= config.height + 1
    assert min(widths) < 0.45 and max(widths) > 0.85
    # roll up to 15 degrees both ways (tilt adds a little), never mirrored
    assert min(rolls) < -8 and max(rolls) > 8 and max(abs(r) for r in rolls) < 25


def test_missing_font_names_the_debian_package(monkeypatch):
    synth._font.cache_clear()
    monkeypatch.setattr(synth, "_FONT_DIRS", ())
    try:
        with pytest.raises(synth.FontError, match="apt-get install fonts-ocr-a"):
            synth.check_fonts()
    finally:
        synth._font.cache_clear()


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CLEAN.width = 3
