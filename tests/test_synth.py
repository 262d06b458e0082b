"""The synthetic KTP renderer: determinism, identities, and boxes around the value ink."""

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

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


def _diff_mask(seed: int, index: int, element: str, config=CLEAN, also_omit=frozenset()) -> np.ndarray:
    full = synth.render_card(seed, index, config, omit=also_omit).image.astype(np.int16)
    without = synth.render_card(seed, index, config, omit=also_omit | {element}).image.astype(np.int16)
    return np.abs(full - without).max(axis=2) > 30


def _forced(k: int) -> synth.SynthConfig:
    """Case k: one text family and one NIK font forced, thumb and objects on, a wide layout jitter."""
    return dataclasses.replace(
        CLEAN,
        text_fonts=(synth.TEXT_FAMILIES[k % len(synth.TEXT_FAMILIES)],),
        nik_fonts=((synth.NIK_FONTS[k], 1.0),),
        thumb_share=1.0,
        object_share=1.0,
        layout_jitter_px=4.0,
        bold_value_share=0.5,
    )


# the train recipe as it comes, then every text family and every NIK font with occluders on
INK_CASES = [(CLEAN, i) for i in range(3)] + [(_forced(k), 30 + k) for k in range(len(synth.NIK_FONTS))]


@pytest.mark.parametrize("config, index", INK_CASES)
def test_box_holds_the_value_ink_and_not_the_label(config, index):
    card = synth.render_card(21, index, config)
    if config is not CLEAN:  # the forced fonts are the ones drawn
        family = config.text_fonts[0]
        nik = config.nik_fonts[0][0]
        assert {family, family + "-bold" if nik == synth.TEXT_BOLD else nik} <= card.fonts
    for box in card.boxes:
        x0, y0, x1, y1 = box.to_pixels(config.width, config.height)
        value = _diff_mask(21, index, f"value:{box.label}", config)
        ys, xs = np.nonzero(value)
        assert len(xs) > 5, f"{box.label}: the value left no ink"
        # all the value's ink lies in the box (1 px for bilinear spread) ...
        assert xs.min() >= x0 - 1 and xs.max() + 1 <= x1 + 1, box.label
        assert ys.min() >= y0 - 1 and ys.max() + 1 <= y1 + 1, box.label
        # ... and the box is tight around it: no occluder hides any of it
        assert xs.min() - x0 < 2 and x1 - (xs.max() + 1) < 2, box.label
        assert ys.min() - y0 < 2 and y1 - (ys.max() + 1) < 2, box.label
        # labels may lie under a thumb: look for them without the occluders
        no_occluders = frozenset({"occluders"})
        label = _diff_mask(21, index, f"label:{box.label}", config, no_occluders)
        colon = _diff_mask(21, index, f"colon:{box.label}", config, no_occluders)
        for mask, what in ((label, "label"), (colon, "colon")):
            ys, xs = np.nonzero(mask)
            assert len(xs) > 0
            inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            # with a rolled card an axis-aligned box may graze a neighbour's corner, never its body
            assert inside.mean() < 0.05, f"{box.label}: {what} ink inside the value box"


def _quad_mask(quad: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).polygon([tuple(p) for p in quad.tolist()], fill=255)
    return np.asarray(image) > 0


def test_occluders_never_touch_a_value_box_and_thumbs_cross_the_card_edge():
    thumbs = dataclasses.replace(CLEAN, thumb_share=1.0, object_share=0.0)
    objects = dataclasses.replace(CLEAN, thumb_share=0.0, object_share=1.0, max_objects=3)
    kinds = []
    for config in (thumbs, objects):
        for index in range(6):
            card = synth.render_card(8, index, config)
            kinds += card.occluders
            occluded = _diff_mask(8, index, "occluders", config)
            assert occluded.any() == bool(card.occluders)
            for box in card.boxes:
                x0, y0, x1, y1 = box.to_pixels(config.width, config.height)
                x0, y0, x1, y1 = max(int(x0) - 1, 0), max(int(y0) - 1, 0), int(x1) + 2, int(y1) + 2
                assert not occluded[y0:y1, x0:x1].any(), box.label
            if config is thumbs and card.occluders:
                on_card = _quad_mask(card.card_quad, config.width, config.height)
                assert (occluded & on_card).any() and (occluded & ~on_card).any()  # over the edge
    assert kinds.count("thumb") >= 5
    assert {"card", "coin", "pen"} <= set(kinds)


ALL_OFF = dataclasses.replace(
    synth.TRAIN, width=320, height=240, layout_jitter_px=0.0, thumb_share=0.0, object_share=0.0,
    light_gradient_share=0.0, colour_temperature=(0.0, 0.0), motion_blur_share=0.0, resample_share=0.0,
)
NEW_OPTIONS = {
    "text_fonts": {"text_fonts": ("noto-sans",)},
    "nik_fonts": {"nik_fonts": (("dejavu-sans-mono-bold", 1.0),)},
    "layout_jitter_px": {"layout_jitter_px": 3.0},
    "thumb_share": {"thumb_share": 1.0},
    "object_share": {"object_share": 1.0},
    "light_gradient": {"light_gradient_share": 1.0, "light_gradient": (0.4, 0.6)},
    "colour_temperature": {"colour_temperature": (0.1, 0.18)},
    "motion_blur": {"motion_blur_share": 1.0, "motion_blur_px": (5.0, 8.0)},
    "resample": {"resample_share": 1.0, "resample_factor": (0.4, 0.55)},
}


@pytest.mark.parametrize("option", NEW_OPTIONS)
def test_each_new_option_is_deterministic_per_seed_and_changes_the_photo(option):
    config = dataclasses.replace(ALL_OFF, **NEW_OPTIONS[option])
    for index in range(2):
        one, two = synth.render_card(2, index, config), synth.render_card(2, index, config)
        assert one.jpeg == two.jpeg and one.boxes == two.boxes and one.occluders == two.occluders
        assert one.jpeg != synth.render_card(2, index, ALL_OFF).jpeg, option
    assert synth.render_card(3, 0, config).jpeg != synth.render_card(2, 0, config).jpeg


HELD_OUT_FONTS = {"freesans", "freesans-bold", "freemono-bold"}


def test_stress_cards_use_only_held_out_fonts_and_train_cards_never_do():
    stress = synth.preset_config("stress", 320, 240)
    for index in range(6):
        card = synth.render_card(6, index, stress)
        assert card.fonts and card.fonts <= HELD_OUT_FONTS, card.fonts
        assert [b.label for b in card.boxes] == list(CLASSES)
    train = dataclasses.replace(synth.preset_config("train", 160, 120), photometric=False)
    drawn = set()
    for index in range(40):
        drawn |= synth.render_card(6, index, train).fonts
    assert not drawn & HELD_OUT_FONTS
    assert set(synth.TRAIN.text_fonts) <= drawn and {"ocr-a", "ocr-a-bold"} <= drawn


def test_stress_ranges_lie_outside_the_train_ranges():
    train, stress = synth.TRAIN, synth.STRESS
    assert set(stress.font_keys()).isdisjoint(train.font_keys())
    assert stress.min_card_fraction < train.min_card_fraction
    assert stress.jpeg_quality[0] < train.jpeg_quality[0]
    for name in ("light_gradient", "colour_temperature", "motion_blur_px"):
        assert getattr(stress, name)[0] >= getattr(train, name)[1], name
    assert stress.resample_factor[1] <= train.resample_factor[0]
    with pytest.raises(synth.SynthConfigError, match="unknown synth preset"):
        synth.preset_config("hard")
    with pytest.raises(synth.SynthConfigError, match="Comic"):
        synth.SynthConfig(text_fonts=("Comic",))


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


def _clear_font_caches():
    for cache in (synth._font, synth._unhinted_font_file, synth._text_mask):
        cache.cache_clear()


def test_missing_font_names_the_debian_package(monkeypatch):
    _clear_font_caches()
    installed = synth._FONT_DIRS
    monkeypatch.setattr(synth, "_FONT_DIRS", ())
    try:
        with pytest.raises(synth.FontError, match="apt-get install fonts-ocr-a"):
            synth.check_fonts()
        # the stress recipe needs FreeFont, which the train recipe does not
        monkeypatch.setattr(synth, "_FONT_DIRS", tuple(d for d in installed if d.name != "freefont"))
        synth.check_fonts(synth.TRAIN)
        with pytest.raises(synth.FontError, match="FreeMonoBold.ttf not found.*apt-get install fonts-freefont-ttf"):
            synth.render_dataset(1, config=synth.STRESS)
    finally:
        _clear_font_caches()



def test_every_font_package_is_installed_by_quickstart_and_owns_its_file():
    # A fresh machine once lacked NotoSansMono-Bold.ttf: it is in fonts-noto-mono, not
    # fonts-noto-core as the map said, and quickstart installed only the latter.
    quickstart = (Path(__file__).resolve().parents[1] / "quickstart.sh").read_text()
    apt_line = next(line for line in quickstart.splitlines() if line.startswith("APT_PACKAGES="))
    apt_packages = apt_line.partition("(")[2].partition(")")[0].split()
    for key, (file_name, package) in synth.FONT_FILES.items():
        assert package in apt_packages, f"{key}: quickstart.sh does not install {package}"
    if shutil.which("dpkg") is None:
        return
    for key, (file_name, package) in synth.FONT_FILES.items():
        found = [folder / file_name for folder in synth._FONT_DIRS if (folder / file_name).is_file()]
        if not found:
            continue
        owner = subprocess.run(["dpkg", "-S", str(found[0])], capture_output=True, text=True)
        if owner.returncode == 0:  # a font copied in by hand belongs to no package
            assert owner.stdout.split(":")[0] == package, f"{key}: {found[0]} is in {owner.stdout.strip()}"

def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CLEAN.width = 3


def test_rect_to_quad_and_its_inverse_map_corners_and_back():
    quad = np.array([[12.5, 30.0], [410.0, 22.0], [430.0, 300.0], [5.0, 280.0]])
    h = synth.rect_to_quad(856.0, 540.0, quad)
    corners = np.array([[0.0, 0.0], [856.0, 0.0], [856.0, 540.0], [0.0, 540.0]])
    np.testing.assert_allclose(synth.apply_homography(h, corners), quad, atol=1e-9)
    np.testing.assert_allclose(synth.apply_homography(synth.invert_homography(h), quad), corners, atol=1e-9)
    with pytest.raises(ValueError, match="singular"):
        synth.invert_homography(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="degenerate"):
        synth.rect_to_quad(10.0, 10.0, np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))  # collinear
