"""A synthetic KTP data set written to a folder: what ``ktpconvert data synth`` writes.

:func:`write_synthetic` renders the cards (:mod:`ktp_tflite.train.synth`) and
writes them as a Roboflow-style TFRecord + label map, a COCO folder, or both
(:mod:`ktp_tflite.train.datasets`), beside ``fields.jsonl`` (the printed field
texts of each synthetic card) and ``labels.txt``. The whole folder is built
under a temporary name and renamed (:mod:`ktp_tflite.train.atomic_files`), so
an interrupted run never leaves a half-written data set under the final name.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ktp_tflite.train.errors import KtpError

FORMATS = ("tfrecord", "coco", "both")
MARKER = "labels.txt"  # in every folder write_synthetic writes; --force replaces only such folders

Progress = Callable[[int, str], contextlib.AbstractContextManager[Any]]
"""``progress(length, label)``: a context manager yielding an object whose
``update(n)`` is called as photos finish (``click.progressbar`` fits)."""


class SyntheticDataError(KtpError, ValueError):
    """The synthetic data set cannot be written as asked; says what to change."""


def write_synthetic(
    out: str | Path,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    fmt: str = "both",
    workers: int = 1,
    force: bool = False,
    preset: str = "train",
    progress: Progress | None = None,
) -> list[Path]:
    """Render ``count`` cards of recipe ``preset`` into the new folder ``out``.

    Args:
      out: the data set folder (its parent is created); an earlier output of
        this function there is replaced only with ``force``.
      count: number of photos.
      seed: data set seed: photo i of seed s is always the same.
      size: photo (width, height).
      fmt: "tfrecord", "coco" or "both" (then in ``tfrecord/`` and ``coco/``).
      workers: rendering processes (the output does not depend on it).
      force: replace an earlier output of this function.
      preset: the renderer recipe, "train" or "stress".
      progress: shows rendering progress (see :data:`Progress`).

    Returns:
      The data sets written, under ``out``: the .tfrecord file and/or the COCO folder.

    Raises:
      SyntheticDataError: unknown format or a count below 1.
      OutputPathError: ``out`` may not be written (see :func:`~ktp_tflite.train.atomic_files.check_output`).
      SynthConfigError, FontError: unknown preset, or a font it needs is not installed.
    """
    from ktp_tflite.train import datasets, synth
    from ktp_tflite.train.atomic_files import atomic_output_dir, atomic_write_bytes, check_output
    from ktp_tflite.train.labels import labels_txt

    if fmt not in FORMATS:
        raise SyntheticDataError(f"unknown data set format {fmt!r}; use one of {', '.join(FORMATS)}")
    if count < 1:
        raise SyntheticDataError(f"{out}: count must be at least 1, got {count}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_output(out, force=force, folder=True, marker=MARKER)
    config = synth.preset_config(preset, width=size[0], height=size[1])
    shown = progress(count, f"rendering {count} {preset} cards") if progress else contextlib.nullcontext()
    with shown as bar:
        dataset = synth.render_dataset(
            count, seed=seed, config=config, workers=workers, progress=bar.update if bar is not None else None
        )
    side = "".join(
        json.dumps({"image_id": image_id, **fields}, sort_keys=True) + "\n"
        for image_id, fields in dataset.texts.items()
    )
    with atomic_output_dir(out, force=force, marker=MARKER) as staging:
        written = []
        if fmt in ("tfrecord", "both"):
            folder = staging / "tfrecord" if fmt == "both" else staging
            folder.mkdir(exist_ok=True)
            datasets.write_tfrecord(dataset, folder / "ktp.tfrecord")
            written.append(out / (folder / "ktp.tfrecord").relative_to(staging))
        if fmt in ("coco", "both"):
            folder = staging / "coco" if fmt == "both" else staging
            datasets.write_coco(dataset, folder)
            written.append(out / folder.relative_to(staging))
        atomic_write_bytes(staging / "fields.jsonl", side.encode())
        atomic_write_bytes(staging / MARKER, labels_txt().encode())
    return written
