"""Deliver a detector to the Android demo: check the metadata contract, copy to assets.

The app (``android_demo/app``) loads ``ktp_detector.tflite`` from its assets
with the TFLite Task Library ``ObjectDetector`` and reads the labels from the
model's metadata. That works only if the model keeps this contract, checked
here before anything is copied:

* exactly four outputs, named by the metadata "location", "category",
  "score" and "number of detections" (the SSD post-process outputs);
* a uint8 image input, or a float32 one with NormalizationOptions in the
  metadata (the Task Library rejects float input without them, and int8
  input altogether);
* a label file in the metadata holding the five KTP classes in canonical
  order (:data:`ktp_tflite.train.labels.CLASSES`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ktp_tflite.convert.reader import INT8_FILE
from ktp_tflite.convert.scan import (
    METADATA_OUTPUT_NAMES,
    ModelContractError,
    OutputBinding,
    bind_outputs,
    check_field_labels,
)
from ktp_tflite.convert.tflite_model import TfliteModel, read_model
from ktp_tflite.train.atomic_files import atomic_write_bytes
from ktp_tflite.train.labels import labels_txt

MODEL_ASSET = "ktp_detector.tflite"
READER_ASSET = INT8_FILE  # ktp-core ReaderModel.ASSET
LABELS_ASSET = "labels.txt"
DEFAULT_ASSETS_DIR = Path("android_demo/app/src/main/assets")


@dataclasses.dataclass(frozen=True)
class AssetsReport:
    """What ``install_assets`` checked and wrote."""

    model: Path
    labels: Path
    input_dtype: str
    input_size: tuple[int, int]  # height, width
    normalization: tuple[float, float] | None  # (mean, std) for float input
    labels_list: tuple[str, ...]
    reader: Path | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "reader": str(self.reader) if self.reader else None,
            "model": str(self.model),
            "labels": str(self.labels),
            "input_dtype": self.input_dtype,
            "input_size": list(self.input_size),
            "normalization": list(self.normalization) if self.normalization else None,
            "labels_list": list(self.labels_list),
        }


def check_contract(model: bytes | TfliteModel, source: str = "model") -> OutputBinding:
    """Check that ``model`` keeps the app's metadata contract (module docstring).

    Raises:
      ModelLoadError: not a TFLite model.
      ModelContractError: naming the first broken rule and the fix.
    """
    spec = bind_outputs(model, source)
    source = spec.model.source
    metadata = spec.metadata
    if metadata is None:
        raise ModelContractError(
            f"{source}: has no TFLite metadata; the app needs it for labels and input "
            "normalisation. Write it with tflite-support's object detector MetadataWriter "
            "(ktpconvert quantize does) and try again"
        )
    names = set(metadata.output_names)
    if spec.binding != "metadata" or names != set(METADATA_OUTPUT_NAMES):
        raise ModelContractError(
            f"{source}: metadata output names {list(metadata.output_names)} are not the four "
            f"SSD outputs {sorted(METADATA_OUTPUT_NAMES)}; the Task Library would reject it"
        )
    if spec.input_dtype == "int8":
        raise ModelContractError(
            f"{source}: int8 input is not accepted by the Task Library; convert with "
            "inference_input_type=tf.uint8 (or float32 with normalisation metadata)"
        )
    if spec.input_dtype == "float32" and spec.normalization_source != "metadata":
        raise ModelContractError(
            f"{source}: float32 input without NormalizationOptions in the metadata; add "
            "input_norm_mean/input_norm_std (127.5/127.5 for this detector) when writing it"
        )
    if metadata.labels is None:
        raise ModelContractError(
            f"{source}: the metadata has no label file on the category output; pass labels.txt to the metadata writer"
        )
    check_field_labels(spec)
    return spec


def install_assets(
    model_path: Path, assets_dir: Path = DEFAULT_ASSETS_DIR, reader_path: Path | None = None
) -> AssetsReport:
    """Check ``model_path`` and copy it with labels.txt into ``assets_dir``.

    With ``reader_path``, the field reader too (as :data:`READER_ASSET`),
    after the checks of :class:`ktp_tflite.convert.reader.TfliteReader`
    (its shapes, its charset is the decoder's alphabet) and that it is int8
    with uint8 input, as the app feeds it.

    Both files are written through a temporary file and renamed, so the app
    never sees half a model. The source model is only read.

    Raises:
      ModelLoadError: the file cannot be read or is no TFLite model (nothing is written).
      ModelContractError: the model breaks the contract (nothing is written).
      ReaderModelError: the reader is not one the app can run (nothing is written).
    """
    reader = None
    if reader_path is not None:
        from ktp_tflite.convert.reader import ReaderModelError, TfliteReader

        reader = TfliteReader(read_model(reader_path))
        if reader.precision != "int8" or reader.model.input.dtype != "uint8":
            raise ReaderModelError(
                f"{reader_path}: the app runs the int8 reader with uint8 input; this one is "
                f"{reader.precision} with {reader.model.input.dtype} input "
                "(use ktp_reader_int8.tflite of `ktpconvert export-reader`)"
            )
    assets_dir = Path(assets_dir)
    if not assets_dir.is_dir():
        if not assets_dir.parent.is_dir():
            raise ModelContractError(
                f"{assets_dir}: neither it nor its parent folder exists; run from the repository "
                "root or pass --assets-dir android_demo/app/src/main/assets"
            )
        assets_dir.mkdir()
    spec = check_contract(read_model(model_path))
    target = assets_dir / MODEL_ASSET
    if target.exists() and target.resolve() == Path(model_path).resolve():
        raise ModelContractError(f"{model_path}: is already the app's asset; nothing to copy")
    atomic_write_bytes(target, spec.model.data)
    atomic_write_bytes(assets_dir / LABELS_ASSET, labels_txt(spec.labels).encode())
    if reader is not None:
        atomic_write_bytes(assets_dir / READER_ASSET, reader.model.data)
    float_input = spec.input_dtype == "float32"
    return AssetsReport(
        model=target,
        labels=assets_dir / LABELS_ASSET,
        input_dtype=spec.input_dtype,
        input_size=(spec.height, spec.width),
        normalization=(spec.norm_mean, spec.norm_std) if float_input else None,
        labels_list=spec.labels,
        reader=assets_dir / READER_ASSET if reader is not None else None,
    )
