import pytest

from ktp_tflite.train import labels


def test_classes_are_the_five_fields_in_order():
    assert labels.CLASSES == ("nik", "nama", "jenis_kelamin", "status_perkawinan", "kewarganegaraan")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("NIK", "nik"),
        ("Nama", "nama"),
        ("Jenis Kelamin", "jenis_kelamin"),
        ("jenis-kelamin", "jenis_kelamin"),
        ("Status Perkawinan", "status_perkawinan"),
        ("Kewarganegaraan", "kewarganegaraan"),
        ("name", "nama"),
        ("Gender", "jenis_kelamin"),
        ("marital_status", "status_perkawinan"),
        ("Marital Status", "status_perkawinan"),
        ("nationality", "kewarganegaraan"),
        ("  NATIONALITY ", "kewarganegaraan"),
    ],
)
def test_aliases(name, expected):
    assert labels.canonical_class(name) == expected


def test_unknown_name_is_an_error_listing_the_classes():
    with pytest.raises(labels.UnknownClassError, match="golongan_darah.*nik, nama"):
        labels.canonical_class("golongan_darah")


def test_label_map_round_trip_and_labels_txt():
    text = labels.label_map_pbtxt()
    assert labels.parse_label_map(text) == {i + 1: n for i, n in enumerate(labels.CLASSES)}
    assert labels.labels_txt().splitlines() == list(labels.CLASSES)


def test_label_map_parser_accepts_roboflow_style():
    text = 'item {\n    name: "NIK",\n    id: 1,\n    display_name: "NIK"\n}\nitem {\n  id: 2\n  name: "Nama"\n}\n'
    assert labels.parse_label_map(text) == {1: "NIK", 2: "Nama"}
    with pytest.raises(ValueError, match="no 'item"):
        labels.parse_label_map("garbage")
