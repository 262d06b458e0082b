package org.ktptflite.core

import kotlin.math.exp
import kotlin.math.ln
import kotlin.math.max

/*
 * CTC decoding of the field reader's logits, with the grammar of each KTP field.
 *
 * The Kotlin twin of ktp_tflite.train.reader_grammar (same rules, same
 * vectors: section "ctc" of tests/vectors/ktp_vectors.json), so change them
 * together. Class 0 is the CTC blank, class i >= 1 is ALPHABET[i - 1]; logits
 * are [time steps][NUM_CLASSES], turned into log-probabilities by a
 * log-softmax per step.
 */

/** The grammar of one detected field: what it may read. */
enum class ReaderField(val id: String, val allowed: String, val length: Int?, val vocabulary: List<String>?) {
    NIK("nik", CtcDecoder.DIGITS, 16, null),
    NAMA("nama", CtcDecoder.LETTERS + CtcDecoder.NAME_MARKS, null, null),
    JENIS_KELAMIN("jenis_kelamin", CtcDecoder.LETTERS + "-", null, listOf("LAKI-LAKI", "PEREMPUAN")),
    STATUS_PERKAWINAN(
        "status_perkawinan",
        CtcDecoder.LETTERS + " ",
        null,
        listOf("BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI")
    ),
    KEWARGANEGARAAN("kewarganegaraan", CtcDecoder.LETTERS, null, listOf("WNI"));

    companion object {
        /** The field called [id] (a detector class name). */
        fun fromId(id: String): ReaderField = entries.firstOrNull { it.id == id }
            ?: throw IllegalArgumentException("unknown field '$id'; use one of ${entries.joinToString { it.id }}")
    }
}

/** A best-path decoding: the text and the log-probability of its path. */
data class GreedyReading(val text: String, val pathLogProb: Double)

/**
 * A closed-vocabulary decoding: the most likely value, its log-likelihood, its share of the
 * vocabulary's likelihood (0 when no value fits), and every value's log-likelihood
 * (NEGATIVE_INFINITY when it needs more time steps).
 */
data class VocabularyReading(
    val text: String,
    val logLikelihood: Double,
    val confidence: Double,
    val logLikelihoods: List<Double>
)

/**
 * A field decoded under its grammar; [complete] says whether the grammar's length was met,
 * [confidence] is the vocabulary share or exp(path log-prob / T) for free text.
 */
data class FieldReading(
    val field: ReaderField,
    val text: String,
    val confidence: Double,
    val complete: Boolean,
    val method: String
)

object CtcDecoder {
    const val DIGITS = "0123456789"
    const val LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    const val NAME_MARKS = " '.,-"
    const val ALPHABET = DIGITS + LETTERS + NAME_MARKS
    const val BLANK = 0
    const val NUM_CLASSES = ALPHABET.length + 1

    /** Log-probabilities per step; every row must have NUM_CLASSES finite values. */
    fun logSoftmax(logits: Array<FloatArray>): Array<DoubleArray> = Array(logits.size) { t ->
        val row = logits[t]
        require(row.size == NUM_CLASSES) {
            "logits have ${row.size} classes per step; expected $NUM_CLASSES (blank + ${ALPHABET.length} characters)"
        }
        require(row.all { it.isFinite() }) { "logits hold NaN or infinite values" }
        val top = row.max().toDouble()
        var sum = 0.0
        for (v in row) sum += exp(v - top)
        val norm = top + ln(sum)
        DoubleArray(NUM_CLASSES) { row[it] - norm }
    }

    /** Class ids (1-based into ALPHABET) of [text]. */
    fun encode(text: String): IntArray {
        val bad = text.filter { it !in ALPHABET }.toSortedSet()
        require(bad.isEmpty()) { "text has characters outside the reader alphabet: '${bad.joinToString("")}'" }
        return IntArray(text.length) { ALPHABET.indexOf(text[it]) + 1 }
    }

    /** Best-path decoding (ties to the lower class); with [allowed], no other character is emitted. */
    fun greedy(logits: Array<FloatArray>, allowed: String? = null): GreedyReading {
        val logProbs = logSoftmax(logits)
        allowed?.let { encode(it) }
        val text = StringBuilder()
        var previous = BLANK
        var score = 0.0
        for (row in logProbs) {
            var best = BLANK
            for (k in 1 until NUM_CLASSES) {
                if (allowed != null && ALPHABET[k - 1] !in allowed) continue
                if (row[k] > row[best]) best = k
            }
            if (best != BLANK && best != previous) text.append(ALPHABET[best - 1])
            previous = best
            score += row[best]
        }
        return GreedyReading(text.toString(), score)
    }

    private fun logAddExp(a: Double, b: Double): Double {
        if (a == Double.NEGATIVE_INFINITY) return b
        if (b == Double.NEGATIVE_INFINITY) return a
        val top = max(a, b)
        return top + ln(exp(a - top) + exp(b - top))
    }

    /** log p([text] | [logits]) by the CTC forward algorithm; NEGATIVE_INFINITY when it needs more steps. */
    fun logLikelihood(logits: Array<FloatArray>, text: String): Double {
        val logProbs = logSoftmax(logits)
        val labels = encode(text)
        val extended = IntArray(2 * labels.size + 1) { if (it % 2 == 1) labels[it / 2] else BLANK }
        if (logProbs.isEmpty()) return if (labels.isEmpty()) 0.0 else Double.NEGATIVE_INFINITY
        val states = extended.size
        var alpha = DoubleArray(states) { Double.NEGATIVE_INFINITY }
        alpha[0] = logProbs[0][BLANK]
        if (states > 1) alpha[1] = logProbs[0][extended[1]]
        for (t in 1 until logProbs.size) {
            val previous = alpha
            alpha = DoubleArray(states) { s ->
                var sum = previous[s]
                if (s >= 1) sum = logAddExp(sum, previous[s - 1])
                if (s >= 2 && extended[s] != BLANK && extended[s] != extended[s - 2]) {
                    sum = logAddExp(sum, previous[s - 2])
                }
                if (sum == Double.NEGATIVE_INFINITY) sum else sum + logProbs[t][extended[s]]
            }
        }
        return if (states > 1) logAddExp(alpha[states - 1], alpha[states - 2]) else alpha[0]
    }

    /** The value of [vocabulary] with the highest likelihood (ties to the earlier value). */
    fun vocabulary(logits: Array<FloatArray>, vocabulary: List<String>): VocabularyReading {
        require(vocabulary.isNotEmpty()) { "the vocabulary is empty; give at least one value" }
        val scores = vocabulary.map { logLikelihood(logits, it) }
        var best = 0
        for (i in scores.indices) if (scores[i] > scores[best]) best = i
        val total = scores.fold(Double.NEGATIVE_INFINITY) { acc, s -> logAddExp(acc, s) }
        val confidence = if (total == Double.NEGATIVE_INFINITY) 0.0 else exp(scores[best] - total)
        return VocabularyReading(vocabulary[best], scores[best], confidence, scores)
    }

    /** Decodes one field under its grammar: vocabulary decoding when it has one, else restricted greedy. */
    fun decodeField(logits: Array<FloatArray>, field: ReaderField): FieldReading {
        field.vocabulary?.let {
            val reading = vocabulary(logits, it)
            return FieldReading(
                field,
                reading.text,
                reading.confidence,
                reading.logLikelihood > Double.NEGATIVE_INFINITY,
                "vocabulary"
            )
        }
        val reading = greedy(logits, field.allowed)
        val complete = field.length == null || reading.text.length == field.length
        return FieldReading(field, reading.text, exp(reading.pathLogProb / max(1, logits.size)), complete, "greedy")
    }
}
