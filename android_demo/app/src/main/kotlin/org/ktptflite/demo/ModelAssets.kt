package org.ktptflite.demo

import android.content.Context
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import org.tensorflow.lite.support.metadata.MetadataExtractor
import org.tensorflow.lite.support.metadata.schema.AssociatedFileType

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
