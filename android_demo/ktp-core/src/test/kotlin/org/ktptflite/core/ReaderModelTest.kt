package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test

/** The reader .tflite contract the app checks (twin of ktp_tflite.convert.reader). */
class ReaderModelTest {
    /** charset.txt as ktp_tflite.convert.reader.charset_txt writes it. */
    private fun charsetTxt(alphabet: String): String =
        "<blank>\n" + alphabet.map { if (it == ' ') "<space>" else it.toString() }.joinToString("") { "$it\n" }

    @Test
    fun charsetRoundTrip() {
        assertEquals(CtcDecoder.ALPHABET, ReaderModel.parseCharset(charsetTxt(CtcDecoder.ALPHABET)))
        ReaderModel.checkCharset(charsetTxt(CtcDecoder.ALPHABET))
        assertEquals(" A", ReaderModel.parseCharset("<blank>\n<space>\nA"))
    }

    @Test
    fun refusesOtherCharsets() {
        for (text in listOf("", "A\nB\n", "<blank>\nAB\n", "<blank>\n\nA\n")) {
            val error = assertThrows(IllegalArgumentException::class.java) { ReaderModel.parseCharset(text) }
            assertEquals(
                "charset.txt: not a reader charset (line 0 must be <blank>, then one character per line, " +
                    "a space as <space>)",
                error.message
            )
        }
        val other = assertThrows(IllegalArgumentException::class.java) {
            ReaderModel.checkCharset(charsetTxt(CtcDecoder.DIGITS + CtcDecoder.LETTERS))
        }
        assertEquals(
            "ktp_reader_int8.tflite: its charset (36 characters) is not this decoder's alphabet (41); " +
                "it was trained for another version of the reader",
            other.message
        )
    }

    @Test
    fun cropConfigOfAModel() {
        val next = "height=32\nwidth=384\nmargin=0.2\nside_margin=0.4\n"
        val input = intArrayOf(1, 32, 384, 3)
        // The reader's own geometry, and the time steps of its 384 px wide input.
        val config = ReaderModel.cropConfig(input, next)
        assertEquals(ReaderCropConfig(32, 384, 0.2, 0.4), config)
        assertEquals(96, ReaderModel.timeSteps(input, intArrayOf(1, 96, 42), config))
        // No crop.txt (an older export): the default margins at the input's height and width.
        assertEquals(ReaderCropConfig(32, 384, 0.2, 0.1), ReaderModel.cropConfig(input, null))
        assertEquals(ReaderCropConfig(), ReaderModel.cropConfig(intArrayOf(1, 32, 256, 3), null))
        val refusals =
            listOf(
                { ReaderModel.cropConfig(intArrayOf(1, 32, 256, 3), next) } to
                    "ktp_reader_int8.tflite: crop.txt says 384x32 crops, the input is 256x32",
                { ReaderModel.cropConfig(intArrayOf(1, 16, 384, 3), next, "r.tflite") } to
                    "r.tflite: crop.txt says 384x32 crops, the input is 384x16",
                { ReaderModel.cropConfig(input, "height=32\nwidth=384\n") } to
                    "ktp_reader_int8.tflite: crop.txt: missing margin, side_margin",
                { ReaderModel.cropConfig(intArrayOf(1, 32, 384), null) } to
                    "ktp_reader_int8.tflite: input [1, 32, 384] is not a field reader's crop ([1, height, width, 3])",
                { ReaderModel.cropConfig(intArrayOf(1, 32, 16, 3), null) } to
                    "ktp_reader_int8.tflite: its input [1, 32, 16, 3]: crop size 16x32: height must be >= 8 and " +
                    "width >= height"
            )
        for ((call, message) in refusals) {
            assertEquals(message, assertThrows(IllegalArgumentException::class.java) { call() }.message)
        }
    }

    @Test
    fun shapes() {
        assertEquals(64, ReaderModel.timeSteps(intArrayOf(1, 32, 256, 3), intArrayOf(1, 64, 42)))
        assertEquals(
            16,
            ReaderModel.timeSteps(intArrayOf(1, 16, 64, 3), intArrayOf(1, 16, 42), ReaderCropConfig(16, 64))
        )
        val wrongInput = assertThrows(IllegalArgumentException::class.java) {
            ReaderModel.timeSteps(intArrayOf(1, 32, 128, 3), intArrayOf(1, 32, 42))
        }
        assertEquals(
            "ktp_reader_int8.tflite: input [1, 32, 128, 3] and output [1, 32, 42] are not a field reader's " +
                "([1, 32, 256, 3] crop, [1, T, 42] logits)",
            wrongInput.message
        )
        val wrongClasses = assertThrows(IllegalArgumentException::class.java) {
            ReaderModel.timeSteps(intArrayOf(1, 32, 256, 3), intArrayOf(1, 64, 37))
        }
        assertEquals(
            "ktp_reader_int8.tflite: logits have 37 classes; this decoder has 42 (blank + 41 characters)",
            wrongClasses.message
        )
    }
}
