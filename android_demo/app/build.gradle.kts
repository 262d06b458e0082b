plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "org.ktptflite.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.ktptflite.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // The models are memory-mapped (MediaPipe, Task Library, LiteRT Interpreter): keep them uncompressed.
        noCompress += "tflite"
    }

    buildFeatures {
        viewBinding = true
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":ktp-core"))
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.appcompat)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.constraintlayout)
    implementation(libs.material)
    implementation(libs.camerax.core)
    implementation(libs.camerax.camera2)
    implementation(libs.camerax.lifecycle)
    implementation(libs.camerax.view)
    implementation(libs.mediapipe.tasks.vision)
    implementation(libs.tflite.task.vision)
    implementation(libs.tflite.gpu.delegate.plugin)
    implementation(libs.tflite.gpu)
    implementation(libs.tflite.metadata)
    implementation(libs.tflite)
    implementation(libs.mlkit.text.recognition)
}
