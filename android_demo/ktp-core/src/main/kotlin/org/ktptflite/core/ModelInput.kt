package org.ktptflite.core

import kotlin.math.ceil

/*
 * The detector's input made as this toolkit makes it, for runtimes that resize by themselves.
 *
 * The Kotlin twin of ktp_tflite.train.preprocess.resize_rgb (PIL's BILINEAR,
 * antialiased when shrinking) and ktp_tflite.convert.runtimes.presized_frame,
 * pixel for pixel (section "model_input" of tests/vectors/ktp_vectors.json), so
 * change them together.
 */

/**
 * What the app hands MediaPipe Tasks or the Task Library instead of the camera frame.
 *
 * Both runtimes stretch the image they are given to the model input and return
 * whole-pixel boxes of it (convert/RUNTIMES.md of the repository). Given the
 * frame already resized to the model input as training resized it ([resize]),
 * each pixel repeated `factor` x `factor` times ([presizedFrame]), both feed the
 * model exactly those pixels (the Task Library samples block x at
 * (x + 0.5) * factor - 0.5, MediaPipe at x * factor: inside block x either way),
 * and their whole pixels are `factor` times finer. Their boxes of it are mapped
 * with `RuntimeBoxes.photoBox(..., presized = true)`.
 */
object ModelInput {
    /** The factor the app uses: boxes in quarter model pixels, a 1280x1280 frame for a 320x320 model. */
    const val PRESIZE_FACTOR = 4

    /** Factors [presizedFrame] takes (as presized_frame's PRESIZE_FACTORS). */
    val PRESIZE_FACTORS = 2..8

    // PIL's fixed point for 8-bit images: 32 bits minus 8 of pixel and 2 of headroom.
    private const val PRECISION_BITS = 32 - 8 - 2

    /**
     * [image] stretched to [width] x [height] exactly as PIL's `Image.resize(..., BILINEAR)` does.
     *
     * A triangle filter widened by the scale when shrinking (antialiased), on
     * half-pixel centres; coefficients in PIL's fixed point, one axis after the
     * other with the same order rule and the same rounding to 8 bits in between.
     */
    fun resize(image: ArgbWindow, width: Int, height: Int): ArgbWindow {
        require(width > 0 && height > 0) { "output size must be positive, got ${width}x$height" }
        require(image.width == image.frameWidth && image.height == image.frameHeight) {
            "resize takes a whole frame, got a ${image.width}x${image.height} window of ${image.frameWidth}x${image.frameHeight}"
        }
        if (width == image.width && height == image.height) return image
        // PIL runs the vertical pass first when the height shrinks by more than twice what the width does.
        val shrinkY = image.height - height
        val horizontalFirst = !(shrinkY > 0 && shrinkY > (image.width - width) * 2)
        val rgb =
            Rgb(
                IntArray(image.pixels.size * 3) {
                    (image.pixels[it / 3] shr (16 - 8 * (it % 3))) and 0xFF
                },
                image.width
            )
        val resized =
            if (horizontalFirst) {
                rgb.resampleRows(width).resampleColumns(height)
            } else {
                rgb.resampleColumns(height).resampleRows(width)
            }
        val values = resized.values
        return ArgbWindow(
            IntArray(width * height) {
                (0xFF shl 24) or (values[3 * it] shl 16) or (values[3 * it + 1] shl 8) or values[3 * it + 2]
            },
            width,
            height
        )
    }

    /**
     * [image] resized to the model input ([modelWidth] x [modelHeight], [resize]),
     * each pixel repeated [factor] x [factor] times: a (factor * modelWidth) x
     * (factor * modelHeight) image for the runtime.
     */
    fun presizedFrame(image: ArgbWindow, modelWidth: Int, modelHeight: Int, factor: Int = PRESIZE_FACTOR): ArgbWindow {
        require(factor in PRESIZE_FACTORS) { "presize factor must be in $PRESIZE_FACTORS, got $factor" }
        val small = resize(image, modelWidth, modelHeight)
        val width = modelWidth * factor
        val pixels = IntArray(width * modelHeight * factor)
        for (y in 0 until modelHeight) {
            val first = y * factor * width // the first of the factor frame rows of model row y
            for (x in 0 until modelWidth) {
                pixels.fill(small.pixels[y * modelWidth + x], first + x * factor, first + (x + 1) * factor)
            }
            for (copy in 1 until factor) System.arraycopy(pixels, first, pixels, first + copy * width, width)
        }
        return ArgbWindow(pixels, width, modelHeight * factor)
    }

    /** An image [width] pixels wide as interleaved red, green, blue values, resampled one axis at a time. */
    private class Rgb(val values: IntArray, val width: Int) {
        val height = values.size / (3 * width)

        fun resampleRows(to: Int): Rgb = if (to == width) {
            this
        } else {
            val axis = AxisCoefficients(width, to)
            // row l starts at 3 * width * l, its taps lie 3 apart; so do its outputs, in rows of `to`
            Rgb(
                axis.apply(
                    values,
                    lines = height,
                    lineStride = 3 * width,
                    tapStride = 3,
                    outLineStride = 3 * to,
                    outStride = 3
                ),
                to
            )
        }

        fun resampleColumns(to: Int): Rgb = if (to == height) {
            this
        } else {
            val axis = AxisCoefficients(height, to)
            // column l starts at 3 * l, its taps lie 3 * width apart; so do its outputs
            Rgb(
                axis.apply(
                    values,
                    lines = width,
                    lineStride = 3,
                    tapStride = 3 * width,
                    outLineStride = 3,
                    outStride =
                        3 * width
                ),
                width
            )
        }
    }

    /** One axis' filter taps: for each output position, the first input and the taps' fixed-point weights. */
    private class AxisCoefficients(inSize: Int, private val outSize: Int) {
        private val first = IntArray(outSize)
        private val count = IntArray(outSize)
        private val taps: Int
        private val weights: IntArray

        init {
            // precompute_coeffs and normalize_coeffs_8bpc of Pillow's Resample.c, operation for operation.
            val scale = inSize.toDouble() / outSize
            val filterScale = if (scale < 1.0) 1.0 else scale
            val support = filterScale // the triangle's support is 1
            taps = ceil(support).toInt() * 2 + 1
            weights = IntArray(outSize * taps)
            val inverse = 1.0 / filterScale
            val k = DoubleArray(taps)
            for (xx in 0 until outSize) {
                val center = (xx + 0.5) * scale
                val xmin = maxOf(0, (center - support + 0.5).toInt())
                val xmax = minOf(inSize, (center + support + 0.5).toInt()) - xmin
                var sum = 0.0
                for (x in 0 until xmax) {
                    k[x] = triangle((x + xmin - center + 0.5) * inverse)
                    sum += k[x]
                }
                for (x in 0 until xmax) weights[xx * taps + x] = fixedPoint(if (sum != 0.0) k[x] / sum else k[x])
                first[xx] = xmin
                count[xx] = xmax
            }
        }

        /** A weight in PIL's fixed point, rounded half away from zero. */
        private fun fixedPoint(w: Double): Int =
            if (w < 0) (-0.5 + w * (1 shl PRECISION_BITS)).toInt() else (0.5 + w * (1 shl PRECISION_BITS)).toInt()

        private fun triangle(x: Double): Double {
            val a = if (x < 0.0) -x else x
            return if (a < 1.0) 1.0 - a else 0.0
        }

        /**
         * Resamples [lines] lines of interleaved RGB [values] along this axis: line l starts at
         * l * [lineStride], its taps lie [tapStride] apart. Output position p of line l is written
         * at l * [outLineStride] + p * [outStride] of an array of [lines] * [outSize] RGB values.
         */
        fun apply(
            values: IntArray,
            lines: Int,
            lineStride: Int,
            tapStride: Int,
            outLineStride: Int,
            outStride: Int
        ): IntArray {
            val out = IntArray(lines * outSize * 3)
            val half = 1 shl (PRECISION_BITS - 1)
            for (line in 0 until lines) {
                for (xx in 0 until outSize) {
                    var red = half
                    var green = half
                    var blue = half
                    var at = line * lineStride + first[xx] * tapStride
                    val w0 = xx * taps
                    for (x in 0 until count[xx]) {
                        val w = weights[w0 + x]
                        red += values[at] * w
                        green += values[at + 1] * w
                        blue += values[at + 2] * w
                        at += tapStride
                    }
                    val o = line * outLineStride + xx * outStride
                    out[o] = clip8(red)
                    out[o + 1] = clip8(green)
                    out[o + 2] = clip8(blue)
                }
            }
            return out
        }

        private fun clip8(sum: Int): Int = (sum shr PRECISION_BITS).coerceIn(0, 255)
    }
}
