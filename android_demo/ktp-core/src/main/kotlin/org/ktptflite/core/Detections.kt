package org.ktptflite.core

import java.util.Locale
import kotlin.math.abs

/*
 * From raw SSD detections to one box per KTP field, in image pixels.
 *
 * The Kotlin twin of ktp_tflite.convert.fields (same rule, same vectors):
 * 1. only the first `count` rows count (clamped to 0..N);
 * 2. drop rows with score < threshold, a class id that does not round to a
 *    label index, or an empty box after clipping to [0, 1];
 * 3. the card fit (CardFit.choice, on the rest, in upright-image pixels) picks
 *    one row per field: the top row, unless another of the field's best rows
 *    fits the card's layout with the other fields so much better that it
 *    outweighs the scores;
 * 4. visit the picked rows, then the others, each by score, highest first
 *    (ties: lower row first); accept a row unless its field already has a box
 *    or its IoU with an accepted box of another field is above `overlapIou`.
 *
 * Geometry: the model sees the upright image (the camera buffer rotated
 * clockwise by rotationDegrees, as CameraX imageInfo.rotationDegrees says)
 * stretched to its input, so normalised model coordinates are normalised
 * upright-image coordinates.
 */

/** A normalised box (ymin, xmin, ymax, xmax), as the SSD post-process reports it. */
data class NormBox(val ymin: Double, val xmin: Double, val ymax: Double, val xmax: Double) {
    val isEmpty: Boolean get() = ymax <= ymin || xmax <= xmin

    fun clipped(): NormBox = NormBox(clip(ymin), clip(xmin), clip(ymax), clip(xmax))

    fun iou(other: NormBox): Double {
        val interH = maxOf(0.0, minOf(ymax, other.ymax) - maxOf(ymin, other.ymin))
        val interW = maxOf(0.0, minOf(xmax, other.xmax) - maxOf(xmin, other.xmin))
        val inter = interH * interW
        val union = (ymax - ymin) * (xmax - xmin) + (other.ymax - other.ymin) * (other.xmax - other.xmin) - inter
        return if (union > 0) inter / union else 0.0
    }

    private fun clip(value: Double): Double = minOf(1.0, maxOf(0.0, value))
}

/** A box in pixels: left, top, right, bottom. */
data class PixelBox(val left: Double, val top: Double, val right: Double, val bottom: Double) {
    val width: Double get() = right - left
    val height: Double get() = bottom - top
}

/** The four post-process outputs of one image (batch removed). */
class RawDetections(val boxes: List<NormBox>, val classes: DoubleArray, val scores: DoubleArray, val count: Double) {
    init {
        require(boxes.size == classes.size && boxes.size == scores.size) {
            "detection outputs disagree: ${boxes.size} boxes, ${classes.size} classes, ${scores.size} scores"
        }
    }
}

/** The camera buffer size and the clockwise rotation that makes it upright. */
data class ImageGeometry(val sensorWidth: Int, val sensorHeight: Int, val rotationDegrees: Int = 0) {
    init {
        require(rotationDegrees in ROTATIONS) { "rotation must be one of $ROTATIONS, got $rotationDegrees" }
        require(sensorWidth > 0 && sensorHeight > 0) { "image size must be positive, got ${sensorWidth}x$sensorHeight" }
    }

    private val sideways: Boolean get() = rotationDegrees == 90 || rotationDegrees == 270
    val imageWidth: Int get() = if (sideways) sensorHeight else sensorWidth
    val imageHeight: Int get() = if (sideways) sensorWidth else sensorHeight

    companion object {
        val ROTATIONS = listOf(0, 90, 180, 270)
    }
}

/** The chosen detection of one field. */
data class FieldDetection(
    val label: String,
    val classId: Int,
    val score: Double,
    /** Normalised, model (= upright image) space. */
    val boxModel: NormBox,
    /** Pixels of the upright image. */
    val box: PixelBox,
    /** Pixels of the unrotated camera buffer. */
    val boxSensor: PixelBox
)

/** Best detection per field for one image. */
data class FieldResult(
    /** Found fields, in label order. */
    val fields: List<FieldDetection>,
    /** Labels without an accepted detection. */
    val missing: List<String>,
    val geometry: ImageGeometry
) {
    operator fun get(label: String): FieldDetection? = fields.firstOrNull { it.label == label }
}

/** Model space to camera buffer mapping. */
object BoxMapper {
    /** Maps a normalised upright-space box into normalised camera-buffer space. */
    fun modelToSensor(box: NormBox, rotationDegrees: Int): NormBox = when (rotationDegrees) {
        0 -> box

        90 -> NormBox(1.0 - box.xmax, box.ymin, 1.0 - box.xmin, box.ymax)

        180 -> NormBox(1.0 - box.ymax, 1.0 - box.xmax, 1.0 - box.ymin, 1.0 - box.xmin)

        270 -> NormBox(box.xmin, 1.0 - box.ymax, box.xmax, 1.0 - box.ymin)

        else -> throw IllegalArgumentException(
            "rotation must be one of ${ImageGeometry.ROTATIONS}, got $rotationDegrees"
        )
    }

    fun toPixels(box: NormBox, width: Int, height: Int): PixelBox =
        PixelBox(box.xmin * width, box.ymin * height, box.xmax * width, box.ymax * height)

    /** Aspect ratios of two frames of one view may differ this much (relative), from rounding of their sizes. */
    const val ASPECT_TOLERANCE = 0.02

    /** Whether frames of these sizes can show the same view: aspect ratios within [aspectTolerance]. */
    fun sameView(
        fromWidth: Int,
        fromHeight: Int,
        toWidth: Int,
        toHeight: Int,
        aspectTolerance: Double = ASPECT_TOLERANCE
    ): Boolean {
        require(minOf(fromWidth, fromHeight, toWidth, toHeight) > 0) {
            "frame sizes must be positive, got ${fromWidth}x$fromHeight and ${toWidth}x$toHeight"
        }
        val fromAspect = fromWidth.toDouble() / fromHeight
        val toAspect = toWidth.toDouble() / toHeight
        return abs(fromAspect / toAspect - 1.0) <= aspectTolerance
    }

    /**
     * [box] in pixels of a [fromWidth] x [fromHeight] frame mapped to a [toWidth] x [toHeight]
     * frame of the same view (the analysis frame's boxes on the full-resolution capture): each
     * axis scaled by the ratio of the sizes, so the frame edges map to the frame edges.
     *
     * Throws IllegalArgumentException when the frames cannot show the same view ([sameView]):
     * frames of other aspect ratios are crops of different parts of the sensor.
     */
    fun betweenFrames(
        box: PixelBox,
        fromWidth: Int,
        fromHeight: Int,
        toWidth: Int,
        toHeight: Int,
        aspectTolerance: Double = ASPECT_TOLERANCE
    ): PixelBox {
        require(sameView(fromWidth, fromHeight, toWidth, toHeight, aspectTolerance)) {
            String.format(
                Locale.ROOT,
                "frames %dx%d and %dx%d differ in aspect ratio (%.3f vs %.3f): they do not show the same " +
                    "view; use one aspect ratio for both streams",
                fromWidth,
                fromHeight,
                toWidth,
                toHeight,
                fromWidth.toDouble() / fromHeight,
                toWidth.toDouble() / toHeight
            )
        }
        val sx = toWidth.toDouble() / fromWidth
        val sy = toHeight.toDouble() / fromHeight
        return PixelBox(box.left * sx, box.top * sy, box.right * sx, box.bottom * sy)
    }
}

/** Keeps the best detection per field and resolves overlaps between fields. */
object DetectionSelector {
    /** ktp_tflite.convert.fields.DEFAULT_THRESHOLD: chosen by cards read against fields on card-free regions. */
    const val DEFAULT_THRESHOLD = 0.15
    const val DEFAULT_OVERLAP_IOU = 0.5

    private class Candidate(val row: Int, val classId: Int, val score: Double, val box: NormBox)

    fun select(
        raw: RawDetections,
        labels: List<String>,
        geometry: ImageGeometry,
        threshold: Double = DEFAULT_THRESHOLD,
        overlapIou: Double = DEFAULT_OVERLAP_IOU
    ): FieldResult {
        require(threshold in 0.0..1.0) { "score threshold must be in [0, 1], got $threshold" }
        val valid = minOf(raw.boxes.size, maxOf(0, raw.count.toInt()))
        val candidates =
            (0 until valid).mapNotNull { row ->
                // Math.rint rounds half to even, like Python's round().
                val classId = Math.rint(raw.classes[row]).toInt()
                val box = raw.boxes[row].clipped()
                val keep = raw.scores[row] >= threshold && classId in labels.indices && !box.isEmpty
                if (keep) Candidate(row, classId, raw.scores[row], box) else null
            }.sortedWith(compareBy<Candidate>({ -it.score }, { it.row }))
        val picked = cardFitRows(candidates, labels, geometry.imageWidth, geometry.imageHeight)
        val ordered = candidates.sortedWith(compareBy<Candidate>({ it.row !in picked }, { -it.score }, { it.row }))
        val accepted = sortedMapOf<Int, Candidate>()
        for (candidate in ordered) {
            if (candidate.classId in accepted) continue
            if (accepted.values.any { candidate.box.iou(it.box) > overlapIou }) continue
            accepted[candidate.classId] = candidate
        }
        val fields =
            accepted.values.map {
                FieldDetection(
                    label = labels[it.classId],
                    classId = it.classId,
                    score = it.score,
                    boxModel = it.box,
                    box = BoxMapper.toPixels(it.box, geometry.imageWidth, geometry.imageHeight),
                    boxSensor =
                        BoxMapper.toPixels(
                            BoxMapper.modelToSensor(it.box, geometry.rotationDegrees),
                            geometry.sensorWidth,
                            geometry.sensorHeight
                        )
                )
            }
        val missing = labels.filterIndexed { index, _ -> index !in accepted }
        return FieldResult(fields, missing, geometry)
    }

    /** The rows the card fit picks from [candidates] sorted best first; labels the card layout does not know take no part. */
    private fun cardFitRows(candidates: List<Candidate>, labels: List<String>, width: Int, height: Int): Set<Int> {
        val rows = LinkedHashMap<String, MutableList<Int>>()
        val found = LinkedHashMap<String, MutableList<CardFit.Candidate>>()
        for (candidate in candidates) {
            val label = labels[candidate.classId]
            if (label !in CardLayout.TEMPLATE) continue
            rows.getOrPut(label) { mutableListOf() }.add(candidate.row)
            found.getOrPut(label) { mutableListOf() }
                .add(CardFit.Candidate(BoxMapper.toPixels(candidate.box, width, height), candidate.score))
        }
        return CardFit.choice(found).map { (label, index) -> rows.getValue(label)[index] }.toSet()
    }
}

/**
 * Scale and offset that draw image pixels on a view filled the way
 * PreviewView's FILL_CENTER does: one scale factor for both axes.
 */
data class ViewTransform(val scale: Double, val offsetX: Double, val offsetY: Double) {
    fun map(box: PixelBox): PixelBox = PixelBox(
        box.left * scale + offsetX,
        box.top * scale + offsetY,
        box.right * scale + offsetX,
        box.bottom * scale + offsetY
    )

    companion object {
        fun fillCenter(imageWidth: Int, imageHeight: Int, viewWidth: Int, viewHeight: Int): ViewTransform {
            val scale = maxOf(viewWidth.toDouble() / imageWidth, viewHeight.toDouble() / imageHeight)
            return ViewTransform(scale, (viewWidth - imageWidth * scale) / 2, (viewHeight - imageHeight * scale) / 2)
        }
    }
}
