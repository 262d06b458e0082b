"""The reader to TFLite: float, and full int8 with uint8 input, checked in LiteRT.

- :func:`float_tflite`: input ``crop`` [1, 32, W, 3] float32 in [-1, 1],
  output ``logits`` [1, T, NUM_CLASSES] float32.
- :func:`calibrated_tflite`: calibrated on a representative set of crops
  (preprocessed as in training) for every op in int8, uint8 input, float32
  logits; :func:`ktp_tflite.convert.reader_quantize.int8_tflite` pins its
  input range (uint8 input == pixel values, scale 1/127.5) and quantizes it.

LiteRT runs a reader through :class:`ktp_tflite.convert.reader.TfliteReader`
only (the comparison with Keras is
:func:`ktp_tflite.convert.reader_quantize.compare_with_keras`).

The int8 steps are the detector's (``convert/quantize.py``): calibrate only
(here), pin the input range and quantize with the MLIR quantizer (in
``ktp_tflite.convert``, the layer that reads flatbuffers). Metadata (normalisation, the character
set as an associated file) is not written yet.

Functions return bytes or dicts; only the CLI writes files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.preprocess import to_model_input
from ktp_tflite.train.reader_crops import FieldCrop
from ktp_tflite.train.reader_model import INPUT_NAME, OUTPUT_NAME, ReaderConfig
from ktp_tflite.train.scratch import private_tempdir


class ReaderExportError(KtpError, RuntimeError):
    """A reader conversion that failed or produced a wrong model (says which)."""


@contextlib.contextmanager
def _converter(model, config: ReaderConfig) -> Iterator:
    """A converter of the reader's serving function, through a SavedModel (as train/export.py).

    Converting the Keras model's function directly can leave the Keras 3
    weights unfrozen (NaN or zero outputs); the loaded SavedModel signature
    holds them as constants.
    """
    import tensorflow as tf

    spec = tf.TensorSpec([1, config.crop.height, config.crop.width, 3], tf.float32, name=INPUT_NAME)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[spec])
        def serve(self, crop):
            return {OUTPUT_NAME: self.model(crop, training=False)}

    module = Serving()
    with private_tempdir("ktp-reader-") as folder:  # the converter's own temporaries go in it too
        tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
        loaded = tf.saved_model.load(folder)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["serving_default"]], loaded)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        yield converter


def _convert(converter, what: str) -> bytes:
    try:
        return bytes(converter.convert())
    except Exception as error:
        lines = str(error).strip().splitlines()
        raise ReaderExportError(f"reader {what} failed: {lines[-1] if lines else type(error).__name__}") from error


def float_tflite(model, config: ReaderConfig) -> bytes:
    """The float .tflite of the Keras reader."""
    with _converter(model, config) as converter:
        return _convert(converter, "float conversion")


def calibrated_tflite(model, config: ReaderConfig, representative: Sequence[FieldCrop]) -> bytes:
    """The reader calibrated for full int8 (not yet quantized): uint8 input, float32 logits.

    :func:`ktp_tflite.convert.reader_quantize.int8_tflite` pins its input range and
    quantizes it (flatbuffer work belongs to ``ktp_tflite.convert``).

    Raises:
      ReaderExportError: no representative crops, or the converter failed.
    """
    import tensorflow as tf

    if not representative:
        raise ReaderExportError("int8 needs representative crops; none were given")

    def samples():
        for crop in representative:
            yield [to_model_input(crop.pixels)[None]]

    with _converter(model, config) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
        converter._experimental_calibrate_only = True  # pylint: disable=protected-access
        return _convert(converter, "calibration")
