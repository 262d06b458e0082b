package org.ktptflite.core

import java.math.BigInteger

/*
 * What a reader .tflite must be for the app to run it: the twin of the checks
 * of ktp_tflite.convert.reader (TfliteReader, parse_charset, parse_crop), so
 * change them together. Input `crop` uint8 [1, height, width, 3] (pixel
 * values), output `logits` float32 [1, T, NUM_CLASSES]; the metadata packs
 * charset.txt, one class per line: `<blank>` first, then ALPHABET with a space
 * written `<space>`; and crop.txt (older readers lack it), the crop geometry
 * the reader was trained on: `key=value` lines height, width, margin,
 * side_margin (section "reader_crop_file" of tests/vectors/ktp_vectors.json).
 */
object ReaderModel {
    /** The asset name `ktpconvert export-reader` gives the int8 reader. */
    const val ASSET = "ktp_reader_int8.tflite"
    const val INPUT_NAME = "crop"
    const val OUTPUT_NAME = "logits"
    const val CHARSET_FILE = "charset.txt"
    const val CROP_FILE = "crop.txt"
    const val BLANK_TOKEN = "<blank>"
    const val SPACE_TOKEN = "<space>"

    /** The keys of crop.txt, in the order ktp_tflite.convert.reader.crop_txt writes them (any order is read). */
    val CROP_KEYS = listOf("height", "width", "margin", "side_margin")

    // Python's str.splitlines() breaks lines at these (and at \r\n as one break).
    private const val LINE_BREAKS = "\n\u000B\u000C\r\u001C\u001D\u001E\u0085\u2028\u2029"

    // What Python's int() and float() strip around a number: ASCII whitespace, and the non-ASCII
    // characters of str.isspace() (isUnicodeSpace), which they read as a space. Not \u001F: a
    // space to str.isspace(), but ASCII, which they keep as it is (\u001C..\u001E break lines).
    private const val ASCII_SPACES = " \t\n\u000B\u000C\r"

    // Python's int() refuses a string of more digits (sys.int_info.default_max_str_digits).
    private const val MAX_INT_DIGITS = 4300

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
     * The crop geometry of a crop file written by ktp_tflite.convert.reader.crop_txt, read by
     * exactly parse_crop's rules: each line (Python's splitlines) is KEY=VALUE with KEY one of
     * [CROP_KEYS], each once and all four; height and width are Python int() syntax, the margins
     * Python float() syntax (surrounding whitespace, a sign, `_` between digits, any Unicode
     * decimal digit; for the margins `.5`, `5.`, exponents, inf and nan too), and together a
     * [ReaderCropConfig] (height >= 8, width >= height, margins in 0..2).
     *
     * Throws IllegalArgumentException naming [source], crop.txt and what is wrong. One rule is
     * the app's own: a height or width beyond Int (no tensor dimension can match it) is refused.
     */
    fun parseCropConfig(text: String, source: String = ASSET): ReaderCropConfig {
        val where = "$source: $CROP_FILE"
        val values = linkedMapOf<String, String>()
        for ((index, line) in pythonLines(text).withIndex()) {
            val sep = line.indexOf('=')
            val key = if (sep < 0) null else line.substring(0, sep)
            require(key != null && key in CROP_KEYS && key !in values) {
                "$where: line ${index + 1} is not one of ${CROP_KEYS.joinToString(", ")}=VALUE (each once)"
            }
            values[key] = line.substring(sep + 1)
        }
        require(values.size == CROP_KEYS.size) {
            "$where: missing ${CROP_KEYS.filter { it !in values }.joinToString(", ")}"
        }
        // In parse_crop's order: the four values, then the config's own checks.
        val height = pythonInt(values.getValue("height"), "height", where)
        val width = pythonInt(values.getValue("width"), "width", where)
        val margin = pythonFloat(values.getValue("margin"), "margin", where)
        val sideMargin = pythonFloat(values.getValue("side_margin"), "side_margin", where)
        for ((key, value) in listOf("height" to height, "width" to width)) {
            require(value.bitLength() < Int.SIZE_BITS) {
                "$where: $key $value is beyond the largest tensor dimension (${Int.MAX_VALUE})"
            }
        }
        return try {
            ReaderCropConfig(height.toInt(), width.toInt(), margin, sideMargin)
        } catch (error: IllegalArgumentException) {
            throw IllegalArgumentException("$where: ${error.message}")
        }
    }

    /**
     * The crop geometry to read a reader with: its `crop` input's shape [input] and the text of
     * its packed crop file [cropFile] ([parseCropConfig]), or null for a reader without one (an
     * older export): then the default margins at the input's height and width. Like
     * TfliteReader, a crop file must have the input's height and width. Throws
     * IllegalArgumentException naming [source].
     */
    fun cropConfig(input: IntArray, cropFile: String?, source: String = ASSET): ReaderCropConfig {
        require(input.size == 4 && input[0] == 1 && input[3] == 3) {
            "$source: input ${input.contentToString()} is not a field reader's crop ([1, height, width, 3])"
        }
        val height = input[1]
        val width = input[2]
        if (cropFile == null) {
            return try {
                ReaderCropConfig(height, width)
            } catch (error: IllegalArgumentException) {
                throw IllegalArgumentException("$source: its input ${input.contentToString()}: ${error.message}")
            }
        }
        val config = parseCropConfig(cropFile, source)
        require(config.height == height && config.width == width) {
            "$source: $CROP_FILE says ${config.width}x${config.height} crops, the input is ${width}x$height"
        }
        return config
    }

    /** The lines of [text] as Python's str.splitlines() gives them (no empty last line). */
    private fun pythonLines(text: String): List<String> {
        val lines = mutableListOf<String>()
        var start = 0
        var i = 0
        while (i < text.length) {
            if (text[i] in LINE_BREAKS) {
                lines.add(text.substring(start, i))
                i += if (text[i] == '\r' && i + 1 < text.length && text[i + 1] == '\n') 2 else 1
                start = i
            } else {
                i++
            }
        }
        if (start < text.length) lines.add(text.substring(start))
        return lines
    }

    /**
     * [value] as Python's int() and float() read it: each Unicode decimal digit as its ASCII
     * digit, each non-ASCII space as ' ', then stripped of ASCII whitespace; null when it holds
     * another non-ASCII character (no number then).
     */
    private fun pythonNumberText(value: String): String? {
        val out = StringBuilder(value.length)
        for (point in value.codePoints().toArray()) {
            // Character.isDigit: Unicode category Nd, the digits Python reads.
            when {
                point < 127 -> out.append(point.toChar())
                isUnicodeSpace(point) -> out.append(' ')
                Character.isDigit(point) -> out.append('0' + Character.digit(point, 10))
                else -> return null
            }
        }
        return out.trim { it in ASCII_SPACES }.toString()
    }

    /** The non-ASCII characters for which Python's str.isspace() is true. */
    private fun isUnicodeSpace(point: Int): Boolean =
        point == 0x85 || point == 0xA0 || point == 0x1680 || point in 0x2000..0x200A || point == 0x2028 ||
            point == 0x2029 || point == 0x202F || point == 0x205F || point == 0x3000

    /** The end of the digit part (digit (["_"] digit)*, Python's grammar) of [text] at [from], or -1. */
    private fun digitPart(text: String, from: Int): Int {
        if (from >= text.length || text[from] !in '0'..'9') return -1
        var i = from + 1
        while (i < text.length) {
            i +=
                when {
                    text[i] in '0'..'9' -> 1
                    text[i] == '_' && i + 1 < text.length && text[i + 1] in '0'..'9' -> 2
                    else -> return i
                }
        }
        return i
    }

    private fun signEnd(text: String): Int = if (text.startsWith('+') || text.startsWith('-')) 1 else 0

    /** [value] of [key] by Python's int(): [sign] digits with single `_` between them, whitespace around. */
    private fun pythonInt(value: String, key: String, where: String): BigInteger {
        val text = pythonNumberText(value)
        require(text != null && digitPart(text, signEnd(text)) == text.length) {
            "$where: $key '$value' is not an integer"
        }
        val digits = text.count { it in '0'..'9' }
        require(digits <= MAX_INT_DIGITS) {
            "$where: $key has $digits digits, more than the $MAX_INT_DIGITS digits a number may have"
        }
        return BigInteger(text.replace("_", ""))
    }

    /**
     * [value] of [key] by Python's float(): [sign] then digits with an optional point (`5`, `5.`,
     * `.5`, `5.5`) and exponent (`e-3`), `_` between digits, or inf, infinity, nan in any case;
     * whitespace around. Java's own parser would take more (hex, a `d` or `f` suffix).
     */
    private fun pythonFloat(value: String, key: String, where: String): Double {
        val text = pythonNumberText(value)
        val number = text?.let { parseFloatText(it) }
        require(number != null) { "$where: $key '$value' is not a number" }
        return number
    }

    private fun parseFloatText(text: String): Double? {
        val start = signEnd(text)
        val negative = text.startsWith('-')
        when (text.substring(start).lowercase()) {
            "inf", "infinity" -> return if (negative) Double.NEGATIVE_INFINITY else Double.POSITIVE_INFINITY
            "nan" -> return Double.NaN
        }
        var i = digitPart(text, start)
        if (i < 0) {
            // No digits before the point: ".5".
            if (start >= text.length || text[start] != '.') return null
            i = digitPart(text, start + 1).takeIf { it >= 0 } ?: return null
        } else if (i < text.length && text[i] == '.') {
            i = digitPart(text, i + 1).takeIf { it >= 0 } ?: (i + 1)
        }
        if (i < text.length && (text[i] == 'e' || text[i] == 'E')) {
            val exponent = i + 1 + (if (i + 1 < text.length && (text[i + 1] == '+' || text[i + 1] == '-')) 1 else 0)
            i = digitPart(text, exponent).takeIf { it >= 0 } ?: return null
        }
        // Java's parser reads what is left exactly (correctly rounded, as Python's).
        return if (i == text.length) text.replace("_", "").toDouble() else null
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
