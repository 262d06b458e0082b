package org.ktptflite.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.View
import java.util.Locale
import kotlin.math.roundToInt
import org.ktptflite.core.CardLayout
import org.ktptflite.core.FieldResult
import org.ktptflite.core.ViewTransform

/**
 * Draws the card-shaped capture guide with its hint and the five field boxes with label and score.
 *
 * Boxes arrive in pixels of the upright camera image and are mapped to the view
 * with one scale factor, the way PreviewView's FILL_CENTER shows the preview.
 * When the card the boxes imply (CardLayout.cardFromFields) is narrower than
 * [MIN_CARD_WIDTH_SHARE] of the frame, the hint asks to move closer.
 */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private var result: FieldResult? = null

    /** The card's width over the frame's, from the last boxes; null without boxes. */
    private var cardShare: Double? = null
    private val boxPaint = Paint().apply {
        style = Paint.Style.STROKE
        strokeWidth = 6f
        color = Color.rgb(255, 193, 7)
    }
    private val guidePaint = Paint().apply {
        style = Paint.Style.STROKE
        strokeWidth = 4f
        color = Color.WHITE
        alpha = 180
    }
    private val textPaint = Paint().apply {
        color = Color.BLACK
        textSize = 36f
        isAntiAlias = true
    }
    private val textBackground = Paint().apply {
        style = Paint.Style.FILL
        color = Color.rgb(255, 193, 7)
    }
    private val hintPaint = Paint().apply {
        color = Color.WHITE
        textSize = 32f
        textAlign = Paint.Align.CENTER
        isAntiAlias = true
        setShadowLayer(4f, 0f, 0f, Color.BLACK)
    }

    fun setResults(result: FieldResult) {
        this.result = result
        val boxes = result.fields.filter { it.label in CardLayout.TEMPLATE }.associate { it.label to it.box }
        cardShare =
            if (boxes.isEmpty()) {
                null
            } else {
                CardLayout.cardFromFields(boxes).width / result.geometry.imageWidth
            }
        invalidate()
    }

    fun clear() {
        result = null
        cardShare = null
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        drawGuide(canvas)
        val result = result ?: return
        val transform = ViewTransform.fillCenter(
            result.geometry.imageWidth,
            result.geometry.imageHeight,
            width,
            height
        )
        for (field in result.fields) {
            val box = transform.map(field.box)
            val rect = RectF(box.left.toFloat(), box.top.toFloat(), box.right.toFloat(), box.bottom.toFloat())
            canvas.drawRect(rect, boxPaint)
            val caption = String.format(Locale.ROOT, "%s %.2f", field.label, field.score)
            val textWidth = textPaint.measureText(caption)
            val textTop = rect.top - textPaint.textSize - 8f
            canvas.drawRect(rect.left, textTop, rect.left + textWidth + 16f, rect.top, textBackground)
            canvas.drawText(caption, rect.left + 8f, rect.top - 12f, textPaint)
        }
    }

    /** ID-1 card outline (85.60 x 53.98 mm) centred in the view, and the hint under it. */
    private fun drawGuide(canvas: Canvas) {
        val guideWidth = width * GUIDE_WIDTH_FRACTION
        val guideHeight = guideWidth / CARD_ASPECT
        val left = (width - guideWidth) / 2
        val top = (height - guideHeight) / 2
        canvas.drawRoundRect(left, top, left + guideWidth, top + guideHeight, 24f, 24f, guidePaint)
        val needed = (MIN_CARD_WIDTH_SHARE * 100).roundToInt()
        val share = cardShare
        val hint =
            if (share != null && share < MIN_CARD_WIDTH_SHARE) {
                hintPaint.color = Color.rgb(255, 193, 7)
                context.getString(R.string.move_closer, (share * 100).roundToInt(), needed)
            } else {
                hintPaint.color = Color.WHITE
                context.getString(R.string.capture_guide, needed)
            }
        canvas.drawText(hint, width / 2f, top + guideHeight + hintPaint.textSize + 16f, hintPaint)
    }

    companion object {
        private const val CARD_ASPECT = 85.60f / 53.98f
        private const val GUIDE_WIDTH_FRACTION = 0.9f

        /**
         * The card must fill at least about this share of the frame width to be read. The figure
         * comes from whole scans by card width in the reader's model card (`ktpconvert
         * evaluate-scan`, int8 detector through the Task Library with ktp-core boxes, 500 photos at
         * 1280x960): all five values read on 0.74 of cards covering 65 % or more of the width,
         * 0.55 at 45-65 %, 0.18 below.
         */
        const val MIN_CARD_WIDTH_SHARE = 0.65
    }
}
