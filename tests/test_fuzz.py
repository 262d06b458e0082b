"""A short, deterministic fuzz run over every data reader (issue 16, item 5).

The targets and strategies are those of ``benchmarks/tools/fuzz_readers.py`` (the
long run); here each runs a fixed number of derandomized hypothesis inputs,
about 35 s in all on a loaded 2-core machine. Per input: no exception but
KtpError, no input file modified, no file left under any name in the input
folder (and, for images, ``scan --json`` leaves its output only on success).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from ktp_tflite.benchmarks.tools import fuzz_readers

pytest.importorskip("tensorflow")  # the TFRecord target writes and reads real TFRecords

REFERENCE_TFLITE = Path(__file__).resolve().parents[1] / "train" / "reference" / "model_float.tflite"
# inputs per target: roughly 5-8 s each
BUDGET = {"coco": 500, "voc": 500, "tfrecord+label_map": 80, "pbtxt+pipeline.config": 400,
          "image": 150}
TARGETS = {t.name: t for t in fuzz_readers.targets(REFERENCE_TFLITE)}


@pytest.mark.parametrize("name", list(BUDGET))
def test_reader_survives_fuzzing(name, tmp_path):
    target = TARGETS[name]
    tried = []

    @settings(max_examples=BUDGET[name], derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(target.inputs())
    def one(value):
        tried.append(1)
        fuzz_readers.run_one(target, tmp_path, value)

    start = time.perf_counter()
    one()
    print(f"{name}: {len(tried)} inputs in {time.perf_counter() - start:.1f} s, 0 crashes")
    assert len(tried) >= BUDGET[name]


def test_the_harness_catches_a_modified_input(tmp_path):
    """The property check is real: a reader that touches its input is reported."""

    def sloppy_read(folder):
        (folder / "card1.png").write_bytes(b"oops")

    target = fuzz_readers.Target("sloppy", fuzz_readers.coco_inputs, TARGETS["coco"].write,
                                 sloppy_read)
    with pytest.raises(fuzz_readers.PropertyViolation, match="card1.png"):
        fuzz_readers.run_one(target, tmp_path, b"{}")

    def leaves_a_file(folder):
        (folder / ".result.json.tmp").write_text("half")

    target = fuzz_readers.Target("leaky", fuzz_readers.coco_inputs, TARGETS["coco"].write,
                                 leaves_a_file)
    with pytest.raises(fuzz_readers.PropertyViolation, match="result.json.tmp"):
        fuzz_readers.run_one(target, tmp_path, b"{}")

    def crashes(folder):
        raise IndexError("a bug")

    target = fuzz_readers.Target("crash", fuzz_readers.coco_inputs, TARGETS["coco"].write, crashes)
    tally = fuzz_readers.fuzz(target, tmp_path, seconds=0.5, crash_dir=tmp_path / "crashes", chunk=3)
    assert tally.inputs >= 1 and len(tally.crashes) == tally.inputs
    assert tally.crashes[0]["type"] == "IndexError" and (tmp_path / "crashes").is_dir()
