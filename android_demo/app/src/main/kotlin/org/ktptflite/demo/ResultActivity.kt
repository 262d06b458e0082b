package org.ktptflite.demo

import android.content.Context
import android.content.Intent
import android.os.Bundle
import android.widget.TextView
import android.widget.Toast
import androidx.appcompat.app.AppCompatActivity
import java.io.File
import java.util.Locale
import org.json.JSONObject
import org.ktptflite.core.FieldResult
import org.ktptflite.core.KtpResult
import org.ktptflite.core.NikCheck
import org.ktptflite.core.ReaderField
import org.ktptflite.core.ScanReading
import org.ktptflite.demo.databinding.ActivityResultBinding

/**
 * The five values of one capture, each with the reader's confidence (KTP reader) and the
 * detector's box score, and the NIK verdict.
 *
 * The values travel in the Intent only. Nothing is stored unless the user taps Save, which
 * writes one JSON file to the app's private storage (no other app can read it; nothing is sent).
 */
class ResultActivity : AppCompatActivity() {
    private lateinit var binding: ActivityResultBinding

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityResultBinding.inflate(layoutInflater)
        setContentView(binding.root)
        val extras = requireNotNull(intent.extras) { "ResultActivity needs a result" }
        val labels = extras.getStringArrayList(KEY_LABELS).orEmpty()
        for (label in labels) {
            val row = TextView(this)
            val value = extras.getString(KEY_VALUE + label) ?: getString(R.string.no_text)
            val score = extras.getDouble(KEY_SCORE + label)
            row.text =
                if (extras.containsKey(KEY_CONFIDENCE + label)) {
                    val confidence = extras.getDouble(KEY_CONFIDENCE + label)
                    String.format(Locale.ROOT, "%s: %s  (read %.2f · box %.2f)", label, value, confidence, score)
                } else {
                    String.format(Locale.ROOT, "%s: %s  (box %.2f)", label, value, score)
                }
            row.textSize = 18f
            binding.fields.addView(row)
        }
        extras.getStringArrayList(KEY_MISSING)?.takeIf { it.isNotEmpty() }?.let {
            binding.missing.text = getString(R.string.missing_fields, it.joinToString(", "))
        }
        binding.nikCheck.text = extras.getString(KEY_NIK_MESSAGE)
        binding.saveButton.setOnClickListener { save(extras) }
    }

    private fun save(extras: Bundle) {
        val json = JSONObject()
        for (label in extras.getStringArrayList(KEY_LABELS).orEmpty()) {
            val field =
                JSONObject()
                    .put("value", extras.getString(KEY_VALUE + label) ?: JSONObject.NULL)
                    .put("score", extras.getDouble(KEY_SCORE + label))
            if (extras.containsKey(KEY_CONFIDENCE + label)) {
                field.put("confidence", extras.getDouble(KEY_CONFIDENCE + label))
            }
            json.put(label, field)
        }
        json.put("nik_check", extras.getString(KEY_NIK_MESSAGE) ?: JSONObject.NULL)
        val folder = File(filesDir, "results").apply { mkdirs() }
        val target = File(folder, "ktp-${System.currentTimeMillis()}.json")
        val temporary = File(folder, ".${target.name}.tmp")
        temporary.writeText(json.toString(2))
        if (temporary.renameTo(target)) {
            Toast.makeText(this, getString(R.string.saved_to, target.name), Toast.LENGTH_SHORT).show()
        } else {
            temporary.delete()
            Toast.makeText(this, R.string.save_failed, Toast.LENGTH_LONG).show()
        }
    }

    companion object {
        private const val KEY_LABELS = "labels"
        private const val KEY_MISSING = "missing"
        private const val KEY_VALUE = "value_"
        private const val KEY_SCORE = "score_"
        private const val KEY_CONFIDENCE = "confidence_"
        private const val KEY_NIK_MESSAGE = "nik_message"

        /**
         * The result of ML Kit text (or of the boxes alone): [noNik] is shown in place of the NIK
         * verdict when there is none.
         */
        fun intent(context: Context, result: KtpResult, noNik: String): Intent {
            val intent = Intent(context, ResultActivity::class.java)
            intent.putStringArrayListExtra(KEY_LABELS, ArrayList(result.fields.keys))
            intent.putStringArrayListExtra(KEY_MISSING, ArrayList(result.missing))
            for ((label, field) in result.fields) {
                intent.putExtra(KEY_VALUE + label, field.value)
                intent.putExtra(KEY_SCORE + label, field.score)
            }
            val check = result.nikCheck
            val verdict =
                when {
                    check == null -> noNik
                    check.valid -> context.getString(R.string.nik_valid)
                    else -> check.message
                }
            return intent.putExtra(KEY_NIK_MESSAGE, verdict)
        }

        /** The result of the KTP reader on the boxes of [fields]. */
        fun intent(context: Context, fields: FieldResult, reading: ScanReading): Intent {
            val intent = Intent(context, ResultActivity::class.java)
            intent.putStringArrayListExtra(KEY_LABELS, ArrayList(fields.fields.map { it.label }))
            intent.putStringArrayListExtra(KEY_MISSING, ArrayList(fields.missing))
            for (detection in fields.fields) {
                val field = reading[ReaderField.fromId(detection.label)]
                // A vocabulary field none of whose values fits was not read.
                val value = field?.takeIf { it.complete || it.method == "greedy" }?.text?.takeIf { it.isNotEmpty() }
                intent.putExtra(KEY_VALUE + detection.label, value)
                intent.putExtra(KEY_SCORE + detection.label, detection.score)
                field?.let { intent.putExtra(KEY_CONFIDENCE + detection.label, it.confidence) }
            }
            return intent.putExtra(KEY_NIK_MESSAGE, verdict(context, reading.nikCheck, reading.genderAgrees))
        }

        /** The NIK verdict: valid or why not, what the NIK encodes, and whether the printed gender agrees. */
        private fun verdict(context: Context, check: NikCheck?, genderAgrees: Boolean?): String {
            check ?: return context.getString(R.string.nik_not_read)
            val lines = mutableListOf(if (check.valid) context.getString(R.string.nik_valid_read) else check.message)
            check.info?.let { info ->
                lines +=
                    context.getString(
                        R.string.nik_details,
                        info.province,
                        info.birthDate.toString(),
                        info.gender.printed
                    )
                lines +=
                    context.getString(
                        when (genderAgrees) {
                            true -> R.string.gender_agrees
                            false -> R.string.gender_disagrees
                            null -> R.string.gender_not_checked
                        }
                    )
            }
            return lines.joinToString("\n")
        }
    }
}
