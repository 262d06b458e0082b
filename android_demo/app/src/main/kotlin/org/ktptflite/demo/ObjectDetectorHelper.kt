package org.ktptflite.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Matrix
import android.os.SystemClock
import androidx.camera.core.ImageProxy
import java.io.IOException
import org.ktptflite.core.DetectionSelector
import org.ktptflite.core.DetectorRuntime
import org.ktptflite.core.FieldResult
import org.ktptflite.core.ImageGeometry
import org.ktptflite.core.NormBox
import org.ktptflite.core.PixelBox
import org.ktptflite.core.RawDetections
import org.ktptflite.core.RuntimeBoxes
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.support.image.TensorImage
import org.tensorflow.lite.support.metadata.MetadataExtractor
import org.tensorflow.lite.task.core.BaseOptions
import org.tensorflow.lite.task.vision.detector.ObjectDetector

/** One analysed camera frame: the chosen field boxes and the upright image they refer to. */
class DetectionFrame(val fields: FieldResult, val upright: Bitmap, val inferenceMillis: Long)

/**
 * Owns the Task Library [ObjectDetector] and turns camera frames into [FieldResult]s.
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

    private var detector: ObjectDetector? = null
    private var labels: List<String> = emptyList()
    private var modelWidth = 0
    private var modelHeight = 0

    /** (Re)creates the detector with the current [settings]. */
    fun setup() {
        clear()
        val base = BaseOptions.builder().setNumThreads(settings.threads)
        when (settings.delegate) {
            Delegate.CPU -> Unit

            Delegate.NNAPI -> base.useNnapi()

            Delegate.GPU ->
                if (CompatibilityList().isDelegateSupportedOnThisDevice) {
                    base.useGpu()
                } else {
                    listener.onError(context.getString(R.string.gpu_not_supported))
                }
        }
        val options = ObjectDetector.ObjectDetectorOptions.builder()
            .setBaseOptions(base.build())
            .setScoreThreshold(settings.threshold)
            .setMaxResults(MAX_RESULTS)
            .build()
        try {
            val model = ModelAssets.load(context)
            labels = ModelAssets.labelsFromMetadata(model)
            // Input [1, height, width, 3]: the size the Task Library resizes each image to.
            val input = MetadataExtractor(model.duplicate()).getInputTensorShape(0)
            modelHeight = input[1]
            modelWidth = input[2]
            detector = ObjectDetector.createFromBufferAndOptions(model, options)
        } catch (error: IOException) {
            listener.onError(context.getString(R.string.model_missing, ModelAssets.MODEL_ASSET))
        } catch (error: IllegalStateException) {
            listener.onError(error.message ?: error.toString())
        } catch (error: IllegalArgumentException) {
            listener.onError(error.message ?: error.toString())
        }
    }

    fun clear() {
        detector?.close()
        detector = null
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
        val start = SystemClock.uptimeMillis()
        val detections = detector.detect(TensorImage.fromBitmap(upright))
        val elapsed = SystemClock.uptimeMillis() - start
        // The Task Library reports whole pixels of the image it was given, with
        // its rounding bias; RuntimeBoxes removes the bias, and dividing by the
        // image size gives back the normalised model-space boxes ktp-core expects.
        val width = upright.width
        val height = upright.height
        val raw = RawDetections(
            boxes = detections.map {
                val rect = it.boundingBox
                val box = RuntimeBoxes.photoBox(
                    DetectorRuntime.TASK_LIBRARY,
                    PixelBox(rect.left.toDouble(), rect.top.toDouble(), rect.right.toDouble(), rect.bottom.toDouble()),
                    width,
                    height,
                    modelWidth,
                    modelHeight
                )
                NormBox(box.top / height, box.left / width, box.bottom / height, box.right / width)
            },
            classes = detections.map { it.categories.first().index.toDouble() }.toDoubleArray(),
            scores = detections.map { it.categories.first().score.toDouble() }.toDoubleArray(),
            count = detections.size.toDouble()
        )
        val fields = DetectionSelector.select(raw, labels, geometry, settings.threshold.toDouble())
        listener.onResults(DetectionFrame(fields, upright, elapsed))
    }

    companion object {
        private const val MAX_RESULTS = 25

        /** [frame] turned clockwise by [rotationDegrees] (CameraX imageInfo.rotationDegrees): upright. */
        fun upright(frame: Bitmap, rotationDegrees: Int): Bitmap {
            if (rotationDegrees == 0) return frame
            val matrix = Matrix().apply { postRotate(rotationDegrees.toFloat()) }
            return Bitmap.createBitmap(frame, 0, 0, frame.width, frame.height, matrix, true)
        }
    }
}
