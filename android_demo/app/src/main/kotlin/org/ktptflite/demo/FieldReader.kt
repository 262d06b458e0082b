package org.ktptflite.demo

import android.content.Context
import android.graphics.Bitmap
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.time.LocalDate
import org.ktptflite.core.ArgbWindow
import org.ktptflite.core.BoxMapper
import org.ktptflite.core.CtcDecoder
import org.ktptflite.core.FieldResult
import org.ktptflite.core.PixelBox
import org.ktptflite.core.ReaderCrop
import org.ktptflite.core.ReaderCropConfig
import org.ktptflite.core.ReaderField
import org.ktptflite.core.ReaderModel
import org.ktptflite.core.ScanReader
import org.ktptflite.core.ScanReading
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.support.metadata.MetadataExtractor

/**
 * Reads the five field values with the project's int8 CTC reader (`ktp_reader_int8.tflite` in the
 * assets) in the LiteRT [Interpreter]: one crop per detected box (ktp-core [ReaderCrop.deskewedCrop],
 * the crop `ktpconvert scan --reader` takes: along the line's slant in the box), decoded under each
 * field's grammar and the NIK checked (ktp-core [ScanReader]). Crops have the geometry the reader
 * was trained on, from the crop.txt in its metadata (ktp-core [ReaderModel.cropConfig]; a reader
 * without one gets the default margins at its input's size), as `ktpconvert scan --reader` crops.
 *
 * Throws java.io.IOException when the asset is missing and IllegalArgumentException when it is not a
 * reader this app can decode (shapes, types, charset, crop.txt). Not thread-safe: create, use and
 * close it on one background thread.
 */
class FieldReader(context: Context, threads: Int) : Closeable {
    private val config: ReaderCropConfig
    private val interpreter: Interpreter
    private val timeSteps: Int
    private val input: ByteBuffer

    init {
        val model = ModelAssets.load(context, ReaderModel.ASSET)
        val metadata = MetadataExtractor(model.duplicate())
        var cropFile: String? = null
        if (metadata.hasMetadata()) {
            ReaderModel.checkCharset(
                metadata.getAssociatedFile(ReaderModel.CHARSET_FILE).bufferedReader().use { it.readText() }
            )
            cropFile = packedFile(metadata, ReaderModel.CROP_FILE)
        }
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads))
        try {
            val crop = interpreter.getInputTensor(0)
            val logits = interpreter.getOutputTensor(0)
            config = ReaderModel.cropConfig(crop.shape(), cropFile)
            timeSteps = ReaderModel.timeSteps(crop.shape(), logits.shape(), config)
            require(crop.dataType() == DataType.UINT8 && logits.dataType() == DataType.FLOAT32) {
                "${ReaderModel.ASSET}: input ${crop.dataType()} and output ${logits.dataType()}; the app " +
                    "runs the int8 reader (uint8 pixels in, float32 logits out)"
            }
        } catch (error: IllegalArgumentException) {
            interpreter.close()
            throw error
        }
        input = ByteBuffer.allocateDirect(config.height * config.width * 3).order(ByteOrder.nativeOrder())
    }

    /**
     * The text of the file [name] packed in the model's metadata, or null when there is none:
     * MetadataExtractor.getAssociatedFile throws IllegalArgumentException for a name the model
     * does not pack (and IllegalStateException for metadata without packed files, which a reader
     * with its charset is not).
     */
    private fun packedFile(metadata: MetadataExtractor, name: String): String? {
        val stream =
            try {
                metadata.getAssociatedFile(name)
            } catch (error: IllegalArgumentException) {
                return null
            }
        return stream.bufferedReader().use { it.readText() }
    }

    /**
     * Reads the fields of [fields], whose boxes are pixels of the upright analysis frame of
     * [analysisWidth] x [analysisHeight], from [frame]: an upright frame of the same view (the
     * full-resolution capture, or the analysis frame itself). The boxes are scaled to it.
     */
    fun read(
        fields: FieldResult,
        analysisWidth: Int,
        analysisHeight: Int,
        frame: Bitmap,
        today: LocalDate = LocalDate.now()
    ): ScanReading {
        val logits =
            fields.fields.associate { field ->
                val box = BoxMapper.betweenFrames(field.box, analysisWidth, analysisHeight, frame.width, frame.height)
                ReaderField.fromId(field.label) to logits(frame, box)
            }
        return ScanReader.read(logits, today)
    }

    /** The reader's logits [T][NUM_CLASSES] for the deskewed crop of [box] (pixels of [frame]). */
    private fun logits(frame: Bitmap, box: PixelBox): Array<FloatArray> {
        // Deskewed, as `ktpconvert scan --reader` crops. Copy out only the pixels the angle and the
        // crop read (two small windows): a full-resolution frame is tens of megabytes.
        val crop =
            ReaderCrop.deskewedCrop(frame.width, frame.height, box, config) { window ->
                val pixels = IntArray(window.width * window.height)
                frame.getPixels(pixels, 0, window.width, window.left, window.top, window.width, window.height)
                ArgbWindow(pixels, window.width, window.height, window.left, window.top, frame.width, frame.height)
            }
        input.rewind()
        input.put(crop.pixels)
        input.rewind()
        val output = Array(1) { Array(timeSteps) { FloatArray(CtcDecoder.NUM_CLASSES) } }
        interpreter.run(input, output)
        return output[0]
    }

    override fun close() = interpreter.close()
}
