"""Parsing TFLite benchmark_model output (the adb calls themselves cannot run here).

The two files in tests/data/ follow the tool's real output format (written by
hand for these tests, not captured from a phone): a recent build with XNNPACK
("INFO: " prefixes, an initialization profile before the regular-run profile)
and an older build without XNNPACK (per-op node types, "Peak memory
footprint" line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ktp_tflite.benchmarks.adb import AdbError, parse_benchmark_output, run_on_device

DATA = Path(__file__).parent / "data"


def test_parses_xnnpack_run_and_skips_the_initialization_table():
    run = parse_benchmark_output(
        (DATA / "benchmark_model_xnnpack_int8.txt").read_text(), model="m.tflite", device="pixel4"
    )
    assert (run.init_ms, run.first_ms, run.warmup_avg_ms, run.avg_ms) == pytest.approx(
        (61.402, 41.213, 24.1804, 23.0186)
    )
    assert (run.runs, run.min_ms, run.max_ms, run.std_ms) == pytest.approx((50, 22.512, 25.73, 0.541))
    assert run.threads == 4 and run.peak_memory_mb == 25.0469 and run.status == "measured"
    # the regular-run table, not the initialization one (ModifyGraphWithDelegate)
    assert list(run.by_node_type) == ["TfLiteXNNPackDelegate", "TFLite_Detection_PostProcess"]
    assert run.by_node_type["TFLite_Detection_PostProcess"] == {
        "count": 1,
        "avg_ms": 3.502,
        "percent": 15.288,
        "mem_kb": 0.0,
        "times_called": 1,
    }


def test_parses_per_op_table_of_a_builtin_run():
    run = parse_benchmark_output((DATA / "benchmark_model_builtin_quant.txt").read_text())
    assert run.avg_ms == pytest.approx(28.9634) and run.init_ms == pytest.approx(3.871)
    assert run.peak_memory_mb == pytest.approx(13.9023)
    table = run.by_node_type
    assert table["CONV_2D"]["count"] == 15 and table["CONV_2D"]["avg_ms"] == pytest.approx(18.212)
    assert len(table) == 7
    # the node-type times add up to the average inference time
    assert sum(row["avg_ms"] for row in table.values()) == pytest.approx(run.avg_ms, rel=0.01)
    assert sum(row["percent"] for row in table.values()) == pytest.approx(100.0, abs=0.01)


def test_truncated_output_is_a_clear_error():
    text = (DATA / "benchmark_model_builtin_quant.txt").read_text().split("Inference timings")[0]
    with pytest.raises(AdbError, match="no 'Inference timings in us' line"):
        parse_benchmark_output(text, source="run.txt")


def test_missing_adb_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    with pytest.raises(AdbError, match="adb not found"):
        run_on_device(model, model, threads=4, device="pixel4")
