"""Read the SSD part of an OD API ``pipeline.config`` without the OD API.

``pipeline.config`` is a protobuf message in text format. :func:`parse_text_proto`
turns any text-format message into plain dicts (every field maps to a list of
its values, since the schema that says which fields repeat is not available);
:func:`load_ssd_config` then reads the fields this project's model builder and
converter honour into a typed :class:`SsdPipelineConfig`. A field set to a value
the builder cannot honour (another resizer, anchor generator, box coder, box
predictor or feature extractor) is an error that names the field and the file,
never silently ignored.

Why one file: the typed reader (``_Reader``, ``_anchors``, ``_box_coder``, ...) is written against
the parser's ``{field: [values]}`` shape and its :class:`PipelineConfigError` messages. If it
grows, the generic parser (``_TOKEN``, ``_Parser``, :func:`parse_text_proto`), which the label
map reader and tf1_import.py use too, could move to text_proto.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from ktp_tflite.train.errors import KtpError

Message = dict[str, list[Any]]


class PipelineConfigError(KtpError, ValueError):
    """A pipeline.config cannot be parsed or asks for something unsupported."""


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """``ssd_anchor_generator`` (OD API defaults)."""

    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    reduce_boxes_in_lowest_layer: bool = True
    interpolated_scale_aspect_ratio: float = 1.0


@dataclasses.dataclass(frozen=True)
class BoxCoderConfig:
    """``faster_rcnn_box_coder`` scales, the post-process op's y/x/h/w_scale."""

    y_scale: float = 10.0
    x_scale: float = 10.0
    height_scale: float = 5.0
    width_scale: float = 5.0


@dataclasses.dataclass(frozen=True)
class FeatureExtractorConfig:
    """``feature_extractor`` of an SSD MobileNet v2."""

    type: str = "ssd_mobilenet_v2"
    depth_multiplier: float = 1.0
    min_depth: int = 16
    use_depthwise: bool = False


@dataclasses.dataclass(frozen=True)
class BoxPredictorConfig:
    """``convolutional_box_predictor``."""

    kernel_size: int = 1
    use_depthwise: bool = False
    box_code_size: int = 4


@dataclasses.dataclass(frozen=True)
class PostProcessingConfig:
    """``post_processing``: NMS settings and the score converter."""

    score_threshold: float = 0.0
    iou_threshold: float = 0.6
    max_detections_per_class: int = 100
    max_total_detections: int = 100
    score_converter: str = "SIGMOID"


@dataclasses.dataclass(frozen=True)
class SsdPipelineConfig:
    """What an SSD MobileNet v2 ``pipeline.config`` says about the model.

    ``input_mean``/``input_std`` are the normalisation the feature extractor
    applies: ``(pixel - mean) / std``; 127.5 for MobileNet, i.e. [-1, 1].
    """

    num_classes: int
    height: int
    width: int
    feature_extractor: FeatureExtractorConfig = dataclasses.field(default_factory=FeatureExtractorConfig)
    box_predictor: BoxPredictorConfig = dataclasses.field(default_factory=BoxPredictorConfig)
    anchors: AnchorConfig = dataclasses.field(default_factory=AnchorConfig)
    box_coder: BoxCoderConfig = dataclasses.field(default_factory=BoxCoderConfig)
    post_processing: PostProcessingConfig = dataclasses.field(default_factory=PostProcessingConfig)
    input_mean: float = 127.5
    input_std: float = 127.5
    source: str = ""


# Bounds on what the builder allocates: far above any SSD MobileNet config.
MAX_CLASSES = 1000
MAX_INPUT_SIZE = 4096

# Feature extractors whose preprocessing is MobileNet's (x - 127.5) / 127.5.
SUPPORTED_FEATURE_EXTRACTORS = ("ssd_mobilenet_v2", "ssd_mobilenet_v2_keras")
SUPPORTED_SCORE_CONVERTERS = ("SIGMOID", "SOFTMAX")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?(?![\w.])
               |[-+]?(?:inf|infinity|nan)\b)
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>[{}<>\[\]:,;-])
    """,
    re.VERBOSE | re.IGNORECASE,
)

# Messages nest this deep at most (pipeline.config needs about 8); deeper text
# is refused instead of exhausting Python's stack.
MAX_DEPTH = 64

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _number(text: str) -> int | float:
    """The int or float of a number token (ValueError for one Python will not convert)."""
    text = text.rstrip("fF") if not text.lower().endswith(("inf", "infinity")) else text
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    return float(text)


class _Parser:
    def __init__(self, text: str, source: str, what: str = "pipeline.config"):
        self.source = source
        self.depth = 0
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        line = 1
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise PipelineConfigError(
                    f"{source}:{line}: unexpected character {text[pos]!r}; is this a text-format {what}?"
                )
            kind = match.lastgroup or ""
            if kind != "space":
                self.tokens.append((kind, match.group(), line))
            line += match.group().count("\n")
            pos = match.end()
        self.index = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self, what: str) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise PipelineConfigError(f"{self.source}: unexpected end of file, expected {what}")
        self.index += 1
        return token

    def _error(self, token: tuple[str, str, int], what: str) -> PipelineConfigError:
        return PipelineConfigError(f"{self.source}:{token[2]}: expected {what}, found {token[1]!r}")

    def message(self, closing: str | None) -> Message:
        if self.depth >= MAX_DEPTH:
            token = self._peek() or self.tokens[-1]
            raise PipelineConfigError(
                f"{self.source}:{token[2]}: messages nested more than {MAX_DEPTH} deep; "
                "is this a text-format protobuf file?"
            )
        self.depth += 1
        try:
            return self._fields(closing)
        finally:
            self.depth -= 1

    def _fields(self, closing: str | None) -> Message:
        result: Message = {}
        while True:
            token = self._peek()
            if token is None:
                if closing is not None:
                    raise PipelineConfigError(f"{self.source}: unexpected end of file, expected {closing!r}")
                return result
            if token[1] == closing:
                self.index += 1
                return result
            kind, name, _ = self._next("a field name")
            if kind != "ident":
                raise self._error(token, "a field name")
            separator = self._peek()
            if separator is not None and separator[1] == ":":
                self.index += 1
            elif separator is None or separator[1] not in "{<":
                raise self._error(separator or token, f"':' or '{{' after {name!r}")
            result.setdefault(name, []).extend(self._values(name))
            following = self._peek()
            if following is not None and following[1] in ",;":
                self.index += 1

    def _values(self, name: str) -> list[Any]:
        token = self._peek()
        if token is not None and token[1] == "[":
            self.index += 1
            values: list[Any] = []
            while True:
                token = self._peek()
                if token is not None and token[1] == "]":
                    self.index += 1
                    return values
                values.append(self._value(name))
                token = self._peek()
                if token is not None and token[1] == ",":
                    self.index += 1
        return [self._value(name)]

    def _value(self, name: str) -> Any:
        kind, text, line = self._next(f"a value for {name!r}")
        if text == "{":
            return self.message("}")
        if text == "<":
            return self.message(">")
        if kind == "number":
            return self._to_number(text, name, line)
        if kind == "string":
            parts = [_unquote(text)]
            while (token := self._peek()) is not None and token[0] == "string":
                parts.append(_unquote(token[1]))
                self.index += 1
            return "".join(parts)
        if kind == "ident":
            lowered = text.lower()
            if lowered in ("true", "t"):
                return True
            if lowered in ("false", "f"):
                return False
            return text  # an enum value
        if text == "-":  # "- 1" is legal text format
            kind, number, _ = self._next(f"a number for {name!r}")
            if kind == "number":
                return -self._to_number(number, name, line)
        raise PipelineConfigError(f"{self.source}:{line}: bad value {text!r} for field {name!r}")

    def _to_number(self, text: str, name: str, line: int) -> int | float:
        try:
            return _number(text)
        except ValueError:  # e.g. an integer of more digits than Python converts
            raise PipelineConfigError(
                f"{self.source}:{line}: number {text[:20]}{'...' if len(text) > 20 else ''} "
                f"for field {name!r} cannot be read"
            ) from None


def parse_text_proto(text: str, source: str = "pipeline.config", what: str = "pipeline.config") -> Message:
    """Parse a protobuf text-format message into ``{field: [values...]}``.

    Nested messages become dicts of the same shape; scalars become int,
    float, bool or str (enum values stay as their names).

    Args:
      text: the file's text.
      source: how messages name the file.
      what: what the file should be, for the hint of a syntax error.

    Raises:
      PipelineConfigError: the text is not valid text format (names the
        line), or nests more than :data:`MAX_DEPTH` messages deep.
    """
    return _Parser(text, source, what).message(None)


class _Reader:
    """Typed access to one parsed message, with errors naming the field path."""

    def __init__(self, message: Message, path: str, source: str):
        self.message = message
        self.path = path
        self.source = source

    def error(self, field: str, problem: str) -> PipelineConfigError:
        return PipelineConfigError(f"{self.source}: {self.path}.{field}: {problem}")

    def has(self, field: str) -> bool:
        return field in self.message

    def one(self, field: str, default: Any = None) -> Any:
        values = self.message.get(field)
        if not values:
            return default
        if len(values) > 1:
            raise self.error(field, f"set {len(values)} times; it takes one value")
        return values[0]

    def child(self, field: str, required: bool = False) -> _Reader:
        value = self.one(field, default={})
        if not isinstance(value, dict):
            raise self.error(field, f"expected a message {{ ... }}, found {_show(value)}")
        if required and field not in self.message:
            raise self.error(field, "missing")
        return _Reader(value, f"{self.path}.{field}", self.source)

    def oneof(self, field: str, supported: tuple[str, ...], what: str) -> tuple[str, _Reader]:
        """The single sub-message set inside ``field``; must be one of ``supported``."""
        holder = self.child(field, required=True)
        chosen = list(holder.message)
        if len(chosen) != 1:
            raise self.error(field, f"expected exactly one {what}, found {chosen or 'none'}")
        name = chosen[0]
        if name not in supported:
            raise self.error(
                f"{field}.{name}",
                f"this {what} is not supported; use {' or '.join(supported)}",
            )
        return name, holder.child(name)

    def number(self, field: str, default: float, kind: type = float, maximum: float | None = None) -> Any:
        value = self.one(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(field, f"expected a number, found {_show(value)}")
        if kind is int and not isinstance(value, int):
            raise self.error(field, f"expected an integer, found {_show(value)}")
        if not math.isfinite(value):
            raise self.error(field, f"expected a finite number, found {_show(value)}")
        if maximum is not None and value > maximum:
            raise self.error(field, f"{_show(value)} is larger than {maximum}, the most this builder supports")
        return kind(value)

    def flag(self, field: str, default: bool) -> bool:
        value = self.one(field, default)
        if not isinstance(value, bool):
            raise self.error(field, f"expected true or false, found {_show(value)}")
        return value

    def positive(self, field: str, default: float, kind: type = float, maximum: float | None = None) -> Any:
        value = self.number(field, default, kind, maximum)
        if value <= 0:
            raise self.error(field, f"must be positive, found {_show(value)}")
        return value


def _show(value: Any) -> str:
    """A value for a message: short, and never a whole nested message."""
    if isinstance(value, dict):
        return "a message { ... }"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _feature_extractor(ssd: _Reader) -> FeatureExtractorConfig:
    reader = ssd.child("feature_extractor", required=True)
    extractor_type = reader.one("type")
    if extractor_type not in SUPPORTED_FEATURE_EXTRACTORS:
        raise reader.error(
            "type",
            f"feature extractor {_show(extractor_type)} is not supported; "
            f"use one of {', '.join(SUPPORTED_FEATURE_EXTRACTORS)}",
        )
    return FeatureExtractorConfig(
        type=extractor_type,
        depth_multiplier=reader.positive("depth_multiplier", 1.0, maximum=4.0),
        min_depth=reader.number("min_depth", 16, int, maximum=1024),
        use_depthwise=reader.flag("use_depthwise", False),
    )


def _box_predictor(ssd: _Reader) -> BoxPredictorConfig:
    _, reader = ssd.oneof("box_predictor", ("convolutional_box_predictor",), "box predictor")
    box_code_size = reader.number("box_code_size", 4, int)
    if box_code_size != 4:
        raise reader.error("box_code_size", f"must be 4 (y, x, h, w), found {box_code_size}")
    return BoxPredictorConfig(
        kernel_size=reader.positive("kernel_size", 1, int, maximum=15),
        use_depthwise=reader.flag("use_depthwise", False),
        box_code_size=box_code_size,
    )


def _anchors(ssd: _Reader) -> AnchorConfig:
    _, reader = ssd.oneof("anchor_generator", ("ssd_anchor_generator",), "anchor generator")
    for unsupported in ("scales", "height_stride", "width_stride", "height_offset", "width_offset"):
        if reader.has(unsupported):
            raise reader.error(unsupported, "explicit anchor scales/strides/offsets are not supported")
    ratios = reader.message.get("aspect_ratios") or list(AnchorConfig.aspect_ratios)
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
            raise reader.error("aspect_ratios", f"must be positive numbers, found {_show(ratio)}")
    config = AnchorConfig(
        num_layers=reader.positive("num_layers", 6, int, maximum=12),
        min_scale=reader.positive("min_scale", 0.2),
        max_scale=reader.positive("max_scale", 0.95),
        aspect_ratios=tuple(float(r) for r in ratios),
        reduce_boxes_in_lowest_layer=reader.flag("reduce_boxes_in_lowest_layer", True),
        interpolated_scale_aspect_ratio=reader.number("interpolated_scale_aspect_ratio", 1.0),
    )
    if config.min_scale > config.max_scale:
        raise reader.error("min_scale", f"{config.min_scale} is above max_scale {config.max_scale}")
    return config


def _box_coder(ssd: _Reader) -> BoxCoderConfig:
    _, reader = ssd.oneof("box_coder", ("faster_rcnn_box_coder",), "box coder")
    return BoxCoderConfig(
        y_scale=reader.positive("y_scale", 10.0),
        x_scale=reader.positive("x_scale", 10.0),
        height_scale=reader.positive("height_scale", 5.0),
        width_scale=reader.positive("width_scale", 5.0),
    )


def _post_processing(ssd: _Reader) -> PostProcessingConfig:
    reader = ssd.child("post_processing", required=True)
    converter = reader.one("score_converter", "IDENTITY")
    if converter not in SUPPORTED_SCORE_CONVERTERS:
        raise reader.error(
            "score_converter",
            f"{_show(converter)} is not supported; use {' or '.join(SUPPORTED_SCORE_CONVERTERS)} "
            "(the TFLite post-process op expects converted scores)",
        )
    nms = reader.child("batch_non_max_suppression", required=True)
    config = PostProcessingConfig(
        score_threshold=nms.number("score_threshold", 0.0),
        iou_threshold=nms.number("iou_threshold", 0.6),
        max_detections_per_class=nms.positive("max_detections_per_class", 100, int, maximum=10000),
        max_total_detections=nms.positive("max_total_detections", 100, int, maximum=10000),
        score_converter=converter,
    )
    if not 0.0 <= config.score_threshold <= 1.0:
        raise nms.error("score_threshold", f"must be in [0, 1], found {config.score_threshold}")
    if not 0.0 < config.iou_threshold <= 1.0:
        raise nms.error("iou_threshold", f"must be in (0, 1], found {config.iou_threshold}")
    return config


def ssd_config_from_message(message: Message, source: str = "pipeline.config") -> SsdPipelineConfig:
    """Build :class:`SsdPipelineConfig` from a parsed ``pipeline.config``.

    Raises:
      PipelineConfigError: the model is not an SSD, or a field is missing or
        set to something the builder cannot honour (names field and file).
    """
    root = _Reader(message, "pipeline", source)
    model = root.child("model", required=True)
    if not model.has("ssd"):
        raise model.error("ssd", f"only SSD models are supported, found {list(model.message) or 'nothing'}")
    ssd = model.child("ssd")
    num_classes = ssd.one("num_classes")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 1
        or num_classes > MAX_CLASSES
    ):
        raise ssd.error("num_classes", f"must be an integer from 1 to {MAX_CLASSES}, found {_show(num_classes)}")

    _, resizer = ssd.oneof("image_resizer", ("fixed_shape_resizer",), "image resizer")
    if resizer.flag("convert_to_grayscale", False):
        raise resizer.error("convert_to_grayscale", "grayscale input is not supported; the model takes RGB")
    resize_method = resizer.one("resize_method", "BILINEAR")
    if resize_method != "BILINEAR":
        raise resizer.error("resize_method", f"{_show(resize_method)} is not supported; the pipeline resizes BILINEAR")
    return SsdPipelineConfig(
        num_classes=num_classes,
        height=resizer.positive("height", 300, int, maximum=MAX_INPUT_SIZE),
        width=resizer.positive("width", 300, int, maximum=MAX_INPUT_SIZE),
        feature_extractor=_feature_extractor(ssd),
        box_predictor=_box_predictor(ssd),
        anchors=_anchors(ssd),
        box_coder=_box_coder(ssd),
        post_processing=_post_processing(ssd),
        source=source,
    )


def load_ssd_config(path: str | Path) -> SsdPipelineConfig:
    """Read the SSD model part of a text-format ``pipeline.config`` file.

    Raises:
      PipelineConfigError: unreadable file, bad syntax or unsupported setting.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineConfigError(f"{path}: cannot read pipeline config ({error})") from error
    return ssd_config_from_message(parse_text_proto(text, str(path)), str(path))
