package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/**
 * The reader's packed crop.txt: ReaderModel.parseCropConfig against section "reader_crop_file"
 * of the vectors, what ktp_tflite.convert.reader.parse_crop makes of the same texts.
 */
class CropFileTest {
    private val cases = Vectors.cases("reader_crop_file", "cases")
    private val prefix = "${ReaderModel.ASSET}: ${ReaderModel.CROP_FILE}: "

    private fun int(value: Any?): Int = (value as Double).also { check(it == Math.rint(it)) }.toInt()

    private fun refusal(text: String, source: String = ReaderModel.ASSET): String =
        assertThrows(IllegalArgumentException::class.java) { ReaderModel.parseCropConfig(text, source) }.message!!

    /**
     * A valid text gives Python's config (margins to the bit, -0.0 included); an invalid one is
     * refused naming the model, crop.txt and what is wrong: a "line" or "missing" refusal in
     * Python's words exactly, a "value" one in ktp-core's, with the words the case names.
     */
    @TestFactory
    fun parsesAsPythonDoes(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val text = case["text"] as String
            val config = case["config"]
            if (config != null) {
                val expected = Vectors.asMap(config)
                assertEquals(
                    ReaderCropConfig(
                        int(expected["height"]),
                        int(expected["width"]),
                        expected["margin"] as Double,
                        expected["side_margin"] as Double
                    ),
                    ReaderModel.parseCropConfig(text)
                )
            } else {
                val message = refusal(text)
                assertTrue(message.startsWith(prefix), message)
                assertTrue(message.contains(case["names"] as String), "$message lacks '${case["names"]}'")
                if (case["kind"] != "value") assertEquals(case["error"], message)
            }
        }
    }

    @Test
    fun vectorsCoverValidAndEveryKindOfRefusal() {
        val valid = cases.filter { it["config"] != null }
        assertTrue(valid.size >= 10, "${valid.size} valid texts")
        assertEquals(setOf("line", "missing", "value"), cases.mapNotNull { it["kind"] }.toSet())
        val configs = valid.map { Vectors.asMap(it["config"]) }
        assertTrue(configs.any { it["width"] == 384.0 && it["side_margin"] == 0.4 })
    }

    @Test
    fun refusalsNameTheSourceAndTheKeyOfABadValue() {
        assertEquals("other.tflite: crop.txt: missing height, width, margin, side_margin", refusal("", "other.tflite"))
        val lines = "height=32\nwidth=384\nmargin=0.2\nside_margin=0.4\n"
        assertEquals(
            "${prefix}height '32.0' is not an integer",
            refusal(lines.replace("height=32", "height=32.0"))
        )
        assertEquals(
            "${prefix}side_margin '0x1p-2' is not a number",
            refusal(lines.replace("side_margin=0.4", "side_margin=0x1p-2"))
        )
        // The first bad value in parse_crop's order (height, width, margin, side_margin), then the config's rules.
        assertEquals(
            "${prefix}width 'w' is not an integer",
            refusal("side_margin=s\nmargin=m\nwidth=w\nheight=7\n")
        )
        assertEquals(
            "${prefix}crop size 384x7: height must be >= 8 and width >= height",
            refusal(lines.replace("height=32", "height=7").replace("margin=0.2", "margin=9"))
        )
    }

    /** The app's one rule of its own: no tensor dimension is beyond Int (Python's CropConfig has no bound). */
    @Test
    fun refusesASizeBeyondInt() {
        val lines = "height=32\nwidth=2147483647\nmargin=0.2\nside_margin=0.4\n"
        assertEquals(ReaderCropConfig(32, Int.MAX_VALUE, 0.2, 0.4), ReaderModel.parseCropConfig(lines))
        assertEquals(
            "${prefix}width 2147483648 is beyond the largest tensor dimension (2147483647)",
            refusal(lines.replace("2147483647", "2147483648"))
        )
    }
}
