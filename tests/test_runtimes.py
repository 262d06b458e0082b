"""Accuracy as deployed: the app runtimes' preprocessing probe, their boxes, evaluate through each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)
from ktp_tflite.convert.cli import main

VECTORS = Path(__file__).parent / "vectors" / "ktp_vectors.json"


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory):
    from ktp_tflite.convert.resize_probe import build_probe_model

    path = tmp_path_factory.mktemp("probe") / "probe.tflite"
    model = build_probe_model(320)
    path.write_bytes(model)
    return model, path


def test_probe_reports_the_pixels_it_was_fed(probe_model):
    from ktp_tflite.convert.resize_probe import LINES, line_positions, litert_pixels, probe_image

    model, _ = probe_model
    image = probe_image(320, 320)  # no resize: the probe must return the photo's own pixels
    values = litert_pixels(model, image)
    rows = line_positions(320)
    np.testing.assert_array_equal(values[:LINES], image[rows, :, 0])
    np.testing.assert_array_equal(values[LINES:], image[:, rows, 1].T)


def test_probe_finds_each_runtime_grid(probe_model):
    """Task Library samples on our half-pixel grid; MediaPipe corner-aligned, 0.5 * (scale - 1) left."""
    from ktp_tflite.convert.resize_probe import fit_sampling, litert_pixels, probe_image, runtime_pixels

    model, path = probe_model
    for width, height in ((640, 480), (1280, 720)):
        image = probe_image(width, height)
        sx, sy = width / 320, height / 320
        found = {"litert": litert_pixels(model, image),
                 "task-library": runtime_pixels("task-library", path, image),
                 "mediapipe": runtime_pixels("mediapipe", path, image)}
        expected = {"litert": (0.0, 0.0), "task-library": (0.0, 0.0),
                    "mediapipe": (0.5 - 0.5 * sx, 0.5 - 0.5 * sy)}
        for runtime, values in found.items():
            x = fit_sampling(values[:8], width)
            y = fit_sampling(values[8:], height)
            assert x.mean_offset_px == pytest.approx(expected[runtime][0], abs=0.06), (runtime, width)
            assert y.mean_offset_px == pytest.approx(expected[runtime][1], abs=0.06), (runtime, height)
            assert max(x.offset_px) - min(x.offset_px) < 0.1  # the same offset across the frame
            assert 0.9 < x.gain <= 1.02


def test_photo_box_matches_the_shared_vectors():
    from ktp_tflite.convert.runtimes import photo_box

    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["runtime_boxes"]["cases"]
    assert {c["runtime"] for c in cases} == {"litert", "task-library", "mediapipe"}
    assert {c["runtime"] for c in cases if c.get("presized")} == {"litert", "task-library", "mediapipe"}
    for case in cases:
        got = photo_box(case["runtime"], case["box"], tuple(case["photo"]), tuple(case["model"]),
                        presized=case.get("presized", False))
        assert got == pytest.approx(case["expected"], abs=1e-9), case
    with pytest.raises(ValueError, match="unknown runtime"):
        photo_box("tflite-gpu", [0, 0, 1, 1], (640, 480), (320, 320))


def test_a_presized_frame_reaches_the_model_exactly_as_our_resize(probe_model):
    """Handed presized_frame(photo), both runtimes feed the model resize_rgb(photo), pixel for pixel."""
    from ktp_tflite.convert.resize_probe import LINES, line_positions, runtime_pixels
    from ktp_tflite.convert.runtimes import APP_PRESIZE, presized_frame
    from ktp_tflite.train.preprocess import resize_rgb

    _, path = probe_model
    photo = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)  # noise: any miss shows
    ours = resize_rgb(photo, 320, 320)
    rows = line_positions(320)
    expected = np.concatenate([ours[rows, :, 0], ours[:, rows, 1].T])
    for runtime in ("task-library", "mediapipe"):
        for factor in (2, APP_PRESIZE):
            fed = runtime_pixels(runtime, path, presized_frame(photo, (320, 320), factor))
            np.testing.assert_array_equal(fed, expected, err_msg=f"{runtime} x{factor}")
        # the photo itself reaches the model otherwise: the check can fail
        assert np.abs(runtime_pixels(runtime, path, photo) - expected).mean() > 5, runtime


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Oracle detectors with metadata (float, int8) that find exactly the labelled boxes, and a mislabeller."""
    from ktp_tflite.convert.metadata import attach_metadata
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.datasets import write_coco

    folder = tmp_path_factory.mktemp("runtimes")
    oracle = tiny_ssd.default_oracle()
    source = detect_model_source(tiny_ssd.build_tf1_graph(folder / "oracle.pb", oracle=oracle))
    wrong = detect_model_source(tiny_ssd.build_tf1_graph(
        folder / "wrong.pb", oracle={anchor: (cls + 1) % 5 for anchor, cls in oracle.items()}))
    built = {
        "float": convert_model(source, QuantizeConfig(mode="float")).model,
        "int8": convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model,
        "wrong": convert_model(wrong, QuantizeConfig(), tiny_ssd.calibration()).model,
    }
    paths = {}
    for name, model in built.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(attach_metadata(model))
    dataset = tiny_ssd.oracle_dataset(oracle)
    write_coco(dataset, folder / "val")
    return {**paths, "dataset": dataset, "data": folder / "val"}


def test_runtimes_return_whole_pixel_boxes_of_the_labelled_fields(models):
    from ktp_tflite.convert.runtimes import detect_images

    dataset = models["dataset"]
    images = [e.load_rgb() for e in dataset.examples]
    ids = [e.image_id for e in dataset.examples]
    truth = sorted(b.to_pixels(128, 96) for b in dataset.examples[0].boxes)
    for runtime in ("task-library", "mediapipe"):
        found = detect_images(runtime, models["int8"], images, ids)
        assert len(found.returned) == 3
        first = found.returned[0]
        boxes = first.boxes * [96, 128, 96, 128]  # (ymin, xmin, ymax, xmax) pixels
        np.testing.assert_allclose(boxes, np.round(boxes), atol=1e-6)  # whole pixels, as returned
        top = np.argsort(-first.scores)[:len(truth)]  # the oracle anchors score highest
        assert sorted(first.classes[top]) == [0, 1, 2, 3, 4]
        clipped = np.clip(boxes[top], 0, [96, 128, 96, 128])  # the labels are clipped to the image
        got = sorted((x0, y0, x1, y1) for y0, x0, y1, x1 in clipped)
        np.testing.assert_allclose(got, truth, atol=1.6)  # trunc/round and the grid: within 1.5 px
        # ktp-core's mapping moves every box by the rule, no more
        app = found.app[0].boxes * [96, 128, 96, 128]
        assert np.abs(app - boxes).max() <= 1.0 + 1e-6


def test_evaluate_hands_presized_frames_to_the_whole_pixel_runtimes(models, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, [
        "evaluate", str(models["int8"]), "--data", str(models["data"]), "--runtime", "all", "--presize", "4",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["presize"] == 4 and "pre-sized frames (x4)" in result.output
    for entry in report["models"]:
        assert entry["metrics"]["map50"] == pytest.approx(1.0), entry["runtime"]
        assert entry["app_metrics"]["map50"] == pytest.approx(1.0), entry["runtime"]
    refused = CliRunner().invoke(main, ["evaluate", str(models["int8"]), "--data", str(models["data"]),
                                        "--presize", "1"])
    assert refused.exit_code == 2 and "--presize" in refused.output


def test_evaluate_through_each_runtime_and_gate_on_the_worst(models, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, [
        "evaluate", str(models["float"]), str(models["int8"]), "--data", str(models["data"]),
        "--runtime", "all", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["runtimes"] == ["litert", "task-library", "mediapipe"]
    entries = {(Path(m["model"]).name, m["runtime"]): m for m in report["models"]}
    assert len(entries) == 6
    for (_, runtime), entry in entries.items():
        assert entry["metrics"]["map50"] == pytest.approx(1.0), runtime
    assert set(report["runtime_gaps_points"]) == {"task-library", "mediapipe"}
    assert "litert" in result.output and "mediapipe" in result.output

    from ktp_tflite.benchmarks.report import load_eval_metrics

    shown = load_eval_metrics(out)  # the benchmark report shows the app's runtime
    app = entries[("int8.tflite", "task-library")]["app_metrics"]
    assert shown["int8.tflite"] == {"map": app["map"], "map50": app["map50"], "map75": app["map75"],
                                    "runtime": "task-library, ktp-core boxes"}

    result = CliRunner().invoke(main, [
        "evaluate", str(models["float"]), str(models["wrong"]), "--data", str(models["data"]),
        "--runtime", "task-library", "--max-map-drop", "1.0"])
    assert result.exit_code == 3
    assert "(task-library) exceeds --max-map-drop 1.0" in result.output


def test_worst_runtime_decides_the_gate():
    from ktp_tflite.convert.evaluate import EvaluationReport

    report = EvaluationReport(
        data="d", num_images=1, num_boxes=1, baseline="f.tflite", runtimes=("litert", "mediapipe"),
        models=[], runtime_gaps={},
        drops={"litert": {"i.tflite": {"map": 0.2, "map50": 0.0, "map75": 0.0}},
               "mediapipe": {"i.tflite": {"map": 1.7, "map50": 0.1, "map75": 2.0}}},
    )
    assert report.max_map_drop() == pytest.approx(1.7)
    assert report.worst_runtime() == "mediapipe"


def test_resize_sampled_default_is_the_shared_resize():
    import tensorflow as tf

    from ktp_tflite.train.augment import resize_sampled
    from ktp_tflite.train.preprocess import tf_resize_rgb

    image = tf.constant(np.random.default_rng(0).integers(0, 256, (48, 64, 3)), tf.float32)
    boxes = tf.constant([[0.1, 0.2, 0.5, 0.6]])
    ours, moved = resize_sampled(image, boxes, (32, 32), tf.constant(0), ("antialias",), tf.zeros([2]))
    np.testing.assert_allclose(ours.numpy(), tf_resize_rgb(image, 32, 32).numpy(), atol=1e-3)
    np.testing.assert_allclose(moved.numpy(), boxes.numpy(), atol=1e-7)


@pytest.mark.parametrize("method", ["antialias", "bilinear", "corner", "area", "nearest"])
def test_resize_sampled_keeps_boxes_on_the_ink(method):
    """A smooth blob's centre of mass after each resize and shift sits at its moved box's centre.

    The corner-aligned grid alone would move it 0.25-0.3 model px; an unmoved box would fail.
    """
    import tensorflow as tf

    from ktp_tflite.train.augment import RESIZE_METHODS, resize_sampled

    rows, cols = np.mgrid[0:240, 0:320] + 0.5  # pixel centres in edge coordinates
    blob = 255.0 * np.exp(-((rows - 100.5) ** 2 + (cols - 130.5) ** 2) / (2 * 6.0 ** 2))
    image = np.repeat(blob[:, :, None], 3, axis=2).astype(np.float32)
    boxes = tf.constant([[80.5 / 240, 110.5 / 320, 120.5 / 240, 150.5 / 320]])  # centred on the blob
    methods = tuple(RESIZE_METHODS)
    for shift in ([0.0, 0.0], [0.37, -0.21]):
        resized, moved = resize_sampled(tf.constant(image), boxes, (96, 160),
                                        tf.constant(methods.index(method)), methods, tf.constant(shift))
        ink = resized.numpy()[:, :, 0]
        rows, cols = np.mgrid[0:96, 0:160] + 0.5  # pixel centres, edge coordinates
        cy, cx = (ink * rows).sum() / ink.sum(), (ink * cols).sum() / ink.sum()
        ymin, xmin, ymax, xmax = moved.numpy()[0]
        # model pixels; a box kernel weighs whole input pixels, so its centre moves in steps
        tolerance = 0.1 if RESIZE_METHODS[method][0] == "box" else 0.05
        assert cy == pytest.approx((ymin + ymax) / 2 * 96, abs=tolerance), (method, shift)
        assert cx == pytest.approx((xmin + xmax) / 2 * 160, abs=tolerance), (method, shift)


def test_resize_augmentation_is_deterministic_per_seed():
    import tensorflow as tf

    from ktp_tflite.train.augment import augment_and_resize
    from ktp_tflite.train.config import preset

    augment = preset("ktp").train.augment
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (120, 160, 3)), tf.uint8)
    boxes = tf.constant([[0.2, 0.2, 0.4, 0.7]])

    def run(seed):
        tf.random.set_seed(seed)
        return [t.numpy() for t in augment_and_resize(image, boxes, tf.constant(1), (64, 64), augment)]

    first, again, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_runtime_agreement_reports_each_runtime_against_litert(models):
    """Structure and the measured ordering; the box formats' exact bounds are tested above.

    The oracle's anchors cross the photo's edges, where MediaPipe clamps the
    origin to 0 but keeps the width (convert/RUNTIMES.md), so its offsets are
    the largest here.
    """
    from ktp_tflite.convert.verify import OFFSET_WARN_PX, runtime_agreement
    from ktp_tflite.train.labels import CLASSES

    agreement = runtime_agreement(models["int8"], list(CLASSES))
    assert agreement.photos == 3 and agreement.photo_size == (640, 480)
    assert agreement.runtimes == ("task-library", "mediapipe")
    assert agreement.missing == {"task-library": [], "mediapipe": []}
    tl, mp = agreement.max_offset_px["task-library"], agreement.max_offset_px["mediapipe"]
    assert 0 < tl["returned"] < 1.5  # right edge = truncated origin + rounded size: error in (-1.5, 0.5]
    assert mp["returned"] > tl["returned"]
    assert len(tl["returned_mean_edges"]) == len(mp["ktp_core_mean_edges"]) == len(mp["app_mean_edges"]) == 4
    # (the oracle's input is tiny, so its presized frames are coarse: no ordering to assert on the app's path)
    assert tl["app"] >= 0 and mp["app"] >= 0
    warned = {w.split(" ")[0] for w in agreement.warnings if "differ from LiteRT" in w}
    assert warned == {r for r, o in agreement.max_offset_px.items() if o["app"] > OFFSET_WARN_PX}
