package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class KtpResultTest {
    private val labels = listOf("nik", "nama", "jenis_kelamin", "status_perkawinan", "kewarganegaraan")
    private val today = Vectors.today

    private fun allFields(): FieldResult {
        val boxes = (0 until 5).map { NormBox(0.1 + it * 0.15, 0.3, 0.2 + it * 0.15, 0.8) }
        val raw = RawDetections(boxes, doubleArrayOf(0.0, 1.0, 2.0, 3.0, 4.0), DoubleArray(5) { 0.9 }, 5.0)
        return DetectionSelector.select(raw, labels, ImageGeometry(640, 480, 90))
    }

    @Test
    fun assemblesCleanedValuesAndChecksTheNik() {
        val texts =
            mapOf(
                "nik" to "NIK : 327302S7O89SOl23",
                "nama" to "Nama :  siti   aminah",
                "jenis_kelamin" to "PEREMPUAN Gol. Darah : O",
                "status_perkawinan" to "Status Perkawinan: BELUM-KAWIN",
                "kewarganegaraan" to "Kewarganegaraan: WNI"
            )
        val result = KtpResultAssembler.assemble(allFields(), texts, today)
        assertEquals("3273025708950123", result.value("nik"))
        assertEquals("SITI AMINAH", result.value("nama"))
        assertEquals("PEREMPUAN", result.value("jenis_kelamin"))
        assertEquals("BELUM KAWIN", result.value("status_perkawinan"))
        assertEquals("WNI", result.value("kewarganegaraan"))
        assertTrue(result.nikCheck!!.valid)
        assertEquals(emptyList<String>(), result.missing)
    }

    @Test
    fun genderMismatchIsReported() {
        val texts = mapOf("nik" to "3273025708950123", "jenis_kelamin" to "LAKI-LAKI")
        val check = KtpResultAssembler.assemble(allFields(), texts, today).nikCheck!!
        assertFalse(check.valid)
        assertEquals(NikReason.GENDER_MISMATCH, check.reason)
    }

    @Test
    fun worksWithoutText() {
        val result = KtpResultAssembler.assemble(allFields(), emptyMap(), today)
        assertNull(result.nikCheck)
        assertEquals(5, result.fields.size)
        assertNull(result.value("nama"))
        // Boxes are in upright pixels of a 480x640 image (rotation 90 of 640x480).
        assertEquals(0.3 * 480, result.fields.getValue("nik").box.left, 1e-9)
    }

    @Test
    fun maritalStatusDoesNotConfuseKawinWithBelumKawin() {
        assertEquals("KAWIN", KtpResultAssembler.clean("status_perkawinan", "KAWIN"))
        assertEquals("CERAI MATI", KtpResultAssembler.clean("status_perkawinan", "Cerai  Mati"))
        assertEquals("BELUM KAWIN", KtpResultAssembler.clean("status_perkawinan", "belum kawin"))
    }
}
