// Host JVM time of ktp-core's ModelInput.presizedFrame on a camera-sized frame (what
// android_demo does per analysed frame before the detector runtime sees it).
//
// Run from android_demo/ after `bash ci.sh` (which builds build/ci/ktp-core.jar):
//   node_modules/kotlin-compiler/bin/kotlinc -jvm-target 17 -cp build/ci/ktp-core.jar \
//       ../benchmarks/kotlin/ModelInputTiming.kt -d build/timing.jar
//   java -cp build/ci/ktp-core.jar:build/timing.jar:node_modules/kotlin-compiler/lib/kotlin-stdlib.jar \
//       ModelInputTimingKt [WIDTH HEIGHT]
// Prints the median and 90th percentile of 50 runs after 20 warm-up runs, for the resize alone
// and for the whole presized frame. A phone's
// ART is not the host JVM: this says what the code costs here, not on a Pixel.
import org.ktptflite.core.ArgbWindow
import org.ktptflite.core.ModelInput

fun main(args: Array<String>) {
    val width = args.getOrNull(0)?.toInt() ?: 640
    val height = args.getOrNull(1)?.toInt() ?: 480
    val frame = ArgbWindow(IntArray(width * height) { (it * 2654435761L).toInt() or (0xFF shl 24) }, width, height)
    val steps =
        listOf(
            "resize ${width}x$height -> 320x320" to { ModelInput.resize(frame, 320, 320) },
            "presizedFrame (resize + ${ModelInput.PRESIZE_FACTOR}x${ModelInput.PRESIZE_FACTOR} repeat)" to {
                ModelInput.presizedFrame(frame, 320, 320)
            }
        )
    for ((name, step) in steps) {
        repeat(20) { step() }
        val millis =
            List(50) {
                val start = System.nanoTime()
                step()
                (System.nanoTime() - start) / 1e6
            }.sorted()
        println("$name: median %.2f ms, p90 %.2f ms (host JVM ${System.getProperty("java.version")})".format(millis[25], millis[45]))
    }
}
