package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The two-pass zoom's bookkeeping against the vectors shared with ktp_tflite.convert.zoom. */
class ZoomTest {
    private val cases = Vectors.cases("zoom", "cases")

    @Suppress("UNCHECKED_CAST")
    private fun detections(node: Any?): RawDetections {
        val spec = Vectors.asMap(node)
        val boxes = (spec["boxes"] as List<List<Double>>).map { (ymin, xmin, ymax, xmax) ->
            NormBox(ymin, xmin, ymax, xmax)
        }
        return RawDetections(
            boxes,
            Vectors.numbers(spec["classes"]).toDoubleArray(),
            Vectors.numbers(spec["scores"]).toDoubleArray(),
            boxes.size.toDouble()
        )
    }

    private fun size(node: Any?): Pair<Int, Int> = Vectors.numbers(node).map { Vectors.wholeNumber(it) }.let { (w, h) ->
        w to
            h
    }

    @TestFactory
    fun cropAndKeptDetectionsMatchVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            assertEquals(Zoom.MIN_SCORE, case["min_score"] as Double, 1e-7)
            val (frameW, frameH) = size(case["frame"])
            val first = detections(case["first"])
            val crop = Zoom.planCrop(first, LABELS, frameW, frameH)
            val expectedCrop = case["crop"]?.let { Vectors.numbers(it).map { v -> Vectors.wholeNumber(v) } }
            assertEquals(expectedCrop, crop?.let { listOf(it.left, it.top, it.right, it.bottom) })
            val second = case["second"]?.let { detections(it) }
            val final = Zoom.finish(first, second, crop, frameW, frameH)
            val expected = detections(case["final"])
            assertEquals(expected.classes.toList(), final.classes.toList())
            // Python's scores are float32; ours stay as given
            expected.scores.zip(final.scores).forEach { (e, a) -> assertEquals(e, a, 1e-6) }
            assertEquals(expected.boxes.size.toDouble(), final.count)
            expected.boxes.zip(final.boxes).forEach { (e, a) ->
                listOf(e.ymin to a.ymin, e.xmin to a.xmin, e.ymax to a.ymax, e.xmax to a.xmax).forEach { (x, y) ->
                    assertEquals(x, y, 1e-12, "$e vs $a")
                }
            }
        }
    }

    @Test
    fun noCropKeepsPassOne() {
        val first = detections(cases.first()["first"])
        val kept = Zoom.finish(first, detections(cases.first()["second"]), null, 640, 480)
        assertEquals(first, kept)
        assertNull(
            Zoom.planCrop(RawDetections(emptyList(), DoubleArray(0), DoubleArray(0), 0.0), LABELS, 640, 480)
        )
    }

    private companion object {
        @Suppress("UNCHECKED_CAST")
        val LABELS = Vectors.section("detections", "labels") as List<String>
    }
}
