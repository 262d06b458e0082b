package org.ktptflite.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Bundle
import android.widget.Toast
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.ktptflite.core.KtpResultAssembler
import org.ktptflite.demo.databinding.ActivityMainBinding

/**
 * Camera screen: live preview, field boxes over it, capture guide, and the
 * buttons to capture a result, change settings and read the privacy note.
 *
 * Analysis runs on a single background executor with KEEP_ONLY_LATEST, so a
 * slow model drops frames instead of queueing them.
 */
class MainActivity :
    AppCompatActivity(),
    ObjectDetectorHelper.DetectorListener {
    private lateinit var binding: ActivityMainBinding
    private lateinit var backgroundExecutor: ExecutorService
    private lateinit var detectorHelper: ObjectDetectorHelper
    private var settings = DetectorSettings()
    private var textReader: TextReader? = null

    @Volatile private var lastFrame: DetectionFrame? = null

    private val permissionRequest =
        registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
            if (granted) startCamera() else binding.status.setText(R.string.camera_permission_needed)
        }

    private val settingsRequest =
        registerForActivityResult(ActivityResultContracts.StartActivityForResult()) { result ->
            val data = result.data ?: return@registerForActivityResult
            applySettings(DetectorSettings.fromBundle(data.extras))
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)
        settings = DetectorSettings.fromBundle(savedInstanceState)
        backgroundExecutor = Executors.newSingleThreadExecutor()
        detectorHelper = ObjectDetectorHelper(this, settings, this)
        backgroundExecutor.execute { detectorHelper.setup() }
        binding.captureButton.setOnClickListener { capture() }
        binding.settingsButton.setOnClickListener {
            settingsRequest.launch(SettingsActivity.intent(this, settings))
        }
        binding.aboutButton.setOnClickListener { startActivity(Intent(this, AboutActivity::class.java)) }
        val granted = ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA)
        if (granted == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            permissionRequest.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putAll(settings.toBundle())
    }

    override fun onDestroy() {
        super.onDestroy()
        textReader?.close()
        backgroundExecutor.execute { detectorHelper.clear() }
        backgroundExecutor.shutdown()
    }

    private fun applySettings(newSettings: DetectorSettings) {
        settings = newSettings
        if (!settings.textRecognition) {
            textReader?.close()
            textReader = null
        }
        backgroundExecutor.execute {
            detectorHelper.settings = newSettings
            detectorHelper.setup()
        }
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val resolution = ResolutionSelector.Builder()
                .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY)
                .build()
            val preview = Preview.Builder().setResolutionSelector(resolution).build()
            preview.setSurfaceProvider(binding.viewFinder.surfaceProvider)
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(resolution)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(backgroundExecutor) { image -> detectorHelper.detect(image) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun capture() {
        val frame = lastFrame
        if (frame == null || frame.fields.fields.isEmpty()) {
            Toast.makeText(this, R.string.no_fields_yet, Toast.LENGTH_SHORT).show()
            return
        }
        if (!settings.textRecognition) {
            showResult(frame, emptyMap())
            return
        }
        val reader = textReader ?: TextReader().also { textReader = it }
        binding.status.setText(R.string.reading_text)
        reader.read(frame) { texts -> showResult(frame, texts) }
    }

    private fun showResult(frame: DetectionFrame, texts: Map<String, String>) {
        val result = KtpResultAssembler.assemble(frame.fields, texts)
        startActivity(ResultActivity.intent(this, result, settings.textRecognition))
    }

    override fun onResults(frame: DetectionFrame) {
        lastFrame = frame
        runOnUiThread {
            binding.overlay.setResults(frame.fields)
            binding.status.text = getString(
                R.string.status_line,
                frame.fields.fields.size,
                frame.inferenceMillis,
                settings.delegate.name
            )
        }
    }

    override fun onError(error: String) {
        runOnUiThread {
            binding.overlay.clear()
            Toast.makeText(this, error, Toast.LENGTH_LONG).show()
        }
    }
}
