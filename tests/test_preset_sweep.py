"""The preset sweep's table and helpers (the sweep itself is a long benchmark run)."""

import argparse
import json

import pytest

from ktp_tflite.benchmarks.tools.preset_sweep import _median_rate, choose, markdown, parse_variant, plot


def _row(variant, int8_bytes, float_bytes, ms_int8, ms_float, mean_ap=0.6431):
    def projected(ms):
        return {p: {"ms": ms, "band_percent": 62.0, "text": ""} for p in ("pixel4", "pixel6")}

    return {
        "variant": variant, "architecture": variant.partition("@")[0], "parameters": 2_490_000,
        "map": mean_ap, "map50": 0.9333, "map75": 0.7529,
        "float_bytes": float_bytes, "int8_bytes": int8_bytes,
        "projected_float": projected(ms_float), "projected_int8": projected(ms_int8),
        "training_images_per_second": 9.81,
    }


def test_table_row_holds_the_measured_values():
    args = argparse.Namespace(steps=3000, train_images=8000, train_seed=1, val_images=500, val_seed=1000)
    text = markdown([_row("320x0.75", 3_085_775, 10_053_432, 9.24, 20.04)], args)
    header, rule, row = text.split("\n\n## Choice")[0].splitlines()[-3:]
    assert header.count("|") == rule.count("|") == row.count("|")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:6] == ["320x0.75", "2.49 M", "3.09 MB (30.7 %)", "0.643", "0.933", "0.753"]
    assert cells[6] == "9.2 / 20.0 (+-62 %)" and cells[-1] == "9.8"
    assert "3000 steps each" in text and "(seed 1000)" in text
    assert "Chosen: **320x0.75** (run-to-run noise not measured" in text


def test_variant_names_parse_or_fail_clearly():
    assert parse_variant("384x0.5") == (384, 0.5, 0)
    assert parse_variant("320x0.75@2") == (320, 0.75, 2)
    for bad in ("384-0.5", "320x0.75@x"):
        with pytest.raises(SystemExit, match="SIZExWIDTH"):
            parse_variant(bad)


def test_choice_keeps_the_budget_at_the_band_edge_and_prefers_speed_within_noise():
    rows = [
        _row("384x1", 3_900_000, 13_000_000, 17.4, 38.0, mean_ap=0.70),  # 28.2 ms at +62 %: out
        _row("320x1", 3_600_000, 12_000_000, 12.2, 27.0, mean_ap=0.655),  # 19.8 ms: in
        _row("320x0.75", 3_085_775, 10_053_432, 9.24, 20.04, mean_ap=0.643),
        _row("320x0.75@1", 3_085_775, 10_053_432, 9.24, 20.04, mean_ap=0.637),
        _row("256x0.75", 2_990_000, 9_980_000, 6.0, 12.9, mean_ap=0.535),
    ]
    # sigma from the two seeds: sqrt(2 * 0.003^2) = 0.00424; 320x1 leads 320x0.75 (mean 0.640) by
    # 0.015, more than 2 * 0.00424 * sqrt(1/1 + 1/2) = 0.0104
    choice = choose(rows)
    assert choice.architecture == "320x1" and choice.sigma == pytest.approx(0.003 * 2**0.5)
    # with a larger spread between seeds (sigma 0.0212, margin 0.052) the faster 320x0.75 (lead
    # 0.027) is within noise of 320x1; 256x0.75 (lead 0.12) is not
    rows[3] = _row("320x0.75@1", 3_085_775, 10_053_432, 9.24, 20.04, mean_ap=0.613)
    assert choose(rows).architecture == "320x0.75"
    assert choose(rows, budget_ms=15.0).architecture == "320x0.75"  # 320x1 drops out
    with pytest.raises(ValueError, match="no variant stays under 5 ms"):
        choose(rows, budget_ms=5.0)
    table = markdown(rows, argparse.Namespace(steps=3000, train_images=8000, train_seed=1, val_images=500,
                                              val_seed=1000))
    assert "| 384x1 | 1 | 0.700 | 17.4 | 28.2 | no |" in table
    assert "| 320x0.75 | 2 | 0.628 | 9.2 | 15.0 | yes |" in table
    assert "Chosen: **320x0.75** (run-to-run standard deviation 0.0212 mAP)." in table


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


def test_untrained_variants_are_projected_and_block_a_choice_they_could_win(tmp_path):
    from ktp_tflite.benchmarks.tools.preset_sweep import project_variant

    row = project_variant(tmp_path, 128, 0.35)
    assert row["variant"] == "128x0.35" and row["map"] is None and row["steps"] == 0
    assert (tmp_path / "128x0.35" / "export-untrained" / "saved_model" / "saved_model.pb").is_file()
    assert 0 < row["int8_bytes"] < row["float_bytes"]
    assert row["projected_int8"]["pixel4"]["ms"] < row["projected_float"]["pixel4"]["ms"]
    trained = _row("320x0.75", 3_085_775, 10_053_432, 9.24, 20.04)
    args = argparse.Namespace(steps=3000, train_images=8000, train_seed=1, val_images=500, val_seed=1000)
    table = markdown([trained, row], args)
    assert "| 128x0.35 | " in table and "not trained | not trained | not trained" in table
    assert "128x0.35: within the budget but not trained" in table  # it could beat 320x0.75
    slow = dict(row, projected_int8={p: dict(v, ms=30.0) for p, v in row["projected_int8"].items()})
    assert choose([trained, slow]).architecture == "320x0.75"  # out of budget: no mAP needed
    assert "| 128x0.35 | 0 | not trained | 30.0 | 48.6 | no |" in markdown([trained, slow], args)
