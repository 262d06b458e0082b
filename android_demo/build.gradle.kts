// Versions live in gradle/libs.versions.toml. The Kotlin version there must
// match the npm kotlin-compiler pinned in package.json (check_static.py checks).
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.android) apply false
    alias(libs.plugins.kotlin.jvm) apply false
}
