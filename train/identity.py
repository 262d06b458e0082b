"""Fake but structurally valid KTP identities for the synthetic renderer.

Names are drawn from common Indonesian given names and family names and
combined at random, so no card shows a real person. Place names are real
provinces, regencies and cities (the header of a KTP names them); regency
codes follow the registry convention (kabupaten 01-69, kota 71-99) but are
not a registry lookup. The NIK is built with :func:`ktp_tflite.train.nik.format_nik`
so it agrees with the printed gender and birth date.

Why one file: one identity draw whose fields depend on each other (region codes, birth
date, gender, NIK, name), drawn from one generator in a fixed order; the region and name
tables could move to a data module if they grow.
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np

from ktp_tflite.train.nik import PROVINCES, format_nik

# (regency code, printed name) per province code.
REGENCIES: dict[str, tuple[tuple[str, str], ...]] = {
    "11": (("71", "KOTA BANDA ACEH"), ("06", "KABUPATEN ACEH BESAR")),
    "12": (("71", "KOTA MEDAN"), ("07", "KABUPATEN DELI SERDANG"), ("12", "KABUPATEN TOBA")),
    "13": (("71", "KOTA PADANG"), ("04", "KABUPATEN TANAH DATAR")),
    "14": (("71", "KOTA PEKANBARU"), ("06", "KABUPATEN KAMPAR")),
    "15": (("71", "KOTA JAMBI"), ("05", "KABUPATEN MUARO JAMBI")),
    "16": (("71", "KOTA PALEMBANG"), ("03", "KABUPATEN MUARA ENIM")),
    "17": (("71", "KOTA BENGKULU"), ("02", "KABUPATEN REJANG LEBONG")),
    "18": (("71", "KOTA BANDAR LAMPUNG"), ("01", "KABUPATEN LAMPUNG SELATAN")),
    "19": (("71", "KOTA PANGKAL PINANG"), ("01", "KABUPATEN BANGKA")),
    "21": (("71", "KOTA BATAM"), ("72", "KOTA TANJUNG PINANG")),
    "31": (
        ("71", "JAKARTA SELATAN"),
        ("72", "JAKARTA TIMUR"),
        ("73", "JAKARTA PUSAT"),
        ("74", "JAKARTA BARAT"),
        ("75", "JAKARTA UTARA"),
    ),
    "32": (
        ("73", "KOTA BANDUNG"),
        ("04", "KABUPATEN BANDUNG"),
        ("01", "KABUPATEN BOGOR"),
        ("75", "KOTA BEKASI"),
        ("76", "KOTA DEPOK"),
        ("06", "KABUPATEN TASIKMALAYA"),
    ),
    "33": (("74", "KOTA SEMARANG"), ("72", "KOTA SURAKARTA"), ("02", "KABUPATEN BANYUMAS")),
    "34": (("71", "KOTA YOGYAKARTA"), ("04", "KABUPATEN SLEMAN"), ("02", "KABUPATEN BANTUL")),
    "35": (("78", "KOTA SURABAYA"), ("73", "KOTA MALANG"), ("15", "KABUPATEN SIDOARJO")),
    "36": (("71", "KOTA TANGERANG"), ("03", "KABUPATEN TANGERANG"), ("74", "KOTA TANGERANG SELATAN")),
    "51": (("71", "KOTA DENPASAR"), ("03", "KABUPATEN BADUNG"), ("04", "KABUPATEN GIANYAR")),
    "52": (("71", "KOTA MATARAM"), ("01", "KABUPATEN LOMBOK BARAT")),
    "53": (("71", "KOTA KUPANG"), ("10", "KABUPATEN MANGGARAI")),
    "61": (("71", "KOTA PONTIANAK"), ("72", "KOTA SINGKAWANG")),
    "62": (("71", "KOTA PALANGKA RAYA"), ("02", "KABUPATEN KOTAWARINGIN TIMUR")),
    "63": (("71", "KOTA BANJARMASIN"), ("72", "KOTA BANJARBARU")),
    "64": (("72", "KOTA SAMARINDA"), ("71", "KOTA BALIKPAPAN")),
    "65": (("71", "KOTA TARAKAN"), ("01", "KABUPATEN MALINAU")),
    "71": (("71", "KOTA MANADO"), ("72", "KOTA BITUNG")),
    "72": (("71", "KOTA PALU"), ("05", "KABUPATEN POSO")),
    "73": (("71", "KOTA MAKASSAR"), ("06", "KABUPATEN GOWA")),
    "74": (("71", "KOTA KENDARI"), ("72", "KOTA BAUBAU")),
    "75": (("71", "KOTA GORONTALO"), ("01", "KABUPATEN BOALEMO")),
    "76": (("04", "KABUPATEN MAMUJU"), ("02", "KABUPATEN POLEWALI MANDAR")),
    "81": (("71", "KOTA AMBON"), ("01", "KABUPATEN MALUKU TENGAH")),
    "82": (("71", "KOTA TERNATE"), ("72", "KOTA TIDORE KEPULAUAN")),
    "91": (("71", "KOTA JAYAPURA"), ("03", "KABUPATEN JAYAPURA")),
    "92": (("02", "KABUPATEN MANOKWARI"), ("01", "KABUPATEN FAKFAK")),
    "93": (("01", "KABUPATEN MERAUKE"), ("02", "KABUPATEN BOVEN DIGOEL")),
    "94": (("01", "KABUPATEN NABIRE"), ("04", "KABUPATEN MIMIKA")),
    "95": (("01", "KABUPATEN JAYAWIJAYA"), ("02", "KABUPATEN LANNY JAYA")),
    "96": (("71", "KOTA SORONG"), ("01", "KABUPATEN SORONG")),
}

MALE_NAMES = (
    "BUDI",
    "AGUS",
    "ANDI",
    "DEDI",
    "EKO",
    "HENDRA",
    "IWAN",
    "JOKO",
    "RUDI",
    "SLAMET",
    "WAHYU",
    "YUDI",
    "ARIF",
    "BAMBANG",
    "DANI",
    "FAJAR",
    "GILANG",
    "HADI",
    "IMAM",
    "MUHAMMAD",
    "RIZKY",
    "SURYA",
    "TEGUH",
    "ADI",
    "BAYU",
    "DIMAS",
    "FIRMAN",
    "HERU",
    "INDRA",
    "I PUTU",
    "I MADE",
    "I KETUT",
    "I WAYAN",
    "AHMAD",
    "YOHANES",
    "ANTONIUS",
    "MARKUS",
    "RAHMAT",
    "SYAIFUL",
    "TAUFIK",
    "ZAINAL",
    "ABDUL",
    "KEVIN",
    "RAFI",
)
FEMALE_NAMES = (
    "SITI",
    "SRI",
    "DEWI",
    "RINA",
    "AYU",
    "FITRI",
    "INDAH",
    "LESTARI",
    "NURUL",
    "PUTRI",
    "RATNA",
    "WULAN",
    "YUNI",
    "ANI",
    "DIAN",
    "EKA",
    "FARAH",
    "INTAN",
    "KARTIKA",
    "MAYA",
    "NOVI",
    "RIZKA",
    "SARI",
    "TRI",
    "WATI",
    "ANISA",
    "DWI",
    "LINDA",
    "MELATI",
    "NI LUH",
    "NI KADEK",
    "MARIA",
    "THERESIA",
    "AISYAH",
    "NUR",
    "YULIANA",
    "CITRA",
)
FAMILY_NAMES = (
    "SANTOSO",
    "WIJAYA",
    "SAPUTRA",
    "PRATAMA",
    "SETIAWAN",
    "HIDAYAT",
    "NUGROHO",
    "KUSUMA",
    "SUSANTO",
    "HARAHAP",
    "SIREGAR",
    "NASUTION",
    "LUBIS",
    "SIMANJUNTAK",
    "SIHOMBING",
    "PANJAITAN",
    "WIBOWO",
    "HASIBUAN",
    "RAHMAN",
    "SYAHPUTRA",
    "PURNAMA",
    "RAHAYU",
    "HANDAYANI",
    "WULANDARI",
    "PERMATASARI",
    "SUGIARTO",
    "HARTONO",
    "GUNAWAN",
    "SETIADI",
    "PRASETYO",
    "RAMADHAN",
    "FIRMANSYAH",
    "MAULANA",
    "KURNIASIH",
    "ANGGRAINI",
    "PUSPITA",
    "SARAGIH",
    "TAMBUNAN",
    "MANURUNG",
    "SULISTYOWATI",
    "KURNIAWAN",
    "HALIM",
    "TANJUNG",
    "PANGESTU",
    "SUTRISNO",
)
DISTRICTS = (
    "CICENDO",
    "COBLONG",
    "SUKAJADI",
    "KEBAYORAN BARU",
    "TEBET",
    "MENTENG",
    "GAMBIR",
    "DENPASAR SELATAN",
    "KUTA",
    "UMBULHARJO",
    "GONDOKUSUMAN",
    "RUNGKUT",
    "WONOKROMO",
    "KLOJEN",
    "LOWOKWARU",
    "MEDAN BARU",
    "PADANG UTARA",
    "TAMPAN",
    "ILIR BARAT I",
    "KEMUNING",
    "TANJUNG KARANG PUSAT",
    "BATAM KOTA",
    "CIPUTAT",
    "SERPONG",
    "BOGOR TENGAH",
    "MAKASSAR",
    "PANAKKUKANG",
    "WENANG",
    "SIMPANG TIGA",
    "BANJARMASIN TENGAH",
)
VILLAGES = (
    "SUKAMAJU",
    "SUKARAME",
    "MEKARSARI",
    "MARGAHAYU",
    "CIPAGANTI",
    "KARANG ANYAR",
    "SUMBERSARI",
    "TEGALREJO",
    "KEBON JERUK",
    "SETIABUDI",
    "PASIR KALIKI",
    "CEMPAKA PUTIH",
    "DUREN SAWIT",
    "JATIWARINGIN",
    "MULYOREJO",
    "KEPUTRAN",
    "PANJER",
    "SANUR KAJA",
    "TAMAN SARI",
    "WONOSARI",
    "BANGUNREJO",
    "SIDOMULYO",
    "MEKAR JAYA",
    "GUNUNG SARI",
)
STREETS = (
    "JL. MERDEKA",
    "JL. SUDIRMAN",
    "JL. DIPONEGORO",
    "JL. AHMAD YANI",
    "JL. GATOT SUBROTO",
    "JL. PAHLAWAN",
    "JL. MELATI",
    "JL. KENANGA",
    "JL. MAWAR",
    "GG. MELATI",
    "GG. H. SALEH",
    "JL. RAYA BOGOR",
    "JL. CEMPAKA",
    "DUSUN KRAJAN",
    "PERUM GRIYA ASRI BLOK",
    "KOMP. PERMATA",
)
BIRTH_PLACES = (
    "BANDUNG",
    "JAKARTA",
    "SURABAYA",
    "MEDAN",
    "SEMARANG",
    "MAKASSAR",
    "PALEMBANG",
    "YOGYAKARTA",
    "DENPASAR",
    "MALANG",
    "BOGOR",
    "BEKASI",
    "TASIKMALAYA",
    "CIREBON",
    "SOLO",
    "PADANG",
    "PEKANBARU",
    "BANJARMASIN",
    "PONTIANAK",
    "MANADO",
    "KUPANG",
    "AMBON",
    "JAYAPURA",
    "SAMARINDA",
    "BALIKPAPAN",
    "GARUT",
    "KEDIRI",
    "JEMBER",
    "TEGAL",
    "KUDUS",
)
RELIGIONS = ("ISLAM", "KRISTEN", "KATOLIK", "HINDU", "BUDDHA", "KONGHUCU")
RELIGION_WEIGHTS = (0.80, 0.08, 0.04, 0.04, 0.03, 0.01)
OCCUPATIONS = (
    "PELAJAR/MAHASISWA",
    "KARYAWAN SWASTA",
    "WIRASWASTA",
    "PEGAWAI NEGERI SIPIL",
    "MENGURUS RUMAH TANGGA",
    "PETANI/PEKEBUN",
    "BELUM/TIDAK BEKERJA",
    "GURU",
    "BURUH HARIAN LEPAS",
    "PEDAGANG",
    "NELAYAN/PERIKANAN",
    "KARYAWAN BUMN",
    "DOKTER",
    "SOPIR",
    "PENSIUNAN",
)
BLOOD_TYPES = ("A", "B", "AB", "O", "-")
MARITAL_STATUSES = ("BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI")
GENDERS = ("LAKI-LAKI", "PEREMPUAN")


@dataclasses.dataclass(frozen=True)
class Identity:
    """Every printed value of one synthetic KTP front."""

    province: str  # "JAWA BARAT"
    regency: str  # "KOTA BANDUNG"
    nik: str
    nama: str
    birth_place: str
    birth_date: datetime.date
    jenis_kelamin: str  # LAKI-LAKI | PEREMPUAN
    gol_darah: str
    alamat: str
    rt_rw: str
    kel_desa: str
    kecamatan: str
    agama: str
    status_perkawinan: str
    pekerjaan: str
    kewarganegaraan: str
    berlaku_hingga: str
    issue_city: str
    issue_date: datetime.date

    def field_texts(self) -> dict[str, str]:
        """The values of the five detected fields, keyed by class name."""
        return {
            "nik": self.nik,
            "nama": self.nama,
            "jenis_kelamin": self.jenis_kelamin,
            "status_perkawinan": self.status_perkawinan,
            "kewarganegaraan": self.kewarganegaraan,
        }


def _pick(rng: np.random.Generator, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _name(rng: np.random.Generator, female: bool) -> str:
    given = FEMALE_NAMES if female else MALE_NAMES
    parts = [_pick(rng, given)]
    extra = int(rng.choice(4, p=(0.15, 0.45, 0.3, 0.1)))
    for _ in range(extra):
        parts.append(_pick(rng, FAMILY_NAMES) if rng.random() < 0.7 else _pick(rng, given))
    return " ".join(parts)


def make_identity(rng: np.random.Generator, today: datetime.date) -> Identity:
    """Draw one identity; every field consistent with the NIK."""
    province_code = _pick(rng, sorted(REGENCIES))
    regency_code, regency = _pick(rng, REGENCIES[province_code])
    district_code = f"{int(rng.integers(1, 30)):02d}"
    female = bool(rng.random() < 0.5)
    age_days = int(rng.integers(17 * 365 + 5, 85 * 365))
    birth_date = today - datetime.timedelta(days=age_days)
    nik = format_nik(
        province_code,
        regency_code,
        district_code,
        birth_date,
        female,
        int(rng.integers(1, 10000)),
        today=today,
    )
    age = age_days // 365
    if age < 22:
        status = _pick(rng, MARITAL_STATUSES, p=(0.85, 0.13, 0.02, 0.0))
    elif age < 60:
        status = _pick(rng, MARITAL_STATUSES, p=(0.2, 0.68, 0.08, 0.04))
    else:
        status = _pick(rng, MARITAL_STATUSES, p=(0.03, 0.6, 0.07, 0.3))
    issue_date = today - datetime.timedelta(days=int(rng.integers(30, 12 * 365)))
    if issue_date.year >= 2016 or rng.random() < 0.5:
        valid_until = "SEUMUR HIDUP"
    else:
        valid_until = f"{birth_date.day:02d}-{birth_date.month:02d}-{issue_date.year + 5}"
    street = _pick(rng, STREETS)
    number = int(rng.integers(1, 250))
    alamat = f"{street} {chr(65 + int(rng.integers(0, 8)))}{number}" if "BLOK" in street else (f"{street} NO. {number}")
    return Identity(
        province=PROVINCES[province_code],
        regency=regency,
        nik=nik,
        nama=_name(rng, female),
        birth_place=_pick(rng, BIRTH_PLACES),
        birth_date=birth_date,
        jenis_kelamin=GENDERS[1] if female else GENDERS[0],
        gol_darah=_pick(rng, BLOOD_TYPES),
        alamat=alamat,
        rt_rw=f"{int(rng.integers(1, 20)):03d}/{int(rng.integers(1, 15)):03d}",
        kel_desa=_pick(rng, VILLAGES),
        kecamatan=_pick(rng, DISTRICTS),
        agama=_pick(rng, RELIGIONS, p=RELIGION_WEIGHTS),
        status_perkawinan=status,
        pekerjaan=_pick(rng, OCCUPATIONS),
        kewarganegaraan="WNI",
        berlaku_hingga=valid_until,
        issue_city=regency.replace("KABUPATEN ", "").replace("KOTA ", ""),
        issue_date=issue_date,
    )
