package org.ktptflite.core

import kotlin.math.ceil
import kotlin.math.floor

/*
 * Where the card is, from its field boxes, and the crop of the two-pass zoom.
 *
 * The Kotlin twin of ktp_tflite.train.card_layout (same rule, same vectors:
 * section "card_layout" of tests/vectors/ktp_vectors.json), so change them
 * together. The rule, in photo pixels (square pixels):
 * 1. scale s (photo px per card px): the least-squares slope of photo y on
 *    template y over the tops and bottoms of the fields given; with one field
 *    its height over its template height; if the slope is not positive, the
 *    mean of the per-field height ratios;
 * 2. the card: the fields' enclosing box grown by s times the template's
 *    margins (left edge of the leftmost field, top of the topmost, card height
 *    below the bottom of the lowest), the right edge s * CARD_WIDTH right of
 *    the card's left edge (or the enclosing box's right edge, if further);
 * 3. the zoom crop: only when the card is narrower than threshold * frame
 *    width; the card grown by margin card widths on every side, clipped to the
 *    frame, grown (centred, shifted back into the frame) to the frame's
 *    aspect ratio as far as the frame allows (a runtime stretches the crop to
 *    the model input as it does the frame: pass 2 sees the card as pass 1
 *    did, larger), rounded outwards to whole pixels; none when that is the
 *    whole frame.
 */

/** A crop in whole photo pixels: left, top, right, bottom. */
data class Crop(val left: Int, val top: Int, val right: Int, val bottom: Int) {
    val width: Int get() = right - left
    val height: Int get() = bottom - top
}

object CardLayout {
    /** The card template's size in card pixels (10 px per mm of the ID-1 card). */
    const val CARD_WIDTH = 856.0
    const val CARD_HEIGHT = 540.0

    /** Zoom when the card is narrower than this share of the frame width. */
    const val DEFAULT_ZOOM_THRESHOLD = 0.45

    /** Card widths added on every side of the card for the crop. */
    const val DEFAULT_ZOOM_MARGIN = 0.1

    // The means of the renderer's layout draws (train/synth.py _render_card), as in card_layout.py.
    private const val HEADER_SIZE = 26.0
    private const val LABEL_X = 29.5
    private const val NIK_BASELINE = 40 + 2 * HEADER_SIZE + 35.5
    private const val NIK_VALUE_X = LABEL_X + 162.0 + 18
    private const val NIK_SIZE = 32.5
    private const val ROW_VALUE_X = LABEL_X + 179.5 + 12.5
    private const val FIRST_ROW_BASELINE = NIK_BASELINE + 35.5
    private const val ROW_SIZE = 18.5
    private const val ROW_SPACING = ROW_SIZE + 7.5
    private const val CAP_HEIGHT = 0.72

    /** A field value's ink on the template card, card pixels. */
    data class TemplateField(val left: Double, val top: Double, val bottom: Double)

    private fun row(number: Int): TemplateField {
        val baseline = FIRST_ROW_BASELINE + number * ROW_SPACING
        return TemplateField(ROW_VALUE_X, baseline - CAP_HEIGHT * ROW_SIZE, baseline)
    }

    /** Field label (as in labels.txt) -> where its value is printed on the template. */
    val TEMPLATE: Map<String, TemplateField> =
        linkedMapOf(
            "nik" to TemplateField(NIK_VALUE_X, NIK_BASELINE - CAP_HEIGHT * NIK_SIZE, NIK_BASELINE),
            "nama" to row(0),
            "jenis_kelamin" to row(2),
            "status_perkawinan" to row(8),
            "kewarganegaraan" to row(10)
        )

    private fun template(name: String): TemplateField = TEMPLATE[name]
        ?: throw IllegalArgumentException(
            "card from fields: unknown field '$name'; use ${TEMPLATE.keys.joinToString(", ")}"
        )

    private fun checkFields(fields: Map<String, PixelBox>) {
        require(fields.isNotEmpty()) { "card from fields: no field box given; at least one is needed" }
        for ((name, box) in fields) {
            template(name)
            require(box.right > box.left && box.bottom > box.top) { "card from fields: the $name box $box is empty" }
        }
    }

    /** Photo pixels per card pixel, from the fields' tops and bottoms (step 1). */
    fun cardScale(fields: Map<String, PixelBox>): Double {
        checkFields(fields)
        val templateY = mutableListOf<Double>()
        val photoY = mutableListOf<Double>()
        for ((name, box) in fields) {
            val t = template(name)
            templateY += listOf(t.top, t.bottom)
            photoY += listOf(box.top, box.bottom)
        }
        val n = templateY.size
        val meanT = templateY.sum() / n
        val meanP = photoY.sum() / n
        var spread = 0.0
        var covariance = 0.0
        for (i in 0 until n) {
            spread += (templateY[i] - meanT) * (templateY[i] - meanT)
            covariance += (templateY[i] - meanT) * (photoY[i] - meanP)
        }
        val scale = covariance / spread
        if (scale > 0) return scale
        val ratios = fields.map { (name, box) -> (box.bottom - box.top) / (template(name).bottom - template(name).top) }
        return ratios.sum() / ratios.size
    }

    /** The card's box in the photo from any of its field boxes (photo pixels, at least one field). */
    fun cardFromFields(fields: Map<String, PixelBox>): PixelBox {
        val scale = cardScale(fields)
        val boxes = fields.values
        val templateLeft = fields.keys.minOf { template(it).left }
        val templateTop = fields.keys.minOf { template(it).top }
        val templateBottom = fields.keys.maxOf { template(it).bottom }
        val left = boxes.minOf { it.left } - scale * templateLeft
        val top = boxes.minOf { it.top } - scale * templateTop
        val bottom = boxes.maxOf { it.bottom } + scale * (CARD_HEIGHT - templateBottom)
        val right = maxOf(boxes.maxOf { it.right }, left + scale * CARD_WIDTH)
        return PixelBox(left, top, right, bottom)
    }

    /**
     * The second-pass crop of [card] (photo pixels) in a frame of [frameWidth] x [frameHeight],
     * of the frame's aspect ratio; null when the card is large enough
     * (width >= [threshold] * frame width), lies outside the frame, or the crop is the whole frame.
     */
    fun zoomCrop(
        card: PixelBox,
        frameWidth: Int,
        frameHeight: Int,
        threshold: Double = DEFAULT_ZOOM_THRESHOLD,
        margin: Double = DEFAULT_ZOOM_MARGIN
    ): Crop? {
        require(minOf(frameWidth, frameHeight) > 0) {
            "zoom crop: the frame size must be positive, got ($frameWidth, $frameHeight)"
        }
        require(threshold >= 0 && margin >= 0) { "zoom crop: threshold $threshold and margin $margin must be >= 0" }
        val cardWidth = card.right - card.left
        require(cardWidth > 0 && card.bottom > card.top) { "zoom crop: the card box $card is empty" }
        if (cardWidth >= threshold * frameWidth) return null
        val pad = margin * cardWidth
        var left = maxOf(0.0, card.left - pad)
        var top = maxOf(0.0, card.top - pad)
        var right = minOf(frameWidth.toDouble(), card.right + pad)
        var bottom = minOf(frameHeight.toDouble(), card.bottom + pad)
        if (right <= left || bottom <= top) return null
        val aspect = frameWidth.toDouble() / frameHeight
        val width = right - left
        val height = bottom - top
        if (width < aspect * height) {
            val (low, high) = grow(left, right, minOf(frameWidth.toDouble(), aspect * height), frameWidth)
            left = low
            right = high
        } else {
            val (low, high) = grow(top, bottom, minOf(frameHeight.toDouble(), width / aspect), frameHeight)
            top = low
            bottom = high
        }
        val crop =
            Crop(
                maxOf(0, floor(left).toInt()),
                maxOf(0, floor(top).toInt()),
                minOf(frameWidth, ceil(right).toInt()),
                minOf(frameHeight, ceil(bottom).toInt())
            )
        return if (crop == Crop(0, 0, frameWidth, frameHeight)) null else crop
    }

    /** [low, high] grown to [length] about its centre, shifted back inside [0, limit]. */
    private fun grow(low: Double, high: Double, length: Double, limit: Int): Pair<Double, Double> {
        val centre = (low + high) / 2
        val start = centre - length / 2
        val end = centre + length / 2
        return when {
            start < 0 -> Pair(0.0, length)
            end > limit -> Pair(limit - length, limit.toDouble())
            else -> Pair(start, end)
        }
    }
}
