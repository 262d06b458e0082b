"""NIK (Nomor Induk Kependudukan) rules: parse, validate, format, OCR clean-up.

A NIK is 16 digits::

    PP RR DD ddmmyy SSSS
    |  |  |  |      serial (0001-9999)
    |  |  |  birth date; women add 40 to the day (41-71)
    |  |  district (kecamatan) code, 01-99
    |  regency / city (kabupaten / kota) code, 01-99
    province code, one of the 38 in PROVINCES (Kemendagri numbering)

Century rule: the NIK stores only YY. ``YY <= today's YY`` means 20YY,
otherwise 19YY; a date that is then after ``today`` is invalid
(``reason == "birth_date"``). Pass ``today`` to make results reproducible.

The same rules are implemented in Kotlin in ``android_demo/ktp-core`` and both
are tested against ``tests/vectors/ktp_vectors.json``: change them together.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from ktp_tflite.train.errors import KtpError

# Province codes as used by Dukcapil in the NIK (Kemendagri numbering, which
# differs from BPS numbering for the Papua provinces), names as printed on the
# KTP header after "PROVINSI". 38 provinces since the 2022 Papua split.
PROVINCES: dict[str, str] = {
    "11": "ACEH",
    "12": "SUMATERA UTARA",
    "13": "SUMATERA BARAT",
    "14": "RIAU",
    "15": "JAMBI",
    "16": "SUMATERA SELATAN",
    "17": "BENGKULU",
    "18": "LAMPUNG",
    "19": "KEPULAUAN BANGKA BELITUNG",
    "21": "KEPULAUAN RIAU",
    "31": "DKI JAKARTA",
    "32": "JAWA BARAT",
    "33": "JAWA TENGAH",
    "34": "DAERAH ISTIMEWA YOGYAKARTA",
    "35": "JAWA TIMUR",
    "36": "BANTEN",
    "51": "BALI",
    "52": "NUSA TENGGARA BARAT",
    "53": "NUSA TENGGARA TIMUR",
    "61": "KALIMANTAN BARAT",
    "62": "KALIMANTAN TENGAH",
    "63": "KALIMANTAN SELATAN",
    "64": "KALIMANTAN TIMUR",
    "65": "KALIMANTAN UTARA",
    "71": "SULAWESI UTARA",
    "72": "SULAWESI TENGAH",
    "73": "SULAWESI SELATAN",
    "74": "SULAWESI TENGGARA",
    "75": "GORONTALO",
    "76": "SULAWESI BARAT",
    "81": "MALUKU",
    "82": "MALUKU UTARA",
    "91": "PAPUA",
    "92": "PAPUA BARAT",
    "93": "PAPUA SELATAN",
    "94": "PAPUA TENGAH",
    "95": "PAPUA PEGUNUNGAN",
    "96": "PAPUA BARAT DAYA",
}

MALE = "LAKI-LAKI"
FEMALE = "PEREMPUAN"

# Stable machine codes of NikError.reason / NikCheck.reason.
REASONS: tuple[str, ...] = (
    "length",  # not 16 digits
    "non_digit",  # a character other than 0-9 (spaces are stripped first)
    "province",  # first two digits are not one of PROVINCES
    "regency",  # regency code 00
    "district",  # district code 00
    "birth_date",  # no such date (day 32-40, 72+, month 13, 30 Feb...) or in the future
    "serial",  # serial 0000
    "gender_unreadable",  # printed Jenis Kelamin is neither LAKI-LAKI nor PEREMPUAN
    "gender_mismatch",  # gender from the day differs from the printed Jenis Kelamin
    "birth_date_mismatch",  # date from the NIK differs from the printed birth date
)

# OCR confusions of letters (and marks) for digits. Every position of a NIK is
# a digit, so each of these is replaced wherever it occurs.
OCR_DIGIT_FIXES: dict[str, str] = {
    "O": "0",
    "o": "0",
    "D": "0",
    "Q": "0",
    "I": "1",
    "l": "1",
    "i": "1",
    "|": "1",
    "!": "1",
    "Z": "2",
    "z": "2",
    "A": "4",
    "S": "5",
    "s": "5",
    "G": "6",
    "b": "6",
    "T": "7",
    "B": "8",
    "g": "9",
    "q": "9",
}
# Stripped by parse_nik (ASCII whitespace only, as Kotlin does).
_SPACES = " \t\r\n\f\v"
# Removed by clean_ocr_nik: whitespace and separators OCR reads between groups.
OCR_SEPARATORS = " \t\r\n-._:,;'\"`~"


class NikError(KtpError, ValueError):
    """An invalid NIK; ``reason`` is one of REASONS, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown NIK error reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class NikInfo:
    """The fields encoded in a valid NIK."""

    nik: str
    province_code: str
    regency_code: str
    district_code: str
    birth_date: datetime.date
    gender: str  # MALE or FEMALE
    serial: str

    @property
    def province(self) -> str:
        """Province name as printed on the KTP header."""
        return PROVINCES[self.province_code]

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (dates as ISO strings)."""
        return {
            "nik": self.nik,
            "province_code": self.province_code,
            "province": self.province,
            "regency_code": self.regency_code,
            "district_code": self.district_code,
            "birth_date": self.birth_date.isoformat(),
            "gender": self.gender,
            "serial": self.serial,
        }


@dataclasses.dataclass(frozen=True)
class NikCheck:
    """Result of :func:`check_nik`: never raises for a bad NIK, says why instead."""

    valid: bool
    reason: str | None
    message: str
    info: NikInfo | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "valid": self.valid,
            "reason": self.reason,
            "message": self.message,
            "info": self.info.to_dict() if self.info else None,
        }


def _resolve_year(yy: int, today: datetime.date) -> int:
    return 2000 + yy if yy <= today.year % 100 else 1900 + yy


def parse_nik(text: str, *, today: datetime.date | None = None) -> NikInfo:
    """Parse and validate a NIK strictly.

    Args:
      text: the NIK; spaces are stripped, nothing else is forgiven (run
        :func:`clean_ocr_nik` first on OCR output).
      today: reference date for the century rule and the future-date check;
        defaults to ``datetime.date.today()``.

    Returns:
      The decoded fields.

    Raises:
      NikError: with ``reason`` in REASONS, checked in this order: non_digit,
        length, province, regency, district, birth_date, serial.
    """
    today = today or datetime.date.today()
    nik = "".join(c for c in text if c not in _SPACES)
    bad = sorted({c for c in nik if c not in "0123456789"})
    if bad:
        raise NikError("non_digit", f"NIK has non-digit characters {''.join(bad)!r}")
    if len(nik) != 16:
        raise NikError("length", f"NIK has {len(nik)} digits; it must have exactly 16")
    province, regency, district = nik[0:2], nik[2:4], nik[4:6]
    day, month, yy, serial = int(nik[6:8]), int(nik[8:10]), int(nik[10:12]), nik[12:16]
    if province not in PROVINCES:
        raise NikError("province", f"NIK province code {province} is not one of the 38 provinces")
    if regency == "00":
        raise NikError("regency", "NIK regency (kabupaten/kota) code is 00; valid codes are 01-99")
    if district == "00":
        raise NikError("district", "NIK district (kecamatan) code is 00; valid codes are 01-99")
    female = day > 40
    real_day = day - 40 if female else day
    year = _resolve_year(yy, today)
    try:
        birth_date = datetime.date(year, month, real_day)
    except ValueError:
        raise NikError(
            "birth_date",
            f"NIK birth date digits {nik[6:12]} are not a date (DDMMYY, day 01-31 for men or 41-71 for women)",
        ) from None
    if birth_date > today:
        raise NikError("birth_date", f"NIK birth date {birth_date.isoformat()} is in the future")
    if serial == "0000":
        raise NikError("serial", "NIK serial number is 0000; valid serials are 0001-9999")
    return NikInfo(
        nik=nik,
        province_code=province,
        regency_code=regency,
        district_code=district,
        birth_date=birth_date,
        gender=FEMALE if female else MALE,
        serial=serial,
    )


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between ``a`` and ``b``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def parse_gender_text(text: str) -> str | None:
    """Read a printed Jenis Kelamin value, tolerating OCR noise.

    Rule (the Kotlin side applies the same): upper-case; 1 and | become I,
    0 becomes O; keep letters A-Z only. Contains "LAKI" -> LAKI-LAKI; contains
    "PEREMPUAN" -> PEREMPUAN; otherwise the closer of "LAKILAKI" and
    "PEREMPUAN" by edit distance if that distance is at most 2 and the two
    distances differ; else None.

    Returns:
      MALE, FEMALE or None when unreadable.
    """
    letters = text.upper().replace("1", "I").replace("|", "I").replace("0", "O")
    letters = re.sub(r"[^A-Z]", "", letters)
    if "LAKI" in letters:
        return MALE
    if "PEREMPUAN" in letters:
        return FEMALE
    to_male = levenshtein(letters, "LAKILAKI")
    to_female = levenshtein(letters, "PEREMPUAN")
    if min(to_male, to_female) <= 2 and to_male != to_female:
        return MALE if to_male < to_female else FEMALE
    return None


def check_nik(
    text: str,
    *,
    gender: str | None = None,
    birth_date: datetime.date | None = None,
    today: datetime.date | None = None,
) -> NikCheck:
    """Validate a NIK and cross-check it against other printed fields.

    Args:
      text: the NIK (strict, as for :func:`parse_nik`).
      gender: the printed Jenis Kelamin value (OCR text is fine), or None to
        skip that check.
      birth_date: the printed birth date, or None to skip that check.
      today: as for :func:`parse_nik`.

    Returns:
      ``valid`` False with the reason when the NIK is invalid (``info`` None)
      or disagrees with a printed field (``info`` set).
    """
    try:
        info = parse_nik(text, today=today)
    except NikError as error:
        return NikCheck(valid=False, reason=error.reason, message=str(error), info=None)
    if gender is not None:
        printed = parse_gender_text(gender)
        if printed is None:
            return NikCheck(
                False,
                "gender_unreadable",
                "printed Jenis Kelamin is neither LAKI-LAKI nor PEREMPUAN",
                info,
            )
        if printed != info.gender:
            return NikCheck(
                False,
                "gender_mismatch",
                f"NIK encodes {info.gender} but the card says {printed}",
                info,
            )
    if birth_date is not None and birth_date != info.birth_date:
        return NikCheck(
            False,
            "birth_date_mismatch",
            f"NIK encodes birth date {info.birth_date.isoformat()} but the card says {birth_date.isoformat()}",
            info,
        )
    return NikCheck(valid=True, reason=None, message="valid", info=info)


def format_nik(
    province_code: str,
    regency_code: str | int,
    district_code: str | int,
    birth_date: datetime.date,
    female: bool,
    serial: int,
    *,
    today: datetime.date | None = None,
) -> str:
    """Build a NIK from its fields; the result always passes :func:`parse_nik`.

    Args:
      province_code: key of PROVINCES, e.g. "31".
      regency_code: 1-99 (int or 2-digit string).
      district_code: 1-99 (int or 2-digit string).
      birth_date: must be representable under the century rule for ``today``
        (not in the future, and not a year that would read back a century
        later, e.g. 1920 when today is in 2025).
      female: adds 40 to the day.
      serial: 1-9999.
      today: as for :func:`parse_nik`.

    Raises:
      NikError: a field is out of range (same reasons as parse_nik).
    """
    today = today or datetime.date.today()
    if province_code not in PROVINCES:
        raise NikError("province", f"province code {province_code!r} is not one of the 38 provinces")
    parts = {}
    for name, value in (("regency", regency_code), ("district", district_code)):
        number = int(value)
        if not 1 <= number <= 99:
            raise NikError(name, f"{name} code {value!r} is out of range 01-99")
        parts[name] = f"{number:02d}"
    if not 1 <= serial <= 9999:
        raise NikError("serial", f"serial {serial} is out of range 1-9999")
    yy = birth_date.year % 100
    if birth_date > today or _resolve_year(yy, today) != birth_date.year:
        raise NikError(
            "birth_date",
            f"birth date {birth_date.isoformat()} cannot be encoded: a NIK read on "
            f"{today.isoformat()} would give a different or future date",
        )
    day = birth_date.day + (40 if female else 0)
    return f"{province_code}{parts['regency']}{parts['district']}{day:02d}{birth_date.month:02d}{yy:02d}{serial:04d}"


def clean_ocr_nik(text: str) -> str:
    """Undo common OCR confusions in a NIK read from a card.

    Drops a leading "NIK" label (with an optional colon), removes whitespace
    and the separators in OCR_SEPARATORS, and replaces each letter or mark in
    OCR_DIGIT_FIXES with its digit (O/o/D/Q->0, I/l/i/|/!->1, Z/z->2, A->4,
    S/s->5, G/b->6, T->7, B->8, g/q->9). Any other character is kept so that
    :func:`parse_nik` reports it as ``non_digit``. The result is not validated.
    """
    stripped = re.sub(r"^[ \t\r\n]*NIK[ \t\r\n]*:?", "", text, flags=re.I)
    kept = "".join(c for c in stripped if c not in OCR_SEPARATORS)
    return "".join(OCR_DIGIT_FIXES.get(c, c) for c in kept)
