package org.ktptflite.demo

import android.content.Context
import android.graphics.Bitmap
import com.google.mediapipe.framework.MediaPipeException
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.core.Delegate as MediaPipeDelegate
import com.google.mediapipe.tasks.vision.core.RunningMode
import com.google.mediapipe.tasks.vision.objectdetector.ObjectDetector
import org.ktptflite.core.DetectorRuntime
import org.ktptflite.core.PixelBox
import org.ktptflite.core.ReturnedDetection

/**
 * MediaPipe Tasks [ObjectDetector] (com.google.mediapipe:tasks-vision) in IMAGE mode.
 *
 * IMAGE mode because the analysis loop is synchronous: one background executor
 * with KEEP_ONLY_LATEST calls [detect] per frame and keeps the frame's boxes with
 * its bitmap. LIVE_STREAM would hand results to a listener later, with its own
 * frame dropping (flow limiting), which KEEP_ONLY_LATEST already does.
 *
 * What it returns (MediaPipe's sources, convert/RUNTIMES.md): on the CPU it
 * stretches the image to the model input with OpenCV on a corner-aligned grid
 * and truncates origin and size of each box to whole pixels; RuntimeBoxes
 * undoes that for [DetectorRuntime.MEDIAPIPE] with the model's input size. The
 * category index is -1 (it names the label instead), so the class comes from
 * the label. A uint8-input model is always resized on the CPU, even with the GPU
 * delegate (ImagePreprocessingGraph forces its CPU backend for uint8 tensors);
 * a float model on the GPU delegate would be resized on the GPU (a pixel-centre
 * grid the vectors do not cover), so [create] runs such a model on the CPU.
 */
class MediaPipeDetector private constructor(
    private val detector: ObjectDetector,
    // MediaPipe reads the mapped model through its address (no copy): keep it referenced while the detector lives.
    @Suppress("unused") private val model: DetectorModel,
    override val backend: String
) : RuntimeDetector {
    override val runtime = DetectorRuntime.MEDIAPIPE

    override fun detect(upright: Bitmap): List<ReturnedDetection> {
        // Not closed on purpose: MPImage.close() recycles the bitmap (BitmapImageContainer.close),
        // and the overlay and the readers still use it. MediaPipe copies the pixels into its packet.
        val image = BitmapImageBuilder(upright).build()
        val result =
            try {
                detector.detect(image)
            } catch (error: MediaPipeException) {
                throw IllegalStateException("MediaPipe: ${error.message}", error)
            }
        return result.detections().mapNotNull { detection ->
            val category = detection.categories().firstOrNull() ?: return@mapNotNull null
            val rect = detection.boundingBox()
            ReturnedDetection(
                PixelBox(rect.left.toDouble(), rect.top.toDouble(), rect.right.toDouble(), rect.bottom.toDouble()),
                category.index(),
                category.categoryName(),
                category.score().toDouble()
            )
        }
    }

    override fun close() = detector.close()

    companion object {
        /**
         * A detector for [model] with the threshold and delegate of [settings]
         * (MediaPipe has no thread setting); [warn] hears when the CPU runs instead
         * of the chosen delegate and why.
         *
         * @throws IllegalStateException if MediaPipe refuses the model on the CPU.
         */
        fun create(
            context: Context,
            model: DetectorModel,
            settings: DetectorSettings,
            warn: (String) -> Unit
        ): MediaPipeDetector {
            val tryGpu =
                when (settings.delegate) {
                    Delegate.CPU -> false

                    Delegate.NNAPI -> {
                        warn(context.getString(R.string.mediapipe_no_nnapi))
                        false
                    }

                    Delegate.GPU ->
                        if (model.uint8Input) {
                            true
                        } else {
                            warn(context.getString(R.string.mediapipe_gpu_float_input))
                            false
                        }
                }
            if (tryGpu) {
                try {
                    return build(context, model, settings, MediaPipeDelegate.GPU)
                } catch (error: MediaPipeException) {
                    warn(context.getString(R.string.gpu_failed, error.message ?: error.toString()))
                }
            }
            try {
                return build(context, model, settings, MediaPipeDelegate.CPU)
            } catch (error: MediaPipeException) {
                throw IllegalStateException(
                    "MediaPipe cannot run ${ModelAssets.MODEL_ASSET}: ${error.message}",
                    error
                )
            }
        }

        private fun build(
            context: Context,
            model: DetectorModel,
            settings: DetectorSettings,
            delegate: MediaPipeDelegate
        ): MediaPipeDetector {
            val base = BaseOptions.builder().setModelAssetBuffer(model.buffer).setDelegate(delegate).build()
            val options = ObjectDetector.ObjectDetectorOptions.builder()
                .setBaseOptions(base)
                .setRunningMode(RunningMode.IMAGE)
                .setScoreThreshold(settings.threshold)
                .setMaxResults(ObjectDetectorHelper.MAX_RESULTS)
                .build()
            val detector = ObjectDetector.createFromOptions(context, options)
            return MediaPipeDetector(detector, model, "MediaPipe · ${delegate.name}")
        }
    }
}
