"""Work spread over processes: the one pool the renderers use (cards, reader crops).

Workers are *spawned* (a new interpreter that imports what it needs), never
forked. A forked child inherits the parent's threads' locks in whatever state
they were in: NumPy's OpenBLAS starts a thread pool at import, and a child
that then calls BLAS or LAPACK can wait forever on a lock no thread of its
own will release (OpenBLAS issues 294, 5520). The main job hung that way on a
fresh CI machine in its first rendering (stop 21: ``rendering 200 train
cards``, then nothing until the 90-minute limit), after passing on others.
Spawning costs about 0.3 s per worker (importing numpy, PIL and the renderer).

A worker that dies (killed, out of memory, a crash in native code) ends the
map with :class:`WorkerError` instead of leaving the parent waiting. Workers
ignore Ctrl-C (SIGINT goes to the whole process group of a terminal): the
parent alone gets it, and leaving the pool cancels the jobs not yet started,
so a command stops with its own one line, not a traceback per worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ktp_tflite.train.errors import KtpError

Job = TypeVar("Job")
Result = TypeVar("Result")
Mapper = Callable[[Callable[[Any], Any], Iterable[Any], int], Iterator[Any]]
"""``mapper(function, jobs, chunksize)``: the results of ``function`` over ``jobs``, in order."""


class WorkerError(KtpError, RuntimeError):
    """A worker process stopped before it finished its jobs."""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serial(function: Callable[[Job], Result], jobs: Iterable[Job], chunksize: int = 1) -> Iterator[Result]:
    return map(function, jobs)


@contextlib.contextmanager
def process_map(workers: int) -> Iterator[Mapper]:
    """A mapper running jobs in ``workers`` spawned processes (in this process when ``workers`` <= 1).

    ``function`` must be a module-level function and every job picklable. The
    results come back in the order of the jobs, whatever the number of
    workers. A map's jobs are handed to the workers when the mapper is
    called, not when its results are first asked for, so work can start
    before it is needed (:class:`ktp_tflite.convert.representative.Prefetch`).
    The pool lives for the ``with`` block, so one pool can serve several
    maps (the reader renders its crops chunk by chunk); leaving the block
    drops the jobs not started and waits for the running ones (a chunk
    each), so the pool's threads end before the interpreter does (one
    that outlived it printed "Exception in thread" after Ctrl-C).

    Raises (from the mapper's iteration):
      WorkerError: a worker process died.
    """
    if workers <= 1:
        yield _serial
        return
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
    )

    def mapper(function: Callable[[Job], Result], jobs: Iterable[Job], chunksize: int = 1) -> Iterator[Result]:
        return _worker_errors(executor.map(function, jobs, chunksize=chunksize))

    try:
        yield mapper
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _worker_errors(results: Iterator[Result]) -> Iterator[Result]:
    try:
        yield from results
    except BrokenProcessPool as error:
        raise WorkerError(
            f"a worker process stopped before finishing its jobs ({error}); it may have been killed or "
            "run out of memory: retry with fewer --workers"
        ) from None
