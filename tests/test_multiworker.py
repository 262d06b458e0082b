"""Two real ``ktpconvert train --strategy multiworker`` workers on 127.0.0.1.

Per worker a ``TF_CONFIG`` with free ports found at run time, the tiny preset
and the 12 rendered photos of ``small_synth`` as a TFRecord. Phase 1 trains
until the chief's first checkpoint, then kills worker 1 (the chief must stop
by itself with an error that says to resume). Phase 2 restarts both with
``--resume`` for one step, beside one ``--strategy default`` worker resumed
from a copy of the same run folder, with batch norm frozen and no
augmentation (stored by phase 1), so that both compute the gradient of the
same 4 examples: 2 workers x 2 against 1 worker x 4.

Every process has a deadline; on failure or timeout all of them are killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ktp_tflite.convert.cli import main as cli_main
from ktp_tflite.train.config import preset, with_overrides

# Deadlines, only reached on failure (on the shared 2 cores: phase 1 takes 15-20 s to the
# first checkpoint and 30-45 s until the chief notices the death and exits; phase 2 65-120 s).
PHASE_SECONDS = 240  # phase 2: three processes start, train one step and exit
FIRST_CHECKPOINT_SECONDS = 180  # phase 1: start-up, tracing, 2 steps
LOST_WORKER_SECONDS = 120  # phase 1: TensorFlow's heartbeat notices the death, the chief exits
# A gradient computed on 2 + 2 images and summed across workers differs from the one of
# the same 4 images on one worker only by float32 summation order: relative ~1e-7 of the
# summed terms. Weights and Adam moments agree to 1e-6 absolute (measured: 1e-7 to 4e-7)
# while the step moves the weights by ~1e-3 (checked below, so the comparison can fail).
ATOL, RTOL = 1e-6, 1e-4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Processes:
    """Started ``ktpconvert`` processes, each in its own process group."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen]] = []
        self.files: list = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        command = [sys.executable, "-m", "ktp_tflite.convert.cli", "train", *args]
        timeout = shutil.which("timeout")  # a second, outside deadline if pytest itself dies
        if timeout:
            command = [timeout, "-s", "KILL", str(3 * PHASE_SECONDS), *command]
        self.files += [(self.log_dir / f"{name}.out").open("w"),
                       (self.log_dir / f"{name}.err").open("w")]
        process = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True,
                                   stdout=self.files[-2], stderr=self.files[-1])
        self.running.append((name, process))
        return process

    def stderr(self, name: str) -> str:
        return (self.log_dir / f"{name}.err").read_text()

    def stdout_json(self, name: str) -> dict:
        return json.loads((self.log_dir / f"{name}.out").read_text())

    def tails(self) -> str:
        return "\n".join(f"--- {name} (exit {p.poll()}):\n{self.stderr(name)[-1500:]}"
                         for name, p in self.running)

    def kill(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def wait(self, name: str, process: subprocess.Popen, deadline: float) -> int:
        try:
            return process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.kill_all()
            pytest.fail(f"{name} did not finish in time\n{self.tails()}")

    def kill_all(self) -> None:
        for _, process in self.running:
            self.kill(process)

    def close(self) -> None:
        self.kill_all()
        for handle in self.files:
            handle.close()


@pytest.fixture
def processes(tmp_path):
    started = _Processes(tmp_path)
    yield started
    started.close()


def _worker_env(ports: list[int], index: int, tmp: Path) -> dict[str, str]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    tmp.mkdir()
    task = {"type": "worker", "index": index}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task}), "TMPDIR": str(tmp)}


def _latest_step(checkpoint_dir: Path) -> int | None:
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(str(checkpoint_dir))
    return int(prefix.rsplit("-", 1)[1]) if prefix else None


def _checkpoint_arrays(prefix: str) -> dict[str, np.ndarray]:
    """Model weights, optimizer state and step of a checkpoint, by checkpoint key."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.startswith(("model/", "optimizer/", "step/"))}


def test_each_worker_reads_its_slice_of_every_global_batch(small_synth):
    import tensorflow as tf

    from ktp_tflite.train.input_pipeline import NO_AUGMENTATION, train_dataset

    config = with_overrides(preset("tiny"), batch_size=4, augment=NO_AUGMENTATION)

    def batches(context):
        data = train_dataset(small_synth, config.model, config.train, seed=3, input_context=context)
        return [images.numpy() for images, _ in data.take(4)]  # 16 images: past one epoch of 12

    one = batches(None)
    halves = [batches(tf.distribute.InputContext(2, index, 2)) for index in (0, 1)]
    for k in range(4):
        assert halves[0][k].shape == halves[1][k].shape == (2, 96, 96, 3)
        # global batch k = worker 0's half then worker 1's half of one worker's batch k
        np.testing.assert_array_equal(np.concatenate([halves[0][k], halves[1][k]]), one[k])
    assert not np.array_equal(one[0], one[1])


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "evaluator", "index": 0}}',
     "only 'chief' and 'worker' tasks"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
     "task index 1 but the cluster lists 1 worker"),
])
def test_bad_cluster_description_is_a_clear_error(tmp_path, small_synth, monkeypatch,
                                                  tf_config, message):
    from ktp_tflite.train.datasets import write_tfrecord

    record = tmp_path / "ktp.tfrecord"
    write_tfrecord(small_synth, record)
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    result = CliRunner().invoke(cli_main, [
        "train", "--data", str(record), "--out", str(tmp_path / "run"), "--preset", "tiny",
        "--strategy", "multiworker"])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_two_workers_resume_after_a_death_and_step_like_one_worker(tmp_path, small_synth,
                                                                   processes):
    from ktp_tflite.train.datasets import write_tfrecord

    (tmp_path / "data").mkdir()
    record = tmp_path / "data" / "ktp.tfrecord"
    write_tfrecord(small_synth, record)  # and its label_map.pbtxt
    run_dir = tmp_path / "run"
    common = ["--data", str(record), "--preset", "tiny", "--batch-size", "4", "--seed", "5"]

    # Phase 1: two workers; worker 1 dies after the chief's first checkpoint.
    ports = [_free_port(), _free_port()]
    first = ["--out", str(run_dir), "--steps", "1000", "--checkpoint-every", "2", "--no-augment",
             "--strategy", "multiworker"]
    chief = processes.start("p1-worker0", common + first, _worker_env(ports, 0, tmp_path / "t10"))
    other = processes.start("p1-worker1", common + first, _worker_env(ports, 1, tmp_path / "t11"))
    deadline = time.monotonic() + FIRST_CHECKPOINT_SECONDS
    while _latest_step(run_dir / "checkpoints") is None:
        if chief.poll() is not None or other.poll() is not None or time.monotonic() > deadline:
            processes.kill_all()
            pytest.fail(f"no checkpoint from the two workers\n{processes.tails()}")
        time.sleep(0.5)
    processes.kill(other)
    rc = processes.wait("p1-worker0", chief, time.monotonic() + LOST_WORKER_SECONDS)
    error = processes.stderr("p1-worker0")
    assert rc == 1, processes.tails()
    assert "the cluster lost worker 1 (" in error and "restart every worker with --resume" in error
    assert "Traceback" not in error
    dead_at = _latest_step(run_dir / "checkpoints")
    assert dead_at is not None and dead_at >= 2 and dead_at % 2 == 0
    reference_dir = tmp_path / "reference"
    shutil.copytree(run_dir, reference_dir)

    # Phase 2: both workers resume for one step; one worker resumes a copy of the same folder.
    ports = [_free_port(), _free_port()]
    resume = ["--resume", "--steps", str(dead_at + 1), "--freeze-batch-norm"]
    workers = [processes.start(f"p2-worker{i}", common + resume + [
        "--out", str(run_dir), "--val", str(record), "--strategy", "multiworker"],
        _worker_env(ports, i, tmp_path / f"t2{i}")) for i in (0, 1)]
    single = processes.start("p2-single", common + resume + ["--out", str(reference_dir)],
                             {})
    deadline = time.monotonic() + PHASE_SECONDS
    for name, process in [("p2-worker0", workers[0]), ("p2-worker1", workers[1]),
                          ("p2-single", single)]:
        assert processes.wait(name, process, deadline) == 0, processes.tails()

    summaries = [processes.stdout_json(f"p2-worker{i}") for i in (0, 1)]
    assert [s["chief"] for s in summaries] == [True, False]
    for summary in summaries + [processes.stdout_json("p2-single")]:
        assert (summary["first_step"], summary["last_step"]) == (dead_at, dead_at + 1)
    assert f"resumed from {run_dir / 'checkpoints'}/ckpt-{dead_at} at step {dead_at}" in (
        processes.stderr("p2-worker1"))
    # The two workers end with the same weights (every weight, bit for bit).
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]

    # One run folder, written by the chief only; worker 1's temporary folder is gone.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints", "config.json", "eval_history.jsonl", "history.jsonl", "metrics.json",
        "tensorboard"]
    for kind in ("train", "val"):  # one event file per chief process (phases 1 and 2)
        assert len(list((run_dir / "tensorboard" / kind).iterdir())) == 2
    assert [json.loads(line)["step"] for line in
            (run_dir / "history.jsonl").read_text().splitlines()] == [dead_at + 1]
    assert json.loads((run_dir / "metrics.json").read_text())["step"] == dead_at + 1
    assert "eval step" not in processes.stderr("p2-worker1")
    assert "checkpoints go to" in processes.stderr("p2-worker1")
    assert list((tmp_path / "t21").iterdir()) == [] and list((tmp_path / "t20").iterdir()) == []
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["augment"]["contrast_range"] == [1.0, 1.0]  # --no-augment kept

    # 2 workers x batch 2 = 1 worker x batch 4: same loss, same weights and optimizer state.
    two = json.loads((run_dir / "history.jsonl").read_text().splitlines()[-1])
    one = json.loads((reference_dir / "history.jsonl").read_text().splitlines()[-1])
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["positives"] == one["positives"]
    after_two = _checkpoint_arrays(str(run_dir / "checkpoints" / f"ckpt-{dead_at + 1}"))
    after_one = _checkpoint_arrays(str(reference_dir / "checkpoints" / f"ckpt-{dead_at + 1}"))
    before = _checkpoint_arrays(str(reference_dir / "checkpoints" / f"ckpt-{dead_at}"))
    assert after_two.keys() == after_one.keys() == before.keys()
    moved = 0.0
    for key, value in after_one.items():
        np.testing.assert_allclose(after_two[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
        if key.startswith("optimizer/_trainable_variables/"):  # the trainable weights
            moved = max(moved, float(np.max(np.abs(value - before[key]))))
    assert moved > 100 * ATOL
