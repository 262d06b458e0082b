"""Peer comparison: Tesseract and RapidOCR against the field reader, on the same crops, same run.

Usage: python -m ktp_tflite.benchmarks.tools.reader_peers --cards 200 --seed 4000 --out DIR
           [--reader READER.tflite] [--engines tesseract,tesseract-line,rapidocr-rec]
           [--variants box32,...] [--peers-python PYTHON] [--width 640] [--height 480]
           [--preset train|stress] [--force]

Renders ``--cards`` cards (:func:`ktp_tflite.train.synth.render_card`) and
crops the five field values from the ground truth with the project's crop
geometry (:mod:`ktp_tflite.train.reader_crops`), in these variants
(:data:`VARIANTS`):

- ``box32``: the exact ground-truth box with the reader's crop settings
  (:class:`~ktp_tflite.train.reader_crops.CropConfig` defaults at the
  reader's input size, 32 x 256 without ``--reader``; padded): the reader's
  own input; the peers read it too;
- ``rect_native_m15`` / ``rect_native_m50``: the value's quadrilateral
  (``RenderedCard.value_quads``) grown by 15 % / 50 % of the line height on
  every side, rectified at its native height (frame pixels, at least 8, the
  crop geometry's floor), not padded;
- ``box_native_m15`` / ``box_native_m50``: the axis-aligned ground-truth box
  grown the same way, at frame resolution.

Peers (:data:`ENGINES`), each reading every chosen variant: ``tesseract``
(Debian ``tesseract-ocr-ind``, ``-l ind``, its default page segmentation),
``tesseract-line`` (the same with ``--psm 7``, one text line), ``rapidocr``
(``rapidocr-onnxruntime``'s default call: detection, angle classifier and
recognition, models from the wheel; slow on line crops, so not in the
default list) and ``rapidocr-rec`` (its recognizer alone, the crop taken as
one line). The reader (``--reader``, a reader .tflite) reads ``box32`` in
LiteRT (:class:`~ktp_tflite.convert.reader.TfliteReader`, cropped with the
geometry of its own crop.txt) and decodes
under each field's grammar (:func:`~ktp_tflite.train.reader_grammar.decode_field`).

Scores: exact match per field after :func:`normalise` (upper case, colons
and spaces stripped at the ends, whitespace runs collapsed; NIK: digits
only), on both sides; all five fields exact on a card; host milliseconds per
field (:data:`TIMING`). A second, lenient set of scores gives the peers the
reader's closed vocabularies (:func:`snap`) and ignores spaces (RapidOCR's
Chinese-English recognizer often drops them between words). The headline is each engine's best
variant on this run (optimistic for the peers); the JSON has every variant.

The peers are optional (setup.cfg extra ``peers``; Tesseract is a Debian
package, called as a binary: pytesseract would write every crop to a
temporary file and start one process per crop) and never needed by the
main job. RapidOCR does not go into the project venv: it moves protobuf
(3.20.3, pinned below 4 by tflite-support, to 7.x; with protobuf held, pip
picks an older onnxruntime) and adds opencv-python, whose ``cv2`` overwrites
mediapipe's opencv-contrib-python. It lives in its own venv, and the peers
always run in a subprocess (``--peers-python``, default this interpreter)
that executes this same file as a worker (``python -I reader_peers.py
--worker ENGINE``): the worker needs only the standard library, numpy,
Pillow and the engine, so the project's imports below are skipped when the
project is not installed in that interpreter. Crops go to the worker and
texts come back through pipes; nothing but counts and metrics is printed or
written (no text, no image).

Writes ``DIR/reader_peers.json`` and ``DIR/reader_peers.md`` (atomically) and
prints the table. Exit status 1 when no engine and no reader can run (the
missing engines are named with how to install them).

Why one file: the peers' worker is this same file run by path (``_worker_command``), so
:data:`ENGINES`, the engine settings and the pipe protocol (npz of crops in, last JSON line out)
have one definition on both sides. If it grows, the Markdown report (:func:`markdown`, ``_row``,
``_title``, :func:`write_outputs`) could move to reader_peers_report.py; the worker stays here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.resources
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:  # the benchmark side; the peers' worker runs this file where the project may not be installed
    from ktp_tflite.benchmarks.report import cpu_name
    from ktp_tflite.convert.reader import TfliteReader
    from ktp_tflite.train.atomic_files import check_output, write_output
    from ktp_tflite.train.errors import KtpError
    from ktp_tflite.train.images import load_image
    from ktp_tflite.train.labels import CLASSES
    from ktp_tflite.train.nik import levenshtein
    from ktp_tflite.train.reader_crops import (
        CropConfig,
        box_crop,
        crop_quad,
        expand_quad,
        quad_sides,
    )
    from ktp_tflite.train.reader_grammar import FIELD_GRAMMARS, decode_field
    from ktp_tflite.train.synth import SynthConfig, preset_config, render_card
except ModuleNotFoundError as error:
    if error.name != "ktp_tflite":
        raise

    class KtpError(Exception):  # type: ignore[no-redef]  # the worker raises none of the project's errors
        """Stands in for ktp_tflite's base error in the peers' worker."""


# Peer engines: name -> (package it needs, how it reads a crop). "tesseract" and "rapidocr" are
# the engines' default calls; the other two are their documented single-line modes.
ENGINES: dict[str, tuple[str, str]] = {
    "tesseract": ("tesseract", "default: --psm 3 (automatic page segmentation), default --oem (LSTM)"),
    "tesseract-line": ("tesseract", "--psm 7 (the crop is one text line), default --oem (LSTM)"),
    "rapidocr": (
        "rapidocr",
        (
            "the library's default call: text detection + angle classifier + recognition "
            "(config.yaml of the wheel); slow on line crops: its detector scales the "
            "shorter side to 736 px"
        ),
    ),
    "rapidocr-rec": (
        "rapidocr",
        ("recognition only (use_det=False, use_cls=False): the crop as one line, default recognizer settings"),
    ),
}
DEFAULT_ENGINES = ("tesseract", "tesseract-line", "rapidocr-rec")
READER = "reader"
# The version pinned in setup.cfg's extra "peers" (tests/test_reader_peers.py checks they agree).
RAPIDOCR_REQUIREMENT = "rapidocr-onnxruntime==1.4.4"
TESSERACT_LANGUAGE = "ind"
TESSERACT_PAGES = 100  # crops per tesseract process (one multi-page TIFF on stdin)
PROGRESS_SECONDS = 15.0  # the worker reports its progress at most this often
MARGINS = (0.15, 0.5)
READER_VARIANTS = {"box32": False, "box32_deskew": True}  # the reader's own crops: variant -> deskew
MIN_CROP_HEIGHT = 8  # CropConfig's smallest height
VARIANTS: dict[str, str] = {
    "box32": (
        "ground-truth box, the reader's crop (the geometry of its crop.txt: size and margins; without "
        "--reader or crop.txt 32x256, margins 0.2 above and below, 0.1 left and right of the height; padded)"
    ),
    "box32_deskew": (
        "box32 after the deskew `scan --reader` and the app apply (the line's slant in the box "
        "undone, reader_crops.line_angle)"
    ),
    **{
        f"rect_native_m{round(m * 100)}": f"value quadrilateral + {m:.0%} of its height on every side, "
        f"rectified at native height (>= {MIN_CROP_HEIGHT} px)"
        for m in MARGINS
    },
    **{
        f"box_native_m{round(m * 100)}": f"ground-truth box + {m:.0%} of its height on every side, at frame resolution"
        for m in MARGINS
    },
}
NORMALISATION = (
    "both sides: upper case, whitespace runs collapsed to one space, spaces and colons "
    "stripped at both ends; NIK: digits only. 'lenient': then Jenis Kelamin, Status "
    "Perkawinan and Kewarganegaraan are replaced by the nearest value of the reader's "
    "vocabulary (edit distance, ties to the first), as the reader decodes them (an empty "
    "reading stays empty; Kewarganegaraan has one value, so any other reading is exact), "
    "and spaces are ignored"
)
TIMING = (
    "host wall time per field, single thread: Tesseract: OMP_THREAD_LIMIT=1, one process per "
    f"{TESSERACT_PAGES} crops (a multi-page TIFF on stdin, TSV out), process start and model load "
    "amortised over them; RapidOCR: onnxruntime intra/inter-op threads 1, cv2.setNumThreads(1), "
    "each call timed after one untimed warm-up call; reader: one LiteRT interpreter with "
    "num_threads=1 for all crops (creation included) plus decode_field"
)
INSTALL = {
    "tesseract": "apt-get install -y tesseract-ocr tesseract-ocr-ind",
    "rapidocr": (
        f"python3.11 -m venv /work/peers-venv && /work/peers-venv/bin/pip install "
        f"'{RAPIDOCR_REQUIREMENT}', then pass --peers-python /work/peers-venv/bin/python "
        "(not into the project venv: it moves protobuf and adds opencv-python over "
        "mediapipe's opencv-contrib-python)"
    ),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- worker side
# Runs in the peers' interpreter (``python -I reader_peers.py --worker ENGINE``):
# standard library and numpy only, plus the engine's own packages.


class _WorkerError(Exception):
    """An engine that failed inside the worker (the message says how)."""


class _Progress:
    """Logs "engine: done/total crops" to stderr at most every PROGRESS_SECONDS, and at the end."""

    def __init__(self, engine: str, total: int):
        self.engine, self.total, self.last = engine, total, time.monotonic()

    def __call__(self, done: int) -> None:
        if done == self.total or time.monotonic() - self.last >= PROGRESS_SECONDS:
            _log(f"  {self.engine}: {done}/{self.total} crops")
            self.last = time.monotonic()


def _probe(package: str) -> dict:
    """Whether ``package`` ("tesseract" or "rapidocr") runs in this interpreter: versions, or how to install it."""
    if package == "tesseract":
        binary = shutil.which("tesseract")
        if binary is None:
            return {"available": False, "why": "no tesseract binary on PATH", "install": INSTALL[package]}
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        languages = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, check=False)
        if TESSERACT_LANGUAGE not in languages.stdout.split():
            return {
                "available": False,
                "why": f"tesseract has no '{TESSERACT_LANGUAGE}' language data",
                "install": INSTALL[package],
            }
        dpkg = shutil.which("dpkg-query")
        data = (
            subprocess.run(
                [dpkg, "-W", "-f", "${Version}", "tesseract-ocr-ind"], capture_output=True, text=True, check=False
            ).stdout.strip()
            if dpkg
            else ""
        ) or None
        return {
            "available": True,
            "version": (version.stdout or version.stderr).splitlines()[0].strip(),
            "language": TESSERACT_LANGUAGE,
            "tesseract-ocr-ind": data,
        }
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        return {
            "available": False,
            "why": f"rapidocr_onnxruntime is not importable by {sys.executable}",
            "install": INSTALL[package],
        }
    models = sorted(
        p.name
        for p in (importlib.resources.files("rapidocr_onnxruntime") / "models").iterdir()
        if p.name.endswith(".onnx")
    )
    return {
        "available": True,
        "version": importlib.metadata.version("rapidocr-onnxruntime"),
        "onnxruntime": importlib.metadata.version("onnxruntime"),
        "models": ", ".join(models),
    }


def _tsv_pages(tsv: str, pages: int) -> list[str]:
    """The words of each page of Tesseract's TSV output, joined by spaces, in reading order."""
    words: list[list[str]] = [[] for _ in range(pages)]
    for line in tsv.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) == 12 and cells[0] == "5" and cells[11].strip():
            page = int(cells[1]) - 1
            if not 0 <= page < pages:
                raise _WorkerError(f"tesseract reported page {page + 1} of a {pages}-page batch")
            words[page].append(cells[11].strip())
    return [" ".join(w) for w in words]


def _tesseract_read(images: list[np.ndarray], line: bool) -> tuple[list[str], list[float]]:
    from PIL import Image

    command = ["tesseract", "stdin", "stdout", "-l", TESSERACT_LANGUAGE, *(["--psm", "7"] if line else []), "tsv"]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    progress = _Progress("tesseract-line" if line else "tesseract", len(images))
    texts: list[str] = []
    seconds: list[float] = []
    for start in range(0, len(images), TESSERACT_PAGES):
        pages = [Image.fromarray(image) for image in images[start : start + TESSERACT_PAGES]]
        buffer = io.BytesIO()
        pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
        began = time.perf_counter()
        done = subprocess.run(command, input=buffer.getvalue(), capture_output=True, env=env, check=False)
        elapsed = time.perf_counter() - began
        if done.returncode != 0:
            last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
            raise _WorkerError(f"tesseract exited with status {done.returncode}: {last}")
        texts += _tsv_pages(done.stdout.decode("utf-8", "replace"), len(pages))
        seconds += [elapsed / len(pages)] * len(pages)
        progress(len(texts))
    return texts, seconds


def _rapidocr_read(images: list[np.ndarray], detect: bool) -> tuple[list[str], list[float]]:
    import cv2
    from rapidocr_onnxruntime import RapidOCR

    cv2.setNumThreads(1)
    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    options = {} if detect else {"use_det": False, "use_cls": False}
    column = 1 if detect else 0  # [box, text, score] per detected line, or [text, score]
    engine(np.ascontiguousarray(images[0][:, :, ::-1]), **options)  # warm-up, untimed; it takes BGR arrays
    progress = _Progress("rapidocr" if detect else "rapidocr-rec", len(images))
    texts: list[str] = []
    seconds: list[float] = []
    for image in images:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        began = time.perf_counter()
        result, _ = engine(bgr, **options)
        seconds.append(time.perf_counter() - began)
        texts.append(" ".join(str(item[column]) for item in result or ()))  # lines in reading order
        progress(len(texts))
    return texts, seconds


def _worker(argv: list[str]) -> int:
    """``--probe PACKAGE,...``: JSON of :func:`_probe`; ``--worker ENGINE``: read the npz of crops on stdin."""
    if len(argv) != 2 or argv[0] not in ("--probe", "--worker"):
        print("Error: the worker takes --probe PACKAGE,... or --worker ENGINE", file=sys.stderr)
        return 2
    if argv[0] == "--probe":
        print(json.dumps({package: _probe(package) for package in argv[1].split(",")}))
        return 0
    engine = argv[1]
    if engine not in ENGINES:
        print(f"Error: unknown engine {engine!r}; use one of {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as data:
        images = [data[f"crop{i}"] for i in range(len(data.files))]
    try:
        if ENGINES[engine][0] == "tesseract":
            texts, seconds = _tesseract_read(images, line=engine == "tesseract-line")
        else:
            texts, seconds = _rapidocr_read(images, detect=engine == "rapidocr")
    except _WorkerError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write("\n" + json.dumps({"texts": texts, "seconds": seconds}) + "\n")  # the last line
    return 0


# --------------------------------------------------------------------------- benchmark side


class PeerBenchmarkError(KtpError, RuntimeError):
    """A peer run that cannot go on (says which engine and what to do)."""


def normalise(text: str, field: str) -> str:
    """``text`` as compared: upper case, whitespace runs to one space, spaces and colons stripped; NIK digits only."""
    text = re.sub(r"\s+", " ", text.upper()).strip(" :")
    return re.sub(r"\D", "", text) if field == "nik" else text


def snap(text: str, field: str) -> str:
    """A normalised text replaced by the nearest value of the field's vocabulary (if it has one).

    An empty text stays empty: an engine that read nothing gets no guess.
    """
    vocabulary = FIELD_GRAMMARS[field].vocabulary
    if not vocabulary or not text:
        return text
    distances = [levenshtein(text, value) for value in vocabulary]
    return vocabulary[distances.index(min(distances))]


def _line_height(quad: np.ndarray) -> float:
    return quad_sides(np.asarray(quad, dtype=np.float64))[1]


def card_crops(
    seed: int, index: int, synth_config: SynthConfig, reader_crop: CropConfig
) -> tuple[dict[str, str], dict[str, list]]:
    """The printed texts and the crops of every variant of card ``(seed, index)``.

    Returns:
      ({field: text}, {variant: [crop per field, CLASSES order]}); ``box32``
      holds :class:`~ktp_tflite.train.reader_crops.FieldCrop` s made with
      ``reader_crop``, the other variants uint8 [h, w, 3] arrays.
    """
    card = render_card(seed, index, synth_config)
    photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
    size = (synth_config.width, synth_config.height)
    boxes = {box.label: box.to_pixels(*size) for box in card.boxes}
    wide = 2 * (size[0] + size[1])  # wider than any native line: never squeezed
    crops: dict[str, list] = {
        name: [box_crop(photo, boxes[f], reader_crop, f, card.texts[f], deskew=deskew) for f in CLASSES]
        for name, deskew in READER_VARIANTS.items()
    }
    for margin in MARGINS:
        tag = f"m{round(margin * 100)}"
        rectified, axis_aligned = [], []
        for field in CLASSES:
            height = max(MIN_CROP_HEIGHT, round(_line_height(card.value_quads[field]) * (1 + 2 * margin)))
            config = CropConfig(height=height, width=max(wide, height), margin=margin, side_margin=margin)
            pixels, content = crop_quad(photo, expand_quad(card.value_quads[field], margin, margin), config)
            rectified.append(pixels[:, :content])
            _, top, _, bottom = boxes[field]
            height = max(MIN_CROP_HEIGHT, round((bottom - top) * (1 + 2 * margin)))
            crop = box_crop(
                photo, boxes[field], dataclasses.replace(config, height=height, width=max(wide, height)), field
            )
            axis_aligned.append(crop.pixels[:, : crop.content_width])
        crops[f"rect_native_{tag}"] = rectified
        crops[f"box_native_{tag}"] = axis_aligned
    return dict(card.texts), crops


def _worker_command(python: str, *args: str) -> list[str]:
    return [python, "-I", str(Path(__file__).resolve()), *args]


def probe_engines(python: str, engines: list[str]) -> dict[str, dict]:
    """For each of ``engines``: its mode and :func:`_probe` of its package in the peers' interpreter ``python``."""
    packages = sorted({ENGINES[e][0] for e in engines})
    if not packages:
        return {}
    try:
        done = subprocess.run(
            _worker_command(python, "--probe", ",".join(packages)),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        failure = None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no message"])[-1]
    except (OSError, subprocess.TimeoutExpired) as error:
        failure = str(error)
    if failure is not None:
        reason = f"{python} cannot run the peers' worker (it needs numpy and Pillow): {failure}"
        found = {p: {"available": False, "why": reason, "install": INSTALL[p]} for p in packages}
    else:
        found = json.loads(done.stdout)
    return {e: {**found[ENGINES[e][0]], "mode": ENGINES[e][1]} for e in engines}


def run_peer(python: str, engine: str, images: list[np.ndarray]) -> tuple[list[str], list[float]]:
    """Texts and seconds per crop of ``engine`` on ``images``, in a worker process.

    Raises:
      PeerBenchmarkError: the worker failed (its last message).
    """
    buffer = io.BytesIO()
    np.savez(buffer, **{f"crop{i}": np.ascontiguousarray(image) for i, image in enumerate(images)})
    done = subprocess.run(
        _worker_command(python, "--worker", engine), input=buffer.getvalue(), stdout=subprocess.PIPE, check=False
    )  # stderr: the worker's progress, passed on
    if done.returncode != 0:
        raise PeerBenchmarkError(f"{engine} failed in {python} (status {done.returncode}; see its message above)")
    lines = done.stdout.strip().splitlines()  # an engine may print lines of its own before the answer
    if not lines:
        raise PeerBenchmarkError(f"{engine} in {python} exited without an answer")
    answer = json.loads(lines[-1])
    if len(answer["texts"]) != len(images):
        raise PeerBenchmarkError(f"{engine} returned {len(answer['texts'])} texts for {len(images)} crops")
    return answer["texts"], answer["seconds"]


def run_reader(reader: TfliteReader, crops: list) -> tuple[list[str], list[float]]:
    """Texts of the reader on ``crops`` (LiteRT, one thread) and the seconds per crop (the mean)."""
    began = time.perf_counter()
    logits = reader.logits(crops)
    texts = [decode_field(row, crop.field).text for row, crop in zip(logits, crops, strict=True)]
    elapsed = time.perf_counter() - began
    return texts, [elapsed / len(crops)] * len(crops)


def score(truths: list[dict[str, str]], texts: list[str], seconds: list[float], lenient: bool) -> dict:
    """Exact match per field, all five per card and ms per field; ``texts`` card-major in CLASSES order.

    Args:
      lenient: snap the texts to the field vocabularies (:func:`snap`) and
        compare without spaces.
    """
    hits = np.zeros((len(truths), len(CLASSES)), dtype=bool)
    for card, truth in enumerate(truths):
        for column, field in enumerate(CLASSES):
            read = normalise(texts[card * len(CLASSES) + column], field)
            printed = normalise(truth[field], field)
            if lenient:
                read, printed = snap(read, field).replace(" ", ""), printed.replace(" ", "")
            hits[card, column] = read == printed
    return {
        "fields": {field: float(hits[:, column].mean()) for column, field in enumerate(CLASSES)},
        "all_five": float(hits.all(axis=1).mean()),
        "crops": int(hits.size),
        "ms_per_field": 1000.0 * float(np.sum(seconds)) / len(seconds),
    }


def _best(results: list[dict], key: str) -> dict[str, str]:
    """Each engine's variant with the most cards all exact (then the best mean field, then speed)."""
    best: dict[str, dict] = {}
    for row in results:
        s = row[key]
        rank = (s["all_five"], sum(s["fields"].values()), -s["ms_per_field"])
        if row["engine"] not in best or rank > best[row["engine"]]["rank"]:
            best[row["engine"]] = {"rank": rank, "variant": row["variant"]}
    return {engine: b["variant"] for engine, b in best.items()}


def benchmark(
    cards: int,
    seed: int,
    synth_config: SynthConfig,
    engines: list[str],
    peers_python: str,
    reader: bytes | None = None,
    reader_name: str | None = None,
    variants: tuple[str, ...] = tuple(VARIANTS),
) -> dict:
    """Render, crop, read with every available engine and the reader, score: the JSON-ready result.

    The peers read the crop ``variants``; the reader reads ``box32``.

    Raises:
      PeerBenchmarkError: no engine is available and no reader is given, or an engine failed.
      ModelLoadError: ``reader`` is no TFLite model.
    """
    probes = probe_engines(peers_python, engines)
    available = [e for e in engines if probes[e]["available"]]
    for engine in engines:
        if not probes[engine]["available"]:
            _log(f"{engine}: not available ({probes[engine]['why']}); install: {probes[engine]['install']}")
    if not available and reader is None:
        raise PeerBenchmarkError("no engine can run: no peer is available (see above) and no --reader was given")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise PeerBenchmarkError(f"crop variants {', '.join(unknown) or 'none'}: use some of {', '.join(VARIANTS)}")
    reader_crop = CropConfig()
    reader_info = None
    if reader is not None:
        try:
            runner = TfliteReader(reader, reader_name or "reader")
        except KtpError as error:
            raise PeerBenchmarkError(str(error)) from None
        shape = runner.model.inputs[0].shape
        reader_crop = runner.crop  # the geometry it was trained on (its crop.txt)
        reader_info = {
            "available": True,
            "file": Path(reader_name).name if reader_name else None,
            "input": list(shape),
            "runtime": "LiteRT (ai-edge-litert), num_threads=1",
        }

    _log(f"rendering {cards} cards of seed {seed} ({synth_config.width}x{synth_config.height})")
    truths: list[dict[str, str]] = []
    crops: dict[str, list] = {name: [] for name in VARIANTS}
    for index in range(cards):
        if index and index % 50 == 0:
            _log(f"  {index}/{cards} cards")
        printed, card_variants = card_crops(seed, index, synth_config, reader_crop)
        truths.append(printed)
        for name, items in card_variants.items():
            crops[name] += items
    images = {name: [c.pixels if name in READER_VARIANTS else c for c in items] for name, items in crops.items()}

    results = []
    for name in READER_VARIANTS:
        if reader is None:
            break
        _log(f"reader: variant {name}, {len(crops[name])} crops")
        texts, seconds = run_reader(runner, crops[name])
        results.append(
            {
                "engine": READER,
                "variant": name,
                "as_read": score(truths, texts, seconds, lenient=False),
                "lenient": score(truths, texts, seconds, lenient=True),
            }
        )
    for engine in available:
        for name in variants:
            _log(f"{engine}: variant {name}, {len(images[name])} crops")
            texts, seconds = run_peer(peers_python, engine, images[name])
            results.append(
                {
                    "engine": engine,
                    "variant": name,
                    "as_read": score(truths, texts, seconds, lenient=False),
                    "lenient": score(truths, texts, seconds, lenient=True),
                }
            )

    engines_info = {e: dict(probes[e]) for e in engines}
    engines_info[READER] = reader_info or {"available": False, "why": "no --reader given"}
    return {
        "benchmark": "reader_peers",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "peers_python": peers_python,
        },
        "cards": cards,
        "seed": seed,
        "frame": f"{synth_config.width}x{synth_config.height}",
        "fields": list(CLASSES),
        "variants": {v: VARIANTS[v] for v in variants},
        "normalisation": NORMALISATION,
        "timing": TIMING,
        "engines": engines_info,
        "headline": {"as_read": _best(results, "as_read"), "lenient": _best(results, "lenient")},
        "results": results,
    }


def _title(field: str) -> str:
    return "NIK" if field == "nik" else field.replace("_", " ").title()


def _row(label: str, s: dict, fields: list[str]) -> str:
    cells = [f"{s['fields'][f]:.1%}" for f in fields] + [f"{s['all_five']:.1%}", f"{s['ms_per_field']:.1f}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def markdown(result: dict, command: str | None = None) -> str:
    """The result as a Markdown report (tables of rates, no text content)."""
    fields = result["fields"]
    header = (
        "| engine (crop variant) | " + " | ".join(_title(f) for f in fields) + " | all five | ms/field |\n"
        "|---|" + "---:|" * (len(fields) + 2)
    )
    by_key = {(r["engine"], r["variant"]): r for r in result["results"]}
    m = result["machine"]
    lines = [
        "# Field reader against off-the-shelf OCR (exact match per field)",
        "",
        (
            f"{result['cards']} rendered cards of seed {result['seed']} ({result['frame']}), crops from ground "
            f"truth; {result['date']}; CPU {m['cpu']} ({m['cpus']} cores), Python {m['python']}."
        ),
        "",
    ]
    if command:
        lines += [f"Command: `{command}`", ""]
    for key, title in (("as_read", "As read"), ("lenient", "Lenient (the reader's vocabularies, spaces ignored)")):
        lines += [f"## {title}: each engine's best crop variant", "", header]
        for engine, variant in result["headline"][key].items():
            lines.append(_row(f"{engine} ({variant})", by_key[(engine, variant)][key], fields))
        lines.append("")
    lines += ["## Every variant, as read", "", header]
    lines += [_row(f"{r['engine']} ({r['variant']})", r["as_read"], fields) for r in result["results"]]
    lines += ["", "## Settings", ""]
    for engine, info in result["engines"].items():
        if info.get("available"):
            details = ", ".join(f"{k} {v}" for k, v in info.items() if k != "available")
            lines.append(f"- {engine}: {details}")
        else:
            lines.append(
                f"- {engine}: not run ({info['why']})" + (f"; install: {info['install']}" if "install" in info else "")
            )
    lines += [
        "- crop variants: " + "; ".join(f"`{k}`: {v}" for k, v in result["variants"].items()),
        f"- normalisation: {result['normalisation']}",
        f"- timing: {result['timing']}",
        (
            "- the headline variant is chosen on this run (optimistic for the peers); "
            "texts and images are never written, only rates"
        ),
        "",
    ]
    return "\n".join(lines)


def write_outputs(result: dict, out: Path, force: bool = False, command: str | None = None) -> list[Path]:
    """Write ``out/reader_peers.json`` and ``out/reader_peers.md`` atomically; return their paths."""
    json_path, md_path = out / "reader_peers.json", out / "reader_peers.md"
    write_output(json_path, (json.dumps(result, indent=2) + "\n").encode(), force=force)
    write_output(md_path, markdown(result, command).encode(), force=force)
    return [json_path, md_path]


def _names(choices):
    """An argparse type: a comma-separated list of ``choices`` (duplicates dropped)."""

    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        bad = [n for n in names if n not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; use some of {','.join(choices)}")
        return list(dict.fromkeys(names))

    return parse


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count")
    return number


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--probe", "--worker"):
        return _worker(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=_positive, required=True, help="cards to render (5 crops each)")
    parser.add_argument("--seed", type=int, required=True, help="render seed (use one no reader trained on)")
    parser.add_argument("--reader", type=Path, help="reader .tflite to compare (float or int8)")
    parser.add_argument(
        "--engines",
        type=_names(ENGINES),
        default=list(DEFAULT_ENGINES),
        help=(
            f"comma-separated peers: {', '.join(ENGINES)} (default {','.join(DEFAULT_ENGINES)}; "
            "rapidocr, the library's full default pipeline, is slow on line crops)"
        ),
    )
    parser.add_argument(
        "--variants",
        type=_names(VARIANTS),
        default=list(VARIANTS),
        help=f"comma-separated crop variants the peers read (default all: {','.join(VARIANTS)})",
    )
    parser.add_argument(
        "--peers-python",
        default=sys.executable,
        help="interpreter that runs the peers (a venv with rapidocr-onnxruntime; default: this one)",
    )
    parser.add_argument("--width", type=_positive, default=640, help="frame width (640)")
    parser.add_argument("--height", type=_positive, default=480, help="frame height (480)")
    parser.add_argument("--preset", choices=("train", "stress"), default="train", help="render recipe (train)")
    parser.add_argument("--out", type=Path, required=True, help="folder for reader_peers.json and .md")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)

    try:
        reader = None
        if args.reader is not None:
            if not args.reader.is_file():
                raise PeerBenchmarkError(f"{args.reader}: no such reader .tflite (--reader)")
            reader = args.reader.read_bytes()
            TfliteReader(reader, str(args.reader))  # a bad file fails before any output folder is made
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("reader_peers.json", "reader_peers.md"):
            check_output(args.out / name, inputs=[args.reader], force=args.force)
        result = benchmark(
            args.cards,
            args.seed,
            preset_config(args.preset, args.width, args.height),
            args.engines,
            args.peers_python,
            reader,
            str(args.reader) if reader else None,
            tuple(args.variants),
        )
        command = "python -m ktp_tflite.benchmarks.tools.reader_peers " + " ".join(argv)
        result["command"] = command
        paths = write_outputs(result, args.out, args.force, command)
    except KtpError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print(markdown(result, command))
    _log(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
