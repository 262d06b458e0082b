package org.ktptflite.core

import java.io.File
import java.time.LocalDate
import java.util.Base64
import java.util.zip.Inflater

/**
 * Reads tests/vectors/ktp_vectors.json, the file the Python tests read too.
 *
 * Found through the system property `ktp.vectors` (set by ci.sh and Gradle),
 * else by walking up from the working directory. A minimal JSON reader keeps
 * ktp-core free of dependencies: objects become Map, arrays List, numbers
 * Double, plus String, Boolean and null.
 */
object Vectors {
    val root: Map<String, Any?> by lazy { asMap(Json(locate().readText()).parse()) }
    val today: LocalDate by lazy { LocalDate.parse(root["today"] as String) }

    fun section(vararg path: String): Any? = path.fold(root as Any?) { node, key -> asMap(node)[key] }

    @Suppress("UNCHECKED_CAST")
    fun asMap(node: Any?): Map<String, Any?> = node as Map<String, Any?>

    @Suppress("UNCHECKED_CAST")
    fun cases(vararg path: String): List<Map<String, Any?>> = section(*path) as List<Map<String, Any?>>

    /** The [size] bytes of a zlib-compressed, base64-encoded field (the reader sections' pixels). */
    fun inflate(base64: String, size: Int): ByteArray {
        val inflater = Inflater()
        inflater.setInput(Base64.getDecoder().decode(base64))
        val bytes = ByteArray(size)
        val read = inflater.inflate(bytes)
        check(read == size && inflater.finished()) { "vector pixels: $read bytes, expected $size" }
        inflater.end()
        return bytes
    }

    /** A JSON number that must be a whole number (a size, a count). */
    fun wholeNumber(value: Any?): Int = (value as Double).also { check(it == Math.rint(it)) }.toInt()

    /**
     * The whole-frame image of a vectors image rule (`{"width", "height", "channels"}`):
     * channel c of pixel (x, y) is (ax x + ay y + axy x y + b) % 256 with channels[c] = [ax, ay, axy, b],
     * as tests/vector_file.py rule_image makes it.
     */
    @Suppress("UNCHECKED_CAST")
    fun ruleImage(spec: Any?): ArgbWindow {
        val rule = asMap(spec)
        val width = wholeNumber(rule["width"])
        val height = wholeNumber(rule["height"])
        val channels = (rule["channels"] as List<List<Double>>).map { row -> row.map { it.toLong() } }
        val pixels =
            IntArray(width * height) { index ->
                val x = (index % width).toLong()
                val y = (index / width).toLong()
                val (r, g, b) = channels.map { (ax, ay, axy, c) -> ((ax * x + ay * y + axy * x * y + c) % 256).toInt() }
                (0xFF shl 24) or (r shl 16) or (g shl 8) or b
            }
        return ArgbWindow(pixels, width, height)
    }

    /** A JSON array of numbers, e.g. a box or a [width, height] size. */
    @Suppress("UNCHECKED_CAST")
    fun numbers(node: Any?): List<Double> = node as List<Double>

    private fun locate(): File {
        System.getProperty("ktp.vectors")?.let { return File(it) }
        var dir: File? = File(System.getProperty("user.dir")).absoluteFile
        while (dir != null) {
            val candidate = File(dir, "tests/vectors/ktp_vectors.json")
            if (candidate.isFile) return candidate
            dir = dir.parentFile
        }
        error("tests/vectors/ktp_vectors.json not found; set -Dktp.vectors=PATH")
    }

    private class Json(private val text: String) {
        private var pos = 0

        fun parse(): Any? {
            val value = value()
            skipSpace()
            check(pos == text.length) { "trailing characters at $pos" }
            return value
        }

        private fun skipSpace() {
            while (pos < text.length && text[pos].isWhitespace()) pos++
        }

        private fun value(): Any? {
            skipSpace()
            return when (val c = text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c.isDigit()) number() else error("unexpected '$c' at $pos")
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            check(text.startsWith(word, pos)) { "bad literal at $pos" }
            pos += word.length
            return result
        }

        private fun number(): Double {
            val start = pos
            while (pos < text.length && (text[pos].isDigit() || text[pos] in "+-.eE")) pos++
            return text.substring(start, pos).toDouble()
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (text[pos] != '"') {
                val c = text[pos++]
                if (c != '\\') {
                    out.append(c)
                    continue
                }
                when (val e = text[pos++]) {
                    'n' -> out.append('\n')

                    't' -> out.append('\t')

                    'r' -> out.append('\r')

                    'b' -> out.append('\b')

                    'f' -> out.append('\u000C')

                    'u' -> {
                        out.append(text.substring(pos, pos + 4).toInt(16).toChar())
                        pos += 4
                    }

                    else -> out.append(e)
                }
            }
            pos++
            return out.toString()
        }

        private fun array(): List<Any?> {
            val items = mutableListOf<Any?>()
            pos++
            skipSpace()
            if (text[pos] == ']') return items.also { pos++ }
            while (true) {
                items.add(value())
                skipSpace()
                if (text[pos++] == ']') return items
            }
        }

        private fun obj(): Map<String, Any?> {
            val items = linkedMapOf<String, Any?>()
            pos++
            skipSpace()
            if (text[pos] == '}') return items.also { pos++ }
            while (true) {
                skipSpace()
                val key = string()
                skipSpace()
                check(text[pos++] == ':') { "expected ':' at ${pos - 1}" }
                items[key] = value()
                skipSpace()
                if (text[pos++] == '}') return items
            }
        }
    }
}
