package org.ktptflite.core

import java.time.DateTimeException
import java.time.LocalDate
import java.util.Locale

/**
 * NIK (Nomor Induk Kependudukan) rules: parse, validate, format, OCR clean-up.
 *
 * The Kotlin twin of the Python module ktp_tflite.train.nik; both are tested
 * against tests/vectors/ktp_vectors.json, so change them together.
 *
 * Layout of the 16 digits: province(2) regency(2) district(2) DDMMYY serial(4);
 * women add 40 to the day. Century rule: YY <= today's YY means 20YY, else 19YY;
 * a date after today is invalid.
 */
enum class NikReason(val code: String) {
    LENGTH("length"),
    NON_DIGIT("non_digit"),
    PROVINCE("province"),
    REGENCY("regency"),
    DISTRICT("district"),
    BIRTH_DATE("birth_date"),
    SERIAL("serial"),
    GENDER_UNREADABLE("gender_unreadable"),
    GENDER_MISMATCH("gender_mismatch"),
    BIRTH_DATE_MISMATCH("birth_date_mismatch")
}

/** Jenis Kelamin as printed on the card. */
enum class Gender(val printed: String) {
    MALE("LAKI-LAKI"),
    FEMALE("PEREMPUAN")
}

/** An invalid NIK; [reason] is the stable machine code. */
class NikException(val reason: NikReason, message: String) : IllegalArgumentException(message)

/** The fields encoded in a valid NIK. */
data class NikInfo(
    val nik: String,
    val provinceCode: String,
    val regencyCode: String,
    val districtCode: String,
    val birthDate: LocalDate,
    val gender: Gender,
    val serial: String
) {
    /** Province name as printed on the KTP header. */
    val province: String get() = Provinces.NAMES.getValue(provinceCode)
}

/** Result of [NikRules.check]: says why instead of throwing. */
data class NikCheck(val valid: Boolean, val reason: NikReason?, val message: String, val info: NikInfo?)

/** The 38 province codes (Kemendagri numbering, as used in the NIK). */
object Provinces {
    val NAMES: Map<String, String> =
        linkedMapOf(
            "11" to "ACEH",
            "12" to "SUMATERA UTARA",
            "13" to "SUMATERA BARAT",
            "14" to "RIAU",
            "15" to "JAMBI",
            "16" to "SUMATERA SELATAN",
            "17" to "BENGKULU",
            "18" to "LAMPUNG",
            "19" to "KEPULAUAN BANGKA BELITUNG",
            "21" to "KEPULAUAN RIAU",
            "31" to "DKI JAKARTA",
            "32" to "JAWA BARAT",
            "33" to "JAWA TENGAH",
            "34" to "DAERAH ISTIMEWA YOGYAKARTA",
            "35" to "JAWA TIMUR",
            "36" to "BANTEN",
            "51" to "BALI",
            "52" to "NUSA TENGGARA BARAT",
            "53" to "NUSA TENGGARA TIMUR",
            "61" to "KALIMANTAN BARAT",
            "62" to "KALIMANTAN TENGAH",
            "63" to "KALIMANTAN SELATAN",
            "64" to "KALIMANTAN TIMUR",
            "65" to "KALIMANTAN UTARA",
            "71" to "SULAWESI UTARA",
            "72" to "SULAWESI TENGAH",
            "73" to "SULAWESI SELATAN",
            "74" to "SULAWESI TENGGARA",
            "75" to "GORONTALO",
            "76" to "SULAWESI BARAT",
            "81" to "MALUKU",
            "82" to "MALUKU UTARA",
            "91" to "PAPUA",
            "92" to "PAPUA BARAT",
            "93" to "PAPUA SELATAN",
            "94" to "PAPUA TENGAH",
            "95" to "PAPUA PEGUNUNGAN",
            "96" to "PAPUA BARAT DAYA"
        )
}

/** Parsing, validation, formatting and OCR clean-up of NIKs. */
object NikRules {
    private const val SPACES = " \t\r\n\u000C\u000B"
    private const val OCR_SEPARATORS = " \t\r\n-._:,;'\"`~"
    private val NIK_LABEL = Regex("^[ \\t\\r\\n]*NIK[ \\t\\r\\n]*:?", RegexOption.IGNORE_CASE)

    /** OCR confusions of letters and marks for digits; every NIK position is a digit. */
    val OCR_DIGIT_FIXES: Map<Char, Char> =
        mapOf(
            'O' to '0', 'o' to '0', 'D' to '0', 'Q' to '0',
            'I' to '1', 'l' to '1', 'i' to '1', '|' to '1', '!' to '1',
            'Z' to '2', 'z' to '2',
            'A' to '4',
            'S' to '5', 's' to '5',
            'G' to '6', 'b' to '6',
            'T' to '7',
            'B' to '8',
            'g' to '9', 'q' to '9'
        )

    private fun resolveYear(yy: Int, today: LocalDate): Int = if (yy <= today.year % 100) 2000 + yy else 1900 + yy

    /**
     * Parses a NIK strictly (spaces stripped, nothing else forgiven).
     *
     * Checks in this order: non_digit, length, province, regency, district,
     * birth_date, serial. Throws [NikException] with the first failing reason.
     */
    fun parse(text: String, today: LocalDate = LocalDate.now()): NikInfo {
        val nik = text.filterNot { it in SPACES }
        val bad = nik.filterNot { it in '0'..'9' }.toSortedSet().joinToString("")
        if (bad.isNotEmpty()) throw NikException(NikReason.NON_DIGIT, "NIK has non-digit characters '$bad'")
        if (nik.length != 16) {
            throw NikException(NikReason.LENGTH, "NIK has ${nik.length} digits; it must have exactly 16")
        }
        val province = nik.substring(0, 2)
        val regency = nik.substring(2, 4)
        val district = nik.substring(4, 6)
        val day = nik.substring(6, 8).toInt()
        val month = nik.substring(8, 10).toInt()
        val yy = nik.substring(10, 12).toInt()
        val serial = nik.substring(12, 16)
        if (province !in Provinces.NAMES) {
            throw NikException(NikReason.PROVINCE, "NIK province code $province is not one of the 38 provinces")
        }
        if (regency == "00") {
            throw NikException(NikReason.REGENCY, "NIK regency (kabupaten/kota) code is 00; valid codes are 01-99")
        }
        if (district == "00") {
            throw NikException(NikReason.DISTRICT, "NIK district (kecamatan) code is 00; valid codes are 01-99")
        }
        val female = day > 40
        val birthDate =
            try {
                LocalDate.of(resolveYear(yy, today), month, if (female) day - 40 else day)
            } catch (error: DateTimeException) {
                throw NikException(
                    NikReason.BIRTH_DATE,
                    "NIK birth date digits ${nik.substring(6, 12)} are not a date " +
                        "(DDMMYY, day 01-31 for men or 41-71 for women)"
                )
            }
        if (birthDate.isAfter(today)) {
            throw NikException(NikReason.BIRTH_DATE, "NIK birth date $birthDate is in the future")
        }
        if (serial == "0000") {
            throw NikException(NikReason.SERIAL, "NIK serial number is 0000; valid serials are 0001-9999")
        }
        return NikInfo(nik, province, regency, district, birthDate, if (female) Gender.FEMALE else Gender.MALE, serial)
    }

    /**
     * Reads a printed Jenis Kelamin value, tolerating OCR noise.
     *
     * Upper-case; 1 and | become I, 0 becomes O; keep A-Z only. Contains LAKI:
     * male; contains PEREMPUAN: female; else the closer of LAKILAKI and
     * PEREMPUAN by edit distance if at most 2 and the distances differ; else null.
     */
    fun parseGenderText(text: String): Gender? {
        val letters =
            text.uppercase().replace('1', 'I').replace('|', 'I').replace('0', 'O')
                .filter { it in 'A'..'Z' }
        if ("LAKI" in letters) return Gender.MALE
        if ("PEREMPUAN" in letters) return Gender.FEMALE
        val toMale = levenshtein(letters, "LAKILAKI")
        val toFemale = levenshtein(letters, "PEREMPUAN")
        if (minOf(toMale, toFemale) <= 2 && toMale != toFemale) {
            return if (toMale < toFemale) Gender.MALE else Gender.FEMALE
        }
        return null
    }

    /** Validates a NIK and cross-checks it with the printed gender and birth date (null: skip). */
    fun check(
        text: String,
        gender: String? = null,
        birthDate: LocalDate? = null,
        today: LocalDate = LocalDate.now()
    ): NikCheck {
        val info =
            try {
                parse(text, today)
            } catch (error: NikException) {
                return NikCheck(false, error.reason, error.message ?: error.reason.code, null)
            }
        if (gender != null) {
            val printed =
                parseGenderText(gender)
                    ?: return NikCheck(
                        false,
                        NikReason.GENDER_UNREADABLE,
                        "printed Jenis Kelamin is neither LAKI-LAKI nor PEREMPUAN",
                        info
                    )
            if (printed != info.gender) {
                return NikCheck(
                    false,
                    NikReason.GENDER_MISMATCH,
                    "NIK encodes ${info.gender.printed} but the card says ${printed.printed}",
                    info
                )
            }
        }
        if (birthDate != null && birthDate != info.birthDate) {
            return NikCheck(
                false,
                NikReason.BIRTH_DATE_MISMATCH,
                "NIK encodes birth date ${info.birthDate} but the card says $birthDate",
                info
            )
        }
        return NikCheck(true, null, "valid", info)
    }

    /** Builds a NIK that [parse] reads back to the same fields; throws [NikException] when out of range. */
    fun format(
        provinceCode: String,
        regencyCode: String,
        districtCode: String,
        birthDate: LocalDate,
        female: Boolean,
        serial: Int,
        today: LocalDate = LocalDate.now()
    ): String {
        if (provinceCode !in Provinces.NAMES) {
            throw NikException(NikReason.PROVINCE, "province code '$provinceCode' is not one of the 38 provinces")
        }
        val regency = regencyCode.toIntOrNull()
        if (regency == null || regency !in 1..99) {
            throw NikException(NikReason.REGENCY, "regency code '$regencyCode' is out of range 01-99")
        }
        val district = districtCode.toIntOrNull()
        if (district == null || district !in 1..99) {
            throw NikException(NikReason.DISTRICT, "district code '$districtCode' is out of range 01-99")
        }
        if (serial !in 1..9999) throw NikException(NikReason.SERIAL, "serial $serial is out of range 1-9999")
        val yy = birthDate.year % 100
        if (birthDate.isAfter(today) || resolveYear(yy, today) != birthDate.year) {
            throw NikException(
                NikReason.BIRTH_DATE,
                "birth date $birthDate cannot be encoded: a NIK read on $today would give a different or future date"
            )
        }
        val day = birthDate.dayOfMonth + if (female) 40 else 0
        val digits = String.format(
            Locale.ROOT,
            "%02d%02d%02d%02d%02d%04d",
            regency,
            district,
            day,
            birthDate.monthValue,
            yy,
            serial
        )
        return provinceCode + digits
    }

    /**
     * Undoes common OCR confusions in a NIK read from a card: drops a leading
     * "NIK :" label, removes whitespace and separators, replaces each letter in
     * [OCR_DIGIT_FIXES] by its digit, keeps anything else (parse reports it).
     */
    fun cleanOcr(text: String): String = NIK_LABEL.replaceFirst(text, "")
        .filterNot { it in OCR_SEPARATORS }
        .map { OCR_DIGIT_FIXES[it] ?: it }
        .joinToString("")

    internal fun levenshtein(a: String, b: String): Int {
        var previous = IntArray(b.length + 1) { it }
        for (i in 1..a.length) {
            val current = IntArray(b.length + 1)
            current[0] = i
            for (j in 1..b.length) {
                val substitution = previous[j - 1] + if (a[i - 1] == b[j - 1]) 0 else 1
                current[j] = minOf(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            previous = current
        }
        return previous[b.length]
    }
}
