package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** Runtime box de-biasing against the vectors shared with ktp_tflite.convert.runtimes.photo_box. */
class RuntimeBoxesTest {
    private val cases = Vectors.cases("runtime_boxes", "cases")

    private fun size(value: Any?): List<Int> = Vectors.numbers(value).map {
        check(it == Math.rint(it)) { "a size must be whole pixels, got $it" }
        it.toInt()
    }

    @TestFactory
    fun photoBoxMatchesVectors(): List<DynamicTest> = cases.map { case ->
        val runtime = case["runtime"] as String
        val (x, y, w, h) = Vectors.numbers(case["box"])
        val (photoW, photoH) = size(case["photo"])
        val (modelW, modelH) = size(case["model"])
        DynamicTest.dynamicTest("$runtime photo ${photoW}x$photoH model ${modelW}x$modelH box [$x, $y, $w, $h]") {
            val box =
                RuntimeBoxes.photoBox(
                    DetectorRuntime.fromId(runtime),
                    PixelBox(x, y, x + w, y + h),
                    photoW,
                    photoH,
                    modelW,
                    modelH
                )
            val expected = Vectors.numbers(case["expected"])
            val actual = listOf(box.left, box.top, box.right, box.bottom)
            assertEquals(4, expected.size, "expected box")
            expected.zip(actual).forEach { (e, a) -> assertEquals(e, a, 1e-9, "$runtime $expected vs $actual") }
        }
    }

    @Test
    fun vectorsCoverEveryRuntime() {
        assertEquals(
            DetectorRuntime.entries.toSet(),
            cases.map { DetectorRuntime.fromId(it["runtime"] as String) }.toSet()
        )
        // A MediaPipe case whose shift is not zero on both axes, so the shift is really checked.
        assertTrue(
            cases.any {
                it["runtime"] == "mediapipe" && size(it["photo"]).zip(size(it["model"])).all { (p, m) -> p != m }
            }
        )
    }

    @Test
    fun namesAreThePythonOnes() {
        assertEquals(listOf("litert", "task-library", "mediapipe"), DetectorRuntime.entries.map { it.id })
        assertEquals(DetectorRuntime.TASK_LIBRARY, DetectorRuntime.fromId("task-library"))
    }

    @Test
    fun refusesUnknownRuntime() {
        for (name in listOf("tflite", "TASK_LIBRARY", "Task-Library", "")) {
            val error = assertThrows(IllegalArgumentException::class.java) { DetectorRuntime.fromId(name) }
            assertEquals("unknown detector runtime '$name'; use one of litert, task-library, mediapipe", error.message)
        }
    }

    @Test
    fun refusesEmptySizes() {
        val box = PixelBox(1.0, 2.0, 3.0, 4.0)
        assertThrows(IllegalArgumentException::class.java) {
            RuntimeBoxes.photoBox(DetectorRuntime.MEDIAPIPE, box, 640, 480, 0, 320)
        }
        assertThrows(IllegalArgumentException::class.java) {
            RuntimeBoxes.photoBox(DetectorRuntime.TASK_LIBRARY, box, 640, -1, 320, 320)
        }
    }
}
