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
import org.ktptflite.core.KtpResult
import org.ktptflite.demo.databinding.ActivityResultBinding

/**
 * The structured fields of one capture and the NIK verdict.
 *
 * Nothing is stored unless the user taps Save, which writes one JSON file to
 * the app's private storage (no other app can read it; nothing is uploaded).
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
            row.text = String.format(Locale.ROOT, "%s: %s  (%.2f)", label, value, score)
            row.textSize = 18f
            binding.fields.addView(row)
        }
        extras.getStringArrayList(KEY_MISSING)?.takeIf { it.isNotEmpty() }?.let {
            binding.missing.text = getString(R.string.missing_fields, it.joinToString(", "))
        }
        binding.nikCheck.text = extras.getString(KEY_NIK_MESSAGE)
            ?: getString(if (extras.getBoolean(KEY_TEXT_ON)) R.string.nik_not_read else R.string.text_recognition_off)
        binding.saveButton.setOnClickListener { save(extras) }
    }

    private fun save(extras: Bundle) {
        val json = JSONObject()
        for (label in extras.getStringArrayList(KEY_LABELS).orEmpty()) {
            json.put(
                label,
                JSONObject()
                    .put("value", extras.getString(KEY_VALUE + label) ?: JSONObject.NULL)
                    .put("score", extras.getDouble(KEY_SCORE + label))
            )
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
        private const val KEY_NIK_MESSAGE = "nik_message"
        private const val KEY_TEXT_ON = "text_recognition"

        fun intent(context: Context, result: KtpResult, textRecognition: Boolean): Intent {
            val intent = Intent(context, ResultActivity::class.java)
            intent.putStringArrayListExtra(KEY_LABELS, ArrayList(result.fields.keys))
            intent.putStringArrayListExtra(KEY_MISSING, ArrayList(result.missing))
            for ((label, field) in result.fields) {
                intent.putExtra(KEY_VALUE + label, field.value)
                intent.putExtra(KEY_SCORE + label, field.score)
            }
            result.nikCheck?.let { check ->
                val verdict = if (check.valid) context.getString(R.string.nik_valid) else check.message
                intent.putExtra(KEY_NIK_MESSAGE, verdict)
            }
            intent.putExtra(KEY_TEXT_ON, textRecognition)
            return intent
        }
    }
}
