"""The preset sweep's table and helpers (the sweep itself is a long benchmark run)."""

import argparse
import json

import pytest

from ktp_tflite.benchmarks.preset_sweep import _median_rate, markdown, parse_variant, plot


def _row(variant, int8_bytes, float_bytes, ms_int8, ms_float):
    def projected(ms):
        return {p: {"ms": ms, "band_percent": 62.0, "text": ""} for p in ("pixel4", "pixel6")}

    return {
        "variant": variant, "parameters": 2_490_000, "map": 0.6431, "map50": 0.9333, "map75": 0.7529,
        "float_bytes": float_bytes, "int8_bytes": int8_bytes,
        "projected_float": projected(ms_float), "projected_int8": projected(ms_int8),
        "training_images_per_second": 9.81,
    }


def test_table_row_holds_the_measured_values():
    args = argparse.Namespace(steps=3000, train_images=8000, train_seed=1, val_images=500, val_seed=1000)
    text = markdown([_row("320x0.75", 3_085_775, 10_053_432, 9.24, 20.04)], args)
    header, rule, row = text.splitlines()[-3:]
    assert header.count("|") == rule.count("|") == row.count("|")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["320x0.75", "2.49 M", "3.09 MB (30.7 %)", "0.643", "0.933", "0.753"]
    assert cells[6] == "9.2 / 20.0 (+-62 %)" and cells[-1] == "9.8"
    assert "3000 steps each" in text and "(seed 1000)" in text


def test_variant_names_parse_or_fail_clearly():
    assert parse_variant("384x0.5") == (384, 0.5)
    with pytest.raises(SystemExit, match="SIZExWIDTH"):
        parse_variant("384-0.5")


def test_training_rate_is_the_median_over_every_session(tmp_path):
    history = tmp_path / "history.jsonl"
    rates = [3.5, 14.3, 14.1, 9.0, 12.6]  # a resumed run's first line is slow
    history.write_text("".join(json.dumps({"step": 20 * k, "images_per_second": r}) + "\n"
                               for k, r in enumerate(rates)))
    assert _median_rate(history) == 12.6
    assert _median_rate(tmp_path / "missing.jsonl") == 0.0


def test_plot_is_a_png_of_every_variant():
    import io

    from PIL import Image

    rows = [_row("320x0.75", 3_085_775, 10_053_432, 9.24, 20.04), _row("256x0.75", 2_990_000, 9_980_000, 6.1, 13.0)]
    image = Image.open(io.BytesIO(plot(rows)))
    assert image.format == "PNG" and image.width > 300 and image.height > 200
