package org.ktptflite.core

import java.security.MessageDigest
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The detector input against the vectors shared with ktp_tflite.train.preprocess.resize_rgb and presized_frame. */
class ModelInputTest {
    private val cases = Vectors.cases("model_input", "cases")

    private fun int(value: Any?): Int = Vectors.wholeNumber(value)

    private fun image(case: Map<String, Any?>): ArgbWindow = Vectors.ruleImage(case["image"])

    /** Row-major RGB bytes of [image], as the vectors store pixels. */
    private fun rgb(image: ArgbWindow): ByteArray {
        val bytes = ByteArray(image.pixels.size * 3)
        image.pixels.forEachIndexed { i, argb ->
            bytes[3 * i] = (argb shr 16).toByte()
            bytes[3 * i + 1] = (argb shr 8).toByte()
            bytes[3 * i + 2] = argb.toByte()
        }
        return bytes
    }

    private fun sha256(bytes: ByteArray): String = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") {
        "%02x".format(it)
    }

    private fun check(case: Map<String, Any?>, key: String, image: ArgbWindow) {
        val bytes = rgb(image)
        (case["${key}_sha256"] as String?)?.let { assertEquals(it, sha256(bytes), key) }
        (case["${key}_zlib_base64"] as String?)?.let { assertArrayEquals(Vectors.inflate(it, bytes.size), bytes, key) }
    }

    @TestFactory
    fun resizeAndPresizedFrameMatchVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val (width, height) = Vectors.numbers(case["size"]).map { it.toInt() }
            val resized = ModelInput.resize(image(case), width, height)
            assertEquals(width to height, resized.width to resized.height)
            assertEquals(0xFF, resized.pixels.map { it ushr 24 }.distinct().single(), "opaque")
            check(case, "resized", resized)
            case["factor"]?.let { factor ->
                val frame = ModelInput.presizedFrame(image(case), width, height, int(factor))
                assertEquals(width * int(factor) to height * int(factor), frame.width to frame.height)
                check(case, "frame", frame)
            }
        }
    }

    @Test
    fun vectorsCoverBothPassOrdersAndTheAppsCase() {
        val abouts = cases.map { it["about"] as String }
        assertEquals(1, abouts.count { "vertical pass first" in it })
        val app = cases.single { it["hash_only"] == true }
        assertEquals(
            listOf(640.0, 480.0, 320.0, 320.0, 4.0),
            listOf(
                Vectors.asMap(app["image"])["width"],
                Vectors.asMap(app["image"])["height"]
            ) + Vectors.numbers(app["size"]) + listOf(app["factor"])
        )
    }

    @Test
    fun refusesWhatItCannotResize() {
        val frame = ArgbWindow(IntArray(16) { -1 }, 4, 4)
        assertThrows(IllegalArgumentException::class.java) { ModelInput.resize(frame, 0, 4) }
        assertThrows(IllegalArgumentException::class.java) { ModelInput.presizedFrame(frame, 2, 2, 1) }
        assertThrows(IllegalArgumentException::class.java) { ModelInput.presizedFrame(frame, 2, 2, 9) }
        val window = ArgbWindow(IntArray(4) { -1 }, 2, 2, left = 1, top = 1, frameWidth = 4, frameHeight = 4)
        assertThrows(IllegalArgumentException::class.java) { ModelInput.resize(window, 2, 2) }
        assertEquals(ModelInput.PRESIZE_FACTOR, 4)
    }
}
