"""TFLite metadata for the KTP detector: a thin wrapper of tflite-support's writer.

The Task Library and MediaPipe need it: input normalisation (mean/std, so a
float model takes pixels), the label file and the output tensor names below
(they tell the Task Library which output is which). After writing, the
metadata is read back (``MetadataDisplayer``, through
:mod:`ktp_tflite.convert.tflite_model`) and compared with what was asked,
output by output against the post-process op's own outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from importlib import metadata as package_metadata
from pathlib import Path

from ktp_tflite.convert.tflite_model import ModelMetadata, TfliteModel, parse_model, rgb_color_space
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES, labels_txt
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD

# Output tensor names the Task Library looks up (tflite-support object_detector.py).
LOCATION = "location"
CATEGORY = "category"
SCORE = "score"
NUMBER_OF_DETECTIONS = "number of detections"
OUTPUT_NAMES = {"boxes": LOCATION, "classes": CATEGORY, "scores": SCORE, "count": NUMBER_OF_DETECTIONS}
INPUT_NAME = "image"
LABELS_FILE = "labels.txt"


class MetadataError(KtpError, ValueError):
    """Metadata cannot be written, or what was written is not what was asked."""


def _version() -> str:
    try:
        return package_metadata.version("ktp-tflite")
    except package_metadata.PackageNotFoundError:
        return "0.0.0"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the metadata says about the model."""

    name: str = "KTP field detector"
    description: str = (
        "Detects the NIK, nama, jenis kelamin, status perkawinan and kewarganegaraan "
        "fields on a photo of an Indonesian KTP (SSD MobileNet v2, fused post-process)."
    )
    version: str = dataclasses.field(default_factory=_version)
    author: str = "ktp-tflite contributors"
    license: str = "Apache-2.0"
    input_mean: float = INPUT_MEAN
    input_std: float = INPUT_STD
    labels: tuple[str, ...] = CLASSES


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Labels from a labels.txt (one per line; blank lines at the end ignored).

    Raises:
      MetadataError: unreadable, empty, blank lines inside, or duplicates.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MetadataError(f"{path}: cannot read labels file ({error})") from error
    while lines and not lines[-1].strip():
        lines.pop()
    labels = tuple(line.strip() for line in lines)
    if not labels:
        raise MetadataError(f"{path}: labels file is empty; write one class name per line")
    if any(not label for label in labels):
        raise MetadataError(f"{path}: blank line among the labels; one class name per line")
    if len(set(labels)) != len(labels):
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        raise MetadataError(f"{path}: duplicate labels {duplicates}")
    return labels


def attach_metadata(model: bytes, info: ModelInfo = ModelInfo(), source: str = "model") -> bytes:
    """Return ``model`` with object-detector metadata and the labels file packed in.

    Metadata the model already has is replaced.

    Raises:
      MetadataError: the model lacks the post-process op, the label count does
        not match its num_classes, or the read-back differs from ``info``.
    """
    from tensorflow_lite_support.metadata.python.metadata_writers import (
        metadata_info,
        object_detector,
        writer_utils,
    )

    try:
        tflite = parse_model(model, source)
        tflite.detection_outputs()
    except KtpError as error:
        raise MetadataError(f"cannot write detector metadata: {error}") from error
    if tflite.has_metadata:
        # replaced, not added to: tflite-support refuses to pack labels.txt twice
        model = tflite.without_metadata()
        tflite = parse_model(model, source)
    num_classes = tflite.num_classes
    if num_classes is not None and num_classes != len(info.labels):
        raise MetadataError(
            f"{source}: the model has {num_classes} classes but {len(info.labels)} labels were "
            "given; the labels file needs one line per class, in class-id order"
        )
    with tempfile.TemporaryDirectory() as folder:
        labels_path = Path(folder) / LABELS_FILE
        labels_path.write_text("".join(f"{label}\n" for label in info.labels), encoding="utf-8")
        input_md = metadata_info.InputImageTensorMd(
            name=INPUT_NAME,
            description="Input image: RGB photo of a KTP, stretched to the model input size.",
            norm_mean=[info.input_mean],
            norm_std=[info.input_std],
            color_space_type=rgb_color_space(),
            tensor_type=writer_utils.get_input_tensor_types(model)[0],
        )
        writer = object_detector.MetadataWriter.create_from_metadata_info(
            model,
            general_md=metadata_info.GeneralMd(
                name=info.name,
                version=info.version,
                description=info.description,
                author=info.author,
                licenses=info.license,
            ),
            input_md=input_md,
            output_location_md=metadata_info.TensorMd(
                name=LOCATION, description="Boxes [top, left, bottom, right], normalised."
            ),
            output_category_md=metadata_info.CategoryTensorMd(
                name=CATEGORY,
                description="Class index of each box, into labels.txt.",
                label_files=[metadata_info.LabelFileMd(file_path=str(labels_path))],
            ),
            output_score_md=metadata_info.ClassificationTensorMd(name=SCORE, description="Score of each box."),
            output_number_md=metadata_info.TensorMd(name=NUMBER_OF_DETECTIONS, description="Number of valid boxes."),
        )
        result = bytes(writer.populate())
    check_metadata(result, info, source)
    return result


def read_metadata(model: bytes | TfliteModel, source: str = "model") -> dict:
    """The metadata as JSON (``MetadataDisplayer``), plus ``labels`` and ``packed_files``.

    ``labels`` come from the first packed TENSOR_VALUE_LABELS file of an output
    tensor, whatever its name (ours is labels.txt; other exporters differ):
    :attr:`ktp_tflite.convert.tflite_model.TfliteModel.metadata` reads it.

    Raises:
      ModelLoadError: not a TFLite model, or metadata tflite-support cannot read.
      MetadataError: the model has no metadata.
    """
    tflite = model if isinstance(model, TfliteModel) else parse_model(model, source)
    return copy.deepcopy(_model_metadata(tflite).document)  # a copy: callers may change it


def _model_metadata(tflite: TfliteModel) -> ModelMetadata:
    """The parsed metadata of ``tflite``; MetadataError when it has none."""
    metadata = tflite.metadata
    if metadata is None:
        raise MetadataError(f"{tflite.source}: model has no TFLite metadata; run `ktpconvert metadata`")
    return metadata


def check_metadata(model: bytes, info: ModelInfo, source: str = "model") -> None:
    """Compare the model's metadata with ``info`` and the post-process outputs.

    Raises:
      MetadataError: naming each difference.
    """
    tflite = parse_model(model, source)
    metadata = _model_metadata(tflite)
    meta = read_metadata(tflite)
    problems = []
    for key, wanted in (
        ("name", info.name),
        ("description", info.description),
        ("version", info.version),
        ("author", info.author),
        ("license", info.license),
    ):
        if meta.get(key) != wanted:
            problems.append(f"{key} is {meta.get(key)!r}, asked {wanted!r}")
    if tuple(meta["labels"]) != tuple(info.labels):
        problems.append(f"labels are {meta['labels']}, asked {list(info.labels)}")
    norm = (list(metadata.norm_mean), list(metadata.norm_std))
    if norm != ([info.input_mean], [info.input_std]):
        problems.append(f"input normalization is mean/std {norm}, asked {info.input_mean}/{info.input_std}")

    output_indices = [t.index for t in tflite.outputs]
    names = list(metadata.output_names)
    for role, tensor in tflite.detection_outputs().items():
        position = output_indices.index(tensor.index) if tensor.index in output_indices else None
        got = names[position] if position is not None and position < len(names) else None
        if got != OUTPUT_NAMES[role]:
            problems.append(f"output {tensor.name!r} ({role}) is described as {got!r}, expected {OUTPUT_NAMES[role]!r}")
    if problems:
        raise MetadataError(f"{source}: metadata differs from what was asked: " + "; ".join(problems))


def default_labels_txt() -> str:
    """labels.txt text for the five canonical classes."""
    return labels_txt()
