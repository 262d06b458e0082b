"""`ktpconvert evaluate`: float vs int8 on a labelled set with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main


import ktp_tests_tiny_ssd as tiny_ssd  # noqa: E402 (registered by conftest.py)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Oracle models (float, int8) that detect exactly the labelled boxes, and one that mislabels."""
    from ktp_tflite.convert.model_source import detect_model_source
    from ktp_tflite.convert.quantize import QuantizeConfig, convert_model
    from ktp_tflite.train.datasets import write_coco

    folder = tmp_path_factory.mktemp("evaluate")
    oracle = tiny_ssd.default_oracle()
    source = detect_model_source(tiny_ssd.build_tf1_graph(folder / "oracle.pb", oracle=oracle))
    shifted = {anchor: (cls + 1) % 5 for anchor, cls in oracle.items()}
    wrong = detect_model_source(tiny_ssd.build_tf1_graph(folder / "wrong.pb", oracle=shifted))
    paths = {
        "float": (folder / "float.tflite", convert_model(source, QuantizeConfig(mode="float")).model),
        "int8": (folder / "int8.tflite",
                 convert_model(source, QuantizeConfig(), tiny_ssd.calibration()).model),
        "wrong": (folder / "wrong.tflite",
                  convert_model(wrong, QuantizeConfig(), tiny_ssd.calibration()).model),
    }
    for path, data in paths.values():
        path.write_bytes(data)
    dataset = tiny_ssd.oracle_dataset(oracle)
    data_dir = folder / "val"
    write_coco(dataset, data_dir)
    return {name: path for name, (path, _) in paths.items()} | {"data": data_dir, "dataset": dataset}


def test_library_float_vs_int8(setup):
    from ktp_tflite.convert.evaluate import evaluate_models, format_table

    report = evaluate_models([setup["int8"], setup["float"]], setup["dataset"], progress=False)
    assert report.baseline == str(setup["float"])  # first float model, not first model
    by_name = {Path(m.model).name: m for m in report.models}
    assert by_name["float.tflite"].precision == "float"
    assert by_name["int8.tflite"].precision == "int8"
    assert by_name["int8.tflite"].input_dtype == "uint8"
    for evaluation in report.models:
        assert evaluation.metrics.map50 == pytest.approx(1.0)
        assert evaluation.metrics.map > 0.9
        assert evaluation.metrics.num_boxes == 15
    assert abs(report.drops["litert"][str(setup["int8"])]["map"]) < 2.0
    table = format_table(report)
    assert "mAP@[.5:.95]" in table and "100.00" in table and "baseline" in table


def test_cli_gate_and_json(setup, tmp_path):
    out = tmp_path / "report.json"
    args = ["evaluate", str(setup["float"]), str(setup["int8"]), str(setup["wrong"]),
            "--data", str(setup["data"]), "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    drops = report["drops_points"]["litert"]  # no metadata: LiteRT only
    assert drops[str(setup["wrong"])]["map50"] > 90  # every oracle box mislabelled
    assert abs(drops[str(setup["int8"])]["map50"]) < 0.5
    assert report["num_images"] == 3 and report["num_boxes"] == 15
    assert "noise_" not in out.read_text()  # no image names in the report

    result = CliRunner().invoke(main, [*args, "--force", "--max-map-drop", "1.0"])
    assert result.exit_code == 3
    assert "exceeds --max-map-drop 1.0" in result.output

    result = CliRunner().invoke(main, ["evaluate", str(setup["float"]), str(setup["int8"]),
                                       "--data", str(setup["data"]), "--max-map-drop", "2"])
    assert result.exit_code == 0, result.output


def test_cli_refuses_unlabelled_data_and_existing_json(setup, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "a.png")
    result = CliRunner().invoke(main, ["evaluate", str(setup["float"]), "--data", str(folder)])
    assert result.exit_code == 1 and "no annotations" in result.output
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    result = CliRunner().invoke(main, ["evaluate", str(setup["float"]), "--data", str(setup["data"]),
                                       "--json", str(existing)])
    assert result.exit_code == 1 and "--force" in result.output
    assert existing.read_text() == "{}"
