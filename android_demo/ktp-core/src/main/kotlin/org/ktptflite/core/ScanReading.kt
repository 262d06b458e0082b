package org.ktptflite.core

import java.time.LocalDate

/*
 * From the field reader's logits to the five values and the NIK verdict.
 *
 * Each field is decoded under its grammar (CtcDecoder.decodeField); the NIK
 * as read (digits only, no OCR clean-up) goes through NikRules.check with the
 * Jenis Kelamin as read, as ktp_tflite.train.reader_grammar.nik_report does
 * on the Python side.
 */

/**
 * The fields read from one capture.
 *
 * [fields] holds a [FieldReading] per field that had a box (in [ReaderField] order), [missing]
 * the others. [nikCheck] is null when no NIK was read; otherwise NikRules.check of the NIK with
 * the Jenis Kelamin read (when it was read): province, birth date, serial, gender. [genderAgrees]
 * is true or false when both the NIK parses and the Jenis Kelamin was read and readable, else null.
 */
data class ScanReading(
    val fields: Map<ReaderField, FieldReading>,
    val missing: List<ReaderField>,
    val nikCheck: NikCheck?,
    val genderAgrees: Boolean?
) {
    operator fun get(field: ReaderField): FieldReading? = fields[field]
}

object ScanReader {
    /**
     * Decodes each field's logits ([time steps][CtcDecoder.NUM_CLASSES], as the reader's
     * `logits` output holds them for one crop) and checks the NIK.
     *
     * A vocabulary field none of whose values fits in the time steps ([FieldReading.complete]
     * false) counts as not read for the gender cross-check.
     */
    fun read(logits: Map<ReaderField, Array<FloatArray>>, today: LocalDate = LocalDate.now()): ScanReading {
        val fields = linkedMapOf<ReaderField, FieldReading>()
        for (field in ReaderField.entries) {
            logits[field]?.let { fields[field] = CtcDecoder.decodeField(it, field) }
        }
        val printedGender = fields[ReaderField.JENIS_KELAMIN]?.takeIf { it.complete }?.text
        val check = fields[ReaderField.NIK]?.let { NikRules.check(it.text, gender = printedGender, today = today) }
        val agrees =
            if (check?.info == null || printedGender == null || check.reason == NikReason.GENDER_UNREADABLE) {
                null
            } else {
                check.reason != NikReason.GENDER_MISMATCH
            }
        return ScanReading(fields, ReaderField.entries.filter { it !in fields }, check, agrees)
    }
}
