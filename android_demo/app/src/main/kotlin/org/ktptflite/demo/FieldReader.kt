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
 * field's grammar and the NIK checked (ktp-core [ScanReader]).
 *
 * Throws java.io.IOException when the asset is missing and IllegalArgumentException when it is not a
 * reader this app can decode (shapes, types, charset). Not thread-safe: create, use and close it on
 * one background thread.
 */
class FieldReader(context: Context, threads: Int) : Closeable {
    private val config = ReaderCropConfig()
    private val interpreter: Interpreter
    private val timeSteps: Int
    private val input = ByteBuffer.allocateDirect(config.height * config.width * 3).order(ByteOrder.nativeOrder())

    init {
        val model = ModelAssets.load(context, ReaderModel.ASSET)
        val metadata = MetadataExtractor(model.duplicate())
        if (metadata.hasMetadata()) {
            ReaderModel.checkCharset(
                metadata.getAssociatedFile(ReaderModel.CHARSET_FILE).bufferedReader().use { it.readText() }
            )
        }
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads))
        try {
            val crop = interpreter.getInputTensor(0)
            val logits = interpreter.getOutputTensor(0)
            timeSteps = ReaderModel.timeSteps(crop.shape(), logits.shape(), config)
            require(crop.dataType() == DataType.UINT8 && logits.dataType() == DataType.FLOAT32) {
                "${ReaderModel.ASSET}: input ${crop.dataType()} and output ${logits.dataType()}; the app " +
                    "runs the int8 reader (uint8 pixels in, float32 logits out)"
            }
        } catch (error: IllegalArgumentException) {
            interpreter.close()
            throw error
        }
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
