package org.ktptflite.core

import java.util.Locale
import kotlin.math.floor

/*
 * The field reader's input: the crop of a detected field box.
 *
 * The Kotlin twin of ktp_tflite.train.reader_crops.box_crop (same rule, same vectors: sections
 * "reader_crop" and, with deskew, "reader_deskew" of tests/vectors/ktp_vectors.json), so change
 * them together. The rule:
 * 0. with deskew (what `scan --reader` and the app do): the line is the rectangle slanted by the
 *    line's angle in the box (Deskew.lineAngle) whose bounding box is the box
 *    (Deskew.slantedQuad), else (angle 0, or no such rectangle) the box itself;
 * 1. the source quad: the line grown by margin * h above and below and sideMargin * h left and
 *    right (h: the line's mean side height), along the line's own axes (expand_quad);
 * 2. the content width: round(height * source width / source height) of the source's mean sides,
 *    half to even, at least 1 and at most the crop width (longer lines are squeezed);
 * 3. the warp, as PIL's Image.transform(PERSPECTIVE, BILINEAR) does it: output pixel (i, j)
 *    samples the image at a(i + 0.5, j + 0.5) through the eight coefficients a (output -> image,
 *    the content x height rectangle onto the source quad); a sample outside [0, W) x [0, H) is
 *    black; inside, the bilinear mix of the four pixels whose centres surround it, indices
 *    clamped to the image, truncated to an integer;
 * 4. the columns after the content width get the median colour of the content (per channel; of
 *    an even count the mean of the two middle values, truncated).
 * Coordinates are PIL's: pixel (x, y) covers [x, x + 1) x [y, y + 1).
 */

/**
 * The crop geometry: the twin of ktp_tflite.train.reader_crops.CropConfig, with its rules and messages.
 * Any [width] >= [height] is a crop (a reader's own comes from its crop.txt: ReaderModel.cropConfig).
 */
data class ReaderCropConfig(
    val height: Int = 32,
    val width: Int = 256,
    val margin: Double = 0.2,
    val sideMargin: Double = 0.1
) {
    init {
        require(height >= 8 && width >= height) {
            "crop size ${width}x$height: height must be >= 8 and width >= height"
        }
        require(margin in 0.0..2.0) { "crop margin $margin must lie in 0..2 (a fraction of the text height)" }
        require(sideMargin in 0.0..2.0) {
            "crop side_margin $sideMargin must lie in 0..2 (a fraction of the text height)"
        }
    }
}

/**
 * Pixels of a window of a frame: [pixels] is row-major ARGB (0xAARRGGBB, as Android's
 * Bitmap.getPixels gives them, alpha ignored) of the [width] x [height] pixels whose top-left
 * pixel is ([left], [top]) of a [frameWidth] x [frameHeight] frame.
 *
 * A window lets an app load only the pixels a crop reads ([ReaderCrop.window]) from a large frame.
 */
class ArgbWindow(
    val pixels: IntArray,
    val width: Int,
    val height: Int,
    val left: Int = 0,
    val top: Int = 0,
    val frameWidth: Int = left + width,
    val frameHeight: Int = top + height
) {
    init {
        require(width >= 0 && height >= 0 && pixels.size == width * height) {
            "window of ${width}x$height needs ${width.toLong() * height} pixels, got ${pixels.size}"
        }
        require(frameWidth > 0 && frameHeight > 0) { "frame size must be positive, got ${frameWidth}x$frameHeight" }
        require(left >= 0 && top >= 0 && left + width <= frameWidth && top + height <= frameHeight) {
            "window ${width}x$height at ($left, $top) does not lie in the ${frameWidth}x$frameHeight frame"
        }
    }

    /** The ARGB value of frame pixel ([x], [y]), which must lie in the window. */
    fun pixel(x: Int, y: Int): Int {
        require(x >= left && x < left + width && y >= top && y < top + height) {
            "frame pixel ($x, $y) is outside the ${width}x$height window at ($left, $top); " +
                "load the window ReaderCrop.window (Deskew.window for the angle) gives"
        }
        return pixels[(y - top) * width + (x - left)]
    }
}

/**
 * One field's reader input: [pixels] uint8 RGB, row-major [config.height][config.width][3], as
 * the reader's `crop` input tensor takes them; [contentWidth] columns hold the line, the rest is
 * padding; [source] is the frame quadrilateral the line was taken from (line plus margins).
 */
class ReaderInput(val pixels: ByteArray, val contentWidth: Int, val source: Quad, val config: ReaderCropConfig) {
    /** Channel [channel] (0 red, 1 green, 2 blue) of crop pixel ([x], [y]), 0..255. */
    fun value(x: Int, y: Int, channel: Int): Int = pixels[(y * config.width + x) * 3 + channel].toInt() and 0xFF
}

object ReaderCrop {
    /**
     * The source quad of a line (step 1, reader_crops.expand_quad): [line] grown by
     * config.margin times its height above and below and config.sideMargin times it left and
     * right, through the line's own perspective (a slanted line gets slanted margins).
     */
    fun expandQuad(line: Quad, config: ReaderCropConfig = ReaderCropConfig()): Quad {
        require(line.corners.all { it.x.isFinite() && it.y.isFinite() }) {
            "a quadrilateral is 4 finite (x, y) corners, got $line"
        }
        val width = line.width
        val height = line.height
        require(width >= 0.5 && height >= 0.5) {
            String.format(Locale.ROOT, "quadrilateral of %.1f x %.1f px is too small to crop", width, height)
        }
        val toFrame = Perspective.rectToQuad(width, height, line)
        val m = config.margin * height
        val side = config.sideMargin * height
        return Quad(
            toFrame.map(-side, -m),
            toFrame.map(width + side, -m),
            toFrame.map(width + side, height + m),
            toFrame.map(-side, height + m)
        )
    }

    /** The line of [box] with a slant of [angleDeg] (step 0): the slanted rectangle it bounds, else the box. */
    fun lineQuad(box: PixelBox, angleDeg: Double): Quad =
        (if (angleDeg != 0.0) Deskew.slantedQuad(box, angleDeg) else null) ?: Quad.of(box)

    /** Columns of the crop that hold the line of [source] (step 2). */
    fun contentWidth(source: Quad, config: ReaderCropConfig = ReaderCropConfig()): Int {
        val ratio = config.height * source.width / maxOf(source.height, 1e-6)
        // Math.rint rounds half to even, like Python's round().
        return minOf(config.width.toDouble(), maxOf(1.0, Math.rint(ratio))).toInt()
    }

    /**
     * The eight perspective coefficients (a0..a7, PIL's order) that map a pixel centre of the
     * [contentWidth] x config.height line to [source]: x = (a0 u + a1 v + a2) / (a6 u + a7 v + 1),
     * y = (a3 u + a4 v + a5) / (a6 u + a7 v + 1); for a box, a scale and a shift.
     */
    fun coefficients(source: Quad, contentWidth: Int, config: ReaderCropConfig = ReaderCropConfig()): DoubleArray =
        Perspective.rectToQuad(contentWidth.toDouble(), config.height.toDouble(), source).coefficients

    /**
     * The frame pixels the crop of [source] reads, clipped to a [frameWidth] x [frameHeight] frame:
     * the bilinear neighbours of every sample, one pixel more on each side (null when that is
     * empty: the source lies outside the frame and the crop is black).
     */
    fun window(source: Quad, frameWidth: Int, frameHeight: Int): Crop? = window(source.bounds, frameWidth, frameHeight)

    /** [window] of the quad whose bounds are [source]. */
    fun window(source: PixelBox, frameWidth: Int, frameHeight: Int): Crop? {
        require(frameWidth > 0 && frameHeight > 0) { "frame size must be positive, got ${frameWidth}x$frameHeight" }
        val left = maxOf(0, floor(source.left - 0.5).toInt() - 1)
        val top = maxOf(0, floor(source.top - 0.5).toInt() - 1)
        val right = minOf(frameWidth, floor(source.right - 0.5).toInt() + 3)
        val bottom = minOf(frameHeight, floor(source.bottom - 0.5).toInt() + 3)
        return if (right > left && bottom > top) Crop(left, top, right, bottom) else null
    }

    private fun checkBox(box: PixelBox) = require(box.right > box.left && box.bottom > box.top) {
        "box $box is empty; expected (left, top, right, bottom) pixels"
    }

    /** The crop of the axis-aligned pixel [box] without deskew (steps 1-4) of the frame [image] is a window of. */
    fun crop(image: ArgbWindow, box: PixelBox, config: ReaderCropConfig = ReaderCropConfig()): ReaderInput {
        checkBox(box)
        return cropQuad(image, expandQuad(Quad.of(box), config), config)
    }

    /** The crop of the frame quadrilateral [source] (margins included; steps 2-4). */
    fun cropQuad(image: ArgbWindow, source: Quad, config: ReaderCropConfig = ReaderCropConfig()): ReaderInput {
        val content = contentWidth(source, config)
        return cropWith(image, source, content, coefficients(source, content, config), config)
    }

    /**
     * The deskewed crop of [box] (steps 0-4, box_crop with deskew=True) in a [frameWidth] x
     * [frameHeight] frame whose pixels [load] gives: it is asked for the window the angle reads
     * (Deskew.window), then for the window the crop reads ([window]), each only when not empty.
     */
    fun deskewedCrop(
        frameWidth: Int,
        frameHeight: Int,
        box: PixelBox,
        config: ReaderCropConfig = ReaderCropConfig(),
        load: (Crop) -> ArgbWindow
    ): ReaderInput {
        checkBox(box)
        val angle = Deskew.window(box, frameWidth, frameHeight)?.let { Deskew.lineAngle(load(it), box) } ?: 0.0
        val source = expandQuad(lineQuad(box, angle), config)
        val image =
            window(source, frameWidth, frameHeight)?.let(load)
                ?: ArgbWindow(IntArray(0), 0, 0, 0, 0, frameWidth, frameHeight)
        return cropQuad(image, source, config)
    }

    /** The deskewed crop of [box] from the frame [image] is a window of, which must hold both windows. */
    fun deskewedCrop(image: ArgbWindow, box: PixelBox, config: ReaderCropConfig = ReaderCropConfig()): ReaderInput =
        deskewedCrop(image.frameWidth, image.frameHeight, box, config) { image }

    private fun warpInto(
        image: ArgbWindow,
        a: DoubleArray,
        outWidth: Int,
        outHeight: Int,
        out: ByteArray,
        rowWidth: Int
    ) {
        val frameW = image.frameWidth
        val frameH = image.frameHeight
        for (j in 0 until outHeight) {
            for (i in 0 until outWidth) {
                // PIL perspective_transform: the output pixel centre, the same double operations.
                val u = i + 0.5
                val v = j + 0.5
                val w = a[6] * u + a[7] * v + 1
                var x = (a[0] * u + a[1] * v + a[2]) / w
                var y = (a[3] * u + a[4] * v + a[5]) / w
                val at = (j * rowWidth + i) * 3
                if (x < 0.0 || x >= frameW || y < 0.0 || y >= frameH) continue // black (PIL's fill)
                x -= 0.5
                y -= 0.5
                val x0 = floor(x).toInt()
                val y0 = floor(y).toInt()
                val dx = x - x0
                val dy = y - y0
                val left = x0.coerceIn(0, frameW - 1)
                val right = (x0 + 1).coerceIn(0, frameW - 1)
                // PIL takes the upper row again below the last one: the same as clamping, as y0 >= -1.
                val upper = y0.coerceIn(0, frameH - 1)
                val lower = (y0 + 1).coerceIn(0, frameH - 1)
                val ul = image.pixel(left, upper)
                val ur = image.pixel(right, upper)
                val ll = image.pixel(left, lower)
                val lr = image.pixel(right, lower)
                for (c in 0 until 3) {
                    val shift = 16 - 8 * c
                    val a0 = (ul shr shift) and 0xFF
                    val a1 = (ll shr shift) and 0xFF
                    val top = a0 + (((ur shr shift) and 0xFF) - a0) * dx
                    val bottom = a1 + (((lr shr shift) and 0xFF) - a1) * dx
                    out[at + c] = (top + (bottom - top) * dy).toInt().toByte() // (UINT8) truncates
                }
            }
        }
    }

    /**
     * Steps 3 and 4 through given [coefficients] (output pixel centre -> frame pixel): the tests
     * feed the ones Python handed to PIL to check the warp and the padding bit for bit.
     */
    internal fun cropWith(
        image: ArgbWindow,
        source: Quad,
        content: Int,
        coefficients: DoubleArray,
        config: ReaderCropConfig
    ): ReaderInput {
        require(coefficients.size == 8) { "a perspective transform has 8 coefficients, got ${coefficients.size}" }
        require(content in 1..config.width) { "content width $content must lie in 1..${config.width}" }
        window(source, image.frameWidth, image.frameHeight)?.let { needed ->
            require(
                image.left <= needed.left && image.top <= needed.top &&
                    image.left + image.width >= needed.right && image.top + image.height >= needed.bottom
            ) {
                "the ${image.width}x${image.height} window at (${image.left}, ${image.top}) does not hold the " +
                    "pixels the crop reads ($needed); load the window ReaderCrop.window gives"
            }
        }
        val pixels = ByteArray(config.height * config.width * 3)
        warpInto(image, coefficients, content, config.height, pixels, config.width)
        if (content < config.width) pad(pixels, content, config)
        return ReaderInput(pixels, content, source, config)
    }

    /** Fills the columns from [content] on with the median colour of the content (step 4). */
    private fun pad(pixels: ByteArray, content: Int, config: ReaderCropConfig) {
        val count = content * config.height
        val median = IntArray(3)
        for (c in 0 until 3) {
            val histogram = IntArray(256)
            for (y in 0 until config.height) {
                for (x in 0 until content) histogram[pixels[(y * config.width + x) * 3 + c].toInt() and 0xFF]++
            }
            median[c] =
                if (count % 2 == 1) {
                    rank(histogram, count / 2)
                } else {
                    (rank(histogram, count / 2 - 1) + rank(histogram, count / 2)) / 2
                }
        }
        for (y in 0 until config.height) {
            for (x in content until config.width) {
                for (c in 0 until 3) pixels[(y * config.width + x) * 3 + c] = median[c].toByte()
            }
        }
    }

    /** The value of 0-based rank [k] among the values counted in [histogram]. */
    private fun rank(histogram: IntArray, k: Int): Int {
        var seen = 0
        for (value in histogram.indices) {
            seen += histogram[value]
            if (seen > k) return value
        }
        error("rank $k is beyond the $seen values counted")
    }
}
