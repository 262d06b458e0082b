package org.ktptflite.core

/*
 * Boxes as a detector runtime returns them, de-biased into photo pixels.
 *
 * The Kotlin twin of ktp_tflite.convert.runtimes.photo_box (same rule, same
 * vectors: section "runtime_boxes" of tests/vectors/ktp_vectors.json), so
 * change them together.
 */

/** The runtimes an app can run the detector through, by the names the Python side and the vectors use. */
enum class DetectorRuntime(val id: String) {
    /** The LiteRT interpreter fed by this toolkit's resize: float boxes, no bias. */
    LITERT("litert"),

    /** The TFLite Task Library `ObjectDetector`. */
    TASK_LIBRARY("task-library"),

    /** MediaPipe Tasks `ObjectDetector` (the demo app's default). */
    MEDIAPIPE("mediapipe");

    companion object {
        /** The runtime called [id] ("litert", "task-library" or "mediapipe"). */
        fun fromId(id: String): DetectorRuntime = entries.firstOrNull { it.id == id }
            ?: throw IllegalArgumentException(
                "unknown detector runtime '$id'; use one of ${entries.joinToString { it.id }}"
            )
    }
}

/**
 * One detection as a runtime returned it, before any mapping.
 *
 * [box] is the runtime's whole-pixel box of the photo it was given, as
 * PixelBox(x, y, x + w, y + h) (how both Android runtimes hand it: a RectF with
 * those edges). [index] is the category index the runtime reports, or -1 when
 * it reports none: MediaPipe Tasks clears the index once it has named the
 * label (its DetectionLabelIdToTextCalculator runs without keep_label_id), and
 * its Java `Category.index()` is then -1. [label] is the category name.
 */
data class ReturnedDetection(val box: PixelBox, val index: Int, val label: String, val score: Double)

/**
 * Maps a box as a runtime returned it to photo pixels without the runtime's bias.
 *
 * The Task Library and MediaPipe Tasks resize the photo themselves and return
 * whole-pixel boxes [x, y, w, h] of the photo they were given. What each does,
 * read from their sources and measured with `python -m ktp_tflite.convert.resize_probe`
 * (convert/RUNTIMES.md of the repository):
 * - TASK_LIBRARY samples the photo on our half-pixel grid, truncates the origin
 *   (float -> int) and rounds the size, so the origin is on average 0.5 px low:
 *   (x + 0.5, y + 0.5, x + 0.5 + w, y + 0.5 + h).
 * - MEDIAPIPE samples at x * scale (corner-aligned), 0.5 * (scale - 1) photo px
 *   left of our grid, so its boxes sit that far right (and below), and it
 *   truncates origin and size: with shiftX = 0.5 * (photoW / modelW - 1) and
 *   shiftY = 0.5 * (photoH / modelH - 1), left = x + 0.5 - shiftX,
 *   top = y + 0.5 - shiftY, right = left + w + 0.5, bottom = top + h + 0.5.
 * - LITERT (this toolkit's resize, float boxes) is unchanged: (x, y, x + w, y + h).
 *
 * When the runtime was given a presized frame ([ModelInput.presizedFrame], what
 * the app hands it) rather than the photo, every sample point of MediaPipe's grid
 * falls in the repeated block of the model pixel it stands for: shiftX = shiftY = 0,
 * the truncation alone is undone (`presized = true`).
 */
object RuntimeBoxes {
    /**
     * The de-biased box of [returned] in photo pixels (left, top, right, bottom).
     *
     * [returned] is the runtime's [x, y, w, h] as PixelBox(x, y, x + w, y + h),
     * which is how both Android runtimes hand it (a RectF with those edges).
     * The photo is the image given to the runtime, the model size its input
     * tensor's width and height; only MEDIAPIPE depends on them, and only when
     * the image was not [presized].
     */
    fun photoBox(
        runtime: DetectorRuntime,
        returned: PixelBox,
        photoWidth: Int,
        photoHeight: Int,
        modelWidth: Int,
        modelHeight: Int,
        presized: Boolean = false
    ): PixelBox {
        require(photoWidth > 0 && photoHeight > 0) { "photo size must be positive, got ${photoWidth}x$photoHeight" }
        require(modelWidth > 0 && modelHeight > 0) { "model size must be positive, got ${modelWidth}x$modelHeight" }
        val x = returned.left
        val y = returned.top
        val w = returned.width
        val h = returned.height
        return when (runtime) {
            DetectorRuntime.LITERT -> returned

            DetectorRuntime.TASK_LIBRARY -> PixelBox(x + 0.5, y + 0.5, x + 0.5 + w, y + 0.5 + h)

            DetectorRuntime.MEDIAPIPE -> {
                val shiftX = if (presized) 0.0 else 0.5 * (photoWidth.toDouble() / modelWidth - 1.0)
                val shiftY = if (presized) 0.0 else 0.5 * (photoHeight.toDouble() / modelHeight - 1.0)
                val left = x + 0.5 - shiftX
                val top = y + 0.5 - shiftY
                PixelBox(left, top, left + w + 0.5, top + h + 0.5)
            }
        }
    }

    /**
     * [photoBox] divided by the photo size: the normalised (ymin, xmin, ymax, xmax)
     * box of the upright image, the model space [DetectionSelector] selects in.
     */
    fun modelBox(
        runtime: DetectorRuntime,
        returned: PixelBox,
        photoWidth: Int,
        photoHeight: Int,
        modelWidth: Int,
        modelHeight: Int,
        presized: Boolean = false
    ): NormBox {
        val box = photoBox(runtime, returned, photoWidth, photoHeight, modelWidth, modelHeight, presized)
        return NormBox(box.top / photoHeight, box.left / photoWidth, box.bottom / photoHeight, box.right / photoWidth)
    }

    /**
     * A runtime's detections of one photo as the post-process outputs [DetectionSelector] takes.
     *
     * Boxes go through [modelBox] ([presized]: the runtime was given a presized
     * frame, whose normalised boxes are the photo's). The class of a detection is its index, or,
     * when the runtime reports none (-1, MediaPipe), the position of its label in
     * [labels] (the model's label file), as ktp_tflite.convert.runtimes.pixel_detections
     * does; a label not in [labels] gives -1, which the selection drops.
     */
    fun rawDetections(
        runtime: DetectorRuntime,
        detections: List<ReturnedDetection>,
        labels: List<String>,
        photoWidth: Int,
        photoHeight: Int,
        modelWidth: Int,
        modelHeight: Int,
        presized: Boolean = false
    ): RawDetections = RawDetections(
        boxes = detections.map {
            modelBox(runtime, it.box, photoWidth, photoHeight, modelWidth, modelHeight, presized)
        },
        classes = detections.map { classOf(it, labels).toDouble() }.toDoubleArray(),
        scores = detections.map { it.score }.toDoubleArray(),
        count = detections.size.toDouble()
    )

    private fun classOf(detection: ReturnedDetection, labels: List<String>): Int =
        if (detection.index >= 0) detection.index else labels.indexOf(detection.label)
}
