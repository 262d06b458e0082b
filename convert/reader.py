"""The field reader as a shipped model: its metadata, a LiteRT runner, and float vs int8 evaluation.

A reader .tflite (:mod:`ktp_tflite.train.reader_export`, int8 in
:mod:`ktp_tflite.convert.reader_quantize`) carries TFLite metadata written
here (:func:`attach_reader_metadata`):

- input ``crop``: an RGB field crop, [1, 32, W, 3], normalised with the
  training constants (mean 127.5, std 127.5: [-1, 1]); the int8 model takes
  uint8 pixel values;
- output ``logits``: [1, T, classes] CTC logits; ``charset.txt`` is packed as
  the output's TENSOR_AXIS_LABELS file: line ``i`` is class ``i``; line 0
  is ``<blank>`` (the CTC blank), a space is written ``<space>``;
- ``crop.txt`` (DESCRIPTIONS file of the output): the crop geometry the
  reader was trained on, ``key=value`` lines ``height``, ``width``,
  ``margin``, ``side_margin`` (:func:`crop_txt`), so every caller crops as
  training did: ``scan --reader``, ``evaluate-scan`` and the app (ktp-core
  ``ReaderModel.parseCropConfig``) read it from the model. A reader without
  it (written before it) is cropped with the default margins.

:class:`TfliteReader` runs such a file in LiteRT and decodes each crop under
its field's grammar (:func:`ktp_tflite.train.reader_grammar.decode_field`);
it refuses a file whose charset is not the decoder's alphabet, so a reader
trained with another alphabet cannot be read with the wrong letters.
:func:`read_card` reads a photo's fields through detector boxes (``scan --reader``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ktp_tflite.convert.tflite_model import (
    ModelLoadError,
    TfliteModel,
    axis_labels_file_type,
    description_file_type,
    parse_model,
    read_model,
    rgb_color_space,
)
from ktp_tflite.train.errors import KtpError
from ktp_tflite.train.labels import CLASSES
from ktp_tflite.train.preprocess import INPUT_MEAN, INPUT_STD
from ktp_tflite.train.reader_crops import CropConfig, FieldCrop, crops_from_boxes
from ktp_tflite.train.reader_grammar import (
    ALPHABET,
    NUM_CLASSES,
    FieldReading,
    decode_field,
    nik_report,
)
from ktp_tflite.train.reader_model import INPUT_NAME, OUTPUT_NAME, FoldedConvolution

CHARSET_FILE = "charset.txt"
CROP_FILE = "crop.txt"
CROP_KEYS = ("height", "width", "margin", "side_margin")
# The files `ktpconvert export-reader` writes; the int8 one is also the app's asset (ktp-core ReaderModel.ASSET).
FLOAT_FILE = "ktp_reader_float.tflite"
INT8_FILE = "ktp_reader_int8.tflite"
REPORT_FILE = "reader_eval.json"
BLANK_TOKEN = "<blank>"
SPACE_TOKEN = "<space>"


class ReaderModelError(KtpError, ValueError):
    """A file that is not a usable reader model (names it and says why)."""


@dataclasses.dataclass(frozen=True)
class ReaderInfo:
    """The reader's general metadata."""

    name: str = "KTP field reader"
    version: str = "1"
    description: str = (
        "Reads one field value of an Indonesian identity card (KTP) from a 32 px high "
        "crop of its detected box: CTC logits over charset.txt."
    )
    author: str = "ktp-tflite"
    license: str = "Apache-2.0"


def charset_txt(alphabet: str = ALPHABET) -> str:
    """The packed charset file: one class per line, ``<blank>`` first, a space as ``<space>``."""
    return "".join(f"{SPACE_TOKEN if c == ' ' else c}\n" for c in alphabet).join([f"{BLANK_TOKEN}\n", ""])


def parse_charset(text: str, source: str = CHARSET_FILE) -> str:
    """The alphabet (classes 1..) of a charset file written by :func:`charset_txt`.

    Raises:
      ReaderModelError: not such a file (names ``source``).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != BLANK_TOKEN or any(len(line) != 1 and line != SPACE_TOKEN for line in lines[1:]):
        raise ReaderModelError(
            f"{source}: not a reader charset (line 0 must be {BLANK_TOKEN}, then one "
            f"character per line, a space as {SPACE_TOKEN})"
        )
    return "".join(" " if line == SPACE_TOKEN else line for line in lines[1:])


def crop_txt(crop: CropConfig) -> str:
    """The packed crop file: ``key=value`` per line, in :data:`CROP_KEYS` order."""
    return "".join(f"{key}={getattr(crop, key)}\n" for key in CROP_KEYS)


def parse_crop(text: str, source: str = CROP_FILE) -> CropConfig:
    """The crop geometry of a crop file written by :func:`crop_txt`.

    Raises:
      ReaderModelError: not such a file, or values a crop cannot have (names ``source``).
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition("=")
        if not sep or key not in CROP_KEYS or key in values:
            raise ReaderModelError(f"{source}: line {number} is not one of {', '.join(CROP_KEYS)}=VALUE (each once)")
        values[key] = value
    if set(values) != set(CROP_KEYS):
        raise ReaderModelError(f"{source}: missing {', '.join(k for k in CROP_KEYS if k not in values)}")
    numbers: dict[str, int | float] = {}
    for key, kind, what in (
        ("height", int, "an integer"),
        ("width", int, "an integer"),
        ("margin", float, "a number"),
        ("side_margin", float, "a number"),
    ):
        try:
            numbers[key] = kind(values[key])
        except ValueError:
            shown = values[key] if len(values[key]) <= 40 else values[key][:40] + "..."
            raise ReaderModelError(f"{source}: {key} {shown!r} is not {what}") from None
    try:
        return CropConfig(**numbers)  # type: ignore[arg-type]  # ints for height/width, floats for the margins
    except KtpError as error:
        raise ReaderModelError(f"{source}: {error}") from None


def attach_reader_metadata(
    model: bytes, crop: CropConfig, info: ReaderInfo = ReaderInfo(), source: str = "reader"
) -> bytes:
    """``model`` with the reader's metadata, charset.txt and crop.txt packed in (existing metadata is replaced).

    Args:
      crop: the crop geometry the reader was trained on (its height and width
        must be the model input's).

    Raises:
      ReaderModelError: the model does not have the reader's input and output.
    """
    from tensorflow_lite_support.metadata.python.metadata_writers import (
        metadata_info,
        metadata_writer,
        writer_utils,
    )

    tflite = _checked(parse_model(model, source))
    if tflite.has_metadata:
        model = tflite.without_metadata()
    with tempfile.TemporaryDirectory() as folder:
        charset, crop_file = Path(folder) / CHARSET_FILE, Path(folder) / CROP_FILE
        charset.write_text(charset_txt(), encoding="utf-8")
        crop_file.write_text(crop_txt(crop), encoding="utf-8")
        writer = metadata_writer.MetadataWriter.create_from_metadata_info(
            model_buffer=bytearray(model),
            general_md=metadata_info.GeneralMd(
                name=info.name,
                version=info.version,
                description=info.description,
                author=info.author,
                licenses=info.license,
            ),
            input_md=[
                metadata_info.InputImageTensorMd(
                    name=INPUT_NAME,
                    description="RGB crop of one field value (box plus margins), 32 px high.",
                    norm_mean=[INPUT_MEAN],
                    norm_std=[INPUT_STD],
                    color_space_type=rgb_color_space(),
                    tensor_type=writer_utils.get_input_tensor_types(model)[0],
                )
            ],
            output_md=[
                metadata_info.TensorMd(
                    name=OUTPUT_NAME,
                    description="CTC logits per time step over charset.txt (class 0: blank).",
                    associated_files=[
                        metadata_info.AssociatedFileMd(
                            str(charset),
                            "Class i of the logits is line i; <blank> is the CTC blank.",
                            axis_labels_file_type(),
                        ),
                        metadata_info.AssociatedFileMd(
                            str(crop_file),
                            "The crop the reader was trained on: height and width in pixels, margins "
                            "above/below and left/right in text heights.",
                            description_file_type(),
                        ),
                    ],
                )
            ],
            associated_files=[str(charset), str(crop_file)],
        )
        result = bytes(writer.populate())
    TfliteReader(result, source)  # reads back: the charset and shapes it promises
    return result


def _checked(tflite: TfliteModel) -> TfliteModel:
    inputs, outputs = tflite.inputs, tflite.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ReaderModelError(
            f"{tflite.source}: not a field reader ({len(inputs)} inputs, {len(outputs)} "
            "outputs; a reader has one crop input and one logits output)"
        )
    shape, out = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or len(out) != 3 or out[2] != NUM_CLASSES:
        raise ReaderModelError(
            f"{tflite.source}: input {list(shape)} and output {list(out)} are not a field "
            f"reader's ([1, 32, W, 3] crop, [1, T, {NUM_CLASSES}] logits)"
        )
    return tflite


class TfliteReader:
    """A reader .tflite in LiteRT: crops in, field readings out.

    Args:
      model: the file's bytes or its parsed form.
      source: name for messages.
      num_threads: LiteRT threads.

    Raises:
      ReaderModelError: not a reader, or its packed charset is not the decoder's alphabet.
    """

    def __init__(self, model: bytes | TfliteModel, source: str = "reader", num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.model = _checked(model if isinstance(model, TfliteModel) else parse_model(model, source))
        self.height, self.width = (int(v) for v in self.model.input.shape[1:3])
        self.crop = CropConfig(height=self.height, width=self.width)  # a reader without crop.txt
        if self.model.has_metadata:
            try:
                alphabet = parse_charset(
                    self.model.associated_file(CHARSET_FILE).decode("utf-8"), f"{self.model.source}: {CHARSET_FILE}"
                )
            except ModelLoadError as error:
                raise ReaderModelError(str(error)) from None
            except UnicodeDecodeError:
                raise ReaderModelError(f"{self.model.source}: {CHARSET_FILE} is not UTF-8 text") from None
            if alphabet != ALPHABET:
                raise ReaderModelError(
                    f"{self.model.source}: its charset ({len(alphabet)} characters) is not "
                    f"this decoder's alphabet ({len(ALPHABET)}); it was trained for "
                    "another version of the reader"
                )
            meta = self.model.metadata
            if meta is not None and CROP_FILE in meta.associated_files:
                try:
                    text = self.model.associated_file(CROP_FILE).decode("utf-8")
                except UnicodeDecodeError:
                    raise ReaderModelError(f"{self.model.source}: {CROP_FILE} is not UTF-8 text") from None
                self.crop = parse_crop(text, f"{self.model.source}: {CROP_FILE}")
                if (self.crop.height, self.crop.width) != (self.height, self.width):
                    raise ReaderModelError(
                        f"{self.model.source}: {CROP_FILE} says {self.crop.width}x"
                        f"{self.crop.height} crops, the input is {self.width}x{self.height}"
                    )
        self._interpreter = Interpreter(model_content=self.model.data, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @property
    def precision(self) -> str:
        """The model precision, "int8" or "float" (from its compute ops)."""
        return self.model.precision

    def logits(self, crops: Sequence[FieldCrop]) -> np.ndarray:
        """Logits [N, T, NUM_CLASSES] of ``crops``.

        Raises:
          ReaderModelError: a crop of another size than the model input.
        """
        rows = []
        for crop in crops:
            if crop.pixels.shape != (self.height, self.width, 3):
                raise ReaderModelError(
                    f"{self.model.source}: a {crop.field} crop of {crop.pixels.shape} for a "
                    f"{self.height}x{self.width} reader; make crops with its CropConfig"
                )
            self._interpreter.set_tensor(self._input["index"], self.model.model_input(crop.pixels))
            self._interpreter.invoke()
            rows.append(self._interpreter.get_tensor(self._output["index"])[0].copy())
        return np.stack(rows) if rows else np.zeros((0, self.width // 4, NUM_CLASSES), np.float32)

    def read(self, crops: Sequence[FieldCrop]) -> list[FieldReading]:
        """Each crop decoded under its field's grammar."""
        return [decode_field(row, crop.field) for crop, row in zip(crops, self.logits(crops))]


def load_reader(path: str | Path, num_threads: int = 1) -> TfliteReader:
    """:class:`TfliteReader` of a file.

    Raises:
      ModelLoadError: not a TFLite file. ReaderModelError: not a reader.
    """
    return TfliteReader(read_model(path), num_threads=num_threads)


def reader_convolutions(path: str | Path) -> list[FoldedConvolution]:
    """The convolutions of a float reader .tflite, in the order it runs them, in Keras layout.

    What :func:`ktp_tflite.train.reader_model.load_folded` starts a reader
    from (``train-reader --init-from FILE``): a shipped reader, such as the
    bundled ``ktp_reader_float.tflite``, can be trained on without its
    training checkpoints.

    Raises:
      ModelLoadError: not a TFLite file. ReaderModelError: not a reader, or not float.
    """
    model = _checked(read_model(path))
    convolutions = []
    for op in model.ops:
        if op.code not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        kernel, bias = (op.inputs + (None, None, None))[1:3]
        if kernel is None or bias is None or not (kernel.constant and bias.constant):
            raise ReaderModelError(
                f"{model.source}: op {op.index} ({op.code}) has no stored kernel and bias; "
                "not a reader written by `ktpconvert export-reader`"
            )
        if kernel.dtype != "float32" or bias.dtype != "float32":
            raise ReaderModelError(
                f"{model.source}: its {op.code} weights are {kernel.dtype}, not float32; a warm start needs the "
                f"float reader ({FLOAT_FILE}), not the int8 one"
            )
        values, offsets = model.constant_values(kernel), model.constant_values(bias)
        if op.code == "CONV_2D":  # TFLite [out, h, w, in] -> Keras [h, w, in, out]
            values = values.transpose(1, 2, 3, 0)
        else:  # [1, h, w, channels] -> [h, w, channels, 1]
            values = values[0][..., np.newaxis]
        convolutions.append(FoldedConvolution(op.code == "DEPTHWISE_CONV_2D", values, offsets))
    if not convolutions:
        raise ReaderModelError(f"{model.source}: no convolutions; not a reader written by `ktpconvert export-reader`")
    return convolutions


def read_card(
    reader: TfliteReader,
    image: np.ndarray,
    boxes: dict[str, tuple[float, float, float, float]],
    crop: CropConfig | None = None,
) -> dict:
    """Read the fields of one photo through their boxes, and check the NIK against the Jenis Kelamin.

    Each box is deskewed first (:func:`ktp_tflite.train.reader_crops.line_angle`):
    a rolled card's lines are slanted inside their axis-aligned boxes.

    Args:
      reader: the reader model.
      image: uint8 RGB photo [H, W, 3] (upright; the boxes' pixels).
      boxes: field -> (left, top, right, bottom) pixels, the found fields only.
      crop: crop geometry (default: the reader's own, :attr:`TfliteReader.crop`).

    Returns:
      ``{"fields": {field: FieldReading dict + "text_height"}, "missing": [...],
      "nik_check": nik_report or None}``. The texts are the user's card: the
      caller decides where they go.
    """
    crop = crop or reader.crop
    crops = crops_from_boxes(image, boxes, crop, deskew=True)
    readings = dict(zip(crops, reader.read(list(crops.values()))))
    fields = {
        field: {**readings[field].to_dict(), "text_height": round(crops[field].text_height, 2)}
        for field in CLASSES
        if field in crops
    }
    nik = readings.get("nik")
    gender = readings.get("jenis_kelamin")
    return {
        "fields": fields,
        "missing": [f for f in CLASSES if f not in crops],
        "nik_check": nik_report(nik.text, gender.text if gender else None) if nik else None,
    }
