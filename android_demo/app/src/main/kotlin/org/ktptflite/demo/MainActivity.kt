package org.ktptflite.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.os.Bundle
import android.widget.Toast
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageCapture
import androidx.camera.core.ImageCaptureException
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.AspectRatioStrategy
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import java.io.IOException
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.ktptflite.core.BoxMapper
import org.ktptflite.core.KtpResultAssembler
import org.ktptflite.core.ReaderModel
import org.ktptflite.demo.databinding.ActivityMainBinding

/**
 * Camera screen: live preview, field boxes over it, capture guide, and the
 * buttons to capture a result, change settings and read the privacy note.
 *
 * Analysis runs on a single background executor with KEEP_ONLY_LATEST, so a
 * slow model drops frames instead of queueing them. Capture reads the fields of
 * the last analysed frame: with the KTP reader from a full-resolution
 * ImageCapture frame (the same boxes, scaled), with ML Kit from the analysis
 * frame. Nothing is stored or sent.
 */
class MainActivity :
    AppCompatActivity(),
    ObjectDetectorHelper.DetectorListener {
    private lateinit var binding: ActivityMainBinding
    private lateinit var backgroundExecutor: ExecutorService
    private lateinit var detectorHelper: ObjectDetectorHelper
    private var settings = DetectorSettings()
    private var textReader: TextReader? = null
    private var imageCapture: ImageCapture? = null

    /** Created, used and closed on [backgroundExecutor] only. */
    private var fieldReader: FieldReader? = null

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
        backgroundExecutor.execute {
            detectorHelper.clear()
            fieldReader?.close()
            fieldReader = null
        }
        backgroundExecutor.shutdown()
    }

    private fun applySettings(newSettings: DetectorSettings) {
        settings = newSettings
        if (settings.reader != ReaderChoice.ML_KIT) {
            textReader?.close()
            textReader = null
        }
        backgroundExecutor.execute {
            detectorHelper.settings = newSettings
            detectorHelper.setup()
            // Recreated on the next capture, with the new thread count.
            fieldReader?.close()
            fieldReader = null
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
            // The same 4:3 selector: the capture shows the analysis frame's view at the highest
            // resolution, so the analysis boxes scale to it (BoxMapper.betweenFrames).
            val capture = ImageCapture.Builder()
                .setResolutionSelector(resolution)
                .setCaptureMode(ImageCapture.CAPTURE_MODE_MINIMIZE_LATENCY)
                .build()
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis, capture)
            imageCapture = capture
        }, ContextCompat.getMainExecutor(this))
    }

    private fun capture() {
        val frame = lastFrame
        if (frame == null || frame.fields.fields.isEmpty()) {
            Toast.makeText(this, R.string.no_fields_yet, Toast.LENGTH_SHORT).show()
            return
        }
        binding.status.setText(R.string.reading_text)
        when (settings.reader) {
            ReaderChoice.KTP_READER -> captureAndRead(frame)

            ReaderChoice.ML_KIT -> {
                val reader = textReader ?: TextReader().also { textReader = it }
                reader.read(frame) { texts ->
                    val result = KtpResultAssembler.assemble(frame.fields, texts)
                    startActivity(ResultActivity.intent(this, result, getString(R.string.nik_not_read)))
                }
            }
        }
    }

    /** Takes a full-resolution picture and reads [frame]'s fields from it (the analysis frame if that fails). */
    private fun captureAndRead(frame: DetectionFrame) {
        val capture = imageCapture
        if (capture == null) {
            backgroundExecutor.execute { readFields(frame, frame.upright) }
            return
        }
        capture.takePicture(
            backgroundExecutor,
            object : ImageCapture.OnImageCapturedCallback() {
                override fun onCaptureSuccess(image: ImageProxy) {
                    val rotation = image.imageInfo.rotationDegrees
                    val buffer = image.use { it.toBitmap() }
                    val picture = ObjectDetectorHelper.upright(buffer, rotation)
                    if (picture !== buffer) buffer.recycle()
                    val sameView =
                        BoxMapper.sameView(frame.upright.width, frame.upright.height, picture.width, picture.height)
                    readFields(frame, if (sameView) picture else frame.upright)
                    picture.recycle() // tens of megabytes; the crops are read
                }

                override fun onError(exception: ImageCaptureException) = readFields(frame, frame.upright)
            }
        )
    }

    /** On [backgroundExecutor]: runs the KTP reader on [image] (upright) and shows the result. */
    private fun readFields(frame: DetectionFrame, image: Bitmap) {
        val reading =
            try {
                val reader = fieldReader ?: FieldReader(this, settings.threads).also { fieldReader = it }
                reader.read(frame.fields, frame.upright.width, frame.upright.height, image)
            } catch (error: IOException) {
                toast(getString(R.string.reader_missing, ReaderModel.ASSET))
                null
            } catch (error: IllegalArgumentException) {
                toast(error.message ?: error.toString())
                null
            } catch (error: IllegalStateException) {
                toast(error.message ?: error.toString())
                null
            }
        runOnUiThread {
            val intent =
                if (reading != null) {
                    ResultActivity.intent(this, frame.fields, reading)
                } else {
                    val boxesOnly = KtpResultAssembler.assemble(frame.fields, emptyMap())
                    ResultActivity.intent(this, boxesOnly, getString(R.string.reader_unavailable))
                }
            startActivity(intent)
        }
    }

    private fun toast(message: String) = runOnUiThread { Toast.makeText(this, message, Toast.LENGTH_LONG).show() }

    override fun onResults(frame: DetectionFrame) {
        lastFrame = frame
        runOnUiThread {
            binding.overlay.setResults(frame.fields)
            binding.status.text = getString(
                R.string.status_line,
                frame.fields.fields.size,
                frame.inferenceMillis,
                frame.backend
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
