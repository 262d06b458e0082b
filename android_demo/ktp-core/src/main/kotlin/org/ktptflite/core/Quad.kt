package org.ktptflite.core

import kotlin.math.sqrt

/** A point of a frame in pixels (x to the right, y down). */
data class Point(val x: Double, val y: Double)

/**
 * A quadrilateral of frame pixels, corners in the order top-left, top-right, bottom-right,
 * bottom-left (the order of ktp_tflite.train.reader_crops quads).
 */
data class Quad(val topLeft: Point, val topRight: Point, val bottomRight: Point, val bottomLeft: Point) {
    val corners: List<Point> get() = listOf(topLeft, topRight, bottomRight, bottomLeft)

    /** Mean length of the top and bottom edges (reader_crops.quad_sides). */
    val width: Double get() = (distance(topLeft, topRight) + distance(bottomLeft, bottomRight)) / 2

    /** Mean length of the left and right edges (reader_crops.quad_sides). */
    val height: Double get() = (distance(topLeft, bottomLeft) + distance(topRight, bottomRight)) / 2

    /** The axis-aligned box around the corners. */
    val bounds: PixelBox
        get() = PixelBox(corners.minOf { it.x }, corners.minOf { it.y }, corners.maxOf { it.x }, corners.maxOf { it.y })

    companion object {
        /** The corners of an axis-aligned [box]. */
        fun of(box: PixelBox): Quad = Quad(
            Point(box.left, box.top),
            Point(box.right, box.top),
            Point(box.right, box.bottom),
            Point(box.left, box.bottom)
        )

        private fun distance(a: Point, b: Point): Double {
            val dx = b.x - a.x
            val dy = b.y - a.y
            return sqrt(dx * dx + dy * dy)
        }
    }
}

/**
 * The perspective map of the rectangle [0, width] x [0, height] onto a quad (its corners onto the
 * quad's TL, TR, BR, BL): x = (a0 u + a1 v + a2) / (a6 u + a7 v + 1), y = (a3 u + a4 v + a5) / (same),
 * [coefficients] a0..a7 in PIL's PERSPECTIVE order.
 *
 * Heckbert's closed form (unit square to quad, scaled): the same operations in the same order as
 * Python's ktp_tflite.train.synth.rect_to_quad, so both give the same coefficients, bit for bit.
 */
class Perspective private constructor(val coefficients: DoubleArray) {
    /** The image of point ([u], [v]) of the rectangle. */
    fun map(u: Double, v: Double): Point {
        val a = coefficients
        val w = a[6] * u + a[7] * v + 1
        return Point((a[0] * u + a[1] * v + a[2]) / w, (a[3] * u + a[4] * v + a[5]) / w)
    }

    companion object {
        fun rectToQuad(width: Double, height: Double, quad: Quad): Perspective {
            require(width > 0 && height > 0) { "rectangle of $width x $height has no area" }
            val (p0, p1, p2, p3) = quad.corners
            val sx = p0.x - p1.x + p2.x - p3.x
            val sy = p0.y - p1.y + p2.y - p3.y
            val unit =
                if (sx == 0.0 && sy == 0.0) {
                    // A parallelogram: affine.
                    doubleArrayOf(p1.x - p0.x, p2.x - p1.x, p0.x, p1.y - p0.y, p2.y - p1.y, p0.y, 0.0, 0.0)
                } else {
                    val dx1 = p1.x - p2.x
                    val dx2 = p3.x - p2.x
                    val dy1 = p1.y - p2.y
                    val dy2 = p3.y - p2.y
                    val den = dx1 * dy2 - dx2 * dy1
                    require(den != 0.0) { "quadrilateral $quad is degenerate" }
                    val g = (sx * dy2 - dx2 * sy) / den
                    val h = (dx1 * sy - sx * dy1) / den
                    doubleArrayOf(
                        p1.x - p0.x + g * p1.x,
                        p3.x - p0.x + h * p3.x,
                        p0.x,
                        p1.y - p0.y + g * p1.y,
                        p3.y - p0.y + h * p3.y,
                        p0.y,
                        g,
                        h
                    )
                }
            // u = U / width, v = V / height.
            return Perspective(
                doubleArrayOf(
                    unit[0] / width,
                    unit[1] / height,
                    unit[2],
                    unit[3] / width,
                    unit[4] / height,
                    unit[5],
                    unit[6] / width,
                    unit[7] / height
                )
            )
        }
    }
}
