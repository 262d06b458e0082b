"""The field reader: crop geometry, a tiny reader that trains, exports, quantizes and loads in LiteRT."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ktp_tflite.train import synth
from ktp_tflite.train.images import load_image
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.reader_crops import (
    CropConfig,
    CropError,
    crop_quad,
    crops_from_boxes,
    expand_quad,
    render_value_crops,
)
from ktp_tflite.train.reader_grammar import NUM_CLASSES
from ktp_tflite.train.synth import apply_homography, invert_homography, rect_to_quad

CLEAN = synth.SynthConfig(width=640, height=480, photometric=False, distractors=False)
CROP = CropConfig()


def _ink(seed, index, config, element, threshold, also_omit=frozenset()):
    full = synth.render_card(seed, index, config, omit=also_omit).image.astype(np.int16)
    without = synth.render_card(seed, index, config, omit=also_omit | {element}).image.astype(np.int16)
    ys, xs = np.nonzero(np.abs(full - without).max(axis=2) > threshold)
    return np.stack([xs + 0.5, ys + 0.5], axis=1)  # pixel centres


def _in_crop(points, quad, content):
    """Which frame points fall inside the crop's content, in crop pixels."""
    uv = apply_homography(invert_homography(rect_to_quad(content, CROP.height, quad)), points)
    return (uv[:, 0] >= 0) & (uv[:, 0] <= content) & (uv[:, 1] >= 0) & (uv[:, 1] <= CROP.height)


@pytest.mark.parametrize("config, index", [(CLEAN, 0), (dataclasses.replace(CLEAN, layout_jitter_px=4.0, thumb_share=1.0), 3)])
def test_rectified_crop_holds_the_value_ink_and_none_of_the_label(config, index):
    card = synth.render_card(21, index, config)
    quads = card.value_quads
    for field in CLASSES:
        quad = expand_quad(quads[field], CROP.margin, CROP.side_margin)
        pixels, content = crop_quad(card.image, quad, CROP)
        assert pixels.shape == (32, 256, 3) and 8 <= content <= 256
        value = _ink(21, index, config, f"value:{field}", threshold=30)
        assert _in_crop(value, quad, content).all(), field  # every ink pixel of the value
        # the crop's pixels change when the value is left out, not when the label or colon is
        without_value = synth.render_card(21, index, config, omit=frozenset({f"value:{field}"})).image
        assert np.abs(crop_quad(without_value, quad, CROP)[0].astype(int) - pixels).max() > 60, field
        for element in (f"label:{field}", f"colon:{field}"):
            ink = _ink(21, index, config, element, threshold=8, also_omit=frozenset({"occluders"}))
            assert len(ink) > 0 and not _in_crop(ink, quad, content).any(), (field, element)
    gol_darah = _ink(21, index, config, "label:gol_darah", threshold=8, also_omit=frozenset({"occluders"}))
    quad = expand_quad(quads["jenis_kelamin"], CROP.margin, CROP.side_margin)
    assert not _in_crop(gol_darah, quad, crop_quad(card.image, quad, CROP)[1]).any()


def test_rendered_crops_and_detector_boxes_share_the_geometry():
    crops = render_value_crops(9, 0, CLEAN)
    assert [(c.field, c.kind) for c in crops] == [(f, "rectified") for f in CLASSES] + [(f, "box") for f in CLASSES]
    card = synth.render_card(9, 0, CLEAN)
    assert all(c.text == card.texts[c.field] for c in crops)
    photo = load_image(card.jpeg, where="card")
    boxes = {b.label: b.to_pixels(CLEAN.width, CLEAN.height) for b in card.boxes}
    from_boxes = crops_from_boxes(photo, boxes)
    for crop in crops[5:]:
        assert np.array_equal(from_boxes[crop.field].pixels, crop.pixels)
        x0, y0, x1, y1 = boxes[crop.field]
        margin, side = CROP.margin * (y1 - y0), CROP.side_margin * (y1 - y0)
        np.testing.assert_allclose(crop.quad[0], [x0 - side, y0 - margin], atol=1e-3)
        np.testing.assert_allclose(crop.quad[2], [x1 + side, y1 + margin], atol=1e-3)
        # a short value keeps its aspect and is padded with one colour
        if crop.content_width < 250:
            pad = crop.pixels[:, crop.content_width:]
            assert (pad == pad[0, 0]).all()
    with pytest.raises(CropError, match="unknown field 'alamat'"):
        crops_from_boxes(photo, {"alamat": (1, 1, 20, 10)})
    with pytest.raises(CropError, match="is empty"):
        crops_from_boxes(photo, {"nik": (20, 10, 20, 30)})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from ktp_tflite.train.reader_model import ReaderConfig
    from ktp_tflite.train.reader_train import render_crops, train_reader

    config = ReaderConfig(channels=(8, 8, 8, 12, 16), block_repeats=1, head_channels=16, head_blocks=1, steps=3,
                          batch_size=4,
                          train_cards=2, val_cards=1, crop_kinds=("rectified",), checkpoint_every=2,
                          train_seed=3, val_seed=4, frame_sizes=((320, 240),))
    crops = render_crops(3, 2, config, synth.SynthConfig(width=320, height=240))
    run_dir = tmp_path_factory.mktemp("reader") / "run"
    result = train_reader(config, run_dir, train_crops=crops[:8], val_crops=crops[8:])
    return config, run_dir, crops, result


def test_tiny_reader_trains_resumes_and_evaluates(tiny_run):
    from ktp_tflite.train.reader_model import ReaderConfig
    from ktp_tflite.train.reader_train import ReaderRunError, train_reader

    config, run_dir, crops, result = tiny_run
    assert (result.first_step, result.last_step) == (0, 3) and np.isfinite(result.final_loss)
    assert [json.loads(line)["step"] for line in (run_dir / "history.jsonl").read_text().splitlines()] == [2, 3]
    metrics = json.loads((run_dir / "metrics.json").read_text())["val"]
    assert metrics["all"]["crops"] == 2 and 0.0 <= metrics["all"]["exact"] <= 1.0 and metrics["all"]["cer"] >= 0
    resumed = train_reader(ReaderConfig(steps=5), run_dir, resume=True, train_crops=crops[:8], val_crops=crops[8:])
    assert (resumed.first_step, resumed.last_step) == (3, 5)  # the stored architecture, the new step budget
    with pytest.raises(ReaderRunError, match="not empty; pass --resume"):
        train_reader(config, run_dir, train_crops=crops[:8], val_crops=crops[8:])


def test_tiny_reader_exports_float_and_int8_that_load_in_litert(tiny_run):
    from ktp_tflite.convert.reader import TfliteReader
    from ktp_tflite.convert.reader_quantize import compare_with_keras, int8_tflite
    from ktp_tflite.train.reader_export import float_tflite
    from ktp_tflite.train.reader_train import restore_reader

    _, run_dir, crops, _ = tiny_run
    config, model = restore_reader(run_dir)
    float_model = float_tflite(model, config)
    check = compare_with_keras(float_model, model, crops[:3])
    assert check["max_abs_logit_diff"] < 1e-3 and check["greedy_agreement"] == 1.0
    int8_model = int8_tflite(model, config, crops)
    logits = TfliteReader(int8_model).logits(crops[:3])
    assert logits.shape == (3, config.time_steps, NUM_CLASSES) and logits.dtype == np.float32
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=int8_model)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.uint8 and tuple(inp["shape"]) == (1, 32, 256, 3)
    scale, zero = inp["quantization"]
    # uint8 input == pixel values: the pinned range [-1, 1] gives scale 1/127.5, zero point 127.5 rounded
    assert scale == pytest.approx(1 / 127.5, rel=1e-6) and zero in (127, 128)
    assert out["dtype"] == np.float32
    int8_check = compare_with_keras(int8_model, model, crops[:3])
    assert int8_check["max_abs_logit_diff"] < 0.25 * int8_check["logit_range"]
    assert len(int8_model) < len(float_model)


def test_export_reader_writes_both_models_with_metadata_and_scores(tiny_run, tmp_path):
    from click.testing import CliRunner

    from ktp_tflite.convert.cli import main
    from ktp_tflite.convert.reader import (
        CHARSET_FILE,
        ReaderModelError,
        TfliteReader,
        charset_txt,
        crop_txt,
        parse_charset,
        parse_crop,
    )
    from ktp_tflite.convert.tflite_model import parse_model
    from ktp_tflite.train.reader_grammar import ALPHABET

    _, run_dir, crops, _ = tiny_run
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export-reader", str(run_dir), "--out", str(out), "--representative-cards", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "reader_eval.json").read_text())
    assert report["val_crops"] == 5 and report["representative_crops"] == 10  # 1 and 2 cards x 5 fields
    assert set(report["float"]) == set(report["int8"]) == {*CLASSES, "all"}
    assert report["float_keras_agreement"]["max_abs_logit_diff"] < 1e-3
    for key, drop in report["drop_points"].items():
        assert drop == pytest.approx(100 * (report["float"][key]["exact"] - report["int8"][key]["exact"]))
    int8 = parse_model((out / "ktp_reader_int8.tflite").read_bytes(), "int8")
    assert int8.precision == "int8" and int8.input.dtype == "uint8"
    assert parse_charset(int8.associated_file(CHARSET_FILE).decode()) == ALPHABET
    assert int8.normalization.mean == (127.5,) and int8.normalization.std == (127.5,)
    config, _, _, _ = tiny_run
    assert TfliteReader(int8.data).crop == config.crop  # crop.txt: the geometry it was trained on
    readings = TfliteReader(int8.data).read(crops[:5])
    assert [r.field for r in readings] == [c.field for c in crops[:5]]
    assert readings[0].method == "greedy" and len(readings[0].text) <= 16 and set(readings[0].text) <= set("0123456789")
    # the same outputs again: refused without --force, nothing changed
    before = (out / "ktp_reader_int8.tflite").read_bytes()
    again = CliRunner().invoke(main, ["export-reader", str(run_dir), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output and "Traceback" not in again.output
    assert (out / "ktp_reader_int8.tflite").read_bytes() == before
    # a reader with another charset is refused, naming the file
    from ktp_tflite.convert import reader as reader_module

    other = charset_txt(ALPHABET[:-1] + "#")
    assert other != charset_txt() and parse_charset(other).endswith("#")
    with pytest.raises(ReaderModelError, match="not a reader charset"):
        parse_charset("A\nB\n", "x.txt")
    wide = CropConfig(width=384, side_margin=0.4)
    assert crop_txt(wide) == "height=32\nwidth=384\nmargin=0.2\nside_margin=0.4\n"
    assert parse_crop(crop_txt(wide)) == wide
    for text, message in (("height=32\nwidth=384\nmargin=0.2\n", "missing side_margin"),
                          ("height=32\nheight=32\n", "line 2"), ("width: 384\n", "line 1"),
                          ("height=32\nwidth=x\nmargin=0.2\nside_margin=0.4\n", "crop.txt")):
        with pytest.raises(ReaderModelError, match=message):
            parse_crop(text, "crop.txt")
    not_reader = parse_model((out / "ktp_reader_int8.tflite").read_bytes(), "m")
    assert reader_module._checked(not_reader) is not_reader


def test_deskew_finds_the_slant_of_rendered_lines_and_bounds_the_box():
    import math

    from ktp_tflite.train.reader_crops import box_crop, line_angle, slanted_quad

    rolled = dataclasses.replace(CLEAN, max_roll_deg=12.0, max_tilt_deg=5.0)
    errors, level = [], []
    for index in range(6):
        card = synth.render_card(31, index, rolled)
        photo = load_image(card.jpeg, where="card")
        for box in card.boxes:
            pixel_box = box.to_pixels(rolled.width, rolled.height)
            tl, tr = card.value_quads[box.label][:2]
            truth = math.degrees(math.atan2(tr[1] - tl[1], tr[0] - tl[0]))
            angle = line_angle(photo, pixel_box)
            if box.label in ("nik", "nama"):  # long lines: the slant is well defined
                errors.append(abs(angle - truth))
            quad = slanted_quad(pixel_box, angle)
            if quad is not None:  # the slanted rectangle's bounding box is the box
                np.testing.assert_allclose([*quad.min(axis=0), *quad.max(axis=0)], pixel_box, atol=1e-6)
            crop = box_crop(photo, pixel_box, CROP, box.label, deskew=True)
            assert crop.pixels.shape == (32, 256, 3) and crop.text_height <= pixel_box[3] - pixel_box[1] + 1e-6
        level.append(line_angle(synth.render_card(31, index, dataclasses.replace(CLEAN, max_roll_deg=0.0,
                                                                                max_tilt_deg=0.0)).image,
                                synth.render_card(31, index, dataclasses.replace(
                                    CLEAN, max_roll_deg=0.0, max_tilt_deg=0.0)).boxes[0].to_pixels(640, 480)))
    assert np.median(errors) < 1.0 and max(errors) < 3.0, errors
    assert max(abs(a) for a in level) <= 0.5  # an upright card's NIK line is level
    assert slanted_quad((0, 0, 100, 10), 10.0) is None  # a 10 px box cannot hold a 100 px line at 10 degrees
    np.testing.assert_allclose(slanted_quad((0, 0, 100, 10), 0.0), [[0, 0], [100, 0], [100, 10], [0, 10]])


def _truth_boxes(card, photo):
    from ktp_tflite.train.records import field_pixel_boxes

    return field_pixel_boxes(card.boxes, photo.shape[1], photo.shape[0])


def test_detector_crops_keep_boxes_on_the_value_and_drop_the_rest():
    from ktp_tflite.train.reader_crops import DETECTOR_KIND, box_crop, detector_value_crops

    card = synth.render_card(5, 0, CLEAN)
    photo = load_image(card.jpeg)
    found = {f: (x0 - 1.5, y0 + 0.5, x1 + 2.0, y1) for f, (x0, y0, x1, y1) in _truth_boxes(card, photo).items()}
    found["nama"] = (0.0, 0.0, 40.0, 10.0)  # a box nowhere near the name: the value is not in it
    del found["jenis_kelamin"]  # a field the detector did not find
    crops = detector_value_crops(card, photo, found, CROP)
    assert [c.field for c in crops] == ["nik", "status_perkawinan", "kewarganegaraan"]
    assert all(c.kind == DETECTOR_KIND and c.text == card.texts[c.field] for c in crops)
    again = box_crop(photo, found["nik"], CROP, "nik", deskew=True)  # what scan --reader and the app crop
    np.testing.assert_array_equal(crops[0].pixels, again.pixels)
    assert crops[0].content_width == again.content_width


def test_render_crops_adds_the_crops_of_the_detector_it_is_given():
    from ktp_tflite.train.reader_model import ReaderConfig
    from ktp_tflite.train.reader_train import ReaderRunError, render_crops

    frame = synth.SynthConfig(width=320, height=240)
    config = ReaderConfig(crop_kinds=("rectified", "detector"), frame_sizes=((320, 240),))
    calls = []

    def detect(photos):  # the exact boxes, shifted as a detector's are: rendered again from (seed, index)
        calls.append(len(photos))
        return [{f: (x0 + 1, y0, x1 + 1, y1) for f, (x0, y0, x1, y1) in
                 _truth_boxes(synth.render_card(8, i, frame), photo).items()} for i, photo in enumerate(photos)]

    crops = render_crops(8, 2, config, frame, detect=detect)
    assert calls == [2]  # one chunk of rendered photos
    assert [c.kind for c in crops] == ["rectified"] * 5 + ["detector"] * 5 + ["rectified"] * 5 + ["detector"] * 5
    texts = [synth.render_card(8, i, frame).texts for i in range(2)]
    assert [c.text for c in crops] == [texts[i][f] for i in range(2) for _ in range(2) for f in CLASSES]
    plain = render_crops(8, 2, config, frame, kinds=config.validation_kinds)
    assert [c.kind for c in plain] == ["rectified"] * 10
    np.testing.assert_array_equal(plain[5].pixels, crops[10].pixels)
    with pytest.raises(ReaderRunError, match="needs a detector"):
        render_crops(8, 1, config, frame)


def test_reader_configs_before_deskew_read_as_not_deskewed_and_detector_crops_need_a_base_kind():
    from ktp_tflite.train.reader_model import ReaderConfig, ReaderConfigError, reader_config_from_json

    old = json.loads(ReaderConfig().to_json())
    for key in ("deskew_boxes", "detector", "init_from"):
        del old[key]
    assert reader_config_from_json(json.dumps(old)).deskew_boxes is False and ReaderConfig().deskew_boxes
    with pytest.raises(ReaderConfigError, match="crop_kinds"):
        ReaderConfig(crop_kinds=("detector",))


def test_a_warm_start_takes_another_runs_weights_at_another_crop_width(tiny_run, tmp_path):
    from ktp_tflite.train.reader_train import (
        ReaderRunError,
        newest_checkpoint,
        render_crops,
        restore_reader,
        train_reader,
    )

    config, run_dir, _, _ = tiny_run
    wider = dataclasses.replace(config, crop=dataclasses.replace(config.crop, width=config.crop.width + 64),
                                steps=0, init_from=newest_checkpoint(run_dir))
    crops = render_crops(3, 1, wider, synth.SynthConfig(width=320, height=240))
    assert crops[0].pixels.shape == (32, config.crop.width + 64, 3)
    train_reader(wider, tmp_path / "warm", train_crops=crops, val_crops=crops[:2])
    (_, before), (stored, after) = restore_reader(run_dir), restore_reader(tmp_path / "warm")
    assert stored.init_from == wider.init_from and stored.crop.width == config.crop.width + 64
    for layer in ("stem", "block3.pw", "block2.r0.pw", "classes"):
        for old, new in zip(before.get_layer(layer).get_weights(), after.get_layer(layer).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
    others = (dataclasses.replace(wider, channels=(8, 8, 8, 12, 24)), dataclasses.replace(wider, block_repeats=2))
    for index, other in enumerate(others):
        with pytest.raises(ReaderRunError, match="cannot start from this checkpoint"):
            train_reader(other, tmp_path / f"other{index}", train_crops=crops, val_crops=crops[:2])


def test_block_repeats_add_residual_blocks_at_each_stage_and_older_configs_read_as_zero():
    from ktp_tflite.train.reader_model import ReaderConfig, build_reader, reader_config_from_json

    small = {"channels": (8, 8, 8, 12, 16), "head_channels": 16, "head_blocks": 1}
    plain, deep = build_reader(ReaderConfig(**small)), build_reader(ReaderConfig(**small, block_repeats=2))
    adds = [layer.name for layer in deep.layers if layer.name.endswith(".add")]
    assert adds == [f"block{i}.r{j}.add" for i in range(4) for j in range(2)] + ["head0.add"]
    assert deep.output_shape == plain.output_shape and deep.count_params() > plain.count_params()
    bundled_config = Path(__file__).resolve().parents[1] / "train" / "reference" / "reader" / "config.json"
    bundled = reader_config_from_json(bundled_config.read_text())
    assert bundled.block_repeats == 1 and bundled.crop.width == 512  # the bundled reader 3 (its model card)
    old = json.loads(bundled.to_json())
    del old["block_repeats"]  # a config written before the option reads as the architecture it had
    assert reader_config_from_json(json.dumps(old)).block_repeats == 0


def test_training_refuses_without_onednn_and_the_cli_turns_it_on(tmp_path):
    # TensorFlow's own CPU kernels cannot take the gradient of the reader's 2x1-strided depthwise
    # convolutions; on CPUs without AVX-512 VNNI oneDNN is off unless TF_ENABLE_ONEDNN_OPTS=1.
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ktp_tflite.train.reader_train import ReaderRunError, require_onednn\n"
        "try:\n    require_onednn()\nexcept ReaderRunError as error:\n    print('refused:', error)\n"
        "else:\n    print('allowed')\n"
    )
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "refused:" in off.stdout and "TF_ENABLE_ONEDNN_OPTS=1" in off.stdout
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert on.stdout.strip() == "allowed"
    # the CLI sets it for its process unless the user chose
    cli = "import os\nfrom ktp_tflite.convert.cli import main\nmain(['inspect', '--help'], standalone_mode=False)\n" \
          "print('onednn', os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n"
    env.pop("TF_ENABLE_ONEDNN_OPTS")
    shown = subprocess.run([sys.executable, "-c", cli], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip().endswith("onednn 1")


def test_a_warm_start_from_a_float_reader_tflite_computes_the_file_and_adds_identity_blocks(tiny_run, tmp_path):
    from ktp_tflite.convert.reader import ReaderModelError, TfliteReader, reader_convolutions
    from ktp_tflite.convert.reader_quantize import int8_tflite
    from ktp_tflite.train.preprocess import to_model_input
    from ktp_tflite.train.reader_export import float_tflite
    from ktp_tflite.train.reader_model import ReaderConfigError, build_reader, load_folded
    from ktp_tflite.train.reader_train import ReaderRunError, restore_reader, train_reader

    config, run_dir, crops, _ = tiny_run
    _, model = restore_reader(run_dir)
    shipped = tmp_path / "reader_float.tflite"
    shipped.write_bytes(float_tflite(model, config))
    convolutions = reader_convolutions(shipped)
    assert len(convolutions) == 1 + 4 * 2 * 2 + 1 + 2 + 1  # stem, 4 x (block + 1 repeat), head.in, head0, classes
    expected = TfliteReader(shipped.read_bytes()).logits(crops)
    deeper = dataclasses.replace(config, block_repeats=2, steps=0, init_from="reader_float.tflite sha256:0")
    train_reader(deeper, tmp_path / "warm", train_crops=crops[:8], val_crops=crops[8:], warm_start=convolutions)
    stored, warm = restore_reader(tmp_path / "warm")
    assert stored.init_from == deeper.init_from
    pixels = to_model_input(np.stack([c.pixels for c in crops]))
    # the file's function in inference mode (the new residual blocks add 0) and, on the crops
    # whose statistics set the batch norms, in training mode too
    for rows, training, tolerance in ((slice(None), False, 1e-4), (slice(0, 8), True, 1e-3)):
        got = warm(pixels[rows], training=training).numpy()
        assert np.abs(got - expected[rows]).max() <= tolerance * np.abs(expected).max()
    np.testing.assert_array_equal(warm.get_layer("block1.r1.pw.bn").get_weights()[0], 0.0)
    wider = dataclasses.replace(config, crop=dataclasses.replace(config.crop, width=config.crop.width + 64))
    load_folded(build_reader(wider), wider, convolutions, pixels[:, :, :1].repeat(config.crop.width + 64, 2), "f")
    for other in (dataclasses.replace(config, channels=(8, 8, 8, 12, 24)), dataclasses.replace(config, block_repeats=0)):
        with pytest.raises(ReaderConfigError, match="reader_float.tflite: .*float reader"):
            load_folded(build_reader(other), other, convolutions, pixels, str(shipped.name))
    int8_file = tmp_path / "reader_int8.tflite"
    int8_file.write_bytes(int8_tflite(model, config, crops))
    with pytest.raises(ReaderModelError, match="reader_int8.tflite: .*not float32.*float reader"):
        reader_convolutions(int8_file)
    with pytest.raises(ReaderRunError, match="needs its convolutions"):
        train_reader(deeper, tmp_path / "no_weights", train_crops=crops[:8], val_crops=crops[8:])


def test_field_weights_set_each_fields_share_of_the_training_draws(tmp_path):
    from click.testing import CliRunner

    from ktp_tflite.convert.cli import main
    from ktp_tflite.train.reader_model import ReaderConfig, ReaderConfigError, field_sampling, reader_config_from_json

    fields = ["nik", "nama", "nama", "kewarganegaraan"]
    assert field_sampling(fields, ReaderConfig()) is None  # alike: the draws of runs before the option
    weighted = ReaderConfig(field_weights=(("nama", 3.0), ("kewarganegaraan", 0.0)))
    np.testing.assert_allclose(field_sampling(fields, weighted), [1 / 7, 3 / 7, 3 / 7, 0.0])
    assert reader_config_from_json(weighted.to_json()) == weighted
    old = json.loads(ReaderConfig().to_json())
    del old["field_weights"]
    assert reader_config_from_json(json.dumps(old)).field_weights == ()
    for bad in ((("name", 2.0),), (("nama", -1.0),), (("nama", 1.0), ("nama", 2.0)), tuple((c, 0.0) for c in CLASSES)):
        with pytest.raises(ReaderConfigError, match="field_weights"):
            ReaderConfig(field_weights=bad)
    with pytest.raises(ReaderConfigError, match="weight 0"):
        field_sampling(["nik"], ReaderConfig(field_weights=(("nik", 0.0),)))
    for value, message in (("nama3", "give FIELD=WEIGHT"), ("agama=2", "name each of nik")):
        result = CliRunner().invoke(main, ["train-reader", "--out", str(tmp_path / "run"), "--field-weight", value])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "run").exists()
