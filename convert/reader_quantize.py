"""The field reader to full int8: the detector's pinning and quantizer on a calibrated reader.

:func:`ktp_tflite.train.reader_export.calibrated_tflite` calibrates the reader;
here its input range is pinned to what pixels 0..255 map to (uint8 input ==
pixel values, as for the detector: :func:`ktp_tflite.convert.quantize.pin_input_range`)
and the MLIR quantizer makes every op int8, with float32 logits out.

:func:`export_reader` is the library flow behind ``ktpconvert export-reader``:
float and int8 files with metadata, each checked against the Keras model and
scored on the run's validation crops in LiteRT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.reader import ReaderInfo, TfliteReader, attach_reader_metadata
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD
from ktp_tflite.train.reader_crops import FieldCrop
from ktp_tflite.train.reader_export import ReaderExportError, calibrated_tflite
from ktp_tflite.train.reader_grammar import greedy_decode
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
    except Exception as error:
        raise ReaderExportError(f"reader int8 quantization failed: {error}") from error
    return bytes(quantized)


@dataclasses.dataclass(frozen=True)
class ReaderExport:
    """What :func:`export_reader` made: both models (with metadata) and the report.

    ``report``: ``float`` / ``int8`` scores (:func:`ktp_tflite.train.reader_train.score_readings`
    through LiteRT on the validation crops), ``drop_points`` (float - int8 exact
    match x 100, per field and "all"), ``keras_agreement`` of each file (largest
    logit difference, share of equal greedy texts), sizes, crop counts.
    """

    float_model: bytes
    int8_model: bytes
    report: dict


def compare_with_keras(tflite_model: bytes, model, crops: Sequence[FieldCrop]) -> dict:
    """LiteRT against Keras on ``crops``: max |logit difference| and the share of equal greedy texts."""
    from ktp_tflite.train.reader_train import crop_batch

    ours = TfliteReader(tflite_model, "reader").logits(crops)
    reference = model(crop_batch(crops), training=False).numpy()
    same = [greedy_decode(a).text == greedy_decode(b).text for a, b in zip(ours, reference, strict=True)]
    return {
        "crops": len(crops),
        "max_abs_logit_diff": float(np.max(np.abs(ours - reference))),
        "logit_range": float(np.ptp(reference)),
        "greedy_agreement": float(np.mean(same)),
    }


def export_reader(
    run_dir: str | Path,
    representative_cards: int = 100,
    check_crops: int = 200,
    info: ReaderInfo | None = None,
    workers: int = 1,
) -> ReaderExport:
    """The float and int8 .tflite of a reader run, with metadata, verified and evaluated in LiteRT.

    Args:
      run_dir: a ``ktpconvert train-reader`` folder (its newest checkpoint).
      representative_cards: training cards whose crops calibrate int8 (5
        fields x the run's crop kinds each; jittered boxes as in training).
      check_crops: validation crops compared with the Keras model.
      info: general metadata (default: :class:`ReaderInfo`).
      workers: processes rendering crops.

    Raises:
      ReaderRunError: not a reader run. ReaderExportError: a conversion failed.
    """
    from ktp_tflite.train.reader_export import float_tflite
    from ktp_tflite.train.reader_train import (
        render_crops,
        restore_reader,
        score_readings,
        validation_crops,
    )

    config, model = restore_reader(run_dir)
    representative = render_crops(
        config.train_seed,
        representative_cards,
        config,
        box_jitter=config.box_jitter,
        workers=workers,
        kinds=config.validation_kinds,
    )
    val = validation_crops(Path(run_dir), config, workers=workers)
    info = info or ReaderInfo()
    float_model = attach_reader_metadata(float_tflite(model, config), config.crop, info, "float reader")
    int8_model = attach_reader_metadata(int8_tflite(model, config, representative), config.crop, info, "int8 reader")
    report: dict = {"representative_crops": len(representative), "val_crops": len(val)}
    for name, data in (("float", float_model), ("int8", int8_model)):
        reader = TfliteReader(data, f"{name} reader")
        report[name] = score_readings(val, reader.read(val))
        report[f"{name}_bytes"] = len(data)
        report[f"{name}_keras_agreement"] = compare_with_keras(data, model, val[:check_crops])
    report["drop_points"] = {
        key: 100 * (report["float"][key]["exact"] - report["int8"][key]["exact"]) for key in report["float"]
    }
    return ReaderExport(float_model, int8_model, report)
