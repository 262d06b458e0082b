"""The one image loader: every photo the toolkit reads is opened here.

- **Pixel limit.** Width x height is read from the file's header (PIL reads
  it lazily) and checked before any pixel is decoded: at most
  :data:`DEFAULT_MAX_PIXELS` (50 megapixels; phone cameras give 12-50), or
  ``max_pixels`` per call, or the environment variable ``KTP_MAX_PIXELS``
  for every command. PIL's own decompression-bomb check (an error above
  ``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels, which this
  setting cannot raise) gives the same :class:`ImageTooLargeError`.
- **Formats.** JPEG (and MPO), PNG, BMP, GIF and WebP, the formats
  ``tf.io.decode_image`` reads in training; anything else is refused.
- **Colour.** Always uint8 RGB ``[H, W, 3]``: grayscale, palette, CMYK,
  YCbCr are converted; alpha is dropped; 16-bit samples keep their high byte
  (as ``tf.io.decode_image`` does, so calibration sees what training saw).
- **Orientation.** ``upright=True`` applies the EXIF orientation (photos to
  scan); data set images stay as stored (``upright=False``), because their
  boxes are in stored pixels and training decodes them without EXIF.

Errors are :class:`ImageReadError` (a :class:`DatasetError`) naming the file
(or the record holding the bytes), never a BytesIO.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import warnings
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from ktp_tflite.train.records import DatasetError

DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_ENV = "KTP_MAX_PIXELS"
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")  # JPEG opens MPO (phone photos) too
EXIF_ORIENTATION_TAG = 0x0112

ImageSource = str | os.PathLike | bytes


class ImageReadError(DatasetError):
    """An image cannot be read: missing, not an image, truncated or corrupt."""


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than the limit (checked before decoding)."""


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What the header says.

    Attributes:
      width, height: stored pixels (before EXIF orientation).
      format: "jpeg", "png", "bmp", "gif" or "webp".
      mode: PIL's mode of the stored pixels ("RGB", "L", "I;16", "CMYK", ...).
      orientation: the EXIF orientation tag (1 = as stored).
    """

    width: int
    height: int
    format: str
    mode: str
    orientation: int = 1


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels``, else ``KTP_MAX_PIXELS``, else the default.

    Raises:
      ImageReadError: ``KTP_MAX_PIXELS`` is not a positive whole number.
    """
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ImageReadError(f"max_pixels must be a positive whole number, got {max_pixels!r}")
        return max_pixels
    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise ImageReadError(
            f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r}: expected a positive whole number "
            f"of pixels, e.g. {MAX_PIXELS_ENV}=100000000"
        )
    return int(text)


def _name(source: ImageSource, where: str | None) -> str:
    if where is not None:
        return where
    return "image bytes" if isinstance(source, bytes) else str(source)


def _too_large(name: str, pixels: int, limit: int, size: str = "") -> ImageTooLargeError:
    return ImageTooLargeError(
        f"{name}: image is {size}{pixels / 1e6:.1f} megapixels, over the limit of "
        f"{limit / 1e6:g} megapixels; refused before decoding. Shrink it, or raise the limit "
        f"with {MAX_PIXELS_ENV}={pixels} if this is a real photo"
    )


def _scrub(error: BaseException) -> str:
    """PIL's message without the repr of an in-memory file."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the image", str(error)) or type(error).__name__


@contextlib.contextmanager
def _opened(source: ImageSource, name: str, max_pixels: int | None) -> Iterator:
    """PIL image with its header read and the pixel limit checked (nothing decoded yet)."""
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels_limit(max_pixels)
    handle: BinaryIO
    if isinstance(source, bytes):
        if not source:
            raise ImageReadError(f"{name}: image is empty (0 bytes)")
        handle = io.BytesIO(source)
    else:
        try:
            handle = open(source, "rb")  # closed by `with handle` below
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or _scrub(error)
            raise ImageReadError(f"{name}: cannot read the file ({reason})") from None
        if os.fstat(handle.fileno()).st_size == 0:
            handle.close()
            raise ImageReadError(f"{name}: image is empty (0 bytes)")
    with handle:
        try:
            with warnings.catch_warnings():
                # our limit replaces PIL's warning; its hard error is caught below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle, formats=FORMATS)
        except Image.DecompressionBombError as error:
            hard_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            claimed = re.search(r"\((\d+) pixels\)", str(error))
            pixels = int(claimed.group(1)) if claimed else hard_limit + 1
            if pixels > limit:
                raise _too_large(name, pixels, limit) from None
            raise ImageTooLargeError(
                f"{name}: image is {pixels / 1e6:.1f} megapixels, over PIL's own limit of "
                f"{hard_limit / 1e6:g} megapixels, which {MAX_PIXELS_ENV} cannot raise; "
                "refused before decoding"
            ) from None
        except UnidentifiedImageError:
            raise ImageReadError(
                f"{name}: cannot read the image: not a JPEG, PNG, BMP, GIF or WebP file, or its header is corrupt"
            ) from None
        except Exception as error:  # noqa: BLE001 - a malformed header can make PIL raise almost anything
            raise ImageReadError(
                f"{name}: cannot read the image header ({_scrub(error)}); the file is corrupt or not an image"
            ) from None
        with image:
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageReadError(f"{name}: image header says {width}x{height} pixels")
            if width * height > limit:
                raise _too_large(name, width * height, limit, f"{width}x{height} pixels, ")
            yield image


def _orientation(image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block (any error): the pixels are still usable as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _info(image) -> ImageInfo:
    fmt = (image.format or "").lower()
    return ImageInfo(
        width=image.width,
        height=image.height,
        format="jpeg" if fmt in ("jpeg", "mpo") else fmt,
        mode=image.mode,
        orientation=_orientation(image),
    )


def _decode(image, name: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Truncated File Read" chatter, palette notes
            image.load()
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data: PIL raises many types
        raise ImageReadError(
            f"{name}: cannot decode image ({_scrub(error)}); the file is truncated or not an image"
        ) from None


def _rgb(image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        wide = np.asarray(image).astype(np.int64)
        gray = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[..., np.newaxis], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(image)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., np.newaxis], 3, axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode in ("P", "PA"):
            image = image.convert("RGBA")
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


_TRANSPOSE = {
    2: (0, True),
    3: (2, False),
    4: (2, True),
    5: (3, True),
    6: (3, False),
    7: (1, True),
    8: (1, False),
}  # orientation -> (np.rot90 k, then flip left-right)


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    if orientation not in _TRANSPOSE:
        return pixels
    turns, mirror = _TRANSPOSE[orientation]
    if turns:
        pixels = np.rot90(pixels, k=turns)
    if mirror:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def read_header(source: ImageSource, *, where: str | None = None, max_pixels: int | None = None) -> ImageInfo:
    """Size, format and orientation from the header; checks the pixel limit, decodes nothing.

    Args:
      source: a path, or the encoded bytes (then give ``where``).
      where: how messages name the image (default: the path).
      max_pixels: the pixel limit (default: see :func:`max_pixels_limit`).

    Raises:
      ImageReadError: unreadable, not an image; ImageTooLargeError over the limit.
    """
    name = _name(source, where)
    with _opened(source, name, max_pixels) as image:
        return _info(image)


def check_image(source: ImageSource, *, where: str | None = None, max_pixels: int | None = None) -> ImageInfo:
    """:func:`read_header`, then decode every pixel (catches truncation) without keeping them."""
    name = _name(source, where)
    with _opened(source, name, max_pixels) as image:
        info = _info(image)
        _decode(image, name)
        return info


def load_image(
    source: ImageSource, *, where: str | None = None, max_pixels: int | None = None, upright: bool = True
) -> np.ndarray:
    """Decode to uint8 RGB ``[H, W, 3]``.

    Args:
      source: a path, or the encoded bytes (then give ``where``).
      where: how messages name the image (default: the path).
      max_pixels: the pixel limit (default: see :func:`max_pixels_limit`).
      upright: apply the EXIF orientation (False: the stored pixels).

    Raises:
      ImageReadError: unreadable, not an image, truncated; ImageTooLargeError
        over the limit (before decoding).
    """
    name = _name(source, where)
    with _opened(source, name, max_pixels) as image:
        orientation = _orientation(image) if upright else 1
        _decode(image, name)
        pixels = _rgb(image)
    return _upright(pixels, orientation)
