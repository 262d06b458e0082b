package org.ktptflite.demo

import android.content.Context
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import org.tensorflow.lite.schema.TensorType
import org.tensorflow.lite.support.metadata.MetadataExtractor
import org.tensorflow.lite.support.metadata.schema.AssociatedFileType

/**
 * The detector model and what the runtimes need to know of it.
 *
 * [buffer] is memory-mapped and must stay referenced while a detector made from
 * it lives: MediaPipe Tasks reads a direct buffer through its address without
 * copying it (BaseOptionsUtils.createExternalFileFromBuffer).
 */
class DetectorModel(
    val buffer: ByteBuffer,
    /** Class names in class-id order, from the metadata's label file. */
    val labels: List<String>,
    /** Input tensor [1, height, width, 3]: the size each runtime stretches the image to. */
    val inputWidth: Int,
    val inputHeight: Int,
    /** A uint8 input (the full-int8 model); else float32 with normalisation metadata. */
    val uint8Input: Boolean
)

/**
 * The model delivered by `ktpconvert android-assets` and what its metadata says.
 *
 * Labels come from the model's own metadata (the label file attached to the
 * category output), never from a list in the app.
 */
object ModelAssets {
    /** Same name as MODEL_ASSET in ktp_tflite.convert.android_assets. */
    const val MODEL_ASSET = "ktp_detector.tflite"

    /** Memory-maps a model asset (stored uncompressed, see app/build.gradle.kts). */
    fun load(context: Context, asset: String = MODEL_ASSET): ByteBuffer {
        context.assets.openFd(asset).use { descriptor ->
            FileInputStream(descriptor.fileDescriptor).use { stream ->
                return stream.channel.map(
                    FileChannel.MapMode.READ_ONLY,
                    descriptor.startOffset,
                    descriptor.declaredLength
                )
            }
        }
    }

    /** Loads the detector asset and reads its labels, input size and input type from the model. */
    fun detector(context: Context): DetectorModel {
        val buffer = load(context)
        val labels = labelsFromMetadata(buffer)
        val extractor = MetadataExtractor(buffer.duplicate())
        val shape = extractor.getInputTensorShape(0)
        check(shape.size == 4 && shape[0] == 1 && shape[1] > 0 && shape[2] > 0 && shape[3] == 3) {
            "$MODEL_ASSET input is ${shape.contentToString()}, not [1, height, width, 3]; " +
                "deliver it with `ktpconvert android-assets`"
        }
        return DetectorModel(
            buffer = buffer,
            labels = labels,
            inputWidth = shape[2],
            inputHeight = shape[1],
            uint8Input = extractor.getInputTensorType(0) == TensorType.UINT8
        )
    }

    /** Labels in class-id order from the TENSOR_VALUE_LABELS file of the model metadata. */
    fun labelsFromMetadata(model: ByteBuffer): List<String> {
        val extractor = MetadataExtractor(model.duplicate())
        check(extractor.hasMetadata()) {
            "$MODEL_ASSET has no metadata; deliver it with `ktpconvert android-assets MODEL.tflite`"
        }
        for (output in 0 until extractor.outputTensorCount) {
            val tensor = extractor.getOutputTensorMetadata(output) ?: continue
            for (index in 0 until tensor.associatedFilesLength()) {
                val file = tensor.associatedFiles(index)
                if (file.type() == AssociatedFileType.TENSOR_VALUE_LABELS) {
                    return extractor.getAssociatedFile(file.name()).bufferedReader().useLines { lines ->
                        lines.map { it.trim() }.filter { it.isNotEmpty() }.toList()
                    }
                }
            }
        }
        error("$MODEL_ASSET metadata has no label file; deliver it with `ktpconvert android-assets`")
    }
}
