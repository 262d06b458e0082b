"""Run a KTP detector .tflite on one photo: what ``ktpconvert scan`` does.

The model is read with :mod:`ktp_tflite.convert.tflite_model` (input size,
dtype and quantization, normalisation from its metadata, labels);
:func:`bind_outputs` works out which output is which; :func:`scan_image`
feeds a photo the one way the facade does, runs the LiteRT interpreter and
keeps the best box per field with :mod:`ktp_tflite.convert.fields`. Field
text is not read (no OCR here).

Outputs are bound by role, never by index alone (TF2 exports permute them;
models from other exporters may lack the post-process op), trying in order:
metadata tensor names ("location", "category", "score", "number of
detections", as the tflite-support writer sets them), signature output
keys, tensor names, and last the shapes (``[1, N, 4]`` boxes, one value
count, the two ``[1, N]`` in TF1 order: classes, then scores, unless only
one of them holds whole numbers, which then is the classes).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from ktp_tflite.convert.fields import DEFAULT_THRESHOLD, FieldResult, select_fields
from ktp_tflite.convert.tflite_model import (
    INPUT_DTYPES,
    OUTPUT_ROLES,
    ModelMetadata,
    TfliteModel,
    parse_model,
    read_model,
)
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.preprocess import resize_rgb

# Output tensor names written by tflite-support's object detector metadata writer.
METADATA_OUTPUT_NAMES = {
    "location": "boxes",
    "category": "classes",
    "score": "scores",
    "number of detections": "count",
}
# EXIF orientation -> clockwise rotation that makes the stored pixels upright.
_EXIF_ROTATION = {1: 0, 3: 180, 6: 90, 8: 270}


class ModelContractError(KtpError, ValueError):
    """The .tflite is not a KTP detector the scanner and the app can use."""


class ImageReadError(KtpError, ValueError):
    """The photo cannot be read."""


@dataclasses.dataclass(frozen=True)
class OutputBinding:
    """Which output of a detector is which, and how that was worked out.

    The model's facts come from ``model``; the properties below are the ones
    ``ktpconvert scan`` prints and the app contract checks.
    """

    model: TfliteModel
    outputs: dict[str, int]  # role -> tensor index
    binding: str  # "metadata", "signature", "names" or "shapes"

    @property
    def height(self) -> int:
        """Input height."""
        return self.model.input_size[0]

    @property
    def width(self) -> int:
        """Input width."""
        return self.model.input_size[1]

    @property
    def input_dtype(self) -> str:
        """The input dtype: "uint8", "int8" or "float32"."""
        return self.model.input.dtype

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero point); (0.0, 0) when none."""
        return self.model.input_quantization

    @property
    def norm_mean(self) -> float:
        """Mean of the float input's normalisation (one value for all channels)."""
        return float(self.model.normalization.mean[0])

    @property
    def norm_std(self) -> float:
        """Std of the float input's normalisation."""
        return float(self.model.normalization.std[0])

    @property
    def normalization_source(self) -> str:
        """Where the input normalization comes from: "metadata" or "default"."""
        return self.model.normalization.source

    @property
    def metadata(self) -> ModelMetadata | None:
        """The model's TFLite metadata, or None."""
        return self.model.metadata

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels from the metadata, else the canonical classes."""
        return self.model.labels or CLASSES


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
    return roles if set(roles) == set(OUTPUT_ROLES) else None


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
            f'("location" is {boxes}, "number of detections" is {count}); the metadata '
            "writer assumes the TFLite_Detection_PostProcess output order. Rewrite the metadata "
            "for a model exported with the post-process op"
        )


def bind_outputs(model: bytes | TfliteModel, source: str = "model") -> OutputBinding:
    """Check ``model`` can be fed an image and work out which output is which.

    Raises:
      ModelLoadError: not a TFLite model.
      ModelContractError: not a 1-input, 4-output detector with an RGB image
        input of dtype uint8, int8 or float32.
    """
    if not isinstance(model, TfliteModel):
        model = parse_model(model, source)
    source = model.source
    interpreter = _interpreter(model)
    details = interpreter.get_output_details()  # the runtime's shapes (the file may leave them out)
    if len(model.inputs) != 1:
        raise ModelContractError(f"{source}: expected 1 input (the image), found {len(model.inputs)}")
    shape = list(model.inputs[0].shape)
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ModelContractError(f"{source}: input shape {shape} is not an RGB image [1, H, W, 3]")
    if model.input.dtype not in INPUT_DTYPES:
        raise ModelContractError(f"{source}: input dtype {model.input.dtype} is not uint8, int8 or float32")
    if len(details) != 4:
        raise ModelContractError(
            f"{source}: has {len(details)} outputs; SSD detectors need exactly 4 (boxes, "
            "classes, scores, count) from the TFLite_Detection_PostProcess op. Export with "
            "the post-process op (`ktpconvert export`)"
        )
    metadata = model.metadata
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
    norm = model.normalization
    if norm.source == "metadata" and (len(set(norm.mean)) > 1 or len(set(norm.std)) > 1):
        raise ModelContractError(f"{source}: per-channel normalisation is not supported")
    return OutputBinding(model=model, outputs=outputs, binding=binding)


def _interpreter(model: TfliteModel):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=model.data, num_threads=1)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ModelContractError(f"{model.source}: LiteRT cannot load the model: {error}") from None
    return interpreter


def run_detector(spec: OutputBinding, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model on an upright RGB image; returns the four outputs by role (batch removed).

    The image is stretched to the input size and fed by :meth:`TfliteModel.model_input`.
    """
    interpreter = _interpreter(spec.model)
    pixels = resize_rgb(image, spec.height, spec.width)
    interpreter.set_tensor(spec.model.input.index, spec.model.model_input(pixels))
    interpreter.invoke()
    raw = {role: np.asarray(interpreter.get_tensor(index))[0] for role, index in spec.outputs.items()}
    if spec.binding == "shapes":
        whole = {role: bool(np.all(raw[role] == np.round(raw[role]))) for role in ("classes", "scores")}
        if whole["scores"] and not whole["classes"]:
            raw["classes"], raw["scores"] = raw["scores"], raw["classes"]
    return raw


def load_photo(path: Path) -> tuple[np.ndarray, int]:
    """Read a photo as stored (RGB uint8) and the clockwise rotation its EXIF asks for.

    Raises:
      ImageError (a KtpError) from :mod:`ktp_tflite.train.images`: unreadable,
        too large, or an unsupported format; ImageReadError: mirrored EXIF.
    """
    from ktp_tflite.train.images import load_image, read_header

    orientation = read_header(path).orientation
    if orientation not in _EXIF_ROTATION:
        raise ImageReadError(
            f"{path}: mirrored EXIF orientation {orientation} is not supported; save the photo without mirroring"
        )
    return load_image(path, upright=False), _EXIF_ROTATION[orientation]


def check_field_labels(spec: OutputBinding) -> None:
    """Refuse a detector whose classes are not the five KTP fields in order.

    A model with 3 labels, or with two of them swapped, would otherwise drop or
    mislabel fields silently. Without a label file the five classes are
    assumed (and :func:`scan_image` says so).

    Raises:
      ModelContractError: naming the labels found and the fix.
    """
    source = spec.model.source
    num_classes = spec.model.num_classes
    if num_classes is not None and num_classes != len(CLASSES):
        raise ModelContractError(
            f"{source}: the detector has {num_classes} classes; a KTP field detector has "
            f"{len(CLASSES)} ({', '.join(CLASSES)})"
        )
    labels = spec.metadata.labels if spec.metadata else None
    if labels is not None and tuple(labels) != CLASSES:
        raise ModelContractError(
            f"{source}: metadata labels {list(labels)} must be exactly {list(CLASSES)} in this "
            "order; rewrite them with `ktpconvert metadata MODEL --labels labels.txt --out NEW`"
        )


def open_scan(model_path: Path, image_path: Path) -> tuple[OutputBinding, np.ndarray, int, np.ndarray]:
    """(model binding, stored pixels, EXIF rotation, upright pixels) for a scan.

    Raises:
      ModelLoadError, ModelContractError: the model; ImageError, ImageReadError: the photo.
    """
    spec = bind_outputs(read_model(model_path))
    check_field_labels(spec)
    if not (spec.metadata and spec.metadata.labels):
        print(
            f"{model_path.name}: no label file in the metadata; assuming {', '.join(CLASSES)}",
            file=sys.stderr,
        )
    stored, rotation = load_photo(image_path)
    return spec, stored, rotation, np.ascontiguousarray(np.rot90(stored, k=-rotation // 90))


def scan_image(
    model_path: Path, image_path: Path, *, threshold: float = DEFAULT_THRESHOLD
) -> tuple[FieldResult, OutputBinding, np.ndarray]:
    """Detect the KTP fields on one photo.

    Returns:
      The best box per field (pixels of the upright photo in ``box``, of the
      stored pixels in ``box_sensor``), what was read from the model, and the
      upright photo (uint8 RGB).
    """
    spec, stored, rotation, upright = open_scan(model_path, image_path)
    raw = run_detector(spec, upright)
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
    return result, spec, upright
