"""How each runtime maps a photo to the model input: a probe model that reports its pixels.

The probe is a detector-shaped .tflite (uint8 input, the four SSD outputs,
object-detector metadata), so the TFLite Task Library and MediaPipe Tasks load
it like our detector. It does not detect anything: each "detection" reports
one input pixel, its value in the score (``(value + 1) / 256``) and its
position in the box origin. Run through a runtime on a photo with a known
pattern, it shows exactly the pixels the runtime fed the model.

The pattern is a sine along x in the red channel and along y in the green
channel, ten model pixels per period. Fitting the fed values per model pixel
gives where the runtime sampled the photo: ``offset`` is that position minus
the half-pixel-centre position this toolkit's resize uses
(``(x + 0.5) * scale - 0.5``), in photo pixels, and ``gain`` the amplitude
kept (1 for point sampling of a smooth pattern, lower for an averaging filter).

``python -m ktp_tflite.convert.resize_probe`` prints the table for the photo
sizes phones produce.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

LINES = 8  # rows (and columns) of the model input that the probe reports
PERIOD_MODEL_PX = 10.0
WINDOW = 40  # model pixels per offset estimate
SIZES = ((640, 480), (1280, 720), (1920, 1080), (4032, 3024))


class ProbeError(RuntimeError):
    """The probe's detections cannot be decoded into pixels."""


def line_positions(size: int) -> np.ndarray:
    """The model rows (and columns) the probe reports, spread over the input."""
    return np.linspace(size * 0.1, size * 0.9, LINES).round().astype(np.int64)


def build_probe_model(size: int = 320) -> bytes:
    """A [1, size, size, 3] uint8 probe .tflite with object-detector metadata."""
    import tensorflow as tf
    from tensorflow_lite_support.metadata.python.metadata_writers import object_detector

    rows, cols = line_positions(size), line_positions(size)
    count = 2 * LINES * size
    # detection n = (line k, position i): box origin encodes (k, i), see _decode
    k = np.repeat(np.arange(2 * LINES), size)
    i = np.tile(np.arange(size), 2 * LINES)
    top, left = (k + 0.5) / (4 * LINES), (i + 0.5) / size
    boxes = np.stack([top, left, top + 0.5 / (4 * LINES), left + 0.5 / size], axis=1)

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8)])
    def probe(image):
        pixels = tf.cast(image[0], tf.float32)
        along_x = tf.gather(pixels[:, :, 0], rows, axis=0)  # [LINES, size]: red along rows
        along_y = tf.transpose(tf.gather(pixels[:, :, 1], cols, axis=1))  # green along columns
        values = tf.reshape(tf.concat([along_x, along_y], axis=0), [1, count])
        zero = tf.minimum(tf.reduce_min(values), 0.0)  # 0 (pixels >= 0), but not foldable
        # computed in metadata order: tflite-support's writer describes the outputs in
        # the order of their tensor indices (checked in _check_output_order)
        location = tf.constant(boxes[None], tf.float32) + zero
        category = tf.minimum(values, 0.0)
        score = (values + 1.0) / 256.0
        number = tf.reshape(float(count) + tf.minimum(tf.reduce_min(score), 0.0), [1])
        return {
            "output_0_location": location,
            "output_1_category": category,
            "output_2_score": score,
            "output_3_number": number,
        }

    converter = tf.lite.TFLiteConverter.from_concrete_functions([probe.get_concrete_function()], probe)
    model = converter.convert()
    _check_output_order(model, count)
    with tempfile.TemporaryDirectory() as folder:
        labels = Path(folder) / "labels.txt"
        labels.write_text("pixel\n", encoding="utf-8")
        writer = object_detector.MetadataWriter.create_for_inference(model, [0.0], [1.0], [str(labels)])
        return bytes(writer.populate())


def _check_output_order(model: bytes, count: int) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    outputs = sorted(interpreter.get_output_details(), key=lambda o: o["index"])
    shapes = [tuple(int(d) for d in o["shape"]) for o in outputs]
    if shapes != [(1, count, 4), (1, count), (1, count), (1,)] or outputs[2]["name"] != "Identity_2":
        raise ProbeError(f"probe outputs came out as {shapes}; expected location, category, score, number")


def probe_image(width: int, height: int, size: int = 320) -> np.ndarray:
    """The probe photo: a sine along x in red, along y in green, ten model pixels per period."""
    x = np.arange(width, dtype=np.float64)
    y = np.arange(height, dtype=np.float64)
    red = 127.5 + 100 * np.sin(2 * np.pi * x / (PERIOD_MODEL_PX * width / size))
    green = 127.5 + 100 * np.sin(2 * np.pi * y / (PERIOD_MODEL_PX * height / size))
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.round(red)[None, :]
    image[:, :, 1] = np.round(green)[:, None]
    image[:, :, 2] = 128
    return image


def _decode(raw: list[dict], width: int, height: int, size: int) -> np.ndarray:
    """[2 * LINES, size] pixel values from the probe's whole-pixel detections."""
    if width < 2 * size or height < 8 * LINES:
        raise ProbeError(f"photo {width}x{height} is too small to decode the probe at {size}")
    values = np.full((2 * LINES, size), np.nan)
    for detection in raw:
        x, y = detection["box"][0], detection["box"][1]
        k, i = int(np.floor(y * 4 * LINES / height)), int(np.floor(x * size / width))
        if not (0 <= k < 2 * LINES and 0 <= i < size):
            raise ProbeError(f"probe detection at ({x}, {y}) is outside the encoded grid")
        values[k, i] = round(detection["score"] * 256.0 - 1.0)
    if np.isnan(values).any():
        raise ProbeError(f"{int(np.isnan(values).sum())} probe pixels missing from the runtime's answer")
    return values


def litert_pixels(model: bytes, image: np.ndarray) -> np.ndarray:
    """[2 * LINES, size] values the probe reports when this toolkit's resize feeds it (LiteRT)."""
    from ai_edge_litert.interpreter import Interpreter

    from ktp_tflite.train.preprocess import resize_rgb

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    size = int(interpreter.get_input_details()[0]["shape"][1])
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], resize_rgb(image, size, size)[None])
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[2]["index"])  # metadata order
    return np.round(scores[0] * 256.0 - 1.0).reshape(2 * LINES, size)


def runtime_pixels(runtime: str, model_path: str | Path, image: np.ndarray, size: int = 320) -> np.ndarray:
    """[2 * LINES, size] values the probe reports when ``runtime`` feeds it ``image``."""
    from ktp_tflite.convert.runtimes import run_probe

    raw = run_probe(runtime, model_path, [image])[0]
    return _decode(raw, image.shape[1], image.shape[0], size)


@dataclasses.dataclass(frozen=True)
class AxisSampling:
    """Where a runtime sampled the photo along one axis, versus our half-pixel grid."""

    scale: float  # photo pixels per model pixel
    offset_px: tuple[float, ...]  # per window of WINDOW model pixels, in photo pixels
    gain: float  # kept amplitude of the pattern (mean over windows)

    @property
    def mean_offset_px(self) -> float:
        return float(np.mean(self.offset_px))


def fit_sampling(values: np.ndarray, photo_size: int, size: int = 320) -> AxisSampling:
    """Fit the sampled positions of ``values`` [lines, size] of the probe pattern along one axis."""
    scale = photo_size / size
    period = PERIOD_MODEL_PX * scale
    x = np.arange(size, dtype=np.float64)
    ours = (x + 0.5) * scale - 0.5  # photo pixel-centre coordinate our resize samples
    phase = 2 * np.pi * ours / period
    mean = values.mean(axis=0) - 127.5
    offsets, gains = [], []
    for start in range(0, size, WINDOW):
        part = slice(start, start + WINDOW)
        design = np.stack([np.sin(phase[part]), np.cos(phase[part])], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, mean[part], rcond=None)
        # A sin(phase + d) = A cos(d) sin(phase) + A sin(d) cos(phase)
        offsets.append(float(np.arctan2(b, a) * period / (2 * np.pi)))
        gains.append(float(np.hypot(a, b) / 100.0))
    return AxisSampling(scale, tuple(round(o, 3) for o in offsets), round(float(np.mean(gains)), 3))


def measure(runtimes: tuple[str, ...], sizes=SIZES, size: int = 320) -> dict:
    """{runtime: {"WxH": {"x": AxisSampling, "y": AxisSampling}}} for the probe at ``size``."""
    model = build_probe_model(size)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.tflite"
        path.write_bytes(model)
        for runtime in runtimes:
            results[runtime] = {}
            for width, height in sizes:
                image = probe_image(width, height, size)
                values = (
                    litert_pixels(model, image) if runtime == "litert" else runtime_pixels(runtime, path, image, size)
                )
                results[runtime][f"{width}x{height}"] = {
                    "x": fit_sampling(values[:LINES], width, size),
                    "y": fit_sampling(values[LINES:], height, size),
                }
    return results


def main() -> None:
    """Print the offset table for every installed runtime."""
    from ktp_tflite.convert.runtimes import installed_runtimes

    results = measure(installed_runtimes())
    print("| runtime | photo | x offset (photo px) | y offset (photo px) | gain x / y |")
    print("|---|---|---|---|---|")
    for runtime, by_size in results.items():
        for photo, axes in by_size.items():
            x, y = axes["x"], axes["y"]
            print(
                f"| {runtime} | {photo} | {x.mean_offset_px:+.2f} ({min(x.offset_px):+.2f}..{max(x.offset_px):+.2f})"
                f" | {y.mean_offset_px:+.2f} ({min(y.offset_px):+.2f}..{max(y.offset_px):+.2f})"
                f" | {x.gain:.2f} / {y.gain:.2f} |"
            )


if __name__ == "__main__":
    main()
