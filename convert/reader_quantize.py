"""The field reader to full int8: the detector's pinning and quantizer on a calibrated reader.

:func:`ktp_tflite.train.reader_export.calibrated_tflite` calibrates the reader;
here its input range is pinned to what pixels 0..255 map to (uint8 input ==
pixel values, as for the detector: :func:`ktp_tflite.convert.quantize.pin_input_range`)
and the MLIR quantizer makes every op int8, with float32 logits out.
"""

from __future__ import annotations

from collections.abc import Sequence

from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD
from ktp_tflite.train.reader_crops import FieldCrop
from ktp_tflite.train.reader_export import ReaderExportError, calibrated_tflite
from ktp_tflite.train.reader_model import ReaderConfig


def int8_tflite(model, config: ReaderConfig, representative: Sequence[FieldCrop]) -> bytes:
    """Full-integer int8 reader: uint8 pixel input, float32 logits.

    Raises:
      ReaderExportError: no representative crops, or the conversion failed.
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    from ktp_tflite.convert.quantize import ConversionError, pin_input_range

    calibrated = calibrated_tflite(model, config, representative)
    try:
        pinned = pin_input_range(calibrated, (0.0 - INPUT_MEAN) / INPUT_STD, (255.0 - INPUT_MEAN) / INPUT_STD)
    except ConversionError as error:
        raise ReaderExportError(f"reader int8: {error}") from error
    try:
        quantized = mlir_quantize(pinned, input_data_type=tf.uint8, output_data_type=tf.float32)
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        raise ReaderExportError(f"reader int8 quantization failed: {error}") from error
    return bytes(quantized)
