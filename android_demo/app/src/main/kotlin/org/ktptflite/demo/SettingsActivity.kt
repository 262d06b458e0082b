package org.ktptflite.demo

import android.app.Activity
import android.content.Context
import android.content.Intent
import android.os.Bundle
import android.widget.RadioButton
import android.widget.SeekBar
import androidx.appcompat.app.AppCompatActivity
import java.util.Locale
import org.ktptflite.demo.databinding.ActivitySettingsBinding

/** Detector runtime, score threshold, threads, delegate and the field reader; returned to the caller. */
class SettingsActivity : AppCompatActivity() {
    private lateinit var binding: ActivitySettingsBinding
    private var settings = DetectorSettings()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivitySettingsBinding.inflate(layoutInflater)
        setContentView(binding.root)
        settings = DetectorSettings.fromBundle(savedInstanceState ?: intent.extras)

        for (choice in RuntimeChoice.entries) {
            val button = RadioButton(this)
            button.id = RUNTIME_IDS + choice.ordinal
            button.setText(choice.label)
            binding.runtimes.addView(button)
        }
        binding.runtimes.check(RUNTIME_IDS + settings.runtime.ordinal)
        binding.runtimes.setOnCheckedChangeListener { _, id ->
            update(settings.copy(runtime = RuntimeChoice.entries[id - RUNTIME_IDS]))
        }
        binding.threshold.max = 100
        binding.threshold.progress = (settings.threshold * 100).toInt()
        binding.threshold.setOnSeekBarChangeListener(
            object : SeekBar.OnSeekBarChangeListener {
                override fun onProgressChanged(seekBar: SeekBar, progress: Int, fromUser: Boolean) {
                    update(settings.copy(threshold = progress / 100f))
                }

                override fun onStartTrackingTouch(seekBar: SeekBar) = Unit

                override fun onStopTrackingTouch(seekBar: SeekBar) = Unit
            }
        )
        binding.threads.max = DetectorSettings.THREAD_CHOICES.last - DetectorSettings.THREAD_CHOICES.first
        binding.threads.progress = settings.threads - DetectorSettings.THREAD_CHOICES.first
        binding.threads.setOnSeekBarChangeListener(
            object : SeekBar.OnSeekBarChangeListener {
                override fun onProgressChanged(seekBar: SeekBar, progress: Int, fromUser: Boolean) {
                    update(settings.copy(threads = progress + DetectorSettings.THREAD_CHOICES.first))
                }

                override fun onStartTrackingTouch(seekBar: SeekBar) = Unit

                override fun onStopTrackingTouch(seekBar: SeekBar) = Unit
            }
        )
        for (delegate in Delegate.entries) {
            val button = RadioButton(this)
            button.id = delegate.ordinal + 1
            button.text = delegate.name
            binding.delegates.addView(button)
        }
        binding.delegates.check(settings.delegate.ordinal + 1)
        binding.delegates.setOnCheckedChangeListener { _, id ->
            update(settings.copy(delegate = Delegate.entries[id - 1]))
        }
        for (choice in ReaderChoice.entries) {
            val button = RadioButton(this)
            button.id = READER_IDS + choice.ordinal
            button.setText(choice.label)
            binding.readers.addView(button)
        }
        binding.readers.check(READER_IDS + settings.reader.ordinal)
        binding.readers.setOnCheckedChangeListener { _, id ->
            update(settings.copy(reader = ReaderChoice.entries[id - READER_IDS]))
        }
        binding.done.setOnClickListener {
            setResult(Activity.RESULT_OK, settings.toIntent())
            finish()
        }
        update(settings)
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putAll(settings.toBundle())
    }

    private fun update(newSettings: DetectorSettings) {
        settings = newSettings
        binding.runtimeExplanation.setText(settings.runtime.explanation)
        binding.thresholdValue.text = String.format(Locale.ROOT, "%.2f", settings.threshold)
        binding.threadsValue.text = settings.threads.toString()
        binding.delegateExplanation.setText(settings.delegate.explanation)
        binding.readerExplanation.setText(settings.reader.explanation)
    }

    companion object {
        // View ids of the generated radio buttons: delegates from 1, then readers, then runtimes.
        private const val READER_IDS = 100
        private const val RUNTIME_IDS = 200

        fun intent(context: Context, settings: DetectorSettings): Intent =
            Intent(context, SettingsActivity::class.java).putExtras(settings.toBundle())
    }
}
