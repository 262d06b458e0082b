"""NIK rules against the vectors shared with the Kotlin ktp-core tests."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from ktp_tflite.train import nik as nik_rules
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.nik import (
    FEMALE,
    MALE,
    PROVINCES,
    REASONS,
    NikError,
    check_nik,
    clean_ocr_nik,
    format_nik,
    parse_gender_text,
    parse_nik,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ktp_vectors.json").read_text())
TODAY = datetime.date.fromisoformat(VECTORS["today"])
NIK = VECTORS["nik"]


def _id(case: dict) -> str:
    return str(case.get("nik", case.get("input", case.get("expected"))))


def test_provinces_are_the_38_kemendagri_codes():
    assert len(PROVINCES) == 38
    expected = (
        [*range(11, 20), 21, *range(31, 37), *range(51, 54), *range(61, 66)]
        + [*range(71, 77), 81, 82, *range(91, 97)]
    )
    assert sorted(PROVINCES) == [str(code) for code in expected]
    assert PROVINCES["31"] == "DKI JAKARTA"
    assert PROVINCES["96"] == "PAPUA BARAT DAYA"
    assert all(name == name.upper() for name in PROVINCES.values())


@pytest.mark.parametrize("case", NIK["valid"], ids=_id)
def test_parse_valid(case):
    info = parse_nik(case.get("input", case["nik"]), today=TODAY)
    assert info.nik == case["nik"]
    assert info.province_code == case["province_code"]
    assert info.province == case["province"]
    assert info.regency_code == case["regency_code"]
    assert info.district_code == case["district_code"]
    assert info.birth_date == datetime.date.fromisoformat(case["birth_date"])
    assert info.gender == case["gender"]
    assert info.serial == case["serial"]


@pytest.mark.parametrize("case", NIK["invalid"], ids=_id)
def test_parse_invalid_gives_exact_reason(case):
    with pytest.raises(NikError) as caught:
        parse_nik(case["nik"], today=TODAY)
    assert caught.value.reason == case["reason"]
    assert str(caught.value)  # a human message as well
    assert isinstance(caught.value, KtpError) and isinstance(caught.value, ValueError)


def test_every_parse_reason_is_covered_by_the_vectors():
    covered = {case["reason"] for case in NIK["invalid"]}
    covered |= {case["reason"] for case in NIK["cross_check"] if case["reason"]}
    assert covered == set(REASONS)


def test_century_rule_follows_today():
    nik = "3171011708250001"  # born 17-08-25
    assert parse_nik(nik, today=datetime.date(2025, 8, 17)).birth_date.year == 2025
    assert parse_nik(nik, today=datetime.date(2024, 12, 31)).birth_date.year == 1925
    with pytest.raises(NikError) as caught:
        parse_nik(nik, today=datetime.date(2025, 8, 16))  # 2025, but tomorrow
    assert caught.value.reason == "birth_date"
    assert "future" in str(caught.value)


def test_today_defaults_to_the_real_date():
    assert parse_nik("3171011708900001").birth_date == datetime.date(1990, 8, 17)


@pytest.mark.parametrize("case", NIK["ocr_clean"], ids=_id)
def test_clean_ocr_nik(case):
    cleaned = clean_ocr_nik(case["input"])
    assert cleaned == case["expected"]
    assert check_nik(cleaned, today=TODAY).valid is case["valid"]


@pytest.mark.parametrize("case", NIK["gender_text"], ids=_id)
def test_parse_gender_text(case):
    assert parse_gender_text(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", NIK["cross_check"], ids=_id)
def test_check_nik_cross_checks(case):
    printed_date = case["birth_date"] and datetime.date.fromisoformat(case["birth_date"])
    result = check_nik(case["nik"], gender=case["gender"], birth_date=printed_date, today=TODAY)
    assert result.valid is case["valid"]
    assert result.reason == case["reason"]
    # Mismatches still report what the NIK says; parse failures have no info.
    parse_failed = case["reason"] in {"length", "non_digit", "province", "regency"} | {
        "district",
        "birth_date",
        "serial",
    }
    assert (result.info is None) == parse_failed
    json.dumps(result.to_dict())  # serialisable


@pytest.mark.parametrize("case", NIK["format"], ids=lambda case: case.get("expected", case.get("reason")))
def test_format_nik(case):
    args = (
        case["province_code"],
        case["regency_code"],
        case["district_code"],
        datetime.date.fromisoformat(case["birth_date"]),
        case["female"],
        case["serial"],
    )
    if "reason" in case:
        with pytest.raises(NikError) as caught:
            format_nik(*args, today=TODAY)
        assert caught.value.reason == case["reason"]
        return
    nik = format_nik(*args, today=TODAY)
    assert nik == case["expected"]
    info = parse_nik(nik, today=TODAY)
    assert info.birth_date == args[3]
    assert info.gender == (FEMALE if case["female"] else MALE)


def test_format_nik_round_trips_for_every_province_and_many_dates():
    start = datetime.date(1930, 1, 1)
    for i, code in enumerate(sorted(PROVINCES)):
        for k in range(12):
            born = start + datetime.timedelta(days=(i * 12 + k) * 797 % (95 * 365))
            female = (i + k) % 2 == 1
            nik = format_nik(code, 1 + k * 8, 99 - k, born, female, 1 + i * 263 + k, today=TODAY)
            info = parse_nik(nik, today=TODAY)
            assert (info.province_code, info.birth_date) == (code, born)
            assert info.gender == (FEMALE if female else MALE)
            assert int(info.serial) == 1 + i * 263 + k


def test_format_nik_accepts_int_codes():
    nik = format_nik("11", 1, 2, datetime.date(2001, 2, 3), False, 42, today=TODAY)
    assert nik == "1101020302010042"


def test_nik_error_rejects_unknown_reason():
    with pytest.raises(ValueError):
        NikError("bogus", "not a reason")


def test_levenshtein():
    assert nik_rules.levenshtein("", "") == 0
    assert nik_rules.levenshtein("kitten", "sitting") == 3
    assert nik_rules.levenshtein("PEREMPUN", "PEREMPUAN") == 1
