"""Calibration images for full-integer quantization.

A representative set is any foundation data set (read with
``ktp_tflite.train.datasets.read_dataset``) or ``synth:N`` (N synthetic cards
rendered on the fly). Samples are drawn deterministically from ``seed`` and
preprocessed by :mod:`ktp_tflite.train.preprocess`, the same stretch-resize
and [-1, 1] scaling the model was trained with: a mismatch here is the most
common cause of int8 accuracy collapse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from ktp_tflite.train.errors import KtpError

SYNTH_PREFIX = "synth:"


class RepresentativeError(KtpError, ValueError):
    """The representative data cannot be used; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class RepresentativeSet:
    """``num_samples`` images chosen from ``source``, loadable one at a time.

    Attributes:
      source: what the user passed (a path or ``synth:N``).
      available: how many images the source holds.
      loaders: one callable per chosen sample returning uint8 RGB [H, W, 3].
    """

    source: str
    available: int
    loaders: tuple[Callable[[], np.ndarray], ...]

    def __len__(self) -> int:
        return len(self.loaders)


def _choose(available: int, num_samples: int, seed: int, source: str) -> list[int]:
    if num_samples < 1:
        raise RepresentativeError(f"--num-samples must be at least 1, got {num_samples}")
    if available < num_samples:
        raise RepresentativeError(
            f"{source}: representative set has {available} image(s) but --num-samples asks "
            f"for {num_samples}; give a larger set or lower --num-samples "
            "(100-500 calibration images are recommended)"
        )
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(available, size=num_samples, replace=False))


def _render_synth(seed: int, index: int) -> np.ndarray:
    from ktp_tflite.train.synth import render_card

    return render_card(seed, index).image


def _synth_loader(seed: int, index: int) -> Callable[[], np.ndarray]:
    return functools.partial(_render_synth, seed, index)  # picklable: a prefetch worker runs it


def load_representative(source: str, num_samples: int, seed: int = 0) -> RepresentativeSet:
    """Pick ``num_samples`` calibration images from ``source``.

    Args:
      source: a data set path in any foundation format, or ``synth:N``.
      num_samples: how many images to use.
      seed: fixes which images are drawn (and which synthetic cards render).

    Raises:
      RepresentativeError: bad ``synth:`` spec, or fewer images than asked.
      DatasetError: the data set cannot be read (raised by the reader).
    """
    if source.startswith(SYNTH_PREFIX):
        count_text = source[len(SYNTH_PREFIX) :]
        if not count_text.isdigit() or int(count_text) < 1:
            raise RepresentativeError(
                f"--representative {source!r}: expected synth:N with N a positive number of cards"
            )
        indices = _choose(int(count_text), num_samples, seed, source)
        loaders = tuple(_synth_loader(seed, i) for i in indices)
        return RepresentativeSet(source=source, available=int(count_text), loaders=loaders)

    from ktp_tflite.train.datasets import read_dataset

    dataset = read_dataset(source, labelled=False)
    indices = _choose(len(dataset), num_samples, seed, source)
    loaders = tuple(dataset.examples[i].load_rgb for i in indices)
    return RepresentativeSet(source=source, available=len(dataset), loaders=loaders)


def _prepared(job: tuple[Callable[[], np.ndarray], int, int]) -> np.ndarray:
    """A sample loaded and resized to the model input (in a :class:`Prefetch` worker or here)."""
    from ktp_tflite.train.preprocess import resize_rgb

    load, height, width = job
    return resize_rgb(load(), height, width)


class Prefetch:
    """The chosen samples loaded and resized in worker processes, into a cache, while the converter runs.

    Rendering 300 synthetic cards takes ~15 s on one core; the TFLite
    converter's graph conversion, which comes first, uses about one core for
    ~30 s, so the samples are ready when calibration asks for them. The
    images are the ones :func:`calibration_inputs` would load itself (the
    same loader, the same resize). The jobs go to the workers when it is
    made (no thread of ours: :func:`ktp_tflite.train.processes.process_map`
    hands them out); :meth:`wait` takes the results in order. Use it as a
    context manager: leaving it drops the samples not yet rendered.
    """

    def __init__(
        self, samples: RepresentativeSet, height: int, width: int, cache: dict[int, np.ndarray], workers: int = 2
    ):
        from ktp_tflite.train.processes import process_map

        self._cache = cache
        self._pool = contextlib.ExitStack()
        mapper = self._pool.enter_context(process_map(workers))
        self._results = mapper(_prepared, [(load, height, width) for load in samples.loaders], 4)
        self._next = 0

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.close()

    def wait(self, position: int) -> None:
        """Put samples up to ``position`` in the cache (waiting for the workers).

        Raises:
          WorkerError: a worker process died; a loader's own error (an unreadable image).
        """
        while self._next <= position:
            pixels = next(self._results, None)
            if pixels is None:
                return
            self._cache[self._next] = pixels
            self._next += 1


def calibration_inputs(
    samples: RepresentativeSet,
    height: int,
    width: int,
    *,
    progress: bool = True,
    timer: list[float] | None = None,
    cache: dict[int, np.ndarray] | None = None,
    label: str = "calibrating",
    prefetch: Prefetch | None = None,
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A ``representative_dataset`` for the TFLite converter.

    Each element is ``[float32 [1, height, width, 3] in [-1, 1]]``, preprocessed
    exactly as in training. With ``progress`` a bar on stderr counts samples.

    Args:
      samples: the chosen images.
      height, width: model input size.
      progress: draw a progress bar on stderr.
      timer: if given, the seconds spent between the first and the last
        sample are appended (the calibration time, for benchmarks).
      cache: if given, the resized uint8 images are kept there (by sample
        position) and reused by later passes, so a second pass over the set
        (range refinement, the debug report) loads and renders nothing
        (300 images at 320x320 hold 92 MB).
      label: the progress bar's label.
      prefetch: a :class:`Prefetch` filling ``cache``: each sample is waited for, not loaded here.
    """
    from ktp_tflite.train.preprocess import to_model_input

    def generate() -> Iterator[list[np.ndarray]]:
        import click

        start = time.perf_counter()
        with click.progressbar(
            length=len(samples),
            label=label,
            file=sys.stderr,
            hidden=not progress,
        ) as bar:
            for position, load in enumerate(samples.loaders):
                if prefetch is not None:
                    prefetch.wait(position)
                if cache is not None and position in cache:
                    pixels = cache[position]
                else:
                    pixels = _prepared((load, height, width))
                    if cache is not None:
                        cache[position] = pixels
                yield [to_model_input(pixels)[np.newaxis]]
                bar.update(1)
        if timer is not None:
            timer.append(time.perf_counter() - start)

    return generate
