package org.ktptflite.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Matrix
import android.os.SystemClock
import androidx.camera.core.ImageProxy
import java.io.IOException
import org.ktptflite.core.ArgbWindow
import org.ktptflite.core.DetectionSelector
import org.ktptflite.core.DetectorRuntime
import org.ktptflite.core.FieldResult
import org.ktptflite.core.ImageGeometry
import org.ktptflite.core.ModelInput
import org.ktptflite.core.RawDetections
import org.ktptflite.core.ReturnedDetection
import org.ktptflite.core.RuntimeBoxes
import org.ktptflite.core.Zoom

/** One analysed camera frame: the chosen field boxes, the upright image they refer to, and what ran. */
class DetectionFrame(
    val fields: FieldResult,
    val upright: Bitmap,
    val inferenceMillis: Long,
    /** The runtime and delegate that ran, e.g. "MediaPipe · CPU". */
    val backend: String
)

/**
 * A detector runtime as [ObjectDetectorHelper] drives it ([MediaPipeDetector],
 * [TaskLibraryDetector]). Created, used and closed on the helper's thread.
 */
interface RuntimeDetector : AutoCloseable {
    /** Whose box rule applies to what [detect] returns (ktp-core RuntimeBoxes). */
    val runtime: DetectorRuntime

    /** The runtime and the delegate it really runs on, for the status line. */
    val backend: String

    /**
     * The detections of an ARGB_8888 [upright] (the helper hands it a presized
     * frame) exactly as the runtime returned them: whole pixels of [upright],
     * its index or -1, its label.
     *
     * @throws IllegalStateException if the runtime fails on the frame.
     */
    fun detect(upright: Bitmap): List<ReturnedDetection>
}

/**
 * Owns the detector of the chosen runtime ([DetectorSettings.runtime]) and
 * turns camera frames into [FieldResult]s.
 *
 * Call everything from one background thread (the CameraX analysis executor);
 * results and errors go to [listener] on that thread.
 */
class ObjectDetectorHelper(
    private val context: Context,
    var settings: DetectorSettings,
    private val listener: DetectorListener
) {
    /** Receives results and errors; implementations hop to the UI thread themselves. */
    interface DetectorListener {
        fun onError(error: String)

        fun onResults(frame: DetectionFrame)
    }

    private var detector: RuntimeDetector? = null

    /** The model [detector] was made from; referenced as long as it lives (see [DetectorModel]). */
    private var model: DetectorModel? = null

    /** (Re)creates the detector with the current [settings]. */
    fun setup() {
        clear()
        try {
            val model = ModelAssets.detector(context)
            detector =
                when (settings.runtime) {
                    RuntimeChoice.MEDIAPIPE -> MediaPipeDetector.create(context, model, settings, listener::onError)

                    RuntimeChoice.TASK_LIBRARY -> TaskLibraryDetector.create(
                        context,
                        model,
                        settings,
                        listener::onError
                    )
                }
            this.model = model
        } catch (error: IOException) {
            listener.onError(context.getString(R.string.model_missing, ModelAssets.MODEL_ASSET))
        } catch (error: IllegalStateException) {
            listener.onError(error.message ?: error.toString())
        } catch (error: IllegalArgumentException) {
            listener.onError(error.message ?: error.toString())
        }
    }

    /** Closes the detector (MediaPipe's graph, the Task Library's native handle). */
    fun clear() {
        detector?.close()
        detector = null
        model = null
    }

    /** CameraX analyzer entry point; closes [image]. */
    fun detect(image: ImageProxy) {
        val geometry = ImageGeometry(image.width, image.height, image.imageInfo.rotationDegrees)
        val frame = image.use { it.toBitmap() }
        detect(upright(frame, geometry.rotationDegrees), geometry)
    }

    /** Detects fields on an upright bitmap taken from a buffer described by [geometry]. */
    fun detect(upright: Bitmap, geometry: ImageGeometry) {
        if (detector == null) setup()
        val detector = detector ?: return
        val model = model ?: return
        val start = SystemClock.uptimeMillis()
        val first = detectPresized(detector, model, upright) ?: return
        // Two-pass zoom (ktp-core Zoom, as `ktpconvert evaluate --zoom`): a card narrower
        // than 45 % of the frame gets a second look at its crop, mapped back to the frame.
        val crop = Zoom.planCrop(first, model.labels, upright.width, upright.height)
        val raw =
            if (crop == null) {
                first
            } else {
                val cropped = Bitmap.createBitmap(upright, crop.left, crop.top, crop.width, crop.height)
                val second = detectPresized(detector, model, cropped) ?: return
                Zoom.finish(first, second, crop, upright.width, upright.height)
            }
        val elapsed = SystemClock.uptimeMillis() - start
        val fields = DetectionSelector.select(raw, model.labels, geometry, settings.threshold.toDouble())
        listener.onResults(DetectionFrame(fields, upright, elapsed, detector.backend))
    }

    /**
     * One pass of the detector on [image]: the runtime is handed its presized frame (ktp-core
     * ModelInput: resized as training resized it, each pixel repeated 4 x 4), so its own resize
     * changes nothing and its whole-pixel boxes are quarter model pixels (convert/RUNTIMES.md).
     * Returns the detections normalised to [image] with the runtime's bias removed
     * (RuntimeBoxes), or null after reporting a failure to the listener.
     */
    private fun detectPresized(detector: RuntimeDetector, model: DetectorModel, image: Bitmap): RawDetections? {
        val frame = presizedFrame(image, model.inputWidth, model.inputHeight)
        val returned =
            try {
                detector.detect(frame)
            } catch (error: IllegalStateException) {
                listener.onError(context.getString(R.string.detector_failed, error.message ?: error.toString()))
                return null
            }
        return RuntimeBoxes.rawDetections(
            detector.runtime,
            returned,
            model.labels,
            frame.width,
            frame.height,
            model.inputWidth,
            model.inputHeight,
            presized = true
        )
    }

    companion object {
        /** Detections each runtime returns per frame (both take it as their max results). */
        const val MAX_RESULTS = 25

        /** The presized frame of [upright] for a [modelWidth] x [modelHeight] model (ModelInput.presizedFrame). */
        fun presizedFrame(upright: Bitmap, modelWidth: Int, modelHeight: Int): Bitmap {
            val pixels = IntArray(upright.width * upright.height)
            upright.getPixels(pixels, 0, upright.width, 0, 0, upright.width, upright.height)
            val frame = ModelInput.presizedFrame(
                ArgbWindow(pixels, upright.width, upright.height),
                modelWidth,
                modelHeight
            )
            return Bitmap.createBitmap(frame.pixels, frame.width, frame.height, Bitmap.Config.ARGB_8888)
        }

        /** [frame] turned clockwise by [rotationDegrees] (CameraX imageInfo.rotationDegrees): upright. */
        fun upright(frame: Bitmap, rotationDegrees: Int): Bitmap {
            if (rotationDegrees == 0) return frame
            val matrix = Matrix().apply { postRotate(rotationDegrees.toFloat()) }
            return Bitmap.createBitmap(frame, 0, 0, frame.width, frame.height, matrix, true)
        }
    }
}
