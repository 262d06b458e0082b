package org.ktptflite.core

import java.time.LocalDate
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The five fields' logits to values and the NIK verdict, as ktp_tflite.train.reader_grammar.nik_report. */
class ScanReadingTest {
    private val today = Vectors.today
    private val maleNik = "3171011708900001"

    /** Logits that spell [text]: each character's step peaks at its class, a blank step after each. */
    private fun logitsFor(text: String, steps: Int = 64): Array<FloatArray> {
        val classes = CtcDecoder.encode(text)
        check(2 * classes.size <= steps) { "'$text' needs ${2 * classes.size} steps" }
        return Array(steps) { t ->
            FloatArray(CtcDecoder.NUM_CLASSES).also { row ->
                row[if (t % 2 == 0 && t / 2 < classes.size) classes[t / 2] else CtcDecoder.BLANK] = 9f
            }
        }
    }

    private fun read(vararg texts: Pair<ReaderField, String>, today: LocalDate = this.today): ScanReading =
        ScanReader.read(texts.associate { (field, text) -> field to logitsFor(text) }, today)

    @Test
    fun allFiveFieldsOfAValidCard() {
        val reading =
            read(
                ReaderField.NIK to maleNik,
                ReaderField.NAMA to "BUDI O'NEIL",
                ReaderField.JENIS_KELAMIN to "LAKI-LAKI",
                ReaderField.STATUS_PERKAWINAN to "BELUM KAWIN",
                ReaderField.KEWARGANEGARAAN to "WNI"
            )
        assertEquals(ReaderField.entries, reading.fields.keys.toList())
        assertEquals(emptyList<ReaderField>(), reading.missing)
        assertEquals(maleNik, reading[ReaderField.NIK]!!.text)
        assertEquals("BUDI O'NEIL", reading[ReaderField.NAMA]!!.text)
        assertEquals("BELUM KAWIN", reading[ReaderField.STATUS_PERKAWINAN]!!.text)
        for (field in reading.fields.values) {
            assertTrue(field.complete, field.field.id)
            assertTrue(field.confidence > 0.9 && field.confidence <= 1.0, "${field.field.id} ${field.confidence}")
        }
        val check = reading.nikCheck!!
        assertTrue(check.valid)
        assertEquals("DKI JAKARTA", check.info!!.province)
        assertEquals(LocalDate.of(1990, 8, 17), check.info.birthDate)
        assertEquals(true, reading.genderAgrees)
    }

    @TestFactory
    fun sharedNikVectorsAgreeWithTheirGender(): List<DynamicTest> = Vectors.cases("nik", "valid").map { case ->
        DynamicTest.dynamicTest(case["nik"] as String) {
            val reading =
                read(ReaderField.NIK to case["nik"] as String, ReaderField.JENIS_KELAMIN to case["gender"] as String)
            val check = reading.nikCheck!!
            assertTrue(check.valid, check.message)
            assertEquals(case["province"], check.info!!.province)
            assertEquals(LocalDate.parse(case["birth_date"] as String), check.info.birthDate)
            assertEquals(true, reading.genderAgrees)
        }
    }

    @Test
    fun genderMismatchIsReportedWithTheNikInfo() {
        val reading = read(ReaderField.NIK to maleNik, ReaderField.JENIS_KELAMIN to "PEREMPUAN")
        val check = reading.nikCheck!!
        assertFalse(check.valid)
        assertEquals(NikReason.GENDER_MISMATCH, check.reason)
        assertNotNull(check.info)
        assertEquals(false, reading.genderAgrees)
    }

    @Test
    fun shortNikIsALengthError() {
        val reading = read(ReaderField.NIK to maleNik.dropLast(1), ReaderField.JENIS_KELAMIN to "LAKI-LAKI")
        assertFalse(reading[ReaderField.NIK]!!.complete)
        assertEquals(NikReason.LENGTH, reading.nikCheck!!.reason)
        assertNull(reading.genderAgrees)
    }

    @Test
    fun noNikBoxNoCheck() {
        val reading = read(ReaderField.NAMA to "SITI", ReaderField.JENIS_KELAMIN to "PEREMPUAN")
        assertNull(reading.nikCheck)
        assertNull(reading.genderAgrees)
        assertEquals(
            listOf(ReaderField.NIK, ReaderField.STATUS_PERKAWINAN, ReaderField.KEWARGANEGARAAN),
            reading.missing
        )
    }

    @Test
    fun unreadableGenderSkipsTheCrossCheck() {
        // Four steps fit neither LAKI-LAKI nor PEREMPUAN: the field is not complete, so not used.
        val logits = mapOf(ReaderField.NIK to logitsFor(maleNik), ReaderField.JENIS_KELAMIN to logitsFor("", 4))
        val reading = ScanReader.read(logits, today)
        assertFalse(reading[ReaderField.JENIS_KELAMIN]!!.complete)
        assertEquals(0.0, reading[ReaderField.JENIS_KELAMIN]!!.confidence)
        assertTrue(reading.nikCheck!!.valid)
        assertNull(reading.genderAgrees)
    }

    @Test
    fun theCheckUsesTheGivenDay() {
        // Born 17 Aug (19|20)25: valid read on that day of 2025, a future date the day before.
        val nik = "3171011708250001"
        assertTrue(read(ReaderField.NIK to nik, today = LocalDate.of(2025, 8, 17)).nikCheck!!.valid)
        val early = read(ReaderField.NIK to nik, today = LocalDate.of(2025, 8, 16)).nikCheck!!
        assertEquals(NikReason.BIRTH_DATE, early.reason)
    }
}
