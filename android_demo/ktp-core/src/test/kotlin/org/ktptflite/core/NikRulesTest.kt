package org.ktptflite.core

import java.time.LocalDate
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** NIK rules against the vectors shared with the Python tests (tests/test_nik.py). */
class NikRulesTest {
    private val today = Vectors.today

    private fun reasonOf(code: Any?): NikReason? = NikReason.entries.firstOrNull { it.code == code }

    private fun date(value: Any?): LocalDate? = (value as String?)?.let { LocalDate.parse(it) }

    @Test
    fun provincesAreThe38KemendagriCodes() {
        assertEquals(38, Provinces.NAMES.size)
        val expected =
            (11..19) + 21 + (31..36) + (51..53) + (61..65) + (71..76) + listOf(81, 82) + (91..96)
        assertEquals(expected.map { it.toString() }, Provinces.NAMES.keys.sorted())
        assertEquals("DKI JAKARTA", Provinces.NAMES["31"])
    }

    @Test
    fun reasonCodesMatchTheVectors() {
        val used = Vectors.cases("nik", "invalid").map { it["reason"] }.toSet() +
            Vectors.cases("nik", "cross_check").mapNotNull { it["reason"] }.toSet()
        assertEquals(NikReason.entries.map { it.code }.toSet(), used)
    }

    @TestFactory
    fun parsesValidNiks(): List<DynamicTest> = Vectors.cases("nik", "valid").map { case ->
        DynamicTest.dynamicTest(case["nik"] as String) {
            val info = NikRules.parse((case["input"] ?: case["nik"]) as String, today)
            assertEquals(case["nik"], info.nik)
            assertEquals(case["province_code"], info.provinceCode)
            assertEquals(case["province"], info.province)
            assertEquals(case["regency_code"], info.regencyCode)
            assertEquals(case["district_code"], info.districtCode)
            assertEquals(date(case["birth_date"]), info.birthDate)
            assertEquals(case["gender"], info.gender.printed)
            assertEquals(case["serial"], info.serial)
        }
    }

    @TestFactory
    fun rejectsInvalidNiksWithTheExactReason(): List<DynamicTest> = Vectors.cases("nik", "invalid").map { case ->
        DynamicTest.dynamicTest("'${case["nik"]}' -> ${case["reason"]}") {
            val error = assertThrows(NikException::class.java) { NikRules.parse(case["nik"] as String, today) }
            assertEquals(reasonOf(case["reason"]), error.reason)
        }
    }

    @TestFactory
    fun cleansOcrText(): List<DynamicTest> = Vectors.cases("nik", "ocr_clean").map { case ->
        DynamicTest.dynamicTest("'${case["input"]}'") {
            val cleaned = NikRules.cleanOcr(case["input"] as String)
            assertEquals(case["expected"], cleaned)
            assertEquals(case["valid"], NikRules.check(cleaned, today = today).valid)
        }
    }

    @TestFactory
    fun readsPrintedGender(): List<DynamicTest> = Vectors.cases("nik", "gender_text").map { case ->
        DynamicTest.dynamicTest("'${case["input"]}'") {
            assertEquals(case["expected"], NikRules.parseGenderText(case["input"] as String)?.printed)
        }
    }

    @TestFactory
    fun crossChecksPrintedFields(): List<DynamicTest> = Vectors.cases("nik", "cross_check").map { case ->
        DynamicTest.dynamicTest("${case["nik"]} ${case["gender"]} ${case["birth_date"]}") {
            val result =
                NikRules.check(
                    case["nik"] as String,
                    gender = case["gender"] as String?,
                    birthDate = date(case["birth_date"]),
                    today = today
                )
            assertEquals(case["valid"], result.valid)
            assertEquals(reasonOf(case["reason"]), result.reason)
            val mismatch =
                result.reason?.code in setOf("gender_unreadable", "gender_mismatch", "birth_date_mismatch")
            if (result.valid || mismatch) assertNotNull(result.info) else assertNull(result.info)
        }
    }

    @TestFactory
    fun formatsNiks(): List<DynamicTest> = Vectors.cases("nik", "format").map { case ->
        DynamicTest.dynamicTest("${case["expected"] ?: case["reason"]}") {
            val build = {
                NikRules.format(
                    case["province_code"] as String,
                    case["regency_code"] as String,
                    case["district_code"] as String,
                    date(case["birth_date"])!!,
                    case["female"] as Boolean,
                    (case["serial"] as Double).toInt(),
                    today
                )
            }
            if (case["reason"] != null) {
                assertEquals(reasonOf(case["reason"]), assertThrows(NikException::class.java) { build() }.reason)
            } else {
                val nik = build()
                assertEquals(case["expected"], nik)
                assertEquals(date(case["birth_date"]), NikRules.parse(nik, today).birthDate)
            }
        }
    }

    @Test
    fun centuryFollowsToday() {
        val nik = "3171011708250001"
        assertEquals(2025, NikRules.parse(nik, LocalDate.of(2025, 8, 17)).birthDate.year)
        assertEquals(1925, NikRules.parse(nik, LocalDate.of(2024, 12, 31)).birthDate.year)
        val error = assertThrows(NikException::class.java) { NikRules.parse(nik, LocalDate.of(2025, 8, 16)) }
        assertEquals(NikReason.BIRTH_DATE, error.reason)
    }

    @Test
    fun levenshtein() {
        assertEquals(3, NikRules.levenshtein("kitten", "sitting"))
        assertEquals(0, NikRules.levenshtein("", ""))
        assertEquals(1, NikRules.levenshtein("PEREMPUN", "PEREMPUAN"))
    }
}
