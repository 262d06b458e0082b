"""Dataset readers and writers: round trips and every kind of bad input."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ktp_tflite.train import datasets
from ktp_tflite.train.labels import CLASSES, label_map_pbtxt
from ktp_tflite.train.records import DatasetError


def _boxes(dataset):
    return {
        e.image_id: [(b.label, b.ymin, b.xmin, b.ymax, b.xmax) for b in e.boxes] for e in dataset.examples
    }


def _assert_same_boxes(a, b, tol=1e-6):
    boxes_a, boxes_b = _boxes(a), _boxes(b)
    assert boxes_a.keys() == boxes_b.keys()
    for key in boxes_a:
        assert [x[0] for x in boxes_a[key]] == [x[0] for x in boxes_b[key]]
        np.testing.assert_allclose(
            np.array([x[1:] for x in boxes_a[key]]), np.array([x[1:] for x in boxes_b[key]]), atol=tol
        )


def test_tfrecord_and_coco_round_trips_agree(small_synth, tmp_path):
    datasets.write_tfrecord(small_synth, tmp_path / "ktp.tfrecord")
    datasets.write_coco(small_synth, tmp_path / "coco")
    from_tfrecord = datasets.read_dataset(tmp_path / "ktp.tfrecord")
    from_coco = datasets.read_dataset(tmp_path / "coco")
    assert from_tfrecord.format == "tfrecord" and from_coco.format == "coco"
    _assert_same_boxes(from_tfrecord, from_coco)
    _assert_same_boxes(small_synth, from_coco)
    for a, b in zip(from_tfrecord.examples, from_coco.examples):
        assert a.encoded() == b.encoded()
        assert (a.width, a.height) == (b.width, b.height) == (320, 240)
    assert not list(tmp_path.rglob("*.tmp"))


def test_tfrecord_reader_finds_roboflow_label_map_and_maps_names(small_synth, tmp_path):
    datasets.write_tfrecord(small_synth, tmp_path / "KTP.tfrecord")
    # Roboflow's names: "<stem>_label_map.pbtxt" with display-style names
    (tmp_path / "label_map.pbtxt").unlink()
    names = ["NIK", "Nama", "Jenis Kelamin", "Status Perkawinan", "Kewarganegaraan"]
    text = "".join(f'item {{\n    name: "{n}",\n    id: {i},\n}}\n' for i, n in enumerate(names, 1))
    (tmp_path / "KTP_label_map.pbtxt").write_text(text)
    dataset = datasets.read_dataset(tmp_path)
    _assert_same_boxes(small_synth, dataset)


def test_to_tf_dataset_yields_decoded_images_and_boxes(small_synth):
    element = next(iter(datasets.to_tf_dataset(small_synth)))
    assert element["image"].shape == (240, 320, 3) and element["image"].dtype.name == "uint8"
    assert element["classes"].numpy().tolist() == list(range(len(CLASSES)))
    first = small_synth.examples[0].boxes[0]
    np.testing.assert_allclose(element["boxes"].numpy()[0], [first.ymin, first.xmin, first.ymax, first.xmax], atol=1e-6)


def _coco_copy(small_synth, tmp_path):
    folder = tmp_path / "coco"
    datasets.write_coco(small_synth, folder)
    return folder, json.loads((folder / datasets.COCO_NAME).read_text())


def _save_coco(folder, coco):
    (folder / datasets.COCO_NAME).write_text(json.dumps(coco))


def test_truncated_image_is_named_and_skip_bad_goes_on(small_synth, tmp_path):
    folder, coco = _coco_copy(small_synth, tmp_path)
    victim = folder / coco["images"][3]["file_name"]
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(DatasetError, match=f"{victim.name}.*truncated.*--skip-bad"):
        datasets.read_dataset(folder)
    dataset = datasets.read_dataset(folder, skip_bad=True)
    assert len(dataset) == len(small_synth) - 1
    assert len(dataset.skipped) == 1 and victim.name in str(dataset.skipped[0])


@pytest.mark.parametrize(
    "bbox, message",
    [([10, 10, 0, 8], "zero area"), ([300, 10, 100, 20], "outside the image"), ([-50, 5, 20, 5], "outside")],
)
def test_bad_boxes_are_named(small_synth, tmp_path, bbox, message):
    folder, coco = _coco_copy(small_synth, tmp_path)
    coco["annotations"][7]["bbox"] = bbox
    _save_coco(folder, coco)
    with pytest.raises(DatasetError, match=f"annotation 8.*{message}"):
        datasets.read_dataset(folder)
    assert len(datasets.read_dataset(folder, skip_bad=True).skipped) == 1


def test_unknown_class_name_is_an_error(small_synth, tmp_path):
    folder, coco = _coco_copy(small_synth, tmp_path)
    coco["categories"][0]["name"] = "golongan_darah"
    _save_coco(folder, coco)
    with pytest.raises(DatasetError, match="golongan_darah"):
        datasets.read_dataset(folder)


def test_roboflow_supercategory_without_boxes_is_ignored(small_synth, tmp_path):
    folder, coco = _coco_copy(small_synth, tmp_path)
    coco["categories"].insert(0, {"id": 0, "name": "ktp-fields", "supercategory": "none"})
    _save_coco(folder, coco)
    _assert_same_boxes(small_synth, datasets.read_dataset(folder))


def test_empty_files_are_errors(tmp_path):
    (tmp_path / "a.tfrecord").write_bytes(b"")
    (tmp_path / "label_map.pbtxt").write_text(label_map_pbtxt())
    with pytest.raises(DatasetError, match="a.tfrecord: file is empty"):
        datasets.read_dataset(tmp_path / "a.tfrecord")
    (tmp_path / "b.json").write_text("")
    with pytest.raises(DatasetError, match="b.json: file is empty"):
        datasets.read_dataset(tmp_path / "b.json")


def test_tfrecord_without_label_map(small_synth, tmp_path):
    datasets.write_tfrecord(small_synth, tmp_path / "ktp.tfrecord")
    (tmp_path / "label_map.pbtxt").unlink()
    with pytest.raises(DatasetError, match="ktp.tfrecord: no label map found.*--label-map"):
        datasets.read_dataset(tmp_path / "ktp.tfrecord")


def test_corrupt_tfrecord(small_synth, tmp_path):
    datasets.write_tfrecord(small_synth, tmp_path / "ktp.tfrecord")
    data = (tmp_path / "ktp.tfrecord").read_bytes()
    (tmp_path / "ktp.tfrecord").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        datasets.read_dataset(tmp_path / "ktp.tfrecord")


def test_voc_folder(small_synth, tmp_path):
    example = small_synth.examples[0]
    (tmp_path / "card.jpg").write_bytes(example.encoded())
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b.xmin * 320}</xmin><ymin>{b.ymin * 240}</ymin>"
        f"<xmax>{b.xmax * 320}</xmax><ymax>{b.ymax * 240}</ymax></bndbox></object>"
        for b, name in zip(example.boxes, ["NIK", "Name", "Gender", "Marital Status", "Nationality"])
    )
    (tmp_path / "card.xml").write_text(f"<annotation><filename>card.jpg</filename>{objects}</annotation>")
    dataset = datasets.read_dataset(tmp_path)
    assert dataset.format == "voc"
    assert [b.label for b in dataset.examples[0].boxes] == list(CLASSES)
    np.testing.assert_allclose(dataset.examples[0].boxes[2].xmin, example.boxes[2].xmin, atol=1e-6)


def test_image_folder_only_as_representative_data(small_synth, tmp_path):
    for example in small_synth.examples[:3]:
        (tmp_path / example.image_id).write_bytes(example.encoded())
    with pytest.raises(DatasetError, match="only accepted as representative"):
        datasets.read_dataset(tmp_path)
    dataset = datasets.read_dataset(tmp_path, labelled=False)
    assert len(dataset) == 3 and dataset.examples[0].load_rgb().shape == (240, 320, 3)


def test_roboflow_export_root_asks_for_a_split(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "valid").mkdir()
    with pytest.raises(DatasetError, match="splits.*train"):
        datasets.read_dataset(tmp_path)


def test_writer_into_missing_folder_is_an_error(small_synth, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.write_tfrecord(small_synth, tmp_path / "nope" / "ktp.tfrecord")


def test_png_images_keep_their_format(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (255, 0, 0)).save(buffer, format="PNG")
    (tmp_path / "x.png").write_bytes(buffer.getvalue())
    dataset = datasets.read_dataset(tmp_path, labelled=False)
    assert dataset.examples[0].image_format == "png"
    shutil.rmtree(tmp_path)
