"""A whole scan measured on a labelled set: detector through an app runtime, then the field reader.

For each photo the detector runs through ``runtime`` (default the Task
Library, with the app's ktp-core box mapping: what android_demo reads from);
each field's box as a scan and the app keep it (score >= the app's threshold,
the card fit's pick: :func:`ktp_tflite.convert.evaluate.card_boxes`) is deskewed and cropped from the full photo
(:func:`ktp_tflite.train.reader_crops.crops_from_boxes` with ``deskew``, as
``scan --reader`` and the app do, with the reader's own crop geometry) and
read under its field's grammar. The same reader also reads the ground-truth
boxes, so the report separates reading errors from box errors:

- ``sources[detector|ground_truth]``: exact match and CER per field and
  "all" (a field the detector did not find counts as read wrong),
  ``cards_read``: the share of photos whose five values are all exact,
  overall and by card width (:data:`ktp_tflite.convert.evaluate.CARD_WIDTH_BINS`),
  ``by_text_height``: exact match per field by the printed text height
  (ground-truth box height in photo pixels, :data:`TEXT_HEIGHT_BINS`),
  ``nik_valid``: share of NIKs read that parse (train/nik.py rules),
  ``gender_agrees``: share of cards whose NIK gender and Jenis Kelamin
  (both read) agree, over cards where both were readable;
- ``reader_ms_per_field``: host time of the reader model (LiteRT, 1
  thread), ``decode_ms_per_field``: of the grammar decoding (NumPy, this
  toolkit's reference implementation; the app decodes in Kotlin).

Printed texts come from the data set's ``fields.jsonl``
(:mod:`ktp_tflite.train.field_texts`). The report holds counts and shares
only: no texts, no image content, no file names.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ktp_tflite.convert.evaluate import (
    CARD_WIDTH_BINS,
    EvaluateError,
    card_boxes,
    detect_in_chunks,
)
from ktp_tflite.convert.fields import to_pixels
from ktp_tflite.convert.reader import TfliteReader
from ktp_tflite.convert.zoom import ZoomSettings
from ktp_tflite.train.card_layout import card_width_fraction
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.reader_crops import crops_from_boxes
from ktp_tflite.train.reader_grammar import decode_field, nik_report
from ktp_tflite.train.reader_train import score_texts
from ktp_tflite.train.records import Dataset, field_pixel_boxes

# Printed text height (ground-truth box height, photo pixels) bins: (key, low, high), low inclusive.
TEXT_HEIGHT_BINS = (
    ("under_6", 0.0, 6.0),
    ("6_to_8", 6.0, 8.0),
    ("8_to_10", 8.0, 10.0),
    ("10_to_14", 10.0, 14.0),
    ("14_and_over", 14.0, float("inf")),
)
SOURCES = ("detector", "ground_truth")


def _bin(value: float, bins) -> str:
    return next(key for key, low, high in bins if low <= value < high)


class _Tally:
    """Counts of one box source."""

    def __init__(self):
        self.pairs: list[tuple[str, str, str]] = []
        self.cards = {key: [0, 0] for key in ("all", *(k for k, _, _ in CARD_WIDTH_BINS))}
        self.heights = {f: {k: [0, 0] for k, _, _ in TEXT_HEIGHT_BINS} for f in CLASSES}
        self.nik = [0, 0]  # NIKs read, valid
        self.gender = [0, 0]  # cards where both were readable, agreeing

    def add(self, truths: dict[str, str], reads: dict[str, str], heights: dict[str, float], width_bin: str):
        for field, truth in truths.items():
            read = reads.get(field, "")
            self.pairs.append((field, truth, read))
            cell = self.heights[field][_bin(heights[field], TEXT_HEIGHT_BINS)]
            cell[0] += 1
            cell[1] += read == truth
        whole = all(reads.get(f) == t for f, t in truths.items())
        for key in ("all", width_bin):
            self.cards[key][0] += 1
            self.cards[key][1] += whole
        if "nik" in reads:
            report = nik_report(reads["nik"], reads.get("jenis_kelamin"))
            self.nik[0] += 1
            self.nik[1] += bool(report["valid"])
            if report["gender_agrees"] is not None:
                self.gender[0] += 1
                self.gender[1] += bool(report["gender_agrees"])

    def to_dict(self) -> dict:
        def share(n: int, k: int) -> float | None:
            return k / n if n else None

        return {
            "fields": score_texts(self.pairs),
            "cards_read": {key: share(n, k) for key, (n, k) in self.cards.items()},
            "cards": {key: n for key, (n, _) in self.cards.items()},
            "by_text_height": {
                f: {key: {"values": n, "exact": share(n, k)} for key, (n, k) in bins.items() if n}
                for f, bins in self.heights.items()
            },
            "nik_valid": share(*self.nik),
            "gender_agrees": share(*self.gender),
        }


def evaluate_scan(
    detector_path: str | Path,
    reader: TfliteReader,
    dataset: Dataset,
    texts: dict[str, dict[str, str]],
    runtime: str = "task-library",
    *,
    zoom: ZoomSettings | None = None,
    presize: int | None = None,
    progress: bool = True,
) -> dict:
    """Detector (through ``runtime``, ktp-core boxes) then reader on every photo of ``dataset``.

    Args:
      detector_path: the detector .tflite.
      reader: the field reader.
      dataset: labelled photos (their ground-truth boxes give the card width,
        the text heights and the ground-truth crops).
      texts: ``{image_id: {field: printed text}}`` (fields.jsonl).
      runtime: one of :data:`ktp_tflite.convert.runtimes.RUNTIMES`.
      zoom: the two-pass zoom settings, or None for one pass.
      presize: hand a whole-pixel runtime pre-sized frames of this factor
        (:func:`ktp_tflite.convert.runtimes.presized_frame`), as android_demo does.

    Returns:
      The report described in the module docstring.

    Raises:
      EvaluateError: a photo with boxes has no texts in ``texts``.
      ModelLoadError, RuntimeUnavailableError, DatasetError: as :func:`ktp_tflite.convert.evaluate.evaluate_model`.
    """
    from ktp_tflite.convert.scan import bind_outputs, check_field_labels
    from ktp_tflite.convert.tflite_model import read_model

    path = Path(detector_path)
    model = read_model(path)
    check_field_labels(bind_outputs(model))
    examples = [e for e in dataset.examples if e.boxes]
    missing = [e.image_id for e in examples if e.image_id not in texts]
    if missing:
        raise EvaluateError(
            f"{len(missing)} photo(s) of {dataset.source} have no printed texts in the "
            f"fields file (e.g. {missing[0]!r}); pass the fields.jsonl of this data set"
        )
    crop = reader.crop  # the geometry the reader was trained on (its crop.txt)
    tallies = {source: _Tally() for source in SOURCES}
    model_seconds, decode_seconds, read_fields, second_passes = 0.0, 0.0, 0, 0
    label = f"scanning with {path.name} ({runtime}{', zoom' if zoom else ''}) and the reader"
    for chunk, images, found in detect_in_chunks(runtime, path, examples, zoom, label, progress, presize):
        second_passes += found.second_passes
        for example, image, detections in zip(chunk, images, found.app, strict=True):
            height, width = image.shape[:2]
            truth_boxes = field_pixel_boxes(example.boxes, width, height)
            truths = {f: texts[example.image_id][f] for f in truth_boxes if f in texts[example.image_id]}
            heights = {f: truth_boxes[f][3] - truth_boxes[f][1] for f in truths}
            width_bin = _bin(card_width_fraction(truth_boxes, width), CARD_WIDTH_BINS)
            boxes = {
                "detector": {
                    f: to_pixels(b, width, height)
                    for f, b in card_boxes(detections, width, height).items()
                    if f in truths
                },
                "ground_truth": {f: truth_boxes[f] for f in truths},
            }
            for source in SOURCES:
                usable = {f: b for f, b in boxes[source].items() if b[2] - b[0] >= 1 and b[3] - b[1] >= 1}
                crops = crops_from_boxes(image, usable, crop, deskew=True)
                began = time.perf_counter()
                logits = reader.logits(list(crops.values()))
                between = time.perf_counter()
                reads = {f: decode_field(row, f).text for f, row in zip(crops, logits)}
                model_seconds += between - began
                decode_seconds += time.perf_counter() - between
                read_fields += len(crops)
                tallies[source].add(truths, reads, heights, width_bin)
    return {
        "detector": {
            "file": path.name,
            "runtime": runtime,
            "boxes": "ktp-core (the app's)" if runtime != "litert" else "as returned",
            "presize": presize,
            "precision": model.precision,
        },
        "reader": {
            "file": reader.model.source and Path(reader.model.source).name,
            "precision": reader.precision,
            "input": [reader.height, reader.width, 3],
            "crop": dataclasses.asdict(reader.crop),
        },
        "photos": len(examples),
        "zoom": None
        if zoom is None
        else {"threshold": zoom.threshold, "second_pass_share": second_passes / max(1, len(examples))},
        "sources": {source: tally.to_dict() for source, tally in tallies.items()},
        "reader_ms_per_field": 1000 * model_seconds / max(1, read_fields),
        "decode_ms_per_field": 1000 * decode_seconds / max(1, read_fields),
    }


def format_scan_table(report: dict) -> str:
    """The report as a plain-text table: exact match per field, cards read by card width."""
    rows = [f"{'':<26}" + "".join(f"{s:>14}" for s in SOURCES)]
    for field in (*CLASSES, "all"):
        cells = [report["sources"][s]["fields"].get(field, {}).get("exact") for s in SOURCES]
        rows.append(f"{field + ' exact':<26}" + "".join(f"{'-' if c is None else f'{c:.4f}':>14}" for c in cells))
    for key in report["sources"]["detector"]["cards_read"]:
        cells = [report["sources"][s]["cards_read"][key] for s in SOURCES]
        n = report["sources"]["detector"]["cards"][key]
        rows.append(
            f"{f'cards read {key} ({n})':<26}" + "".join(f"{'-' if c is None else f'{c:.4f}':>14}" for c in cells)
        )
    for key in ("nik_valid", "gender_agrees"):
        cells = [report["sources"][s][key] for s in SOURCES]
        rows.append(f"{key:<26}" + "".join(f"{'-' if c is None else f'{c:.4f}':>14}" for c in cells))
    rows.append(
        f"reader {report['reader']['precision']}: {report['reader_ms_per_field']:.2f} ms per field "
        f"(host, LiteRT 1 thread; decoding {report['decode_ms_per_field']:.2f} ms in NumPy); "
        f"detector {report['detector']['file']} through "
        f"{report['detector']['runtime']}, boxes {report['detector']['boxes']}"
    )
    return "\n".join(rows)
