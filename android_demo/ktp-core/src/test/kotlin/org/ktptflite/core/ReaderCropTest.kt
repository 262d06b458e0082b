package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The reader crop against the vectors shared with ktp_tflite.train.reader_crops.box_crop. */
class ReaderCropTest {
    private val cases = Vectors.cases("reader_crop", "cases")

    private fun int(value: Any?): Int = Vectors.wholeNumber(value)

    private fun image(case: Map<String, Any?>): ArgbWindow = Vectors.ruleImage(case["image"])

    private fun config(case: Map<String, Any?>): ReaderCropConfig {
        val spec = Vectors.asMap(case["config"])
        return ReaderCropConfig(
            int(spec["height"]),
            int(spec["width"]),
            spec["margin"] as Double,
            spec["side_margin"] as Double
        )
    }

    private fun box(case: Map<String, Any?>): PixelBox {
        val (left, top, right, bottom) = Vectors.numbers(case["box"])
        return PixelBox(left, top, right, bottom)
    }

    private fun expectedPixels(case: Map<String, Any?>, config: ReaderCropConfig): ByteArray =
        Vectors.inflate(case["pixels_zlib_base64"] as String, config.height * config.width * 3)

    private fun name(case: Map<String, Any?>): String = case["about"] as String

    @TestFactory
    fun geometryMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val config = config(case)
            val source = ReaderCrop.expandQuad(Quad.of(box(case)), config)

            @Suppress("UNCHECKED_CAST")
            val quad = case["source_quad"] as List<List<Double>>
            // Bit for bit: Python's rect_to_quad and quad_sides do these operations in this order.
            quad.zip(source.corners).forEach { (expected, actual) ->
                assertEquals(expected[0], actual.x, "source x")
                assertEquals(expected[1], actual.y, "source y")
            }
            val content = ReaderCrop.contentWidth(source, config)
            assertEquals(int(case["content_width"]), content)
            val coefficients = ReaderCrop.coefficients(source, content, config)
            Vectors.numbers(case["coefficients"]).zip(coefficients.toList()).forEach { (expected, actual) ->
                assertEquals(expected, actual, "coefficients")
            }
        }
    }

    /** With the coefficients Python handed to PIL, the warp and the padding are Python's to the last bit. */
    @TestFactory
    fun cropWithPythonsCoefficientsIsExact(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val config = config(case)
            val crop =
                ReaderCrop.cropWith(
                    image(case),
                    ReaderCrop.expandQuad(Quad.of(box(case)), config),
                    int(case["content_width"]),
                    Vectors.numbers(case["coefficients"]).toDoubleArray(),
                    config
                )
            assertArrayEquals(expectedPixels(case, config), crop.pixels)
        }
    }

    /**
     * The whole crop from the box alone. Its coefficients are exact (a scale and a shift) where
     * Python's come from an SVD, 1e-15 off, so a sample can truncate one level apart: pixels
     * agree within 1 level, the padding colour is compared as computed.
     */
    @TestFactory
    fun cropMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val config = config(case)
            val crop = ReaderCrop.crop(image(case), box(case), config)
            val expected = expectedPixels(case, config)
            assertEquals(int(case["content_width"]), crop.contentWidth)
            assertEquals(expected.size, crop.pixels.size)
            var worst = 0
            for (i in expected.indices) {
                worst =
                    maxOf(worst, kotlin.math.abs((expected[i].toInt() and 0xFF) - (crop.pixels[i].toInt() and 0xFF)))
            }
            assertTrue(worst <= 1, "largest pixel difference $worst levels")
            @Suppress("UNCHECKED_CAST")
            (case["pad_rgb"] as List<Double>?)?.let { pad ->
                for (c in 0 until 3) {
                    assertEquals(
                        int(pad[c]).toDouble(),
                        crop.value(config.width - 1, config.height - 1, c).toDouble(),
                        1.0
                    )
                }
            }
        }
    }

    @Test
    fun vectorsCoverTheCropRule() {
        val configs = cases.map { config(it) }
        assertTrue(cases.zip(configs).any { (case, config) -> int(case["content_width"]) == config.width })
        assertTrue(cases.any { it["pad_rgb"] == null } && cases.any { it["pad_rgb"] != null })
        assertTrue(cases.zip(configs).any { (case, config) -> int(case["content_width"]) * config.height % 2 == 1 })
        assertTrue(configs.any { it == ReaderCropConfig() })
        // Wider than the default too, as a reader's crop.txt may say: content beyond 256 columns.
        assertTrue(cases.zip(configs).any { (case, config) -> config.width > 256 && int(case["content_width"]) > 256 })
    }

    @Test
    fun aWindowGivesTheCropOfTheWholeFrame() {
        for (case in cases) {
            val config = config(case)
            val whole = image(case)
            val box = box(case)
            val source = ReaderCrop.expandQuad(Quad.of(box), config)
            val window = ReaderCrop.window(source, whole.frameWidth, whole.frameHeight)
            if (window == null) {
                assertTrue(ReaderCrop.crop(whole, box, config).pixels.all { it == 0.toByte() }, name(case))
                continue
            }
            val pixels =
                IntArray(window.width * window.height) {
                    whole.pixel(window.left + it % window.width, window.top + it / window.width)
                }
            val part =
                ArgbWindow(pixels, window.width, window.height, window.left, window.top, whole.width, whole.height)
            assertArrayEquals(ReaderCrop.crop(whole, box, config).pixels, ReaderCrop.crop(part, box, config).pixels)
            // A window one column short of ReaderCrop.window is refused, not read wrong.
            val narrower =
                ArgbWindow(
                    IntArray((window.width - 1) * window.height) {
                        whole.pixel(window.left + it % (window.width - 1), window.top + it / (window.width - 1))
                    },
                    window.width - 1,
                    window.height,
                    window.left,
                    window.top,
                    whole.width,
                    whole.height
                )
            assertThrows(IllegalArgumentException::class.java) { ReaderCrop.crop(narrower, box, config) }
        }
    }

    @Test
    fun contentWidthRoundsHalfToEvenLikePython() {
        // Python's round(): 2.5 -> 2, 3.5 -> 4 (the vectors avoid ties, where SVD noise decides).
        val config = ReaderCropConfig()
        assertEquals(2, ReaderCrop.contentWidth(Quad.of(PixelBox(0.0, 0.0, 5.0, 64.0)), config))
        assertEquals(4, ReaderCrop.contentWidth(Quad.of(PixelBox(0.0, 0.0, 7.0, 64.0)), config))
        assertEquals(1, ReaderCrop.contentWidth(Quad.of(PixelBox(0.0, 0.0, 0.1, 64.0)), config))
        assertEquals(256, ReaderCrop.contentWidth(Quad.of(PixelBox(0.0, 0.0, 900.0, 64.0)), config))
    }

    @Test
    fun paddingIsTheTruncatedMedian() {
        // A 16 x 8 frame whose red channel is x and green 10 + 3 x, cropped at scale 1 on pixel
        // centres: 128 values each; red's middle two are 7 and 8 -> 7.5 -> 7, green's 31 and 34 -> 32.
        val pixels = IntArray(16 * 8) { (0xFF shl 24) or ((it % 16) shl 16) or ((10 + 3 * (it % 16)) shl 8) or 200 }
        val config = ReaderCropConfig(8, 32, 0.0, 0.0)
        val crop = ReaderCrop.crop(ArgbWindow(pixels, 16, 8), PixelBox(0.0, 0.0, 16.0, 8.0), config)
        assertEquals(16, crop.contentWidth)
        assertEquals(listOf(5, 25, 200), (0 until 3).map { crop.value(5, 3, it) })
        for (x in 16 until 32) assertEquals(listOf(7, 32, 200), (0 until 3).map { crop.value(x, 7, it) })
    }

    @Test
    fun windowIsClippedToTheFrame() {
        val source = ReaderCrop.expandQuad(Quad.of(PixelBox(-2.0, 22.0, 20.0, 31.5)))
        assertEquals(Crop(0, 18, 23, 30), ReaderCrop.window(source, 40, 30))
        assertNull(ReaderCrop.window(PixelBox(45.0, 2.0, 60.0, 9.0), 40, 30))
    }

    @Test
    fun refusesBadInput() {
        val messages =
            listOf(
                { ReaderCrop.crop(ArgbWindow(IntArray(1), 1, 1), PixelBox(5.0, 10.0, 5.0, 18.0)) } to
                    "box PixelBox(left=5.0, top=10.0, right=5.0, bottom=18.0) is empty; " +
                    "expected (left, top, right, bottom) pixels",
                { ReaderCropConfig(height = 4) } to "crop size 256x4: height must be >= 8 and width >= height",
                { ReaderCrop.expandQuad(Quad.of(PixelBox(5.0, 10.0, 5.3, 18.0))) } to
                    "quadrilateral of 0.3 x 8.0 px is too small to crop",
                { ReaderCropConfig(margin = 2.5) } to
                    "crop margin 2.5 must lie in 0..2 (a fraction of the text height)",
                { ReaderCropConfig(sideMargin = -0.1) } to
                    "crop side_margin -0.1 must lie in 0..2 (a fraction of the text height)",
                { ArgbWindow(IntArray(5), 2, 3) } to "window of 2x3 needs 6 pixels, got 5",
                { ArgbWindow(IntArray(4), 2, 2, 39, 0, 40, 30) } to
                    "window 2x2 at (39, 0) does not lie in the 40x30 frame",
                {
                    ReaderCrop.cropWith(
                        ArgbWindow(IntArray(1), 1, 1),
                        Quad.of(PixelBox(0.0, 0.0, 1.0, 1.0)),
                        4,
                        DoubleArray(6),
                        ReaderCropConfig()
                    )
                } to "a perspective transform has 8 coefficients, got 6"
            )
        for ((call, message) in messages) {
            assertEquals(message, assertThrows(IllegalArgumentException::class.java) { call() }.message)
        }
    }
}
