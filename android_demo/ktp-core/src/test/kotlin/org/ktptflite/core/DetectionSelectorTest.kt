package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** Field selection and geometry against the vectors shared with tests/test_fields.py. */
class DetectionSelectorTest {
    @Suppress("UNCHECKED_CAST")
    private val labels = Vectors.section("detections", "labels") as List<String>

    @Suppress("UNCHECKED_CAST")
    private fun numbers(value: Any?): List<Double> = value as List<Double>

    private fun normBox(values: List<Double>) = NormBox(values[0], values[1], values[2], values[3])

    private fun assertBox(expected: List<Double>, actual: List<Double>, what: String) {
        assertEquals(expected.size, actual.size, what)
        expected.zip(actual).forEach { (e, a) -> assertEquals(e, a, 1e-3, what) }
    }

    private fun selectCase(case: Map<String, Any?>): FieldResult {
        @Suppress("UNCHECKED_CAST")
        val rows = (case["boxes"] as List<List<Double>>).map { normBox(it) }
        val raw =
            RawDetections(
                rows,
                numbers(case["classes"]).toDoubleArray(),
                numbers(case["scores"]).toDoubleArray(),
                case["count"] as Double
            )
        val geometry =
            ImageGeometry(
                (case["sensor_width"] as Double).toInt(),
                (case["sensor_height"] as Double).toInt(),
                (case["rotation_degrees"] as Double).toInt()
            )
        return DetectionSelector.select(
            raw,
            labels,
            geometry,
            case["threshold"] as Double,
            case["overlap_iou"] as Double
        )
    }

    @Test
    fun vectorLabelsAreTheFiveFields() {
        assertEquals(listOf("nik", "nama", "jenis_kelamin", "status_perkawinan", "kewarganegaraan"), labels)
    }

    @TestFactory
    fun selectionMatchesVectors(): List<DynamicTest> = Vectors.cases("detections", "cases").map { case ->
        DynamicTest.dynamicTest(case["name"] as String) {
            val result = selectCase(case)
            val expectedRows = Vectors.asMap(case["expected_rows"]).mapValues { (it.value as Double).toInt() }
            assertEquals(labels.filter { it in expectedRows }, result.fields.map { it.label })
            assertEquals(case["missing"], result.missing)
            for ((label, row) in expectedRows) {
                val field = result[label]!!
                assertEquals(numbers(case["scores"])[row], field.score, 1e-9)
                assertEquals(labels.indexOf(label), field.classId)
                @Suppress("UNCHECKED_CAST")
                val clipped = (case["boxes"] as List<List<Double>>)[row].map { minOf(1.0, maxOf(0.0, it)) }
                val model = field.boxModel
                assertBox(clipped, listOf(model.ymin, model.xmin, model.ymax, model.xmax), "box_model")
            }
            val expectedBoxes = case["expected_boxes"]?.let { Vectors.asMap(it) } ?: emptyMap()
            for ((label, expected) in expectedBoxes) {
                val field = result[label]!!
                val boxes = Vectors.asMap(expected)
                val m = field.boxModel
                assertBox(numbers(boxes["box_model"]), listOf(m.ymin, m.xmin, m.ymax, m.xmax), "box_model")
                val b = field.box
                assertBox(numbers(boxes["box"]), listOf(b.left, b.top, b.right, b.bottom), "box")
                val s = field.boxSensor
                assertBox(numbers(boxes["box_sensor"]), listOf(s.left, s.top, s.right, s.bottom), "box_sensor")
            }
            case["expected_image_size"]?.let {
                assertEquals(
                    numbers(it).map(Double::toInt),
                    listOf(result.geometry.imageWidth, result.geometry.imageHeight)
                )
            }
        }
    }

    @Test
    fun modelToSensorAgreesWithRotatingPixels() {
        // Mark a rectangle in a 64x48 buffer, rotate the buffer clockwise by
        // the rotation, find the rectangle, and map it back.
        val width = 64
        val height = 48
        for (rotation in ImageGeometry.ROTATIONS) {
            val sideways = rotation % 180 != 0
            val uprightW = if (sideways) height else width
            val uprightH = if (sideways) width else height
            var minX = Int.MAX_VALUE
            var minY = Int.MAX_VALUE
            var maxX = -1
            var maxY = -1
            for (y in 5 until 17) {
                for (x in 10 until 40) {
                    // Clockwise rotation of pixel (x, y) in a width x height buffer.
                    val (ux, uy) =
                        when (rotation) {
                            0 -> x to y
                            90 -> (height - 1 - y) to x
                            180 -> (width - 1 - x) to (height - 1 - y)
                            else -> y to (width - 1 - x)
                        }
                    minX = minOf(minX, ux)
                    minY = minOf(minY, uy)
                    maxX = maxOf(maxX, ux)
                    maxY = maxOf(maxY, uy)
                }
            }
            val upright =
                NormBox(
                    minY.toDouble() / uprightH,
                    minX.toDouble() / uprightW,
                    (maxY + 1).toDouble() / uprightH,
                    (maxX + 1).toDouble() / uprightW
                )
            val sensor = BoxMapper.toPixels(BoxMapper.modelToSensor(upright, rotation), width, height)
            assertBox(
                listOf(10.0, 5.0, 40.0, 17.0),
                listOf(sensor.left, sensor.top, sensor.right, sensor.bottom),
                "rotation $rotation"
            )
        }
    }

    @Test
    fun rejectsBadArguments() {
        assertThrows(IllegalArgumentException::class.java) { ImageGeometry(640, 480, 45) }
        assertThrows(IllegalArgumentException::class.java) { ImageGeometry(0, 480) }
        assertThrows(IllegalArgumentException::class.java) {
            RawDetections(listOf(NormBox(0.0, 0.0, 1.0, 1.0)), doubleArrayOf(0.0, 1.0), doubleArrayOf(0.9), 1.0)
        }
    }

    @Test
    fun fillCenterUsesOneScaleFactor() {
        val transform = ViewTransform.fillCenter(640, 480, 1080, 1920)
        assertEquals(4.0, transform.scale, 1e-9)
        assertEquals(-740.0, transform.offsetX, 1e-9)
        assertEquals(0.0, transform.offsetY, 1e-9)
        val mapped = transform.map(PixelBox(320.0, 0.0, 640.0, 480.0))
        assertEquals(540.0, mapped.left, 1e-9)
        assertEquals(1920.0, mapped.bottom, 1e-9)
    }

    @Test
    fun boxesMapBetweenFramesOfOneView() {
        // Analysis 480x640 upright, capture 3024x4032: 6.3 on both axes; the frame edges map to the edges.
        val box = BoxMapper.betweenFrames(PixelBox(0.0, 10.0, 480.0, 20.5), 480, 640, 3024, 4032)
        assertBox(listOf(0.0, 63.0, 3024.0, 129.15), listOf(box.left, box.top, box.right, box.bottom), "capture")
        // 4000x3000 and 1920x1440 are both 4:3; 1920x1088 is 1.76, within 2 % of 16:9.
        val wide = BoxMapper.betweenFrames(PixelBox(192.0, 108.8, 384.0, 217.6), 1920, 1088, 1280, 720)
        assertBox(listOf(128.0, 72.0, 256.0, 144.0), listOf(wide.left, wide.top, wide.right, wide.bottom), "16:9")
        val error = assertThrows(IllegalArgumentException::class.java) {
            BoxMapper.betweenFrames(PixelBox(0.0, 0.0, 1.0, 1.0), 640, 480, 1920, 1080)
        }
        assertEquals(
            "frames 640x480 and 1920x1080 differ in aspect ratio (1.333 vs 1.778): they do not show the same " +
                "view; use one aspect ratio for both streams",
            error.message
        )
        assertThrows(IllegalArgumentException::class.java) {
            BoxMapper.betweenFrames(PixelBox(0.0, 0.0, 1.0, 1.0), 0, 480, 640, 480)
        }
        assertTrue(BoxMapper.sameView(480, 640, 3024, 4032))
        assertTrue(BoxMapper.sameView(1920, 1088, 1280, 720))
        assertFalse(BoxMapper.sameView(480, 640, 4032, 3024))
        assertFalse(BoxMapper.sameView(640, 480, 1920, 1080))
    }
}
