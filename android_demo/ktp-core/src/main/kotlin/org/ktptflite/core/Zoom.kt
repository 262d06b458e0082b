package org.ktptflite.core

/*
 * The two-pass zoom's bookkeeping: where pass 2 looks, and which detections are kept.
 *
 * The Kotlin twin of ktp_tflite.convert.zoom plan_crop and finish (same rule,
 * same vectors: section "zoom" of tests/vectors/ktp_vectors.json), so change
 * them together. Pass 1 runs on the whole upright frame; the top detection of
 * each field scoring at least MIN_SCORE places the card (CardLayout); when the
 * card is narrower than the threshold, pass 2 runs the same detector on the
 * crop and its boxes are mapped back to the frame. Kept: pass 2's detections,
 * then pass 1's of every class pass 2 found none of at MIN_SCORE.
 */
object Zoom {
    /** Pass 1 boxes scoring this much place the card (ktp_tflite.convert.fields DEFAULT_THRESHOLD). */
    const val MIN_SCORE = DetectionSelector.DEFAULT_THRESHOLD

    /**
     * The top-scoring box of each of [labels]' fields scoring at least [minScore], in pixels of a
     * [frameWidth] x [frameHeight] frame; empty boxes and classes outside [labels] are skipped.
     */
    fun fieldBoxes(
        first: RawDetections,
        labels: List<String>,
        frameWidth: Int,
        frameHeight: Int,
        minScore: Double = MIN_SCORE
    ): Map<String, PixelBox> {
        val best = LinkedHashMap<String, Pair<Double, PixelBox>>()
        for (i in first.boxes.indices) {
            val box = first.boxes[i]
            val index = first.classes[i].toInt()
            val score = first.scores[i]
            if (score < minScore || index !in labels.indices || box.isEmpty) continue
            val name = labels[index]
            if (name !in CardLayout.TEMPLATE) continue // a label the card layout does not place
            val current = best[name]
            if (current == null || score > current.first) {
                best[name] =
                    score to
                    PixelBox(
                        box.xmin * frameWidth,
                        box.ymin * frameHeight,
                        box.xmax * frameWidth,
                        box.ymax * frameHeight
                    )
            }
        }
        return best.mapValues { it.value.second }
    }

    /** The crop pass 2 runs on, or null: no field at [minScore], or the card is wide enough. */
    fun planCrop(
        first: RawDetections,
        labels: List<String>,
        frameWidth: Int,
        frameHeight: Int,
        threshold: Double = CardLayout.DEFAULT_ZOOM_THRESHOLD,
        margin: Double = CardLayout.DEFAULT_ZOOM_MARGIN,
        minScore: Double = MIN_SCORE
    ): Crop? {
        val fields = fieldBoxes(first, labels, frameWidth, frameHeight, minScore)
        if (fields.isEmpty()) return null
        val card = CardLayout.cardFromFields(fields)
        return CardLayout.zoomCrop(card, frameWidth, frameHeight, threshold, margin)
    }

    /**
     * The detections to keep: with no [crop] (or no [second]), [first]; else [second]
     * (normalised to the crop) mapped to the frame, then [first]'s detections of the classes
     * [second] found none of at [minScore]. Boxes of the result are normalised to the frame.
     */
    fun finish(
        first: RawDetections,
        second: RawDetections?,
        crop: Crop?,
        frameWidth: Int,
        frameHeight: Int,
        minScore: Double = MIN_SCORE
    ): RawDetections {
        if (crop == null || second == null) return first
        val scaleY = crop.height.toDouble() / frameHeight
        val scaleX = crop.width.toDouble() / frameWidth
        val top = crop.top.toDouble() / frameHeight
        val left = crop.left.toDouble() / frameWidth
        val mapped =
            second.boxes.map {
                NormBox(
                    it.ymin * scaleY + top,
                    it.xmin * scaleX + left,
                    it.ymax * scaleY + top,
                    it.xmax * scaleX + left
                )
            }
        val found = second.classes.indices.filter {
            second.scores[it] >= minScore
        }.map { second.classes[it].toInt() }.toSet()
        val kept = first.classes.indices.filter { first.classes[it].toInt() !in found }
        return RawDetections(
            boxes = mapped + kept.map { first.boxes[it] },
            classes = second.classes + kept.map { first.classes[it] },
            scores = second.scores + kept.map { first.scores[it] },
            count = (second.boxes.size + kept.size).toDouble()
        )
    }
}
