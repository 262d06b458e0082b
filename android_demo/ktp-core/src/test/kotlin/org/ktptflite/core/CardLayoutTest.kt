package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** Card from fields and the zoom crop against the vectors shared with ktp_tflite.train.card_layout. */
class CardLayoutTest {
    private fun box(value: Any?): PixelBox {
        val (left, top, right, bottom) = Vectors.numbers(value)
        return PixelBox(left, top, right, bottom)
    }

    private fun size(value: Any?): List<Int> = Vectors.numbers(value).map {
        check(it == Math.rint(it)) { "a size must be whole pixels, got $it" }
        it.toInt()
    }

    private fun crop(value: Any?): Crop? = value?.let {
        val (left, top, right, bottom) = size(it)
        Crop(left, top, right, bottom)
    }

    private fun assertBox(expected: PixelBox, actual: PixelBox, what: String) {
        listOf(
            expected.left to actual.left,
            expected.top to actual.top,
            expected.right to actual.right,
            expected.bottom to actual.bottom
        ).forEach { (e, a) -> assertEquals(e, a, 1e-9, "$what: $expected vs $actual") }
    }

    @Test
    fun templateIsTheVectorsTemplate() {
        assertEquals(
            listOf(CardLayout.CARD_WIDTH, CardLayout.CARD_HEIGHT),
            Vectors.numbers(Vectors.section("card_layout", "card_size"))
        )
        val template = Vectors.asMap(Vectors.section("card_layout", "template"))
        assertEquals(template.keys, CardLayout.TEMPLATE.keys)
        for ((name, value) in template) {
            val (left, top, bottom) = Vectors.numbers(value)
            val field = CardLayout.TEMPLATE.getValue(name)
            assertEquals(left, field.left, 1e-9, name)
            assertEquals(top, field.top, 1e-9, name)
            assertEquals(bottom, field.bottom, 1e-9, name)
        }
    }

    @TestFactory
    fun cardsMatchVectors(): List<DynamicTest> = Vectors.cases("card_layout", "cards").map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val fields = Vectors.asMap(case["fields"]).mapValues { (_, value) -> box(value) }
            val card = CardLayout.cardFromFields(fields)
            assertBox(box(case["expected_card"]), card, "card")
            val (frameW, frameH) = size(case["frame"])
            @Suppress("UNCHECKED_CAST")
            for (expected in case["crops"] as List<Map<String, Any?>>) {
                val found =
                    CardLayout.zoomCrop(
                        card,
                        frameW,
                        frameH,
                        expected["threshold"] as Double,
                        case["margin"] as Double
                    )
                assertEquals(crop(expected["expected"]), found, "threshold ${expected["threshold"]}")
            }
        }
    }

    @TestFactory
    fun cropsMatchVectors(): List<DynamicTest> = Vectors.cases("card_layout", "crops").map { case ->
        DynamicTest.dynamicTest(case["about"] as String) {
            val (frameW, frameH) = size(case["frame"])
            val found =
                CardLayout.zoomCrop(
                    box(case["card"]),
                    frameW,
                    frameH,
                    case["threshold"] as Double,
                    case["margin"] as Double
                )
            assertEquals(crop(case["expected"]), found)
        }
    }

    @Test
    fun anySubsetOfTemplateFieldsGivesTheSameCard() {
        val scale = 0.37
        val all =
            CardLayout.TEMPLATE.mapValues { (_, t) ->
                PixelBox(
                    55.0 + scale * t.left,
                    21.0 + scale * t.top,
                    55.0 + scale * (t.left + 40),
                    21.0 + scale * t.bottom
                )
            }
        val expected = PixelBox(55.0, 21.0, 55.0 + scale * 856, 21.0 + scale * 540)
        for (subset in listOf(
            listOf("nik"),
            listOf("kewarganegaraan"),
            listOf("nama", "status_perkawinan"),
            all.keys.toList()
        )) {
            assertBox(expected, CardLayout.cardFromFields(all.filterKeys { it in subset }), subset.toString())
        }
    }

    @Test
    fun defaultsAreThePythonOnes() {
        val card = PixelBox(100.0, 100.0, 200.0, 161.0)
        assertEquals(
            CardLayout.zoomCrop(card, 640, 480, 0.45, 0.1),
            CardLayout.zoomCrop(card, 640, 480)
        )
        assertNull(CardLayout.zoomCrop(PixelBox(700.0, 10.0, 760.0, 50.0), 640, 480))
    }

    @Test
    fun refusesBadInput() {
        val messages =
            listOf(
                { CardLayout.cardFromFields(emptyMap()) } to
                    "card from fields: no field box given; at least one is needed",
                { CardLayout.cardFromFields(mapOf("alamat" to PixelBox(0.0, 0.0, 1.0, 1.0))) } to
                    "card from fields: unknown field 'alamat'; use nik, nama, jenis_kelamin, status_perkawinan, kewarganegaraan",
                { CardLayout.zoomCrop(PixelBox(0.0, 0.0, 10.0, 10.0), 0, 480) } to
                    "zoom crop: the frame size must be positive, got (0, 480)"
            )
        for ((call, message) in messages) {
            assertEquals(message, assertThrows(IllegalArgumentException::class.java) { call() }.message)
        }
        assertThrows(IllegalArgumentException::class.java) {
            CardLayout.cardFromFields(mapOf("nama" to PixelBox(5.0, 5.0, 5.0, 9.0)))
        }
    }
}
