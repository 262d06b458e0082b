package org.ktptflite.demo

import android.os.Bundle
import androidx.appcompat.app.AppCompatActivity
import org.ktptflite.demo.databinding.ActivityAboutBinding

/** What the app does and its privacy stance. */
class AboutActivity : AppCompatActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val binding = ActivityAboutBinding.inflate(layoutInflater)
        setContentView(binding.root)
    }
}
