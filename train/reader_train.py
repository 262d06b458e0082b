"""Training and evaluation of the field reader (CTC loss on rendered field crops).

Run folder layout (written by :func:`train_reader`):

- ``config.json``: the :class:`~ktp_tflite.train.reader_model.ReaderConfig`;
  on resume the stored one is used (a different architecture would not load);
- ``checkpoints/``: ``tf.train.Checkpoint`` of model, optimizer and step,
  every ``checkpoint_every`` steps and at the end; ``resume`` continues the
  newest one up to ``steps``;
- ``history.jsonl``: step and loss at every checkpoint;
- ``metrics.json``: evaluation of the last checkpoint on the validation
  crops: exact match and character error rate per field and overall, decoded
  under each field's grammar (:func:`ktp_tflite.train.reader_grammar.decode_field`).

Crops come from :func:`ktp_tflite.train.reader_crops.render_value_crops`
(rendered on the fly: seeds and counts are in the config). No text or image
content is logged, only counts and metrics.

Why one file: one training flow (config, crops, CTC steps, checkpoints, evaluation) over
one ReaderConfig; the evaluation loop could move to reader_eval.py if it grows.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.train.atomic_files import atomic_write_bytes
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.images import load_image
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.nik import levenshtein
from ktp_tflite.train.preprocess import to_model_input
from ktp_tflite.train.reader_crops import (
    DETECTOR_KIND,
    FieldCrop,
    card_value_crops,
    detector_value_crops,
)
from ktp_tflite.train.reader_grammar import FieldReading, decode_field, encode_text
from ktp_tflite.train.reader_model import (
    FoldedConvolution,
    ReaderConfig,
    build_reader,
    field_sampling,
    load_folded,
    reader_config_from_json,
)
from ktp_tflite.train.synth import TRAIN, RenderedCard, SynthConfig, render_card


class ReaderRunError(KtpError, ValueError):
    """A reader run folder that cannot be used as asked (says why and what to do)."""


@dataclasses.dataclass(frozen=True)
class ReaderTrainResult:
    """What a training call did: steps run, last loss, evaluation metrics."""

    first_step: int
    last_step: int
    final_loss: float | None
    metrics: dict


BoxDetector = Callable[[list[np.ndarray]], list[dict[str, tuple[float, float, float, float]]]]
"""Photos (uint8 RGB) -> each one's top box per field, (left, top, right, bottom) pixels: a detector
as the app runs it (the convert layer builds one: :func:`ktp_tflite.convert.reader_detector.app_box_detector`)."""

DETECT_CHUNK = 256  # cards rendered, then detected together, per round
WARM_START_CROPS = 256  # training crops whose statistics set the batch norms of a warm start from a .tflite


def _card_crops(args: tuple) -> tuple[list[FieldCrop], tuple[RenderedCard, np.ndarray] | None]:
    """One card's crops, and with ``keep_card`` the card and its decoded photo (for the detector)."""
    seed, index, config, synth_config, box_jitter, kinds, keep_card = args
    width, height = config.frame_sizes[index % len(config.frame_sizes)]
    card = render_card(seed, index, dataclasses.replace(synth_config, width=width, height=height))
    photo = load_image(card.jpeg, where=f"rendered card {seed}/{index}")
    crops = card_value_crops(card, photo, (seed, index), config.crop, kinds, box_jitter, config.deskew_boxes)
    return crops, (card, photo) if keep_card else None


def render_crops(
    seed: int,
    cards: int,
    config: ReaderConfig,
    synth_config: SynthConfig = TRAIN,
    box_jitter: float = 0.0,
    workers: int = 1,
    detect: BoxDetector | None = None,
    kinds: tuple[str, ...] | None = None,
) -> list[FieldCrop]:
    """The crops of ``cards`` rendered cards of ``seed`` (5 fields x ``kinds`` each, per card).

    Card ``i`` is rendered at ``config.frame_sizes[i % len]``; the result does
    not depend on ``workers`` (processes). ``kinds`` defaults to the config's
    crop kinds; "detector" crops come from ``detect`` run on the rendered
    photos :data:`DETECT_CHUNK` cards at a time
    (:func:`ktp_tflite.train.reader_crops.detector_value_crops`).

    Raises:
      ReaderRunError: "detector" crops asked for without ``detect``.
      WorkerError: a rendering process died (:mod:`ktp_tflite.train.processes`).
    """
    kinds = config.crop_kinds if kinds is None else kinds
    with_detector = DETECTOR_KIND in kinds
    if with_detector and detect is None:
        raise ReaderRunError(
            f"crop kind {DETECTOR_KIND!r} needs a detector's boxes; pass the detector "
            "(`ktpconvert train-reader --detector MODEL`)"
        )
    base = tuple(k for k in kinds if k != DETECTOR_KIND)
    jobs = [(seed, index, config, synth_config, box_jitter, base, with_detector) for index in range(cards)]
    from ktp_tflite.train.processes import process_map

    crops: list[FieldCrop] = []
    step = DETECT_CHUNK if with_detector else max(1, len(jobs))
    with process_map(workers if cards > 1 else 1) as mapper:
        for start in range(0, len(jobs), step):
            done = list(mapper(_card_crops, jobs[start : start + step], 16))
            if not with_detector:
                crops += [crop for card_crops, _ in done for crop in card_crops]
                continue
            kept = [pair for _, pair in done if pair is not None]  # every card: with_detector
            found_boxes = detect([photo for _, photo in kept]) if detect is not None else []
            for (card_crops, _), (card, photo), found in zip(done, kept, found_boxes, strict=True):
                crops += card_crops + detector_value_crops(card, photo, found, config.crop)
    return crops


def save_crops(path: Path, crops: list[FieldCrop]) -> None:
    """Write crops (pixels, geometry, texts) to an .npz file, atomically (through a temporary file)."""
    from ktp_tflite.train.atomic_files import atomic_output

    with atomic_output(path, force=True) as temporary, temporary.open("wb") as handle:
        np.savez(
            handle,
            pixels=np.stack([c.pixels for c in crops]),
            content_width=np.array([c.content_width for c in crops], dtype=np.int32),
            quad=np.stack([c.quad for c in crops]).astype(np.float32),
            text_height=np.array([c.text_height for c in crops], dtype=np.float32),
            field=np.array([c.field for c in crops]),
            kind=np.array([c.kind for c in crops]),
            text=np.array([c.text or "" for c in crops]),
        )


def load_crops(path: Path) -> list[FieldCrop]:
    """Crops written by :func:`save_crops`.

    Raises:
      ReaderRunError: not such a file (names it).
    """
    try:
        with np.load(path) as data:
            columns = [data[k] for k in ("field", "kind", "pixels", "content_width", "quad", "text", "text_height")]
    except (OSError, ValueError, KeyError) as error:
        raise ReaderRunError(
            f"{path}: not a crop file written by `ktpconvert train-reader` ({error}); "
            "delete it to render the crops again"
        ) from error
    return [FieldCrop(str(f), str(k), p, int(w), q, str(t), float(h)) for f, k, p, w, q, t, h in zip(*columns)]


def _cached_crops(path: Path, render: Callable[[], list[FieldCrop]]) -> list[FieldCrop]:
    if path.is_file():
        return load_crops(path)
    crops = render()
    save_crops(path, crops)
    return crops


def crop_batch(crops: Iterable[FieldCrop]) -> np.ndarray:
    """Model input [N, H, W, 3] float32 in [-1, 1] (the detector's preprocessing)."""
    return np.stack([to_model_input(c.pixels) for c in crops])


def label_batch(crops: list[FieldCrop], time_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense labels [N, L] (0-padded class ids) and their lengths.

    Raises:
      ReaderRunError: a text is longer than the model's time steps can emit.
    """
    encoded = [encode_text(c.text or "") for c in crops]
    longest = max((len(e) for e in encoded), default=0)
    if longest > time_steps:
        raise ReaderRunError(f"a {longest}-character text cannot be read in {time_steps} time steps; use a wider crop")
    labels = np.zeros((len(crops), max(1, longest)), dtype=np.int32)
    for row, ids in enumerate(encoded):
        labels[row, : len(ids)] = ids
    return labels, np.array([len(e) for e in encoded], dtype=np.int32)


def score_texts(pairs: Iterable[tuple[str, str, str]]) -> dict:
    """Exact match and character error rate per field and "all" of ``(field, printed, read)`` triples.

    Returns:
      ``{field: {"crops", "exact", "cer"}}`` for each field present and "all";
      CER is character errors / characters of the printed texts. Texts are
      compared, never reported.
    """
    counts = {field: [0, 0, 0, 0] for field in (*CLASSES, "all")}  # crops, exact, errors, characters
    for field, truth, read in pairs:
        errors = levenshtein(read, truth)
        for key in (field, "all"):
            tally = counts[key]
            tally[0] += 1
            tally[1] += read == truth
            tally[2] += errors
            tally[3] += len(truth)
    return {
        key: {"crops": n, "exact": exact / n, "cer": errors / max(1, chars)}
        for key, (n, exact, errors, chars) in counts.items()
        if n
    }


def score_readings(crops: Sequence[FieldCrop], readings: Sequence[FieldReading]) -> dict:
    """:func:`score_texts` of ``readings`` of ``crops`` (their printed texts)."""
    return score_texts((c.field, c.text or "", r.text) for c, r in zip(crops, readings, strict=True))


def evaluate_reader(predict: Callable[[np.ndarray], np.ndarray], crops: list[FieldCrop], batch_size: int = 32) -> dict:
    """:func:`score_readings` of ``predict`` (model input [N, H, W, 3] -> logits) on ``crops``."""
    readings = []
    for start in range(0, len(crops), batch_size):
        chunk = crops[start : start + batch_size]
        readings += [decode_field(row, crop.field) for crop, row in zip(chunk, predict(crop_batch(chunk)))]
    return score_readings(crops, readings)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_config(run_dir: Path, config: ReaderConfig, resume: bool) -> ReaderConfig:
    stored = run_dir / "config.json"
    if resume:
        if not stored.is_file():
            raise ReaderRunError(f"{run_dir}: no config.json to resume; run without --resume first")
        kept = reader_config_from_json(stored.read_text(), str(stored))
        return dataclasses.replace(kept, steps=config.steps)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ReaderRunError(f"{run_dir}: exists and is not empty; pass --resume to continue it or choose a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    return config


def validation_crops(
    run_dir: Path, config: ReaderConfig, synth_config: SynthConfig = TRAIN, workers: int = 1
) -> list[FieldCrop]:
    """The run's validation crops (exact boxes): ``crops-val.npz`` of the run folder, rendered once."""
    return _cached_crops(
        Path(run_dir) / "crops-val.npz",
        lambda: render_crops(
            config.val_seed, config.val_cards, config, synth_config, 0.0, workers, kinds=config.validation_kinds
        ),
    )


def _warm_start(model, config: ReaderConfig) -> None:
    """Load the model weights of checkpoint ``config.init_from`` (not its optimizer or step)."""
    import tensorflow as tf

    if config.init_from.endswith(".tflite") or ".tflite sha256:" in config.init_from:
        raise ReaderRunError(
            f"{config.init_from}: a .tflite warm start needs its convolutions (train_reader's warm_start, "
            "read by ktp_tflite.convert.reader.reader_convolutions; `ktpconvert train-reader --init-from FILE` does it)"
        )
    try:
        status = tf.train.Checkpoint(model=model).restore(config.init_from)
        status.expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise ReaderRunError(
            f"{config.init_from}: cannot start from this checkpoint ({str(error).splitlines()[0]}); "
            "it must be a reader checkpoint with the same channels and head"
        ) from error


def newest_checkpoint(run_dir: str | Path) -> str:
    """The newest checkpoint of a reader run folder (a path prefix, as ``tf.train`` names it).

    Raises:
      ReaderRunError: no checkpoint there.
    """
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    if latest is None:
        raise ReaderRunError(
            f"{run_dir}: no checkpoint in checkpoints/; pass a folder written by `ktpconvert train-reader`"
        )
    return latest


def require_onednn() -> None:
    """Refuse to train when TensorFlow's oneDNN CPU kernels are off in this process.

    The reader's depthwise convolutions stride 2 down and 1 across; TensorFlow's
    own CPU kernels cannot take their gradient ("only supports equal length
    strides"), oneDNN's can. TensorFlow turns oneDNN on by itself only on CPUs
    with AVX-512 VNNI or newer, so on AVX2-only machines it is off unless
    ``TF_ENABLE_ONEDNN_OPTS=1`` was set before TensorFlow loaded (the
    ``ktpconvert`` CLI sets it).

    Raises:
      ReaderRunError: oneDNN is off.
    """
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own "is oneDNN on" switch

    enabled = getattr(_pywrap_util_port, "IsMklEnabled", None)
    if enabled is not None and not enabled():
        raise ReaderRunError(
            "training the reader needs TensorFlow's oneDNN CPU kernels (its own ones cannot take the "
            "gradient of the reader's 2x1-strided depthwise convolutions), and they are off in this "
            "process: set TF_ENABLE_ONEDNN_OPTS=1 before Python starts (the ktpconvert CLI does)"
        )


def train_reader(
    config: ReaderConfig,
    run_dir: str | Path,
    resume: bool = False,
    synth_config: SynthConfig = TRAIN,
    train_crops: list[FieldCrop] | None = None,
    val_crops: list[FieldCrop] | None = None,
    workers: int = 1,
    extra_crops: Sequence[FieldCrop] = (),
    detect: BoxDetector | None = None,
    warm_start: Sequence[FoldedConvolution] | None = None,
) -> ReaderTrainResult:
    """Train (or continue) a reader run in ``run_dir``; see the module docstring for the layout.

    Args:
      config: the run's settings (on resume only ``steps`` is taken from it).
      run_dir: the run folder (created; must be new or empty unless ``resume``).
      resume: continue the newest checkpoint.
      synth_config: the renderer recipe of the crops.
      train_crops / val_crops: crops to use instead of rendering the config's
        cards (rendered ones are kept in ``crops-train.npz`` / ``crops-val.npz``
        of the run folder, so a resumed run does not render them again).
      workers: processes rendering the crops.
      extra_crops: more training crops.
      detect: the detector of the config's "detector" crops (needed only
        while the training crops are rendered, not when they are cached).
      warm_start: the convolutions of the float reader .tflite that
        ``config.init_from`` names (:func:`~ktp_tflite.convert.reader.reader_convolutions`):
        a new run starts from them (:func:`~ktp_tflite.train.reader_model.load_folded`)
        instead of from a checkpoint.

    Raises:
      ReaderRunError: the folder is not new (without resume) or has no run (with it),
        or TensorFlow's oneDNN kernels are off (:func:`require_onednn`).
    """
    import tensorflow as tf

    require_onednn()

    run_dir = Path(run_dir)
    if not run_dir.parent.is_dir():
        raise ReaderRunError(f"{run_dir}: folder {run_dir.parent} does not exist; create it first")
    config = _run_config(run_dir, config, resume)
    atomic_write_bytes(run_dir / "config.json", config.to_json().encode())
    if train_crops is None:
        _stderr(f"crops of {config.train_cards} training cards")
        train_crops = _cached_crops(
            run_dir / "crops-train.npz",
            lambda: render_crops(
                config.train_seed, config.train_cards, config, synth_config, config.box_jitter, workers, detect
            ),
        )
    if val_crops is None:
        _stderr(f"crops of {config.val_cards} validation cards")
        val_crops = validation_crops(run_dir, config, synth_config, workers)
    train_crops = list(train_crops) + list(extra_crops)
    pixels = np.stack([c.pixels for c in train_crops])  # uint8; batches are normalised as drawn
    labels, lengths = label_batch(train_crops, config.time_steps)

    tf.keras.utils.set_random_seed(config.seed)
    model = build_reader(config)
    warmup = min(500, max(1, config.steps // 10))
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        0.0, max(1, config.steps - warmup), warmup_target=config.learning_rate, warmup_steps=warmup
    )
    optimizer = tf.keras.optimizers.Adam(schedule)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / "checkpoints"), max_to_keep=3)
    if resume:
        if manager.latest_checkpoint is None:
            raise ReaderRunError(f"{run_dir}: no checkpoint to resume from")
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
    elif warm_start is not None:
        sample = np.random.default_rng(config.seed).permutation(len(train_crops))[:WARM_START_CROPS]
        load_folded(model, config, warm_start, to_model_input(pixels[sample]), config.init_from or "warm start")
    elif config.init_from:
        _warm_start(model, config)
    first = int(step.numpy())
    logit_length = tf.fill([config.batch_size], config.time_steps)

    @tf.function(reduce_retracing=True)
    def train_step(x, y, y_length):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(
                tf.nn.ctc_loss(
                    labels=y,
                    logits=logits,
                    label_length=y_length,
                    logit_length=logit_length[: tf.shape(x)[0]],
                    logits_time_major=False,
                    blank_index=0,
                )
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng = np.random.default_rng([config.seed, first])  # a resumed run draws new batches
    draw = field_sampling([c.field for c in train_crops], config)
    loss_value = None
    for current in range(first, config.steps):
        rows = rng.choice(
            len(train_crops), size=config.batch_size, replace=len(train_crops) < config.batch_size, p=draw
        )
        loss_value = float(train_step(to_model_input(pixels[rows]), labels[rows], lengths[rows]))
        step.assign(current + 1)
        done = current + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            manager.save(checkpoint_number=done)
            with (run_dir / "history.jsonl").open("a") as handle:
                handle.write(json.dumps({"step": done, "loss": loss_value}) + "\n")
            _stderr(f"step {done}/{config.steps} loss {loss_value:.4f}")
    if config.steps <= first and manager.latest_checkpoint is None:
        manager.save(checkpoint_number=first)
    metrics = evaluate_reader(lambda x: model(x, training=False).numpy(), val_crops)
    atomic_write_bytes(
        run_dir / "metrics.json", (json.dumps({"step": int(step.numpy()), "val": metrics}, indent=2) + "\n").encode()
    )
    return ReaderTrainResult(first, int(step.numpy()), loss_value, metrics)


def restore_reader(run_dir: str | Path):
    """(config, Keras model) of a run folder's newest checkpoint.

    Raises:
      ReaderRunError: no reader run or no checkpoint there.
    """
    import tensorflow as tf

    run_dir = Path(run_dir)
    stored = run_dir / "config.json"
    if not stored.is_file():
        raise ReaderRunError(f"{run_dir}: no config.json; pass a folder written by `ktpconvert train-reader`")
    config = reader_config_from_json(stored.read_text(), str(stored))
    latest = newest_checkpoint(run_dir)
    model = build_reader(config)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return config, model
