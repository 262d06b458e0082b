"""The renderers' process pool (train/processes.py): order, spawned workers, a dead worker is an error."""

from __future__ import annotations

import os

import pytest

from ktp_tflite.train.processes import WorkerError, process_map

STATE = {"set_in_parent": False}


def _square(value: int) -> int:
    return value * value


def _parent_state(_: int) -> tuple[bool, int]:
    return STATE["set_in_parent"], os.getpid()


def _die(value: int) -> int:
    if value == 3:
        os._exit(7)  # as a worker killed by the kernel or crashed in native code
    return value


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_job_order(workers):
    with process_map(workers) as mapper:
        assert list(mapper(_square, range(9), 2)) == [i * i for i in range(9)]
        assert list(mapper(_square, [5, 1], 1)) == [25, 1]  # one pool, two maps


def test_workers_are_spawned_not_forked(monkeypatch):
    # a forked child would see the parent's memory (and its threads' held locks); a spawned one starts clean
    monkeypatch.setitem(STATE, "set_in_parent", True)
    with process_map(2) as mapper:
        seen = list(mapper(_parent_state, range(4), 1))
    assert [inherited for inherited, _ in seen] == [False] * 4
    assert os.getpid() not in {pid for _, pid in seen}


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(WorkerError, match="worker process stopped"):
        with process_map(2) as mapper:
            list(mapper(_die, range(6), 1))
