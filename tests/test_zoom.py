"""Two-pass zoom (convert/zoom.py) and evaluate's cards-read metric, on hand-made photos and detections."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert import zoom
from ktp_tflite.convert.evaluate import cards_read
from ktp_tflite.train.card_layout import TEMPLATE, card_from_fields, zoom_crop
from ktp_tflite.train.coco_eval import Detections
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.records import Box, Dataset, Example

W, H = 640, 480


def _card_fields(scale: float, x0: float, y0: float) -> dict[str, tuple[int, int, int, int]]:
    """Whole-pixel field boxes of a card at ``scale`` on the template (right edges 60 card px in)."""
    return {name: (round(x0 + scale * left), round(y0 + scale * top), round(x0 + scale * (left + 60)),
                   round(y0 + scale * bottom))
            for name, (left, top, bottom) in TEMPLATE.items()}


def _paint(fields: dict[str, tuple[int, int, int, int]]) -> np.ndarray:
    """A photo with each field painted in its own colour (red = 40 * (class + 1), green 255)."""
    image = np.zeros((H, W, 3), np.uint8)
    for name, (left, top, right, bottom) in fields.items():
        image[top:bottom, left:right] = (40 * (CLASSES.index(name) + 1), 255, 0)
    return image


def colour_detector(image: np.ndarray) -> Detections:
    """Finds each field's colour: its exact pixel box, normalised to the image it was given."""
    boxes, classes = [], []
    for index in range(len(CLASSES)):
        ys, xs = np.nonzero((image[..., 0] == 40 * (index + 1)) & (image[..., 1] == 255))
        if len(xs):
            h, w = image.shape[:2]
            boxes.append((ys.min() / h, xs.min() / w, (ys.max() + 1) / h, (xs.max() + 1) / w))
            classes.append(index)
    return Detections("", np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64),
                      np.full(len(classes), 0.9, np.float32))


def _pixels(found: Detections, label: str) -> tuple[float, ...]:
    (box,) = found.boxes[found.classes == CLASSES.index(label)]
    ymin, xmin, ymax, xmax = box
    return (xmin * W, ymin * H, xmax * W, ymax * H)


def test_small_card_gets_a_second_pass_mapped_back_exactly():
    fields = _card_fields(0.3, 150.0, 120.0)  # card 257 px = 0.40 of the frame
    image = _paint(fields)
    seen = []

    def detect(pixels):
        seen.append(pixels.shape)
        return colour_detector(pixels)

    result = zoom.two_pass(detect, image)
    expected_crop = zoom_crop(card_from_fields({k: tuple(map(float, v)) for k, v in fields.items()}), (W, H))
    assert result.second_pass and result.crop == expected_crop
    left, top, right, bottom = expected_crop
    assert seen == [(H, W, 3), (bottom - top, right - left, 3)]
    assert abs((right - left) / (bottom - top) - W / H) < 0.05  # the frame's aspect ratio, whole pixels
    assert len(result.detections.classes) == 5  # pass 2 found every field: pass 1's are replaced
    for name, box in fields.items():
        assert _pixels(result.detections, name) == pytest.approx(box, abs=1e-9), name


def test_large_card_or_no_field_runs_one_pass():
    calls = []

    def detect(pixels):
        calls.append(pixels.shape)
        return colour_detector(pixels)

    image = _paint(_card_fields(0.6, 60.0, 80.0))  # 0.80 of the frame
    result = zoom.two_pass(detect, image)
    assert not result.second_pass and result.crop is None and len(calls) == 1
    first = colour_detector(image)
    np.testing.assert_array_equal(result.detections.boxes, first.boxes)
    assert not zoom.two_pass(colour_detector, np.zeros((H, W, 3), np.uint8)).second_pass


def test_classes_pass_two_misses_keep_pass_one_boxes():
    fields = _card_fields(0.3, 150.0, 120.0)
    image = _paint(fields)

    def detect(pixels):  # misses kewarganegaraan on the crop
        found = colour_detector(pixels)
        if pixels.shape[:2] == (H, W):
            return found
        keep = found.classes != CLASSES.index("kewarganegaraan")
        return Detections("", found.boxes[keep], found.classes[keep], found.scores[keep])

    result = zoom.two_pass(detect, image)
    assert result.second_pass
    assert sorted(result.detections.classes.tolist()) == [0, 1, 2, 3, 4]
    assert _pixels(result.detections, "kewarganegaraan") == pytest.approx(fields["kewarganegaraan"], abs=1e-9)


def test_low_scores_do_not_place_the_card():
    image = _paint(_card_fields(0.3, 150.0, 120.0))

    def weak(pixels):
        found = colour_detector(pixels)
        return Detections("", found.boxes, found.classes, np.full(len(found.classes), 0.1, np.float32))

    assert not zoom.two_pass(weak, image).second_pass  # below min_score 0.15
    assert zoom.two_pass(weak, image, zoom.ZoomSettings(min_score=0.05)).second_pass


def test_batches_run_two_calls_and_keep_order():
    images = [_paint(_card_fields(0.3, 150.0, 120.0)), _paint(_card_fields(0.6, 60.0, 80.0)),
              _paint(_card_fields(0.25, 300.0, 200.0))]
    batches = []

    def detect_many(batch):
        batches.append(len(batch))
        return [colour_detector(image) for image in batch]

    results = zoom.two_pass_many(detect_many, images)
    assert batches == [3, 2]
    assert [r.second_pass for r in results] == [True, False, True]
    fields = _card_fields(0.25, 300.0, 200.0)
    assert _pixels(results[2].detections, "nik") == pytest.approx(fields["nik"], abs=1e-9)


def test_to_photo_by_hand():
    found = Detections("a", np.array([[0.5, 0.5, 1.0, 1.0]]), np.array([1]), np.array([0.8], np.float32))
    mapped = zoom.to_photo(found, (100, 50, 300, 250), (640, 480))
    np.testing.assert_allclose(mapped.boxes, [[150 / 480, 200 / 640, 250 / 480, 300 / 640]])
    assert mapped.image_id == "a" and mapped.classes.tolist() == [1]


# --------------------------------------------------------------------------- cards read


def _example(image_id: str, scale: float) -> Example:
    boxes = tuple(Box(ymin=t / H, xmin=l / W, ymax=b / H, xmax=r / W, label=name)
                  for name, (l, t, r, b) in _card_fields(scale, 20.0, 30.0).items())
    return Example(image_id=image_id, width=W, height=H, boxes=boxes, image_bytes=b"")


def _detections(example: Example, *, shift: dict[str, float] | None = None, drop: str | None = None,
                decoy: str | None = None, weak: bool = False) -> Detections:
    """The truth, a class shifted right by a share of its width, a class dropped, or a better-scored decoy.

    With ``weak``, the decoy's class scores 0.05 in place (under the card fit's
    FIT_MIN_SCORE_RATIO of the decoy's 0.7: never tried).
    """
    rows, classes, scores = [], [], []
    for box in example.boxes:
        if box.label == drop:
            continue
        dx = (shift or {}).get(box.label, 0.0) * (box.xmax - box.xmin)
        rows.append((box.ymin, box.xmin + dx, box.ymax, box.xmax + dx))
        classes.append(box.class_index)
        scores.append(0.05 if weak and box.label == decoy else 0.6)
        if box.label == decoy:  # a higher-scored box elsewhere: the top box is wrong
            rows.append((0.9, 0.9, 0.95, 0.99))
            classes.append(box.class_index)
            scores.append(0.7)
    return Detections(example.image_id, np.array(rows), np.array(classes), np.array(scores, np.float32))


def test_cards_read_known_answers():
    # card widths 0.3 * 856 / 640 = 0.40, 0.4 * 856 / 640 = 0.535, 0.6 * 856 / 640 = 0.80
    examples = [_example("a", 0.3), _example("b", 0.3), _example("c", 0.4), _example("d", 0.6),
                _example("e", 0.6), _example("f", 0.6), _example("g", 0.6)]
    dataset = Dataset(examples=examples, source="hand-made", format="synth")
    by_id = {e.image_id: e for e in examples}
    detections = [
        _detections(by_id["a"]),  # read at 0.5 and 0.7
        _detections(by_id["b"], shift={"nama": 0.25}),  # IoU (1 - .25) / (1 + .25) = 0.6: read at 0.5 only
        _detections(by_id["c"], drop="status_perkawinan"),  # a field missing: not read
        # the top-scoring nik lies off the card's layout: the card fit keeps the nik in place: read at both
        _detections(by_id["d"], decoy="nik"),
        _detections(by_id["e"], shift={"jenis_kelamin": 0.1}),  # IoU 0.9 / 1.1 = 0.82: read at both
        # "f" has no detections at all: not read
        _detections(by_id["g"], decoy="nik", weak=True),  # the nik in place is too weak to be tried: not read
    ]
    result = cards_read(dataset, detections)
    assert result.images == {"all": 7, "under_45": 2, "45_to_65": 1, "65_and_over": 4}
    assert result.read["0.5"] == pytest.approx({"all": 4 / 7, "under_45": 1.0, "45_to_65": 0.0,
                                                "65_and_over": 2 / 4})
    assert result.read["0.7"] == pytest.approx({"all": 3 / 7, "under_45": 0.5, "45_to_65": 0.0,
                                                "65_and_over": 2 / 4})
    assert json.loads(json.dumps(result.to_dict()))["read"]["0.7"]["under_45"] == 0.5


def test_cards_read_empty_bin_and_unknown_image():
    from ktp_tflite.convert.evaluate import EvaluateError

    dataset = Dataset(examples=[_example("a", 0.6)], source="one", format="synth")
    result = cards_read(dataset, [_detections(dataset.examples[0])])
    assert result.read["0.5"]["under_45"] is None and result.read["0.5"]["all"] == 1.0
    with pytest.raises(EvaluateError, match="not in one"):
        cards_read(dataset, [Detections("zzz", np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))])


# --------------------------------------------------------------------------- CLIs on a tiny real model


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """A tiny int8 SSD whose detections are exactly the labelled boxes (large boxes: no zoom)."""
    pytest.importorskip("tensorflow")
    import ktp_tests_tiny_ssd as tiny_ssd  # registered by conftest.py

    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.datasets import write_coco

    folder = tmp_path_factory.mktemp("zoom")
    table = tiny_ssd.default_oracle()
    source = detect_model_source(tiny_ssd.build_tf1_graph(folder / "oracle.pb", oracle=table))
    model = folder / "int8.tflite"
    model.write_bytes(convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model)
    dataset = tiny_ssd.oracle_dataset(table)
    write_coco(dataset, folder / "val")
    photo = folder / "photo.png"
    photo.write_bytes(dataset.examples[0].image_bytes)
    return {"model": model, "data": folder / "val", "photo": photo}


def test_evaluate_zoom_reports_cards_read_and_second_passes(oracle, tmp_path):
    from ktp_tflite.convert.cli import main

    plain, zoomed = tmp_path / "plain.json", tmp_path / "zoom.json"
    base = ["evaluate", str(oracle["model"]), "--data", str(oracle["data"]), "--runtime", "litert"]
    result = CliRunner().invoke(main, [*base, "--json", str(plain)])
    assert result.exit_code == 0, result.output
    assert "cards read@.5" in result.output and "second pass" not in result.output
    result = CliRunner().invoke(main, [*base, "--zoom", "--json", str(zoomed)])
    assert result.exit_code == 0, result.output
    assert "second pass (% images)" in result.output and "two-pass zoom for cards under 45 %" in result.output
    plain_report, zoom_report = json.loads(plain.read_text()), json.loads(zoomed.read_text())
    assert plain_report["zoom"] is None and zoom_report["zoom"]["threshold"] == 0.45
    (before,), (after,) = plain_report["models"], zoom_report["models"]
    assert before["second_pass_share"] is None and after["second_pass_share"] == 0.0  # large boxes
    assert after["metrics"] == before["metrics"]  # no crop: the same detections
    assert before["cards_read"]["read"]["0.5"]["all"] == 1.0  # the oracle finds every box
    assert before["cards_read"]["num_images"]["all"] == 3
    assert set(before) >= {"metrics", "app_metrics", "cards_read", "app_cards_read", "precision"}


def test_scan_zoom_option(oracle):
    from ktp_tflite.convert.cli import main

    args = ["scan", str(oracle["photo"]), "--model", str(oracle["model"]), "--threshold", "0.5"]
    plain = CliRunner().invoke(main, args)
    zoomed = CliRunner().invoke(main, [*args, "--zoom"])
    assert plain.exit_code == 0 and zoomed.exit_code == 0, zoomed.output
    assert "zoom: no second pass" in zoomed.stderr
    assert json.loads(zoomed.stdout) == json.loads(plain.stdout)
    assert json.loads(plain.stdout)["fields"]  # the oracle finds fields: the zoom kept them


def test_zoom_threshold_help_states_the_layouts_default():
    # --zoom-threshold defaults to None (the CLI imports no numpy for --help); its help names the value.
    from ktp_tflite.convert.cli import main
    from ktp_tflite.train.card_layout import DEFAULT_ZOOM_THRESHOLD

    for command in ("evaluate", "evaluate-scan"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert f"[default: {DEFAULT_ZOOM_THRESHOLD:g}, the card layout's" in " ".join(result.output.split()), command


# --- Section "zoom" of the shared vectors: the two passes' bookkeeping, for ktp-core's Zoom ---------------------------

vector_file = sys.modules.get("ktp_tests_vector_file") or importlib.import_module("vector_file")  # see vector_file.py
ZOOM_SECTION = "zoom"


def _normalised(fields: dict[str, tuple[float, ...]], frame: tuple[int, int], score: float = 0.9) -> dict:
    """Detections (ymin, xmin, ymax, xmax normalised to ``frame``) of pixel boxes, classes in CLASSES order."""
    width, height = frame
    return {"boxes": [[top / height, left / width, bottom / height, right / width]
                      for left, top, right, bottom in fields.values()],
            "classes": [CLASSES.index(name) for name in fields],
            "scores": [score] * len(fields)}


def _zoom_specs() -> list[dict]:
    small = _card_fields(0.25, 100.0, 80.0)  # a card 214 px wide in a 640 px frame: zoomed
    large = _card_fields(0.6, 40.0, 30.0)  # 514 px wide: one pass
    first = _normalised(small, (W, H), 0.8)
    second_all = {"boxes": [[0.1 + 0.15 * k, 0.2, 0.16 + 0.15 * k, 0.7 - 0.05 * k] for k in range(5)],
                  "classes": [0, 1, 2, 3, 4], "scores": [0.95, 0.9, 0.85, 0.8, 0.75]}
    second_some = {"boxes": [[0.1, 0.2, 0.16, 0.7], [0.4, 0.2, 0.45, 0.5], [0.55, 0.3, 0.6, 0.5]],
                   "classes": [0, 2, 3], "scores": [0.95, 0.1, 0.85]}  # class 2 below min_score: pass 1 keeps it
    noisy = {"boxes": first["boxes"] + [[0.5, 0.5, 0.5, 0.6], [0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 0.9, 0.9]],
             "classes": first["classes"] + [1, 7, 4], "scores": first["scores"] + [0.99, 0.99, 0.1]}
    return [
        {"about": "small card: pass 2 finds all five fields, the final boxes are pass 2's mapped to the frame",
         "frame": [W, H], "first": first, "second": second_all},
        {"about": "pass 2 finds some fields (one below min_score): pass 1's detections of the others are kept",
         "frame": [W, H], "first": first, "second": second_some},
        {"about": "an empty box, an unknown class and a low score do not place the card",
         "frame": [W, H], "first": noisy, "second": second_all},
        {"about": "large card: no crop, one pass", "frame": [W, H],
         "first": _normalised(large, (W, H)), "second": None},
        {"about": "no field at min_score: no crop", "frame": [W, H],
         "first": _normalised(small, (W, H), 0.1), "second": None},
        {"about": "portrait frame: the crop takes the frame's aspect ratio (3:4)",
         "frame": [480, 640], "first": _normalised(small, (480, 640), 0.7), "second": second_all},
    ]


def _vector_detections(spec: dict) -> Detections:
    return Detections("", np.array(spec["boxes"], np.float64).reshape(-1, 4), np.array(spec["classes"], np.int64),
                      np.array(spec["scores"], np.float32))


def zoom_case(spec: dict) -> dict:
    frame = tuple(spec["frame"])
    first = _vector_detections(spec["first"])
    crop = zoom.plan_crop(first, frame)
    case = dict(spec)
    case["min_score"] = zoom.ZoomSettings().min_score
    case["crop"] = None if crop is None else list(crop)
    second = _vector_detections(spec["second"]) if spec["second"] is not None and crop is not None else None
    final = zoom.finish(first, second, crop, frame).detections
    case["final"] = {"boxes": np.asarray(final.boxes, np.float64).tolist(), "classes": final.classes.tolist(),
                     "scores": [float(s) for s in final.scores]}
    return case


def build_zoom_section() -> dict:
    return {
        "about": ("The two-pass zoom's bookkeeping (ktp_tflite.convert.zoom plan_crop and finish; ktp-core Zoom). "
                  "frame is [width, height]; first: pass 1's detections (boxes [ymin, xmin, ymax, xmax] "
                  "normalised to the frame, classes, scores); crop: [left, top, right, bottom] frame pixels of pass "
                  "2, or null (the card is large, or no field scores min_score); second: pass 2's detections "
                  "normalised to the crop (ignored without a crop); final: the detections kept, normalised to the "
                  "frame, in order: pass 2's, then pass 1's of the classes pass 2 found none of at min_score. "
                  "Scores are float32 in Python. Regenerate: python tests/test_zoom.py --write."),
        "cases": [zoom_case(spec) for spec in _zoom_specs()],
    }


def test_zoom_vectors_are_what_the_code_makes():
    stored = json.loads(vector_file.VECTORS_PATH.read_text(encoding="utf-8"))[ZOOM_SECTION]
    assert stored == json.loads(json.dumps(build_zoom_section()))
    crops = [case["crop"] for case in stored["cases"]]
    assert sum(crop is None for crop in crops) == 2 and len(crops) == 6  # both outcomes covered
    kept_from_first = stored["cases"][1]["final"]["classes"]
    assert kept_from_first[:3] == [0, 2, 3] and sorted(kept_from_first[3:]) == [1, 2, 4]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {sys.argv[0]} --write   (rewrites section {ZOOM_SECTION!r} of {vector_file.VECTORS_PATH})")
    vector_file.write_section(ZOOM_SECTION, build_zoom_section())
    print(f"wrote section {ZOOM_SECTION!r} of {vector_file.VECTORS_PATH}", file=sys.stderr)
