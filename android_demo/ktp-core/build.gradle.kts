// Plain Kotlin/JVM: every rule that needs no Android API (NIK, OCR clean-up,
// detection selection, geometry, result assembly). CI compiles and tests it
// without Gradle (../ci.sh); this file is for Android Studio.
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit.jupiter)
}

tasks.test {
    useJUnitPlatform()
    systemProperty("ktp.vectors", rootProject.file("../tests/vectors/ktp_vectors.json").absolutePath)
}
