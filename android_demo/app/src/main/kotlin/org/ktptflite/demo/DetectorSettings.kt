package org.ktptflite.demo

import android.content.Intent
import android.os.Bundle
import androidx.annotation.StringRes
import org.ktptflite.core.DetectionSelector
import org.ktptflite.core.DetectorRuntime

/**
 * What runs the detector. Both return whole-pixel boxes of the frame with their
 * own bias, which ktp-core removes for [runtime] (RuntimeBoxes).
 */
enum class RuntimeChoice(val runtime: DetectorRuntime, @StringRes val label: Int, @StringRes val explanation: Int) {
    /** MediaPipe Tasks `ObjectDetector` (com.google.mediapipe:tasks-vision), the default. */
    MEDIAPIPE(DetectorRuntime.MEDIAPIPE, R.string.runtime_mediapipe, R.string.runtime_mediapipe_explained),

    /** TFLite Task Library `ObjectDetector` (org.tensorflow:tensorflow-lite-task-vision). */
    TASK_LIBRARY(DetectorRuntime.TASK_LIBRARY, R.string.runtime_task_library, R.string.runtime_task_library_explained)
}

/**
 * Where the model runs, picked when the detector is created. MediaPipe Tasks
 * has CPU and GPU only: there NNAPI runs on the CPU (the app says so).
 */
enum class Delegate(@StringRes val explanation: Int) {
    CPU(R.string.delegate_cpu_explained),
    NNAPI(R.string.delegate_nnapi_explained),

    // The SSD post-process op (TFLite_Detection_PostProcess) has no GPU kernel,
    // so it falls back to the CPU, and a fully int8 graph gains little on GPU.
    GPU(R.string.delegate_gpu_explained)
}

/** What reads the field values after Capture. Both run on the phone. */
enum class ReaderChoice(@StringRes val label: Int, @StringRes val explanation: Int) {
    /** The project's int8 CTC reader (FieldReader) on the full-resolution capture. */
    KTP_READER(R.string.reader_ktp, R.string.reader_ktp_explained),

    /** ML Kit's bundled Latin text recognition (TextReader) on the analysis frame. */
    ML_KIT(R.string.reader_mlkit, R.string.reader_mlkit_explained)
}

/** Detector and reader settings, kept in memory for this session only (never persisted). */
data class DetectorSettings(
    val threshold: Float = DetectionSelector.DEFAULT_THRESHOLD.toFloat(),
    val threads: Int = 2,
    val delegate: Delegate = Delegate.CPU,
    val reader: ReaderChoice = ReaderChoice.KTP_READER,
    val runtime: RuntimeChoice = RuntimeChoice.MEDIAPIPE
) {
    fun toBundle(): Bundle = Bundle().apply {
        putString(KEY_RUNTIME, runtime.name)
        putFloat(KEY_THRESHOLD, threshold)
        putInt(KEY_THREADS, threads)
        putString(KEY_DELEGATE, delegate.name)
        putString(KEY_READER, reader.name)
    }

    fun toIntent(): Intent = Intent().putExtras(toBundle())

    companion object {
        private const val KEY_THRESHOLD = "threshold"
        private const val KEY_THREADS = "threads"
        private const val KEY_DELEGATE = "delegate"
        private const val KEY_READER = "reader"
        private const val KEY_RUNTIME = "runtime"
        val THREAD_CHOICES = 1..4

        fun fromBundle(bundle: Bundle?): DetectorSettings {
            val defaults = DetectorSettings()
            if (bundle == null) return defaults
            return DetectorSettings(
                threshold = bundle.getFloat(KEY_THRESHOLD, defaults.threshold),
                threads = bundle.getInt(KEY_THREADS, defaults.threads).coerceIn(THREAD_CHOICES),
                delegate =
                    Delegate.entries.firstOrNull { it.name == bundle.getString(KEY_DELEGATE) } ?: defaults.delegate,
                reader = ReaderChoice.entries.firstOrNull {
                    it.name == bundle.getString(KEY_READER)
                } ?: defaults.reader,
                runtime =
                    RuntimeChoice.entries.firstOrNull { it.name == bundle.getString(KEY_RUNTIME) } ?: defaults.runtime
            )
        }
    }
}
