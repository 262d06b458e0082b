package org.ktptflite.core

/*
 * What a reader .tflite must be for the app to run it: the twin of the checks
 * of ktp_tflite.convert.reader (TfliteReader, parse_charset), so change them
 * together. Input `crop` uint8 [1, height, width, 3] (pixel values), output
 * `logits` float32 [1, T, NUM_CLASSES]; the metadata packs charset.txt, one
 * class per line: `<blank>` first, then ALPHABET with a space written `<space>`.
 */
object ReaderModel {
    /** The asset name `ktpconvert export-reader` gives the int8 reader. */
    const val ASSET = "ktp_reader_int8.tflite"
    const val INPUT_NAME = "crop"
    const val OUTPUT_NAME = "logits"
    const val CHARSET_FILE = "charset.txt"
    const val BLANK_TOKEN = "<blank>"
    const val SPACE_TOKEN = "<space>"

    /** The alphabet (classes 1..) of a charset file; throws IllegalArgumentException when it is not one. */
    fun parseCharset(text: String): String {
        val lines = text.split("\n").toMutableList()
        if (lines.isNotEmpty() && lines.last() == "") lines.removeAt(lines.size - 1)
        require(
            lines.isNotEmpty() && lines[0] == BLANK_TOKEN &&
                lines.drop(1).all { it.length == 1 || it == SPACE_TOKEN }
        ) {
            "$CHARSET_FILE: not a reader charset (line 0 must be $BLANK_TOKEN, then one character per line, " +
                "a space as $SPACE_TOKEN)"
        }
        return lines.drop(1).joinToString("") { if (it == SPACE_TOKEN) " " else it }
    }

    /** Checks that the charset file of a reader is the decoder's alphabet (CtcDecoder.ALPHABET). */
    fun checkCharset(text: String, source: String = ASSET) {
        val alphabet = parseCharset(text)
        require(alphabet == CtcDecoder.ALPHABET) {
            "$source: its charset (${alphabet.length} characters) is not this decoder's alphabet " +
                "(${CtcDecoder.ALPHABET.length}); it was trained for another version of the reader"
        }
    }

    /**
     * Checks the reader's tensor shapes against the crop [config] and returns its time steps T.
     *
     * [input] must be [1, config.height, config.width, 3], [output] [1, T, CtcDecoder.NUM_CLASSES].
     */
    fun timeSteps(
        input: IntArray,
        output: IntArray,
        config: ReaderCropConfig = ReaderCropConfig(),
        source: String = ASSET
    ): Int {
        val expectedInput = intArrayOf(1, config.height, config.width, 3)
        require(input.contentEquals(expectedInput) && output.size == 3 && output[0] == 1 && output[1] > 0) {
            "$source: input ${input.contentToString()} and output ${output.contentToString()} are not a field " +
                "reader's (${expectedInput.contentToString()} crop, [1, T, ${CtcDecoder.NUM_CLASSES}] logits)"
        }
        require(output[2] == CtcDecoder.NUM_CLASSES) {
            "$source: logits have ${output[2]} classes; this decoder has ${CtcDecoder.NUM_CLASSES} " +
                "(blank + ${CtcDecoder.ALPHABET.length} characters)"
        }
        return output[1]
    }
}
