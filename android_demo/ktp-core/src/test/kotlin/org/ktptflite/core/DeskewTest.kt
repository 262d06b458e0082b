package org.ktptflite.core

import kotlin.math.abs
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/**
 * The deskewed crop against section "reader_deskew" of the vectors, which
 * tests/test_reader_vectors.py makes with ktp_tflite.train.reader_crops (line_angle, slanted_quad,
 * box_crop(deskew=True)).
 */
class DeskewTest {
    private val cases = Vectors.cases("reader_deskew", "cases")
    private val config = ReaderCropConfig()

    private fun int(value: Any?): Int = (value as Double).also { check(it == Math.rint(it)) }.toInt()

    private fun name(case: Map<String, Any?>): String = case["about"] as String

    /** The case's frame: its RGB pixels as a whole-frame window. */
    private fun image(case: Map<String, Any?>): ArgbWindow {
        val spec = Vectors.asMap(case["image"])
        val width = int(spec["width"])
        val height = int(spec["height"])
        val rgb = Vectors.inflate(spec["pixels_zlib_base64"] as String, width * height * 3)
        val pixels =
            IntArray(width * height) { i ->
                val (r, g, b) = (0 until 3).map { rgb[i * 3 + it].toInt() and 0xFF }
                (0xFF shl 24) or (r shl 16) or (g shl 8) or b
            }
        return ArgbWindow(pixels, width, height)
    }

    private fun box(case: Map<String, Any?>): PixelBox {
        val (left, top, right, bottom) = Vectors.numbers(case["box"])
        return PixelBox(left, top, right, bottom)
    }

    @Suppress("UNCHECKED_CAST")
    private fun quad(node: Any?): Quad? = (node as List<List<Double>>?)?.let { corners ->
        val (tl, tr, br, bl) = corners.map { Point(it[0], it[1]) }
        Quad(tl, tr, br, bl)
    }

    private fun assertQuad(expected: Quad, actual: Quad, tolerance: Double, what: String) {
        expected.corners.zip(actual.corners).forEach { (e, a) ->
            assertEquals(e.x, a.x, tolerance, "$what x")
            assertEquals(e.y, a.y, tolerance, "$what y")
        }
    }

    private fun expectedCrop(case: Map<String, Any?>): ByteArray =
        Vectors.inflate(case["pixels_zlib_base64"] as String, config.height * config.width * 3)

    /** The angle search step by step: numpy's 80th percentile and every candidate's score, bit for bit. */
    @TestFactory
    fun angleSearchMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val search = Deskew.search(image(case), box(case), Deskew.MAX_ANGLE_DEG, Deskew.STEP_DEG)
            assertEquals(case["percentile_80"] as Double?, search.percentile80?.toDouble(), "80th percentile")
            assertArrayEquals(Vectors.numbers(case["scores"]).toDoubleArray(), search.scores, "scores")
            assertEquals(case["angle"] as Double, search.angle, "angle")
            assertEquals(search.angle, Deskew.lineAngle(image(case), box(case)))
        }
    }

    /** The slanted line, its margins, the content width and the warp's coefficients. */
    @TestFactory
    fun geometryMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val box = box(case)
            val angle = case["angle"] as Double
            val slanted = if (angle != 0.0) Deskew.slantedQuad(box, angle) else null
            val expected = quad(case["slanted_quad"])
            if (expected == null) {
                assertNull(slanted)
            } else {
                assertQuad(expected, checkNotNull(slanted) { "no slanted quad" }, 1e-9, "slanted")
            }
            val source = ReaderCrop.expandQuad(ReaderCrop.lineQuad(box, angle), config)
            assertQuad(quad(case["source_quad"])!!, source, 1e-9, "source")
            val content = ReaderCrop.contentWidth(source, config)
            assertEquals(int(case["content_width"]), content)
            Vectors.numbers(case["coefficients"]).zip(ReaderCrop.coefficients(source, content, config).toList())
                .forEach { (e, a) -> assertEquals(e, a, 1e-9, "coefficients") }
        }
    }

    /** With the coefficients Python handed to PIL, the warp of the slanted quad is Python's to the last bit. */
    @TestFactory
    fun cropWithPythonsCoefficientsIsExact(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val crop =
                ReaderCrop.cropWith(
                    image(case),
                    quad(case["source_quad"])!!,
                    int(case["content_width"]),
                    Vectors.numbers(case["coefficients"]).toDoubleArray(),
                    config
                )
            assertArrayEquals(expectedCrop(case), crop.pixels)
        }
    }

    /**
     * The whole deskewed crop from the box alone. Its coefficients are Heckbert's closed form where
     * Python's come from an SVD, 1e-15 apart, so a sample can truncate one level apart: pixels
     * agree within 1 level, the padding colour within 1 (all equal on these vectors, with this
     * LAPACK; a regeneration elsewhere may move a sample).
     */
    @TestFactory
    fun deskewedCropMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(name(case)) {
            val crop = ReaderCrop.deskewedCrop(image(case), box(case), config)
            val expected = expectedCrop(case)
            assertEquals(int(case["content_width"]), crop.contentWidth)
            var worst = 0
            for (i in expected.indices) {
                worst = maxOf(worst, abs((expected[i].toInt() and 0xFF) - (crop.pixels[i].toInt() and 0xFF)))
            }
            assertTrue(worst <= 1, "largest pixel difference $worst levels")
            @Suppress("UNCHECKED_CAST")
            (case["pad_rgb"] as List<Double>?)?.let { pad ->
                for (c in 0 until 3) {
                    assertEquals(int(pad[c]).toDouble(), crop.value(config.width - 1, 0, c).toDouble(), 1.0)
                }
            }
        }
    }

    @Test
    fun vectorsCoverTheDeskewRule() {
        val angles = cases.map { it["angle"] as Double }
        val quads = cases.map { quad(it["slanted_quad"]) }
        val real = cases.map { Vectors.asMap(Vectors.asMap(it["image"])["made_by"]).containsKey("card") }
        assertTrue(angles.zip(quads).any { (a, q) -> a > 0 && q != null }, "a falling line")
        assertTrue(angles.zip(quads).any { (a, q) -> a < 0 && q != null }, "a rising line")
        assertTrue(cases.any { it["angle"] == 0.0 && Vectors.numbers(it["scores"]).size > 1 }, "a level line")
        assertTrue(cases.any { Vectors.numbers(it["scores"]).size == 1 }, "a box too thin for any slant")
        assertTrue(angles.zip(quads).any { (a, q) -> a != 0.0 && q == null }, "a slant no line fits")
        assertTrue(cases.any { it["percentile_80"] == null }, "a box too small to read")
        assertEquals(2, real.count { it })
        assertTrue(angles.zip(real).any { (a, r) -> r && a > 0 } && angles.zip(real).any { (a, r) -> r && a < 0 })
    }

    @Test
    fun candidatesGoByMagnitudeNegativeFirst() {
        assertArrayEquals(doubleArrayOf(0.0, -0.5, 0.5, -1.0, 1.0), Deskew.candidates(1.2, 0.5))
        // np.arange(0, 16 + 1e-9, 0.5) reaches 16: 33 magnitudes, 65 candidates.
        val all = Deskew.candidates(16.0, 0.5)
        assertEquals(65, all.size)
        assertEquals(listOf(-16.0, 16.0), all.takeLast(2))
        assertArrayEquals(doubleArrayOf(0.0), Deskew.candidates(0.4953, 0.5))
    }

    @Test
    fun percentileIsNumpysFloat32Linear() {
        // np.percentile(np.float32(...), 80) of these: 7.2000003 (index 7.2000003), 6.4 (from the top end)
        assertEquals(7.2000003f, Deskew.percentile80(FloatArray(10) { it.toFloat() }))
        assertEquals(6.4f, Deskew.percentile80(floatArrayOf(10f, 0f, 1f)))
        assertEquals(1.3333334f, Deskew.percentile80(floatArrayOf(2f, 0f, 1f / 3f)))
        assertEquals(5f, Deskew.percentile80(floatArrayOf(5f)))
    }

    @Test
    fun sumIsNumpysPairwiseSum() {
        // np.sum(np.full(200, 0.1)) is 20.0; adding one by one gives 20.000000000000014.
        val tenths = DoubleArray(200) { 0.1 }
        assertEquals(20.0, Deskew.pairwiseSum(tenths, 0, tenths.size))
        assertEquals(20.000000000000014, tenths.fold(0.0) { sum, x -> sum + x })
        assertEquals(0.30000000000000004, Deskew.pairwiseSum(doubleArrayOf(0.1, 0.1, 0.1), 0, 3))
    }

    @Test
    fun slantedQuadIsBoundedByTheBox() {
        val box = PixelBox(10.0, 20.0, 130.0, 60.0)
        for (angle in listOf(-12.0, -3.5, 0.5, 7.0, 14.0)) {
            val quad = Deskew.slantedQuad(box, angle)!!
            val bounds = quad.bounds
            assertEquals(box.left, bounds.left, 1e-9)
            assertEquals(box.top, bounds.top, 1e-9)
            assertEquals(box.right, bounds.right, 1e-9)
            assertEquals(box.bottom, bounds.bottom, 1e-9)
            val top = quad.topRight.y - quad.topLeft.y
            assertEquals(Math.toDegrees(StrictMath.atan2(top, quad.topRight.x - quad.topLeft.x)), angle, 1e-9)
        }
        // A 10 px box cannot hold a 100 px line at 10 degrees.
        assertNull(Deskew.slantedQuad(PixelBox(0.0, 0.0, 100.0, 10.0), 10.0))
        assertEquals(Quad.of(PixelBox(0.0, 0.0, 100.0, 10.0)), Deskew.slantedQuad(PixelBox(0.0, 0.0, 100.0, 10.0), 0.0))
        assertEquals(Quad.of(box), ReaderCrop.lineQuad(box, 0.0))
    }

    @Test
    fun perspectiveMapsTheRectangleOntoAnyQuad() {
        val quad = Quad(Point(3.0, 4.0), Point(40.0, 1.5), Point(44.0, 30.0), Point(1.0, 22.0))
        val map = Perspective.rectToQuad(50.0, 20.0, quad)
        val corners = listOf(map.map(0.0, 0.0), map.map(50.0, 0.0), map.map(50.0, 20.0), map.map(0.0, 20.0))
        corners.zip(quad.corners).forEach { (a, e) ->
            assertEquals(e.x, a.x, 1e-12)
            assertEquals(e.y, a.y, 1e-12)
        }
        // A rectangle's map is a scale and a shift, exactly.
        val box = Perspective.rectToQuad(64.0, 32.0, Quad.of(PixelBox(2.5, 4.0, 34.5, 20.0))).coefficients
        assertArrayEquals(doubleArrayOf(0.5, 0.0, 2.5, 0.0, 0.5, 4.0, 0.0, 0.0), box)
    }

    /** The app's path: the frame loaded window by window, as FieldReader does from a Bitmap. */
    @Test
    fun windowsGiveTheCropOfTheWholeFrame() {
        for (case in cases) {
            val whole = image(case)
            val box = box(case)
            val asked = mutableListOf<Crop>()
            val crop =
                ReaderCrop.deskewedCrop(whole.frameWidth, whole.frameHeight, box, config) { window ->
                    asked += window
                    val pixels =
                        IntArray(window.width * window.height) {
                            whole.pixel(window.left + it % window.width, window.top + it / window.width)
                        }
                    ArgbWindow(pixels, window.width, window.height, window.left, window.top, whole.width, whole.height)
                }
            assertArrayEquals(ReaderCrop.deskewedCrop(whole, box, config).pixels, crop.pixels, name(case))
            val angleWindow = Deskew.window(box, whole.frameWidth, whole.frameHeight)
            assertEquals(listOfNotNull(angleWindow, ReaderCrop.window(crop.source, whole.width, whole.height)), asked)
        }
    }

    @Test
    fun refusesBadInput() {
        val frame = ArgbWindow(IntArray(40 * 30), 40, 30)
        val messages =
            listOf(
                { ReaderCrop.deskewedCrop(frame, PixelBox(5.0, 10.0, 5.0, 18.0)) } to
                    "box PixelBox(left=5.0, top=10.0, right=5.0, bottom=18.0) is empty; " +
                    "expected (left, top, right, bottom) pixels",
                { Deskew.lineAngle(ArgbWindow(IntArray(4), 2, 2, 0, 0, 40, 30), PixelBox(0.0, 0.0, 8.0, 8.0)) } to
                    "frame pixel (2, 0) is outside the 2x2 window at (0, 0); load the window ReaderCrop.window " +
                    "(Deskew.window for the angle) gives",
                { Deskew.lineAngle(frame, PixelBox(0.0, 0.0, 8.0, 8.0), stepDeg = 0.0) } to
                    "deskew step 0.0 and limit 16.0 must be positive"
            )
        for ((call, message) in messages) {
            assertEquals(message, assertThrows(IllegalArgumentException::class.java) { call() }.message)
        }
    }
}
