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

    private fun presized(case: Map<String, Any?>): Boolean = case["presized"] as Boolean? ?: false

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
            val returned = PixelBox(x, y, x + w, y + h)
            val rule = DetectorRuntime.fromId(runtime)
            val box = RuntimeBoxes.photoBox(rule, returned, photoW, photoH, modelW, modelH, presized(case))
            val expected = Vectors.numbers(case["expected"])
            val actual = listOf(box.left, box.top, box.right, box.bottom)
            assertEquals(4, expected.size, "expected box")
            expected.zip(actual).forEach { (e, a) -> assertEquals(e, a, 1e-9, "$runtime $expected vs $actual") }
        }
    }

    @TestFactory
    fun modelBoxIsThePhotoBoxOverThePhotoSize(): List<DynamicTest> = cases.map { case ->
        val runtime = DetectorRuntime.fromId(case["runtime"] as String)
        val (x, y, w, h) = Vectors.numbers(case["box"])
        val (photoW, photoH) = size(case["photo"])
        val (modelW, modelH) = size(case["model"])
        DynamicTest.dynamicTest("${runtime.id} photo ${photoW}x$photoH box [$x, $y, $w, $h]") {
            val returned = PixelBox(x, y, x + w, y + h)
            val box = RuntimeBoxes.modelBox(runtime, returned, photoW, photoH, modelW, modelH, presized(case))
            val (left, top, right, bottom) = Vectors.numbers(case["expected"])
            val expected = listOf(top / photoH, left / photoW, bottom / photoH, right / photoW)
            val actual = listOf(box.ymin, box.xmin, box.ymax, box.xmax)
            expected.zip(actual).forEach { (e, a) -> assertEquals(e, a, 1e-12, "$expected vs $actual") }
        }
    }

    /** The app's path: returned detections -> rawDetections -> DetectionSelector gives the vectors' photo box. */
    @TestFactory
    fun selectedFieldBoxIsTheVectorsPhotoBox(): List<DynamicTest> = cases.map { case ->
        val runtime = DetectorRuntime.fromId(case["runtime"] as String)
        val (x, y, w, h) = Vectors.numbers(case["box"])
        val (photoW, photoH) = size(case["photo"])
        val (modelW, modelH) = size(case["model"])
        DynamicTest.dynamicTest("${runtime.id} photo ${photoW}x$photoH box [$x, $y, $w, $h]") {
            // As each runtime names the class: the Task Library by index, MediaPipe by label only.
            val index = if (runtime == DetectorRuntime.MEDIAPIPE) -1 else 1
            val returned = listOf(ReturnedDetection(PixelBox(x, y, x + w, y + h), index, LABELS[1], 0.9))
            val raw = RuntimeBoxes.rawDetections(
                runtime,
                returned,
                LABELS,
                photoW,
                photoH,
                modelW,
                modelH,
                presized(case)
            )
            val fields = DetectionSelector.select(raw, LABELS, ImageGeometry(photoW, photoH), 0.5)
            val field = fields[LABELS[1]] ?: error("${LABELS[1]} not selected: ${fields.missing}")
            assertEquals(1, field.classId)
            val expected = Vectors.numbers(case["expected"])
            val actual = listOf(field.box.left, field.box.top, field.box.right, field.box.bottom)
            expected.zip(actual).forEach { (e, a) -> assertEquals(e, a, 1e-9, "$expected vs $actual") }
        }
    }

    @Test
    fun rawDetectionsTakeTheIndexElseTheLabelsPosition() {
        val box = PixelBox(10.0, 20.0, 110.0, 40.0)
        val returned =
            listOf(
                // Task Library: index and label agree; the index counts.
                ReturnedDetection(box, 3, "status_perkawinan", 0.8),
                // MediaPipe: no index, the label names the class.
                ReturnedDetection(box, -1, "kewarganegaraan", 0.7),
                ReturnedDetection(box, -1, "nik", 0.6),
                // A label the model's file does not have: dropped by the selection (class -1).
                ReturnedDetection(box, -1, "alamat", 0.95)
            )
        val raw = RuntimeBoxes.rawDetections(DetectorRuntime.MEDIAPIPE, returned, LABELS, 640, 480, 320, 320)
        assertEquals(listOf(3.0, 4.0, 0.0, -1.0), raw.classes.toList())
        assertEquals(listOf(0.8, 0.7, 0.6, 0.95), raw.scores.toList())
        assertEquals(4.0, raw.count)
        val mapped = RuntimeBoxes.modelBox(DetectorRuntime.MEDIAPIPE, box, 640, 480, 320, 320)
        assertEquals(List(4) { mapped }, raw.boxes)
        val fields = DetectionSelector.select(raw, LABELS, ImageGeometry(640, 480), 0.5, overlapIou = 1.0)
        assertEquals(listOf("nik", "status_perkawinan", "kewarganegaraan"), fields.fields.map { it.label })
        assertEquals(listOf("nama", "jenis_kelamin"), fields.missing)
    }

    @Test
    fun noDetectionsGiveEmptyOutputs() {
        val raw = RuntimeBoxes.rawDetections(DetectorRuntime.TASK_LIBRARY, emptyList(), LABELS, 640, 480, 320, 320)
        assertEquals(0.0, raw.count)
        assertTrue(raw.boxes.isEmpty() && raw.classes.isEmpty() && raw.scores.isEmpty())
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
        // Every runtime also on a presized frame, MediaPipe's where the shift would not be zero.
        assertEquals(
            DetectorRuntime.entries.map {
                it.id
            }.toSet(),
            cases.filter(::presized).map { it["runtime"] }.toSet()
        )
        assertTrue(cases.any { it["runtime"] == "mediapipe" && presized(it) && size(it["photo"]) != size(it["model"]) })
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
        assertThrows(IllegalArgumentException::class.java) {
            RuntimeBoxes.modelBox(DetectorRuntime.MEDIAPIPE, PixelBox(1.0, 2.0, 3.0, 4.0), 0, 480, 320, 320)
        }
        val box = PixelBox(1.0, 2.0, 3.0, 4.0)
        assertThrows(IllegalArgumentException::class.java) {
            RuntimeBoxes.photoBox(DetectorRuntime.MEDIAPIPE, box, 640, 480, 0, 320)
        }
        assertThrows(IllegalArgumentException::class.java) {
            RuntimeBoxes.photoBox(DetectorRuntime.TASK_LIBRARY, box, 640, -1, 320, 320)
        }
    }

    private companion object {
        /** The five labels in class order (the detections vectors' list, the model's label file). */
        @Suppress("UNCHECKED_CAST")
        val LABELS = Vectors.section("detections", "labels") as List<String>
    }
}
