"""The reader's character set, the grammar of the five KTP fields, and CTC decoding.

The recognizer (:mod:`ktp_tflite.train.reader_model`) emits, for each of T
time steps over the crop's width, one logit per class: class 0 is the CTC
blank, class ``i >= 1`` is ``ALPHABET[i - 1]``. Decoding:

- :func:`greedy_decode`: best path (argmax per step, ties to the lower
  class), repeats collapsed, blanks dropped; with ``allowed`` the characters
  outside it are never chosen (the blank always may be).
- :func:`ctc_log_likelihood`: log p(text | logits) by the CTC forward
  algorithm (the sum over every path that collapses to ``text``).
- :func:`vocabulary_decode`: for a closed vocabulary, the value with the
  highest likelihood (ties to the earlier value), and its share of the
  likelihood of all values.
- :func:`decode_field`: the field's grammar (:data:`FIELD_GRAMMARS`):
  vocabulary decoding for Jenis Kelamin, Status Perkawinan and
  Kewarganegaraan, restricted greedy decoding for NIK (digits; ``complete``
  says whether 16 were read) and Nama.

Logits are turned into log-probabilities with a log-softmax per step, so
raw model outputs can be passed. The Kotlin twin is
``android_demo/ktp-core/.../CtcDecoder.kt``; both are tested against section
``ctc`` of ``tests/vectors/ktp_vectors.json``: change them together.

:func:`nik_report` reads a decoded NIK and Jenis Kelamin through
:mod:`ktp_tflite.train.nik` (its rules are not repeated here).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import string

import numpy as np

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.identity import GENDERS, MARITAL_STATUSES
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.nik import check_nik

BLANK = 0
DIGITS = string.digits
LETTERS = string.ascii_uppercase
NAME_MARKS = " '.,-"  # space, apostrophe, full stop, comma, hyphen (as in names and LAKI-LAKI)
ALPHABET = DIGITS + LETTERS + NAME_MARKS  # class i >= 1 is ALPHABET[i - 1]
NUM_CLASSES = len(ALPHABET) + 1
NIK_LENGTH = 16
# The renderer prints "WNI" on every card; train/identity.py has the value
# inline (no constant to import), and tests/test_reader_grammar.py checks that
# every rendered Kewarganegaraan is in this tuple.
NATIONALITIES = ("WNI",)


class ReaderGrammarError(KtpError, ValueError):
    """Logits or a text that do not fit the reader's alphabet or a field's grammar."""


@dataclasses.dataclass(frozen=True)
class FieldGrammar:
    """What a field may read.

    Attributes:
      field: class name (one of :data:`ktp_tflite.train.labels.CLASSES`).
      allowed: characters the decoder may emit.
      length: the exact number of characters, or None.
      vocabulary: the closed set of values, or None for free text.
    """

    field: str
    allowed: str
    length: int | None = None
    vocabulary: tuple[str, ...] | None = None


FIELD_GRAMMARS: dict[str, FieldGrammar] = {
    "nik": FieldGrammar("nik", DIGITS, length=NIK_LENGTH),
    "nama": FieldGrammar("nama", LETTERS + NAME_MARKS),
    "jenis_kelamin": FieldGrammar("jenis_kelamin", LETTERS + "-", vocabulary=GENDERS),
    "status_perkawinan": FieldGrammar("status_perkawinan", LETTERS + " ", vocabulary=MARITAL_STATUSES),
    "kewarganegaraan": FieldGrammar("kewarganegaraan", LETTERS, vocabulary=NATIONALITIES),
}


@dataclasses.dataclass(frozen=True)
class GreedyReading:
    """A best-path decoding: the text and the log-probability of its path."""

    text: str
    path_log_prob: float


@dataclasses.dataclass(frozen=True)
class VocabularyReading:
    """A closed-vocabulary decoding.

    Attributes:
      text: the most likely value.
      log_likelihood: log p(text | logits).
      confidence: p(text) / the sum of p over the vocabulary (0 when no value
        fits in the time steps).
      log_likelihoods: log p of every value, in vocabulary order (-inf when a
        value cannot be emitted in T steps).
    """

    text: str
    log_likelihood: float
    confidence: float
    log_likelihoods: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class FieldReading:
    """A field decoded under its grammar.

    Attributes:
      field: class name.
      text: the value read.
      confidence: vocabulary fields: the value's share of the vocabulary's
        likelihood; free text: exp(path log-prob / T), the geometric mean of
        the chosen steps' probabilities.
      complete: the text satisfies the grammar's length (always True without one).
      method: "vocabulary" or "greedy".
    """

    field: str
    text: str
    confidence: float
    complete: bool
    method: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the text is personal data: callers decide whether to show it)."""
        return dataclasses.asdict(self)


def encode_text(text: str) -> list[int]:
    """Class ids (1-based into :data:`ALPHABET`) of ``text``.

    Raises:
      ReaderGrammarError: a character is not in the alphabet (names it).
    """
    bad = sorted({c for c in text if c not in ALPHABET})
    if bad:
        raise ReaderGrammarError(
            f"text has characters outside the reader alphabet: {''.join(bad)!r}; the alphabet is {ALPHABET!r}"
        )
    return [ALPHABET.index(c) + 1 for c in text]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities per time step of [T, NUM_CLASSES] logits (float64).

    Raises:
      ReaderGrammarError: the shape is not [T, NUM_CLASSES] or a value is not finite.
    """
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != NUM_CLASSES:
        raise ReaderGrammarError(
            f"logits have shape {values.shape}; expected [time steps, {NUM_CLASSES}] "
            f"(blank + {len(ALPHABET)} characters)"
        )
    if not np.all(np.isfinite(values)):
        raise ReaderGrammarError("logits hold NaN or infinite values")
    shifted = values - values.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _allowed_mask(allowed: str | None) -> np.ndarray:
    mask = np.ones(NUM_CLASSES, dtype=bool)
    if allowed is not None:
        encode_text(allowed)  # refuses characters outside the alphabet
        mask[1:] = [c in allowed for c in ALPHABET]
    return mask


def greedy_decode(logits: np.ndarray, allowed: str | None = None) -> GreedyReading:
    """Best-path CTC decoding, optionally restricted to ``allowed`` characters."""
    log_probs = log_softmax(logits)
    masked = np.where(_allowed_mask(allowed)[None, :], log_probs, -np.inf)
    path = np.argmax(masked, axis=1)  # first maximum: ties go to the lower class
    chars, previous = [], BLANK
    for k in path.tolist():
        if k != BLANK and k != previous:
            chars.append(ALPHABET[k - 1])
        previous = k
    score = float(masked[np.arange(len(path)), path].sum())
    return GreedyReading("".join(chars), score)


def ctc_log_likelihood(logits: np.ndarray, text: str) -> float:
    """The log-likelihood log p(text | logits) under CTC (forward algorithm); -inf when ``text`` needs more steps."""
    log_probs = log_softmax(logits)
    labels = encode_text(text)
    extended = [BLANK]
    for label in labels:
        extended += [label, BLANK]
    steps, states = log_probs.shape[0], len(extended)
    alpha = np.full(states, -np.inf)
    if steps == 0:
        return 0.0 if not labels else -math.inf
    alpha[0] = log_probs[0, BLANK]
    if states > 1:
        alpha[1] = log_probs[0, extended[1]]
    for t in range(1, steps):
        previous = alpha
        alpha = np.full(states, -np.inf)
        for s in range(states):
            terms = [previous[s]]
            if s >= 1:
                terms.append(previous[s - 1])
            if s >= 2 and extended[s] != BLANK and extended[s] != extended[s - 2]:
                terms.append(previous[s - 2])
            alpha[s] = np.logaddexp.reduce(terms) + log_probs[t, extended[s]]
    final = [alpha[-1]] + ([alpha[-2]] if states > 1 else [])
    return float(np.logaddexp.reduce(final))


def vocabulary_decode(logits: np.ndarray, vocabulary: tuple[str, ...]) -> VocabularyReading:
    """The value of ``vocabulary`` with the highest CTC likelihood (ties to the earlier one).

    Raises:
      ReaderGrammarError: the vocabulary is empty or has a character outside the alphabet.
    """
    if not vocabulary:
        raise ReaderGrammarError("the vocabulary is empty; give at least one value")
    scores = tuple(ctc_log_likelihood(logits, value) for value in vocabulary)
    best = int(np.argmax(scores))
    total = float(np.logaddexp.reduce(scores))
    confidence = 0.0 if total == -math.inf else math.exp(scores[best] - total)
    return VocabularyReading(vocabulary[best], scores[best], confidence, scores)


def decode_field(logits: np.ndarray, field: str) -> FieldReading:
    """Decode one field's logits under :data:`FIELD_GRAMMARS`.

    Raises:
      ReaderGrammarError: ``field`` is not one of the five classes, or bad logits.
    """
    grammar = FIELD_GRAMMARS.get(field)
    if grammar is None:
        raise ReaderGrammarError(f"unknown field {field!r}; use one of {', '.join(CLASSES)}")
    if grammar.vocabulary is not None:
        reading = vocabulary_decode(logits, grammar.vocabulary)
        return FieldReading(field, reading.text, reading.confidence, reading.log_likelihood > -math.inf, "vocabulary")
    greedy = greedy_decode(logits, grammar.allowed)
    steps = max(1, np.asarray(logits).shape[0])
    complete = grammar.length is None or len(greedy.text) == grammar.length
    return FieldReading(field, greedy.text, math.exp(greedy.path_log_prob / steps), complete, "greedy")


def nik_report(nik: str, jenis_kelamin: str | None, today: datetime.date | None = None) -> dict[str, object]:
    """What a decoded NIK says, checked against the decoded Jenis Kelamin.

    Args:
      nik: the NIK as read (strict: run no OCR clean-up; the reader emits digits only).
      jenis_kelamin: the Jenis Kelamin as read, or None when it was not read.
      today: reference date of :func:`ktp_tflite.train.nik.parse_nik`.

    Returns:
      ``valid`` (the NIK parses), ``reason`` (the
      :data:`ktp_tflite.train.nik.REASONS` code of :func:`~ktp_tflite.train.nik.check_nik`
      with the printed gender, or None), ``province``, ``province_code``,
      ``birth_date`` (ISO), ``gender`` (None when the NIK is invalid), and
      ``gender_agrees``: True/False when both the NIK and the printed value
      are readable, else None.
    """
    check = check_nik(nik, gender=jenis_kelamin, today=today)
    info = check.info
    if info is None or jenis_kelamin is None or check.reason == "gender_unreadable":
        agrees = None
    else:
        agrees = check.reason != "gender_mismatch"
    return {
        "valid": info is not None,
        "reason": check.reason,
        "province": info.province if info else None,
        "province_code": info.province_code if info else None,
        "birth_date": info.birth_date.isoformat() if info else None,
        "gender": info.gender if info else None,
        "gender_agrees": agrees,
    }
