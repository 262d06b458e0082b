"""Run a KTP detector .tflite on one photo: what ``ktpconvert scan`` does.

:func:`inspect_model` reads what the model expects (input size, dtype,
normalisation from its metadata, labels, and which output is which);
:func:`scan_image` preprocesses a photo exactly that way, runs the LiteRT
interpreter and keeps the best box per field with
:mod:`ktp_tflite.convert.fields`. Field text is not read (no OCR here).

Outputs are bound by role, never by index alone (TF2 exports permute them),
trying in order: metadata tensor names ("location", "category", "score",
"number of detections", as the tflite-support writer sets them), signature
output keys, tensor names, and last the shapes (``[1, N, 4]`` boxes, one
value count, the two ``[1, N]`` in TF1 order: classes, then scores, unless
only one of them holds whole numbers, which then is the classes).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from ktp_tflite.convert.fields import DEFAULT_THRESHOLD, FieldResult, select_fields
from ktp_tflite.convert.model_source import TFLITE_IDENTIFIER
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD, resize_rgb

ROLES = ("boxes", "classes", "scores", "count")
# Output tensor names written by tflite-support's object detector metadata writer.
METADATA_OUTPUT_NAMES = {
    "location": "boxes",
    "category": "classes",
    "score": "scores",
    "number of detections": "count",
}
# EXIF orientation -> clockwise rotation that makes the stored pixels upright.
_EXIF_ROTATION = {1: 0, 3: 180, 6: 90, 8: 270}
_EXIF_ORIENTATION_TAG = 0x0112


class ModelContractError(KtpError, ValueError):
    """The .tflite is not a KTP detector the scanner and the app can use."""


class ImageReadError(KtpError, ValueError):
    """The photo cannot be read."""


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """What a .tflite's TFLite metadata says (the parts the app relies on)."""

    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    output_names: tuple[str, ...]  # in subgraph output order
    labels: tuple[str, ...] | None  # from the category tensor's label file
    associated_files: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to feed a detector and read its four outputs."""

    height: int
    width: int
    input_dtype: str  # "uint8", "int8" or "float32"
    input_quantization: tuple[float, int]  # (scale, zero point); (0.0, 0) when none
    norm_mean: float
    norm_std: float
    normalization_source: str  # "metadata" or "default"
    outputs: dict[str, int]  # role -> tensor index
    binding: str  # "metadata", "signature", "names" or "shapes"
    metadata: ModelMetadata | None

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels from the metadata, else the canonical classes."""
        if self.metadata and self.metadata.labels:
            return self.metadata.labels
        return CLASSES


def read_model_bytes(path: Path) -> bytes:
    """Read a .tflite, refusing files that are not TFLite flatbuffers."""
    data = Path(path).read_bytes()
    if data[4:8] != TFLITE_IDENTIFIER:
        raise ModelContractError(
            f"{path}: not a TFLite model (no 'TFL3' identifier); pass the .tflite file "
            "written by `ktpconvert quantize` or the TFLite converter"
        )
    return data


def read_metadata(model: bytes) -> ModelMetadata | None:
    """The parts of a model's TFLite metadata that scanning needs, or None if it has none."""
    import tensorflow  # noqa: F401  (the metadata module needs TF's runtime loaded first)

    from ktp_tflite.convert.metadata import MetadataError
    from ktp_tflite.convert.metadata import read_metadata as read_metadata_json

    try:
        document = read_metadata_json(model)
    except MetadataError:
        return None
    subgraph = (document.get("subgraph_metadata") or [{}])[0]
    inputs = subgraph.get("input_tensor_metadata") or [{}]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for unit in inputs[0].get("process_units") or []:
        if unit.get("options_type") == "NormalizationOptions":
            mean = tuple(unit["options"].get("mean", ()))
            std = tuple(unit["options"].get("std", ()))
    outputs = subgraph.get("output_tensor_metadata") or []
    return ModelMetadata(
        norm_mean=mean,
        norm_std=std,
        output_names=tuple(output.get("name", "") for output in outputs),
        labels=tuple(document["labels"]) or None,
        associated_files=tuple(document["packed_files"]),
    )


def _role_from_name(name: str) -> str | None:
    lowered = name.lower()
    if lowered in METADATA_OUTPUT_NAMES:
        return METADATA_OUTPUT_NAMES[lowered]
    if lowered == "tflite_detection_postprocess":
        return "boxes"
    suffix = {":1": "classes", ":2": "scores", ":3": "count"}
    if lowered.startswith("tflite_detection_postprocess:"):
        return suffix.get(lowered[len("tflite_detection_postprocess") :])
    for keyword, role in (("box", "boxes"), ("location", "boxes"), ("class", "classes")):
        if keyword in lowered:
            return role
    for keyword, role in (("categor", "classes"), ("score", "scores"), ("num", "count")):
        if keyword in lowered:
            return role
    return None


def _bind(names_by_index: dict[int, str]) -> dict[str, int] | None:
    roles = {}
    for index, name in names_by_index.items():
        role = _role_from_name(name)
        if role is None or role in roles:
            return None
        roles[role] = index
    return roles if set(roles) == set(ROLES) else None


def _bind_by_shape(details: list[dict]) -> dict[str, int]:
    roles: dict[str, int] = {}
    pairs = []
    for detail in details:
        shape = [int(v) for v in detail["shape"]]
        if shape and shape[-1] == 4 and len(shape) == 3:
            roles["boxes"] = detail["index"]
        elif int(np.prod(shape)) == 1:
            roles["count"] = detail["index"]
        elif len(shape) == 2:
            pairs.append(detail["index"])
    if "boxes" not in roles or "count" not in roles or len(pairs) != 2:
        shapes = [list(map(int, d["shape"])) for d in details]
        raise ModelContractError(
            f"cannot tell the detection outputs apart by shape {shapes}; expected boxes "
            "[1, N, 4], classes [1, N], scores [1, N] and count [1]"
        )
    roles["classes"], roles["scores"] = pairs  # TF1 order; may be swapped after a run
    return roles


def _check_metadata_shapes(outputs: dict[str, int], details: list[dict], source: str) -> None:
    shapes = {d["index"]: [int(v) for v in d["shape"]] for d in details}
    boxes, count = shapes[outputs["boxes"]], shapes[outputs["count"]]
    if len(boxes) != 3 or boxes[-1] != 4 or int(np.prod(count)) != 1:
        raise ModelContractError(
            f"{source}: the metadata names output shapes {list(shapes.values())} wrongly "
            f"(\"location\" is {boxes}, \"number of detections\" is {count}); the metadata "
            "writer assumes the TFLite_Detection_PostProcess output order. Rewrite the metadata "
            "for a model exported with the post-process op"
        )


def inspect_model(model: bytes, source: str = "model") -> ModelSpec:
    """Work out how to feed ``model`` and which output is which.

    Raises:
      ModelContractError: not a 1-input, 4-output detector with an RGB image
        input of dtype uint8, int8 or float32.
    """
    interpreter = _interpreter(model, source)
    inputs = interpreter.get_input_details()
    details = interpreter.get_output_details()
    if len(inputs) != 1:
        raise ModelContractError(f"{source}: expected 1 input (the image), found {len(inputs)}")
    shape = [int(v) for v in inputs[0]["shape"]]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelContractError(f"{source}: input shape {shape} is not an RGB image [1, H, W, 3]")
    dtype = np.dtype(inputs[0]["dtype"]).name
    if dtype not in ("uint8", "int8", "float32"):
        raise ModelContractError(f"{source}: input dtype {dtype} is not uint8, int8 or float32")
    if len(details) != 4:
        raise ModelContractError(
            f"{source}: has {len(details)} outputs; SSD detectors need exactly 4 (boxes, "
            "classes, scores, count) from the TFLite_Detection_PostProcess op. Export with "
            "the post-process op (`ktpconvert export`)"
        )
    metadata = read_metadata(model)
    outputs, binding = None, ""
    if metadata and len(metadata.output_names) == 4:
        outputs = _bind({d["index"]: n for d, n in zip(details, metadata.output_names)})
        binding = "metadata"
    if outputs is not None:
        _check_metadata_shapes(outputs, details, source)
    if outputs is None and interpreter.get_signature_list():
        runner_outputs = interpreter.get_signature_runner().get_output_details()
        outputs = _bind({d["index"]: key for key, d in runner_outputs.items()})
        binding = "signature"
    if outputs is None:
        outputs = _bind({d["index"]: d["name"] for d in details})
        binding = "names"
    if outputs is None:
        outputs = _bind_by_shape(details)
        binding = "shapes"
    mean, std, norm_source = INPUT_MEAN, INPUT_STD, "default"
    if metadata and metadata.norm_mean and metadata.norm_std:
        if len(set(metadata.norm_mean)) > 1 or len(set(metadata.norm_std)) > 1:
            raise ModelContractError(f"{source}: per-channel normalisation is not supported")
        mean, std, norm_source = metadata.norm_mean[0], metadata.norm_std[0], "metadata"
    scale, zero_point = inputs[0]["quantization"]
    return ModelSpec(
        height=shape[1],
        width=shape[2],
        input_dtype=dtype,
        input_quantization=(float(scale), int(zero_point)),
        norm_mean=float(mean),
        norm_std=float(std),
        normalization_source=norm_source,
        outputs=outputs,
        binding=binding,
        metadata=metadata,
    )


def _interpreter(model: bytes, source: str):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=model, num_threads=1)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelContractError(f"{source}: LiteRT cannot load the model: {error}") from None
    return interpreter


def model_input(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The ``[1, H, W, 3]`` tensor for an upright uint8 RGB image.

    uint8 models get the stretched pixels as they are; float32 models get
    ``(x - mean) / std`` (mean/std from the metadata, else 127.5/127.5); int8
    models get that value quantised with the input's scale and zero point.
    """
    pixels = resize_rgb(image, spec.height, spec.width)
    if spec.input_dtype == "uint8":
        return pixels[np.newaxis]
    normalised = (pixels.astype(np.float32) - spec.norm_mean) / spec.norm_std
    if spec.input_dtype == "int8":
        scale, zero_point = spec.input_quantization
        quantised = np.round(normalised / scale) + zero_point
        return np.clip(quantised, -128, 127).astype(np.int8)[np.newaxis]
    return normalised.astype(np.float32)[np.newaxis]


def run_detector(model: bytes, spec: ModelSpec, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model on an upright RGB image; returns the four outputs by role (batch removed)."""
    interpreter = _interpreter(model, "model")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_input(image, spec))
    interpreter.invoke()
    raw = {role: np.asarray(interpreter.get_tensor(index))[0] for role, index in spec.outputs.items()}
    if spec.binding == "shapes":
        whole = {role: bool(np.all(raw[role] == np.round(raw[role]))) for role in ("classes", "scores")}
        if whole["scores"] and not whole["classes"]:
            raw["classes"], raw["scores"] = raw["scores"], raw["classes"]
    return raw


def load_photo(path: Path) -> tuple[np.ndarray, int]:
    """Read a photo as stored (RGB uint8) and the clockwise rotation its EXIF asks for."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ImageReadError(f"{path}: cannot read the image ({error}); use a JPEG or PNG") from None
    if orientation not in _EXIF_ROTATION:
        raise ImageReadError(
            f"{path}: mirrored EXIF orientation {orientation} is not supported; "
            "save the photo without mirroring"
        )
    return pixels, _EXIF_ROTATION[orientation]


def scan_image(
    model_path: Path, image_path: Path, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[FieldResult, ModelSpec]:
    """Detect the KTP fields on one photo.

    Returns:
      The best box per field (pixels of the upright photo in ``box``, of the
      stored pixels in ``box_sensor``) and what was read from the model.
    """
    model = read_model_bytes(model_path)
    spec = inspect_model(model, str(model_path))
    if not (spec.metadata and spec.metadata.labels):
        print(
            f"{model_path.name}: no label file in the metadata; assuming {', '.join(CLASSES)}",
            file=sys.stderr,
        )
    stored, rotation = load_photo(image_path)
    upright = np.ascontiguousarray(np.rot90(stored, k=-rotation // 90))
    raw = run_detector(model, spec, upright)
    result = select_fields(
        raw["boxes"],
        raw["classes"],
        raw["scores"],
        float(np.ravel(raw["count"])[0]),
        spec.labels,
        sensor_width=stored.shape[1],
        sensor_height=stored.shape[0],
        rotation_degrees=rotation,
        threshold=threshold,
    )
    return result, spec
