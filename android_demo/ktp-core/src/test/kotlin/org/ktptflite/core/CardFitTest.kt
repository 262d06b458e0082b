package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** The card fit against the vectors shared with ktp_tflite.train.card_layout.card_fit_choice. */
class CardFitTest {
    private val cases = Vectors.cases("card_fit", "cases")

    @Suppress("UNCHECKED_CAST")
    private fun candidates(case: Map<String, Any?>): Map<String, List<CardFit.Candidate>> =
        Vectors.asMap(case["candidates"]).mapValues { (_, found) ->
            (found as List<List<Any?>>).map { (box, score) ->
                val (left, top, right, bottom) = Vectors.numbers(box)
                CardFit.Candidate(PixelBox(left, top, right, bottom), score as Double)
            }
        }

    private fun expectedChoice(case: Map<String, Any?>): Map<String, Int> =
        Vectors.asMap(case["choice"]).mapValues { Vectors.wholeNumber(it.value) }

    @TestFactory
    fun choiceAndCostMatchVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val found = candidates(case)
            val choice = CardFit.choice(found)
            assertEquals(expectedChoice(case), choice)
            val cost = case["cost"] as Double?
            if (cost == null) {
                assertTrue(choice.size < CardFit.MIN_FIELDS)
            } else {
                val template = choice.keys.map { CardLayout.TEMPLATE.getValue(it) }
                val picked = choice.map { (name, index) -> found.getValue(name)[index] }
                var total = CardFit.fitCost(template, picked.map { it.box })!!
                for (p in picked) total -= StrictMath.log(p.score)
                assertEquals(cost, total, 1e-9 * maxOf(1.0, Math.abs(cost)))
            }
        }
    }

    @TestFactory
    fun detectionSelectorKeepsTheChosenBoxes(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val found = candidates(case)
            val width = 640
            val height = 480
            val boxes = mutableListOf<NormBox>()
            val classes = mutableListOf<Double>()
            val scores = mutableListOf<Double>()
            for ((name, detections) in found) {
                for (d in detections) {
                    boxes.add(
                        NormBox(d.box.top / height, d.box.left / width, d.box.bottom / height, d.box.right / width)
                    )
                    classes.add(LABELS.indexOf(name).toDouble())
                    scores.add(d.score)
                }
            }
            val raw = RawDetections(boxes, classes.toDoubleArray(), scores.toDoubleArray(), boxes.size.toDouble())
            val result = DetectionSelector.select(raw, LABELS, ImageGeometry(width, height), threshold = 0.0)
            for ((name, index) in expectedChoice(case)) {
                val want = found.getValue(name)[index].box
                val got = result.fields.single { it.label == name }.box
                listOf(want.left to got.left, want.top to got.top, want.right to got.right, want.bottom to got.bottom)
                    .forEach { (e, a) -> assertEquals(e, a, 1e-6, "$name: $want vs $got") }
            }
        }
    }

    @Test
    fun badCandidatesAreRefusedWithTheFieldNamed() {
        val unknown = assertThrows(IllegalArgumentException::class.java) {
            CardFit.choice(mapOf("alamat" to listOf(CardFit.Candidate(PixelBox(0.0, 0.0, 10.0, 10.0), 0.5))))
        }
        assertTrue("unknown field 'alamat'" in unknown.message!!)
        val empty = assertThrows(IllegalArgumentException::class.java) {
            CardFit.choice(mapOf("nama" to listOf(CardFit.Candidate(PixelBox(10.0, 0.0, 10.0, 10.0), 0.5))))
        }
        assertTrue("a nama box" in empty.message!! && "is empty" in empty.message!!)
        assertEquals(emptyMap<String, Int>(), CardFit.choice(emptyMap()))
        assertEquals(emptyMap<String, Int>(), CardFit.choice(mapOf("nik" to emptyList())))
        assertNull(
            CardFit.fitCost(
                List(3) {
                    CardLayout.TEMPLATE.getValue("nama")
                },
                List(3) { PixelBox(0.0, 0.0, 1.0, 1.0) }
            )
        )
    }

    private companion object {
        @Suppress("UNCHECKED_CAST")
        val LABELS = Vectors.section("detections", "labels") as List<String>
    }
}
