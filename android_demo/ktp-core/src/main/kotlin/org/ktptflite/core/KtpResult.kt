package org.ktptflite.core

import java.time.LocalDate

/** One detected field with its (optional) OCR text. */
data class FieldValue(
    val label: String,
    val score: Double,
    val box: PixelBox,
    /** Raw OCR text, or null when text recognition is off or found nothing. */
    val rawText: String?,
    /** Cleaned value, or null. */
    val value: String?
)

/** The structured result the app shows: five fields plus the NIK verdict. */
data class KtpResult(
    val fields: Map<String, FieldValue>,
    val missing: List<String>,
    /** Null when there is no NIK text to check (no OCR or no NIK box). */
    val nikCheck: NikCheck?
) {
    fun value(label: String): String? = fields[label]?.value
}

/** Builds a [KtpResult] from the chosen boxes and the text read in each crop. */
object KtpResultAssembler {
    const val NIK = "nik"
    const val NAMA = "nama"
    const val JENIS_KELAMIN = "jenis_kelamin"
    const val STATUS_PERKAWINAN = "status_perkawinan"
    const val KEWARGANEGARAAN = "kewarganegaraan"

    private val LABEL_PREFIX = Regex("^[^:]*:\\s*")
    private val MARITAL = listOf("BELUM KAWIN", "CERAI HIDUP", "CERAI MATI", "KAWIN")

    /**
     * Cleans each field's text and checks the NIK against the printed gender.
     *
     * Rules: the NIK goes through [NikRules.cleanOcr] then [NikRules.check]
     * with the Jenis Kelamin text; other values lose a leading "Label :" part,
     * runs of spaces and case; Jenis Kelamin becomes LAKI-LAKI/PEREMPUAN,
     * Status Perkawinan one of BELUM KAWIN, KAWIN, CERAI HIDUP, CERAI MATI,
     * and Kewarganegaraan WNI or WNA when recognisable, else the cleaned text.
     */
    fun assemble(detections: FieldResult, texts: Map<String, String>, today: LocalDate = LocalDate.now()): KtpResult {
        val fields =
            detections.fields.associate { detection ->
                val raw = texts[detection.label]?.takeIf { it.isNotBlank() }
                detection.label to
                    FieldValue(
                        detection.label,
                        detection.score,
                        detection.box,
                        raw,
                        raw?.let {
                            clean(detection.label, it)
                        }
                    )
            }
        val nikText = fields[NIK]?.value
        val check = nikText?.let { NikRules.check(it, gender = fields[JENIS_KELAMIN]?.rawText, today = today) }
        return KtpResult(fields, detections.missing, check)
    }

    /** Cleans the OCR text of one field (see [assemble]). */
    fun clean(label: String, text: String): String {
        if (label == NIK) return NikRules.cleanOcr(text)
        if (label == JENIS_KELAMIN) NikRules.parseGenderText(text)?.let { return it.printed }
        val plain = text.replace(LABEL_PREFIX, "").trim().replace(Regex("\\s+"), " ").uppercase()
        return when (label) {
            STATUS_PERKAWINAN -> MARITAL.firstOrNull { it in plain.replace('-', ' ') } ?: plain

            KEWARGANEGARAAN ->
                when {
                    "WNI" in plain || "INDONESIA" in plain -> "WNI"
                    "WNA" in plain -> "WNA"
                    else -> plain
                }

            else -> plain
        }
    }
}
