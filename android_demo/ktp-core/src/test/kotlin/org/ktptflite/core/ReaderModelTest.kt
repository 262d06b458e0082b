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
