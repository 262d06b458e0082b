"""`ktpconvert scan` and `ktpconvert android-assets` on tiny real .tflite detectors.

The detectors are built here from a tf.function with the four SSD outputs:
fixed boxes (one region per field) whose score is the mean brightness of the
model input inside the region, brought to [0, 1]. A photo with bright
rectangles on the nik, jenis_kelamin and kewarganegaraan regions must then
score exactly 200/255 there and 0 elsewhere, but only if the scanner
preprocesses (stretch, dtype, normalisation from metadata) and binds the
outputs as each model expects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert.android_assets import LABELS_ASSET, MODEL_ASSET, check_contract
from ktp_tflite.convert.cli import main
from ktp_tflite.convert.scan import ModelContractError, bind_outputs
from ktp_tflite.train.labels import CLASSES, labels_txt

tf = pytest.importorskip("tensorflow")

SIZE = 64
# (ymin, xmin, ymax, xmax) of each field's box, in class-id order.
REGIONS = [
    (0.05, 0.05, 0.20, 0.95),
    (0.30, 0.05, 0.40, 0.60),
    (0.50, 0.05, 0.60, 0.40),
    (0.70, 0.05, 0.80, 0.50),
    (0.88, 0.05, 0.97, 0.50),
]
BRIGHT = ("nik", "jenis_kelamin", "kewarganegaraan")
LEVEL = 200
PHOTO_W, PHOTO_H = 320, 200


def _zero_after(tensor):
    """0.0 that the converter cannot fold away (every tensor here is >= 0)."""
    return tf.minimum(tf.reduce_min(tensor), 0.0)


def _detector_fn(dtype, to_unit, outputs=4):
    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], dtype, name="image")])
    def detect(image):
        x = to_unit(tf.cast(image, tf.float32))
        # Each output depends on the previous one so that the converter
        # numbers the tensors boxes < classes < scores < count, the order of
        # the real post-process op that the metadata writer relies on.
        boxes = tf.constant([REGIONS], tf.float32) + _zero_after(x)
        classes = tf.constant([[0.0, 1, 2, 3, 4]]) + _zero_after(boxes)
        means = [
            tf.reduce_mean(x[:, round(y0 * SIZE) : round(y1 * SIZE), round(x0 * SIZE) : round(x1 * SIZE), :])
            for y0, x0, y1, x1 in REGIONS
        ]
        scores = tf.reshape(tf.stack(means), [1, 5]) + _zero_after(classes)
        count = tf.reduce_sum(tf.cast(scores > -1.0, tf.float32), axis=1)
        return (boxes, classes, scores, count)[:outputs]

    return detect


def _convert(fn) -> bytes:
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn).convert()


def _convert_saved_model_with_dict_outputs(directory: Path) -> bytes:
    """uint8 model whose TFLite outputs come out permuted (count first), as TF2 exports do."""
    inner = _detector_fn(tf.uint8, lambda x: x / 255.0)

    class Detector(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8, name="image")])
        def serve(self, image):
            boxes, classes, scores, count = inner(image)
            return {
                "detection_scores": scores,
                "num_detections": count,
                "detection_boxes": boxes,
                "detection_classes": classes,
            }

    module = Detector()
    tf.saved_model.save(module, str(directory), signatures=module.serve)
    return tf.lite.TFLiteConverter.from_saved_model(str(directory)).convert()


def _with_metadata(model: bytes, mean: float, std: float, labels: str, folder: Path) -> bytes:
    from tensorflow_lite_support.metadata.python.metadata_writers import object_detector

    label_file = folder / f"labels_{abs(hash(labels))}.txt"
    label_file.write_text(labels)
    writer = object_detector.MetadataWriter.create_for_inference(
        bytearray(model), [mean], [std], [str(label_file)]
    )
    return bytes(writer.populate())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    mlp = _convert(_detector_fn(tf.float32, lambda x: (x + 1.0) / 2.0))  # expects [-1, 1]
    unit = _convert(_detector_fn(tf.float32, lambda x: x))  # expects [0, 1]
    built = {
        "float_plain": mlp,
        "uint8_signature": _convert_saved_model_with_dict_outputs(folder / "saved_model"),
        "float_metadata": _with_metadata(unit, 0.0, 255.0, labels_txt(), folder),
        "uint8_metadata": _with_metadata(
            _convert(_detector_fn(tf.uint8, lambda x: x / 255.0)), 0.0, 1.0, labels_txt(), folder
        ),
        "wrong_labels": _with_metadata(unit, 0.0, 255.0, labels_txt(CLASSES[::-1]), folder),
        "three_outputs": _convert(_detector_fn(tf.float32, lambda x: x, outputs=3)),
    }
    paths = {}
    for name, data in built.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def _upright_photo() -> np.ndarray:
    pixels = np.zeros((PHOTO_H, PHOTO_W, 3), np.uint8)
    margin = 2 / SIZE  # keep the antialiased edge outside the model's region
    for label in BRIGHT:
        y0, x0, y1, x1 = REGIONS[CLASSES.index(label)]
        pixels[
            max(0, round((y0 - margin) * PHOTO_H)) : round((y1 + margin) * PHOTO_H),
            max(0, round((x0 - margin) * PHOTO_W)) : round((x1 + margin) * PHOTO_W),
        ] = LEVEL
    return pixels


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    upright = folder / "upright.png"
    Image.fromarray(_upright_photo()).save(upright)
    # Stored turned 90 degrees counter-clockwise; EXIF 6 says "rotate 90 clockwise to show".
    rotated = folder / "rotated.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(_upright_photo(), k=1).copy()).save(rotated, exif=exif)
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    return {"upright": upright, "rotated": rotated, "garbage": garbage}


def _scan(model: Path, photo: Path, *extra: str):
    return CliRunner().invoke(main, ["scan", str(photo), "--model", str(model), *extra])


def _expected_box(label: str) -> list[float]:
    y0, x0, y1, x1 = REGIONS[CLASSES.index(label)]
    return [x0 * PHOTO_W, y0 * PHOTO_H, x1 * PHOTO_W, y1 * PHOTO_H]


@pytest.mark.parametrize(
    "name, binding, normalization",
    [
        ("float_plain", "shapes", "default"),
        ("uint8_signature", "signature", "default"),
        ("float_metadata", "metadata", "metadata"),
        ("uint8_metadata", "metadata", "metadata"),
    ],
)
def test_scan_finds_the_bright_fields(models, photos, tmp_path, name, binding, normalization):
    out = tmp_path / "result.json"
    result = _scan(models[name], photos["upright"], "--json", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert json.loads(out.read_text()) == document
    assert document["model"]["output_binding"] == binding
    assert document["model"]["normalization"]["source"] == normalization
    assert document["model"]["labels"] == list(CLASSES)
    assert set(document["fields"]) == set(BRIGHT)
    assert document["missing"] == ["nama", "status_perkawinan"]
    assert document["text"] is None
    for label in BRIGHT:
        field = document["fields"][label]
        assert field["score"] == pytest.approx(LEVEL / 255, abs=1e-5)
        assert field["box"] == pytest.approx(_expected_box(label), abs=1e-3)
        assert field["box_sensor"] == field["box"]
    assert document["image"]["width"] == PHOTO_W and document["image"]["height"] == PHOTO_H


def test_scan_threshold_default_is_the_apps():
    # The CLI states the default as a literal (--help imports no numpy); it must be the one the app uses.
    from ktp_tflite.convert.fields import DEFAULT_THRESHOLD

    result = CliRunner().invoke(main, ["scan", "--help"])
    assert f"[default: {DEFAULT_THRESHOLD:g};" in " ".join(result.output.split())


def test_scan_threshold_above_the_scores_finds_nothing(models, photos):
    result = _scan(models["float_metadata"], photos["upright"], "--threshold", "0.8")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fields"] == {}


def test_scan_turns_exif_rotated_photos_upright(models, photos):
    from PIL import Image

    result = _scan(models["float_metadata"], photos["rotated"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["image"] == {
        "width": PHOTO_W,
        "height": PHOTO_H,
        "sensor_width": PHOTO_H,
        "sensor_height": PHOTO_W,
        "rotation_degrees": 90,
    }
    stored = np.asarray(Image.open(photos["rotated"]).convert("RGB"))
    for label in BRIGHT:
        field = document["fields"][label]
        assert field["box"] == pytest.approx(_expected_box(label), abs=1e-3)
        left, top, right, bottom = (round(v) for v in field["box_sensor"])
        assert (right - left, bottom - top) == pytest.approx(
            (field["box"][3] - field["box"][1], field["box"][2] - field["box"][0]), abs=1
        )
        assert np.all(stored[top:bottom, left:right] == LEVEL)  # lands on the drawn pixels


def test_scan_errors_are_clear(models, photos, tmp_path):
    not_a_model = tmp_path / "model.tflite"
    not_a_model.write_bytes(b"\0" * 64)
    result = _scan(not_a_model, photos["upright"])
    assert result.exit_code == 1 and "not a TFLite model" in result.output
    result = _scan(models["float_metadata"], photos["garbage"])
    assert result.exit_code == 1 and "garbage.jpg: cannot read the image" in result.output
    result = _scan(models["three_outputs"], photos["upright"])
    assert result.exit_code == 1 and "exactly 4" in result.output
    result = _scan(models["float_metadata"], photos["upright"], "--threshold", "2")
    assert result.exit_code == 2


def test_bind_outputs_reads_metadata(models):
    spec = bind_outputs(models["float_metadata"].read_bytes())
    assert (spec.height, spec.width, spec.input_dtype) == (SIZE, SIZE, "float32")
    assert (spec.norm_mean, spec.norm_std) == (0.0, 255.0)
    assert spec.metadata is not None
    assert spec.metadata.output_names == ("location", "category", "score", "number of detections")
    assert spec.labels == CLASSES


def test_android_assets_copies_a_model_that_keeps_the_contract(models, tmp_path):
    assets = tmp_path / "assets"
    source = models["float_metadata"]
    before = source.read_bytes()
    result = CliRunner().invoke(main, ["android-assets", str(source), "--assets-dir", str(assets)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels_list"] == list(CLASSES)
    assert report["normalization"] == [0.0, 255.0]
    assert (assets / MODEL_ASSET).read_bytes() == before == source.read_bytes()
    assert (assets / LABELS_ASSET).read_text() == labels_txt()
    assert sorted(p.name for p in assets.iterdir()) == sorted([MODEL_ASSET, LABELS_ASSET])


@pytest.mark.parametrize(
    "name, message",
    [
        ("float_plain", "has no TFLite metadata"),
        ("wrong_labels", "in this order"),
        ("three_outputs", "exactly 4"),
    ],
)
def test_android_assets_refuses_broken_contracts_and_writes_nothing(models, tmp_path, name, message):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / MODEL_ASSET).write_bytes(b"previous model")
    result = CliRunner().invoke(main, ["android-assets", str(models[name]), "--assets-dir", str(assets)])
    assert result.exit_code == 1
    assert message in result.output and str(models[name]) in result.output
    assert [p.name for p in assets.iterdir()] == [MODEL_ASSET]
    assert (assets / MODEL_ASSET).read_bytes() == b"previous model"


def test_android_assets_needs_an_existing_parent(models, tmp_path):
    with pytest.raises(ModelContractError, match="--assets-dir"):
        from ktp_tflite.convert.android_assets import install_assets

        install_assets(models["float_metadata"], tmp_path / "missing" / "assets")


def test_contract_rejects_uint8_model_without_metadata(models):
    with pytest.raises(ModelContractError, match="no TFLite metadata"):
        check_contract(models["uint8_signature"].read_bytes(), "m.tflite")


def test_task_library_accepts_the_installed_model(models, photos, tmp_path):
    """The Android Task Library's C++ core (tflite-support) loads our contract model."""
    assert check_contract(models["uint8_metadata"].read_bytes(), "m").input_dtype == "uint8"
    from PIL import Image

    from ktp_tflite.convert.runtimes import run_probe

    photo = np.asarray(Image.open(photos["upright"]).convert("RGB"))
    detections = run_probe("task-library", models["uint8_metadata"], [photo])[0]
    found = {d["label"]: d for d in detections if d["score"] > 0.3}
    assert set(found) == set(BRIGHT)
    for label in BRIGHT:
        # The Task Library resizes with its own filter, so edge pixels of the
        # bright rectangles blur into the regions a little (measured 0.776).
        assert found[label]["score"] == pytest.approx(LEVEL / 255, abs=0.02)
        x, y, w, h = found[label]["box"]
        assert [x, y, x + w, y + h] == pytest.approx(_expected_box(label), abs=1.5)


def test_scan_and_android_assets_on_a_real_post_process_int8_model(tmp_path):
    """A full-int8 model with the TFLite_Detection_PostProcess op plugs in unchanged."""
    from PIL import Image

    from ktp_tflite.convert.metadata import attach_metadata
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model

    import ktp_tests_tiny_ssd as tiny_ssd
    oracle = tiny_ssd.default_oracle()  # anchor -> class, one well separated anchor per class
    source = detect_model_source(tiny_ssd.build_tf1_graph(tmp_path / "tflite_graph.pb", oracle=oracle))
    model = attach_metadata(convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model)
    model_path = tmp_path / "int8.tflite"
    model_path.write_bytes(model)
    assets = tmp_path / "assets"
    result = CliRunner().invoke(main, ["android-assets", str(model_path), "--assets-dir", str(assets)])
    assert result.exit_code == 0, result.output
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(photo)
    result = _scan(model_path, photo)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["model"]["output_binding"] == "metadata"
    assert set(document["fields"]) == set(CLASSES)
    anchors = tiny_ssd.anchor_table(64, 64)  # (ycenter, xcenter, h, w), normalised
    for anchor, class_id in oracle.items():
        yc, xc, h, w = anchors[anchor]
        field = document["fields"][CLASSES[class_id]]
        expected = [(xc - w / 2) * 128, (yc - h / 2) * 96, (xc + w / 2) * 128, (yc + h / 2) * 96]
        assert field["box"] == pytest.approx(expected, abs=2.0)
        assert field["score"] > 0.9
