package org.ktptflite.demo

import android.graphics.Bitmap
import com.google.mlkit.vision.common.InputImage
import com.google.mlkit.vision.text.TextRecognition
import com.google.mlkit.vision.text.latin.TextRecognizerOptions
import java.io.Closeable
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlin.math.roundToInt
import org.ktptflite.core.PixelBox

/**
 * Reads the text of each detected field with on-device ML Kit (Latin script,
 * model bundled in the APK: nothing is downloaded or sent anywhere).
 */
class TextReader : Closeable {
    private val recognizer = TextRecognition.getClient(TextRecognizerOptions.DEFAULT_OPTIONS)

    /** Recognises every field crop of [frame]; [onDone] gets label -> text on the main thread. */
    fun read(frame: DetectionFrame, onDone: (Map<String, String>) -> Unit) {
        val fields = frame.fields.fields
        if (fields.isEmpty()) {
            onDone(emptyMap())
            return
        }
        val texts = ConcurrentHashMap<String, String>()
        val remaining = AtomicInteger(fields.size)
        for (field in fields) {
            val crop = crop(frame.upright, field.box)
            recognizer.process(InputImage.fromBitmap(crop, 0))
                .addOnSuccessListener { texts[field.label] = it.text }
                .addOnCompleteListener { if (remaining.decrementAndGet() == 0) onDone(texts.toMap()) }
        }
    }

    override fun close() = recognizer.close()

    private fun crop(image: Bitmap, box: PixelBox): Bitmap {
        // A little margin: OCR needs the whole glyphs, boxes are often tight.
        val padX = box.width * PADDING
        val padY = box.height * PADDING
        val left = (box.left - padX).roundToInt().coerceIn(0, image.width - 1)
        val top = (box.top - padY).roundToInt().coerceIn(0, image.height - 1)
        val right = (box.right + padX).roundToInt().coerceIn(left + 1, image.width)
        val bottom = (box.bottom + padY).roundToInt().coerceIn(top + 1, image.height)
        return Bitmap.createBitmap(image, left, top, right - left, bottom - top)
    }

    companion object {
        private const val PADDING = 0.08
    }
}
