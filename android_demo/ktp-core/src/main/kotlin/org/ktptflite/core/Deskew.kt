package org.ktptflite.core

import kotlin.math.abs
import kotlin.math.ceil
import kotlin.math.floor

/*
 * The slant of the text line in a detector box, and the slanted line the box bounds.
 *
 * The Kotlin twins of ktp_tflite.train.reader_crops.line_angle and slanted_quad (same vectors:
 * section "reader_deskew" of tests/vectors/ktp_vectors.json), so change them together. lineAngle
 * does numpy's arithmetic step by step, so the angle is Python's exactly:
 * 1. the box's pixels: columns floor(left) until ceil(right), rows floor(top) until ceil(bottom),
 *    clipped to the frame; fewer than 4 columns or 3 rows: angle 0;
 * 2. grey = (r + g + b) / 3 in float32 (numpy: the float32 mean of the channels);
 * 3. p80 = the 80th percentile of the grey values as np.percentile computes it for float32
 *    (linear: index (n - 1) * float32(0.8), all in float32, lerp from the nearer end);
 *    ink = p80 - grey where positive, else none (no ink: angle 0);
 * 4. candidates: 0, -step, +step, -2 step, ... up to min(maxAngle, atan(rows / columns)) (+1e-9),
 *    np.arange, np.unique and a stable argsort by magnitude: the negative one of a pair first;
 * 5. for each, the ink pixels (row-major order) go to row rint(y - tan(a) (x - columns / 2)) (half
 *    to even, like np.round), the rows' ink sums squared and added as np.sum does (pairwise); a
 *    candidate replaces the best only when its score exceeds best * (1 + 1e-6).
 * tan is StrictMath's; numpy's on AVX-512 is SVML's, one ulp off at 3 degrees: the vectors check
 * that no sheared row lies within 1e-9 of a half, where that could matter.
 */

/** The line angle search of one box: the twin of reader_crops.line_angle with what it computed. */
internal class AngleSearch(
    /** The slant, degrees (y down: positive = the line falls to the right). */
    val angle: Double,
    /** The 80th percentile of the box's grey, or null when the search stopped before it. */
    val percentile80: Float?,
    /** The score of each candidate in the order tried (empty without ink). */
    val scores: DoubleArray
)

object Deskew {
    /** reader_crops.DESKEW_MAX_DEG: the renderer rolls cards up to 15 degrees. */
    const val MAX_ANGLE_DEG = 16.0

    /** reader_crops.DESKEW_STEP_DEG. */
    const val STEP_DEG = 0.5

    /** Pixels: a slanted rectangle lower than this is no text line (reader_crops.MIN_LINE_HEIGHT). */
    const val MIN_LINE_HEIGHT = 2.0

    private const val DEG_TO_RAD = Math.PI / 180.0 // numpy's radians(): x * (pi / 180)
    private const val RAD_TO_DEG = 180.0 / Math.PI // numpy's degrees(): x * (180 / pi)

    /**
     * The frame pixels [lineAngle] reads for [box] in a [frameWidth] x [frameHeight] frame, or
     * null when it reads none (under 4 columns or 3 rows inside the frame: the angle is 0).
     */
    fun window(box: PixelBox, frameWidth: Int, frameHeight: Int): Crop? {
        val left = maxOf(0, floor(box.left).toInt())
        val top = maxOf(0, floor(box.top).toInt())
        val right = minOf(frameWidth, ceil(box.right).toInt())
        val bottom = minOf(frameHeight, ceil(box.bottom).toInt())
        return if (right - left >= 4 && bottom - top >= 3) Crop(left, top, right, bottom) else null
    }

    /**
     * The slant in degrees (y down: positive = the line falls to the right) of the text line in
     * [box], a pixel box of the frame [image] is a window of (it must hold [window]'s pixels).
     */
    fun lineAngle(
        image: ArgbWindow,
        box: PixelBox,
        maxAngleDeg: Double = MAX_ANGLE_DEG,
        stepDeg: Double = STEP_DEG
    ): Double = search(image, box, maxAngleDeg, stepDeg).angle

    internal fun search(image: ArgbWindow, box: PixelBox, maxAngleDeg: Double, stepDeg: Double): AngleSearch {
        require(stepDeg > 0 && maxAngleDeg >= 0) { "deskew step $stepDeg and limit $maxAngleDeg must be positive" }
        val region = window(box, image.frameWidth, image.frameHeight) ?: return AngleSearch(0.0, null, DoubleArray(0))
        val w = region.width
        val h = region.height
        val grey =
            FloatArray(w * h) { i ->
                val p = image.pixel(region.left + i % w, region.top + i / w)
                (((p shr 16) and 0xFF) + ((p shr 8) and 0xFF) + (p and 0xFF)).toFloat() / 3f
            }
        val p80 = percentile80(grey)
        var count = 0
        for (g in grey) if (p80 - g > 0f) count++
        if (count == 0) return AngleSearch(0.0, p80, DoubleArray(0))
        val xs = DoubleArray(count)
        val ys = DoubleArray(count)
        val weights = DoubleArray(count)
        var k = 0
        for (i in grey.indices) {
            val ink = p80 - grey[i]
            if (ink > 0f) {
                xs[k] = (i % w).toDouble()
                ys[k] = (i / w).toDouble()
                weights[k] = ink.toDouble()
                k++
            }
        }
        val limit = minOf(maxAngleDeg, StrictMath.atan(h.toDouble() / w) * RAD_TO_DEG)
        val angles = candidates(limit, stepDeg)
        val scores = DoubleArray(angles.size)
        val rows = IntArray(count)
        var best = 0.0
        var bestScore = -1.0
        for ((index, angle) in angles.withIndex()) {
            val t = StrictMath.tan(angle * DEG_TO_RAD)
            var low = Int.MAX_VALUE
            var high = Int.MIN_VALUE
            for (i in 0 until count) {
                val row = Math.rint(ys[i] - t * (xs[i] - w / 2.0)).toInt()
                rows[i] = row
                low = minOf(low, row)
                high = maxOf(high, row)
            }
            val profile = DoubleArray(high - low + 1)
            for (i in 0 until count) profile[rows[i] - low] += weights[i]
            for (i in profile.indices) profile[i] *= profile[i]
            val score = pairwiseSum(profile, 0, profile.size)
            scores[index] = score
            if (score > bestScore * (1 + 1e-6)) {
                best = angle
                bestScore = score
            }
        }
        return AngleSearch(best, p80, scores)
    }

    /** The candidate angles in the order tried: 0, -step, +step, -2 step, +2 step, ... up to [limitDeg]. */
    internal fun candidates(limitDeg: Double, stepDeg: Double): DoubleArray {
        val steps = ceil((limitDeg + 1e-9) / stepDeg).toInt() // np.arange(0, limit + 1e-9, step)
        return DoubleArray(2 * steps - 1) { i ->
            val magnitude = ((i + 1) / 2) * stepDeg
            if (i % 2 == 1) -magnitude else magnitude
        }
    }

    /** np.percentile(values, 80) of float32 values (method "linear", float32 arithmetic). */
    internal fun percentile80(values: FloatArray): Float {
        require(values.isNotEmpty()) { "the percentile of no values" }
        val sorted = values.copyOf().also { it.sort() }
        val n = sorted.size
        val index = (n - 1).toFloat() * (80f / 100f)
        if (index >= n - 1) return sorted[n - 1]
        val below = floor(index).toInt()
        val gamma = index - below.toFloat()
        val a = sorted[below]
        val b = sorted[below + 1]
        val diff = b - a
        return if (gamma >= 0.5f) b - diff * (1f - gamma) else a + diff * gamma
    }

    /** np.sum of [count] doubles from [from]: numpy's pairwise summation (blocks of 128, 8 accumulators). */
    internal fun pairwiseSum(values: DoubleArray, from: Int, count: Int): Double {
        if (count < 8) {
            var sum = -0.0
            for (i in from until from + count) sum += values[i]
            return sum
        }
        if (count <= 128) {
            val r = DoubleArray(8) { values[from + it] }
            var i = 8
            while (i < count - count % 8) {
                for (j in 0 until 8) r[j] += values[from + i + j]
                i += 8
            }
            var sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while (i < count) sum += values[from + i++]
            return sum
        }
        var half = count / 2
        half -= half % 8
        return pairwiseSum(values, from, half) + pairwiseSum(values, from + half, count - half)
    }

    /**
     * The rectangle slanted by [angleDeg] whose axis-aligned bounding box is [box], or null when no
     * line fits (the box is too thin for the angle): the twin of reader_crops.slanted_quad. A line
     * of width w and height h at angle a fills a box of w cos a + h sin a by w sin a + h cos a.
     */
    fun slantedQuad(box: PixelBox, angleDeg: Double): Quad? {
        val bw = box.right - box.left
        val bh = box.bottom - box.top
        val a = abs(angleDeg) * DEG_TO_RAD
        val c = StrictMath.cos(a)
        val s = StrictMath.sin(a)
        val det = c * c - s * s
        if (det <= 1e-6) return null
        val w = (bw * c - bh * s) / det
        val h = (bh * c - bw * s) / det
        if (w <= 1 || h < MIN_LINE_HEIGHT) return null
        val sin = StrictMath.sin(angleDeg * DEG_TO_RAD)
        val cos = StrictMath.cos(angleDeg * DEG_TO_RAD)
        // The top-left corner lies on the box's top edge when the line falls, on its left edge when it rises.
        val tl = if (angleDeg >= 0) Point(box.left + h * sin, box.top) else Point(box.left, box.top - w * sin)
        val tr = Point(tl.x + w * cos, tl.y + w * sin)
        return Quad(tl, tr, Point(tr.x + h * -sin, tr.y + h * cos), Point(tl.x + h * -sin, tl.y + h * cos))
    }
}
