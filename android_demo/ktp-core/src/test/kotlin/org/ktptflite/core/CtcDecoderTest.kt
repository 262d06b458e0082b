package org.ktptflite.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory

/** CTC decoding against the vectors shared with ktp_tflite.train.reader_grammar. */
class CtcDecoderTest {
    private val cases = Vectors.cases("ctc", "cases")

    /** Dense [T][NUM_CLASSES] logits from a case's sparse frames. */
    @Suppress("UNCHECKED_CAST")
    private fun logitsOf(case: Map<String, Any?>): Array<FloatArray> {
        val floor = (case["floor"] as Double).toFloat()
        val frames = case["frames"] as List<Map<String, Any?>>
        return Array(frames.size) { t ->
            val row = FloatArray(CtcDecoder.NUM_CLASSES) { floor }
            for ((key, value) in frames[t]) {
                val k = if (key == "blank") CtcDecoder.BLANK else CtcDecoder.ALPHABET.indexOf(key.single()) + 1
                row[k] = (value as Double).toFloat()
            }
            row
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun strings(node: Any?): List<String> = node as List<String>

    @TestFactory
    fun decodingMatchesVectors(): List<DynamicTest> = cases.map { case ->
        DynamicTest.dynamicTest(case["name"] as String) {
            val logits = logitsOf(case)
            val greedy = CtcDecoder.greedy(logits)
            assertEquals(case["greedy"], greedy.text)
            (case["greedy_path_log_prob"] as Double?)?.let { assertEquals(it, greedy.pathLogProb, 1e-9) }
            (case["field"] as String?)?.let {
                val reading = CtcDecoder.decodeField(logits, ReaderField.fromId(it))
                assertEquals(case["field_text"], reading.text)
                assertEquals(case["field_complete"], reading.complete)
                assertTrue(reading.confidence > 0.0 && reading.confidence <= 1.0)
            }
            case["vocabulary"]?.let {
                val reading = CtcDecoder.vocabulary(logits, strings(it))
                assertEquals(case["vocabulary_text"], reading.text)
                (case["log_likelihoods"] as List<*>?)?.let { expected ->
                    expected.zip(reading.logLikelihoods).forEach { (e, a) ->
                        if (e == null) {
                            assertEquals(Double.NEGATIVE_INFINITY, a)
                        } else {
                            assertEquals(e as Double, a, 1e-9)
                        }
                    }
                    assertEquals(case["confidence"] as Double, reading.confidence, 1e-9)
                }
            }
        }
    }

    @Test
    fun alphabetAndGrammarsAreTheVectorsOnes() {
        assertEquals(Vectors.section("ctc", "alphabet"), CtcDecoder.ALPHABET)
        val fields = Vectors.asMap(Vectors.section("ctc", "fields"))
        assertEquals(fields.keys.toList(), ReaderField.entries.map { it.id })
        for (field in ReaderField.entries) {
            val expected = Vectors.asMap(fields[field.id])
            assertEquals(expected["allowed"], field.allowed, field.id)
            assertEquals((expected["length"] as Double?)?.toInt(), field.length, field.id)
            assertEquals(expected["vocabulary"]?.let { strings(it) }, field.vocabulary, field.id)
        }
    }

    @Test
    fun refusesBadInput() {
        val wrongWidth = arrayOf(FloatArray(10))
        val error = assertThrows(IllegalArgumentException::class.java) { CtcDecoder.greedy(wrongWidth) }
        assertEquals("logits have 10 classes per step; expected 42 (blank + 41 characters)", error.message)
        val nan = arrayOf(FloatArray(CtcDecoder.NUM_CLASSES) { Float.NaN })
        assertThrows(IllegalArgumentException::class.java) { CtcDecoder.greedy(nan) }
        val zeros = arrayOf(FloatArray(CtcDecoder.NUM_CLASSES))
        assertThrows(IllegalArgumentException::class.java) { CtcDecoder.logLikelihood(zeros, "a") }
        assertThrows(IllegalArgumentException::class.java) { CtcDecoder.vocabulary(zeros, emptyList()) }
        assertThrows(IllegalArgumentException::class.java) { ReaderField.fromId("alamat") }
    }
}
