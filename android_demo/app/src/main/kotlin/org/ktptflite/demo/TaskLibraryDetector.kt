package org.ktptflite.demo

import android.content.Context
import android.graphics.Bitmap
import org.ktptflite.core.DetectorRuntime
import org.ktptflite.core.PixelBox
import org.ktptflite.core.ReturnedDetection
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.support.image.TensorImage
import org.tensorflow.lite.task.core.BaseOptions
import org.tensorflow.lite.task.vision.detector.ObjectDetector

/**
 * The TFLite Task Library [ObjectDetector] (tensorflow-lite-task-vision).
 *
 * It stretches the image to the model input on our half-pixel grid and returns
 * whole-pixel boxes with the origin truncated and the size rounded
 * (convert/RUNTIMES.md), undone by RuntimeBoxes for [DetectorRuntime.TASK_LIBRARY].
 */
class TaskLibraryDetector private constructor(
    private val detector: ObjectDetector,
    // The Task Library reads the mapped model in place: keep it referenced while the detector lives.
    @Suppress("unused") private val model: DetectorModel,
    override val backend: String
) : RuntimeDetector {
    override val runtime = DetectorRuntime.TASK_LIBRARY

    override fun detect(upright: Bitmap): List<ReturnedDetection> =
        detector.detect(TensorImage.fromBitmap(upright)).mapNotNull { detection ->
            val category = detection.categories.firstOrNull() ?: return@mapNotNull null
            val rect = detection.boundingBox
            ReturnedDetection(
                PixelBox(rect.left.toDouble(), rect.top.toDouble(), rect.right.toDouble(), rect.bottom.toDouble()),
                category.index,
                category.label,
                category.score.toDouble()
            )
        }

    override fun close() = detector.close()

    companion object {
        /**
         * A detector for [model] with the threshold, threads and delegate of [settings];
         * [warn] hears when the GPU is not supported and the CPU runs instead.
         */
        fun create(
            context: Context,
            model: DetectorModel,
            settings: DetectorSettings,
            warn: (String) -> Unit
        ): TaskLibraryDetector {
            val base = BaseOptions.builder().setNumThreads(settings.threads)
            var delegate = settings.delegate
            when (settings.delegate) {
                Delegate.CPU -> Unit

                Delegate.NNAPI -> base.useNnapi()

                Delegate.GPU ->
                    if (CompatibilityList().isDelegateSupportedOnThisDevice) {
                        base.useGpu()
                    } else {
                        warn(context.getString(R.string.gpu_not_supported))
                        delegate = Delegate.CPU
                    }
            }
            val options = ObjectDetector.ObjectDetectorOptions.builder()
                .setBaseOptions(base.build())
                .setScoreThreshold(settings.threshold)
                .setMaxResults(ObjectDetectorHelper.MAX_RESULTS)
                .build()
            val detector = ObjectDetector.createFromBufferAndOptions(model.buffer, options)
            return TaskLibraryDetector(detector, model, "Task Library · ${delegate.name}")
        }
    }
}
