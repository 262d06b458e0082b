package org.ktptflite.core

/*
 * Which of a field's detections is the card's: the card fit.
 *
 * The Kotlin twin of ktp_tflite.train.card_layout.card_fit_choice (same rule, same vectors:
 * section "card_fit" of tests/vectors/ktp_vectors.json), so change them together. A detector's
 * top box of a field is sometimes the value one row off (Agama or Pekerjaan for Status
 * Perkawinan) with the right box a close second. Each field's first CANDIDATES detections (best
 * first) scoring at least MIN_SCORE_RATIO of its best are candidates; every combination of one
 * candidate per field costs
 *     sum over fields of (rx^2 + ry^2) / (2 SIGMA^2) - ln(score)
 * with (rx, ry) the field's residual in card pixels after the least-squares similarity
 * (x' = a x - c y + tx, y' = c x + a y + ty) from CardLayout.TEMPLATE onto the boxes. A box
 * gives two equations from its value's left end: rolled clockwise (c >= 0), its left edge is the
 * template's bottom-left x and its top the top-left y; rolled the other way, its left edge is
 * the top-left x and its bottom the bottom-left y. Both branches are fitted (skipped when
 * a <= 0 or c has the other sign beyond BRANCH_SLACK of the scale); the cheaper counts; the
 * cheapest combination wins, ties to the first in candidate order (the first field's candidate
 * changes slowest). Fewer than MIN_FIELDS fields, or no fit: every field keeps its top box.
 * Plain doubles in the Python code's operation order (centred 2x2 normal equations).
 */
object CardFit {
    /** Detections per field tried, best first (card_layout.FIT_CANDIDATES). */
    const val CANDIDATES = 3

    /** Of the field's best score (FIT_MIN_SCORE_RATIO). */
    const val MIN_SCORE_RATIO = 0.1

    /** Card pixels (FIT_SIGMA): a third of the row spacing. */
    const val SIGMA = 8.0

    /** The similarity has 4 unknowns, a field gives 2 equations (FIT_MIN_FIELDS). */
    const val MIN_FIELDS = 3

    /** A roll branch takes rotations down to this share of the scale the other way (FIT_BRANCH_SLACK). */
    const val BRANCH_SLACK = 0.02

    private const val MIN_SCORE = 1e-6 // ln() floor of a score

    /** One detection of a field: a box in pixels of a frame with square pixels, and its score. */
    data class Candidate(val box: PixelBox, val score: Double)

    /**
     * For each field of [candidates] (label -> its detections, best first), the index of the one
     * the card fit picks: 0, the top box, unless the fit says otherwise.
     */
    fun choice(candidates: Map<String, List<Candidate>>): Map<String, Int> {
        val names = candidates.filterValues { it.isNotEmpty() }.keys.toList()
        val choice = LinkedHashMap<String, Int>()
        for (name in names) {
            require(name in CardLayout.TEMPLATE) {
                "card fit: unknown field '$name'; use ${CardLayout.TEMPLATE.keys.joinToString(", ")}"
            }
            for (found in candidates.getValue(name)) {
                val b = found.box
                require(b.right > b.left && b.bottom > b.top) {
                    "card fit: a $name box (${b.left}, ${b.top}, ${b.right}, ${b.bottom}) is empty"
                }
            }
            choice[name] = 0
        }
        if (names.size < MIN_FIELDS) return choice
        val template = names.map { CardLayout.TEMPLATE.getValue(it) }
        val options =
            names.map { name ->
                val found = candidates.getValue(name)
                val floor = MIN_SCORE_RATIO * found[0].score
                found.take(CANDIDATES).indices.filter { it == 0 || found[it].score >= floor }
            }
        val combo = IntArray(names.size) // positions into options, the last changing fastest
        var bestCost = Double.POSITIVE_INFINITY
        var best: IntArray? = null
        while (true) {
            val picked = names.indices.map { candidates.getValue(names[it])[options[it][combo[it]]] }
            val geometric = fitCost(template, picked.map { it.box })
            if (geometric != null) {
                var cost = geometric
                for (found in picked) cost -= StrictMath.log(maxOf(found.score, MIN_SCORE))
                if (cost < bestCost) {
                    bestCost = cost
                    best = IntArray(names.size) { options[it][combo[it]] }
                }
            }
            var position = names.size - 1
            while (position >= 0 && combo[position] == options[position].size - 1) combo[position--] = 0
            if (position < 0) break
            combo[position]++
        }
        val chosen = best ?: return choice
        return names.withIndex().associateTo(LinkedHashMap()) { (i, name) -> name to chosen[i] }
    }

    /** The geometric cost of the cheaper roll branch, or null when neither fits. */
    internal fun fitCost(template: List<CardLayout.TemplateField>, boxes: List<PixelBox>): Double? {
        var best: Double? = null
        for (branch in doubleArrayOf(1.0, -1.0)) {
            val cost = branchCost(template, boxes, branch) ?: continue
            if (best == null || cost < best) best = cost
        }
        return best
    }

    private fun branchCost(template: List<CardLayout.TemplateField>, boxes: List<PixelBox>, branch: Double): Double? {
        val n = boxes.size
        // Per field: the x equation's template point (u, q) -> left; the y equation's (u, r) -> the y observation.
        val us = centred(DoubleArray(n) { template[it].left })
        val qs = centred(DoubleArray(n) { if (branch > 0) template[it].bottom else template[it].top })
        val rs = centred(DoubleArray(n) { if (branch > 0) template[it].top else template[it].bottom })
        val xs = centred(DoubleArray(n) { boxes[it].left })
        val ys = centred(DoubleArray(n) { if (branch > 0) boxes[it].top else boxes[it].bottom })
        var suu = 0.0
        var srr = 0.0
        var sqq = 0.0
        var sur = 0.0
        var squ = 0.0
        var sxu = 0.0
        var syr = 0.0
        var syu = 0.0
        var sxq = 0.0
        for (i in 0 until n) {
            val u = us[i]
            val q = qs[i]
            val r = rs[i]
            val x = xs[i]
            val y = ys[i]
            suu += u * u
            srr += r * r
            sqq += q * q
            sur += u * r
            squ += q * u
            sxu += x * u
            syr += y * r
            syu += y * u
            sxq += x * q
        }
        val a11 = suu + srr
        val a12 = sur - squ
        val a22 = sqq + suu
        val b1 = sxu + syr
        val b2 = syu - sxq
        val det = a11 * a22 - a12 * a12
        if (!(det > 0)) return null
        val a = (b1 * a22 - a12 * b2) / det
        val c = (a11 * b2 - a12 * b1) / det
        val scale2 = a * a + c * c
        if (!(a > 0) || branch * c < -BRANCH_SLACK * Math.sqrt(scale2)) return null
        var total = 0.0
        for (i in 0 until n) {
            val rx = a * us[i] - c * qs[i] - xs[i]
            val ry = a * rs[i] + c * us[i] - ys[i]
            total += rx * rx + ry * ry
        }
        return total / scale2 / (2.0 * SIGMA * SIGMA)
    }

    /** [values] minus their mean (a left-to-right sum over the count, as the Python code adds). */
    private fun centred(values: DoubleArray): DoubleArray {
        var total = 0.0
        for (v in values) total += v
        val mean = total / values.size
        return DoubleArray(values.size) { values[it] - mean }
    }
}
