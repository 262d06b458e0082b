"""Reader decoding: alphabet, field grammar, CTC greedy and vocabulary decoding, NIK report.

Cases come from section "ctc" of tests/vectors/ktp_vectors.json, which the
Kotlin CtcDecoderTest reads too.
"""

import datetime
import json
import math
from pathlib import Path

import numpy as np
import pytest
from ktp_tflite.train import identity, reader_grammar, synth
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.reader_grammar import (
    ALPHABET,
    FIELD_GRAMMARS,
    NUM_CLASSES,
    ReaderGrammarError,
    ctc_log_likelihood,
    decode_field,
    greedy_decode,
    nik_report,
    vocabulary_decode,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ktp_vectors.json").read_text())
CTC = VECTORS["ctc"]
TODAY = datetime.date.fromisoformat(VECTORS["today"])


def logits_of(case: dict) -> np.ndarray:
    """Dense [T, NUM_CLASSES] logits from a case's sparse frames."""
    logits = np.full((len(case["frames"]), NUM_CLASSES), float(case["floor"]))
    for t, frame in enumerate(case["frames"]):
        for key, value in frame.items():
            logits[t, 0 if key == "blank" else ALPHABET.index(key) + 1] = value
    return logits


def _neg_inf(value):
    return -math.inf if value is None else value


def test_alphabet_and_grammars_are_the_vectors_ones():
    assert ALPHABET == CTC["alphabet"]
    assert tuple(FIELD_GRAMMARS) == CLASSES == tuple(CTC["fields"])
    for field, expected in CTC["fields"].items():
        grammar = FIELD_GRAMMARS[field]
        assert grammar.allowed == expected["allowed"]
        assert grammar.length == expected["length"]
        assert grammar.vocabulary == (tuple(expected["vocabulary"]) if expected["vocabulary"] else None)


def test_vocabularies_are_the_renderers_values():
    assert FIELD_GRAMMARS["jenis_kelamin"].vocabulary == identity.GENDERS
    assert FIELD_GRAMMARS["status_perkawinan"].vocabulary == identity.MARITAL_STATUSES
    # Kewarganegaraan is written inline in identity.py: check what it renders
    rng = np.random.default_rng(3)
    printed = {identity.make_identity(rng, synth.TODAY).kewarganegaraan for _ in range(200)}
    assert printed <= set(reader_grammar.NATIONALITIES)
    for grammar in FIELD_GRAMMARS.values():
        for value in grammar.vocabulary or ():
            assert set(value) <= set(grammar.allowed), value


def test_every_rendered_value_fits_its_grammar():
    rng = np.random.default_rng(4)
    for _ in range(300):
        fields = identity.make_identity(rng, synth.TODAY).field_texts()
        for field, text in fields.items():
            grammar = FIELD_GRAMMARS[field]
            assert set(text) <= set(grammar.allowed), field
            assert grammar.length in (None, len(text)), field
            assert grammar.vocabulary is None or text in grammar.vocabulary, field


@pytest.mark.parametrize("case", CTC["cases"], ids=[c["name"] for c in CTC["cases"]])
def test_decoding_matches_vectors(case):
    logits = logits_of(case)
    greedy = greedy_decode(logits)
    assert greedy.text == case["greedy"]
    if "greedy_path_log_prob" in case:
        assert greedy.path_log_prob == pytest.approx(case["greedy_path_log_prob"], abs=1e-9)
    if "field" in case:
        reading = decode_field(logits, case["field"])
        assert reading.text == case["field_text"]
        assert reading.complete == case["field_complete"]
        assert 0.0 < reading.confidence <= 1.0
    if "vocabulary" in case:
        reading = vocabulary_decode(logits, tuple(case["vocabulary"]))
        assert reading.text == case["vocabulary_text"]
        if "log_likelihoods" in case:
            expected = [_neg_inf(v) for v in case["log_likelihoods"]]
            assert reading.log_likelihoods == pytest.approx(expected, abs=1e-9)
            assert reading.confidence == pytest.approx(case["confidence"], abs=1e-9)
    for report in case.get("nik_report", ()):
        text = decode_field(logits, "nik").text
        assert nik_report(text, report["jenis_kelamin"], today=TODAY) == report["expected"]


def test_likelihoods_sum_to_one_over_every_text():
    """On a 3-frame, 2-character world, p(text) summed over all texts that fit is 1."""
    rng = np.random.default_rng(0)
    logits = np.full((3, NUM_CLASSES), -200.0)
    logits[:, [0, 11, 12]] = rng.normal(size=(3, 3))  # blank, A, B
    texts = [""] + [a for a in "AB"] + [a + b for a in "AB" for b in "AB"] + [
        a + b + c for a in "AB" for b in "AB" for c in "AB"]
    total = sum(math.exp(ctc_log_likelihood(logits, t)) for t in texts)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert ctc_log_likelihood(logits, "AA") > -math.inf and ctc_log_likelihood(logits, "AAA") == -math.inf


def test_the_best_path_is_never_more_likely_than_its_text():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(12, NUM_CLASSES))
    greedy = greedy_decode(logits)
    assert ctc_log_likelihood(logits, greedy.text) >= greedy.path_log_prob - 1e-12


def test_nik_report_on_the_shared_nik_vectors():
    for case in VECTORS["nik"]["valid"]:
        report = nik_report(case["nik"], case["gender"], today=TODAY)
        assert report == {"valid": True, "reason": None, "province": case["province"],
                          "province_code": case["province_code"], "birth_date": case["birth_date"],
                          "gender": case["gender"], "gender_agrees": True}
    report = nik_report(VECTORS["nik"]["valid"][0]["nik"], "L4KI-LAKI", today=TODAY)
    assert report["gender_agrees"] is True  # nik.parse_gender_text forgives OCR noise
    assert nik_report(VECTORS["nik"]["valid"][0]["nik"], "???", today=TODAY)["gender_agrees"] is None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ReaderGrammarError, match=r"expected \[time steps, 42\]"):
        greedy_decode(np.zeros((4, 10)))
    with pytest.raises(ReaderGrammarError, match="NaN"):
        greedy_decode(np.full((2, NUM_CLASSES), np.nan))
    with pytest.raises(ReaderGrammarError, match="outside the reader alphabet: 'a'"):
        ctc_log_likelihood(np.zeros((4, NUM_CLASSES)), "a")
    with pytest.raises(ReaderGrammarError, match="unknown field 'alamat'"):
        decode_field(np.zeros((4, NUM_CLASSES)), "alamat")
    with pytest.raises(ReaderGrammarError, match="empty"):
        vocabulary_decode(np.zeros((4, NUM_CLASSES)), ())
