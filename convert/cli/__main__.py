"""``python -m ktp_tflite.convert.cli`` runs ``ktpconvert``."""

from ktp_tflite.convert.cli import main

main()
