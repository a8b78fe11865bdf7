"""Decode one poster into the kit's canonical form: RGB, uint8, channels-first, fixed size."""
from __future__ import annotations

import io
import os
import warnings
from contextlib import contextmanager

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_SIZE = (345, 230)          # (height, width), the report's input
DEFAULT_MAX_PIXELS = 60_000_000    # larger images are refused as decompression bombs
WHITE = (255, 255, 255)
JPEG_END = b"\xff\xd9"
EXIF_ORIENTATION = 0x0112
REDUCED_READS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,     # by draft's scale
                 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class PosterError(ValueError):
    """A poster that cannot be stored; ``reason`` is a short machine-readable category."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: grey repeated, alpha composited on white, 16-bit scaled."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        image = Image.fromarray((array * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def decode_poster(data: bytes, size: tuple[int, int] = DEFAULT_SIZE,
                  max_pixels: int = DEFAULT_MAX_PIXELS, out: np.ndarray | None = None
                  ) -> np.ndarray:
    """Decode image bytes to a uint8 array of shape (3, height, width), written into ``out``
    when given (a row of a shard: one copy fewer).

    Raises PosterError with reason ``empty``, ``not-an-image``, ``oversized`` or ``truncated``.
    """
    if not data:
        raise PosterError("empty", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))       # reads the header only
            if image.width * image.height > max_pixels:
                raise PosterError("oversized", f"{image.width}x{image.height} pixels exceeds the "
                                  f"{max_pixels:,}-pixel limit")
            # JPEG: let libjpeg decode at a reduced scale when the poster is much larger
            # (square request: EXIF may still rotate the image by 90 degrees).
            image.draft("RGB", (max(size), max(size)))
            channels_reversed = _plain_jpeg(data, image)
            if channels_reversed is None:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                pixels = np.asarray(to_rgb(image))
    except PosterError:
        raise
    except Image.DecompressionBombError as error:
        raise PosterError("oversized", str(error)) from None
    except UnidentifiedImageError:
        raise PosterError("not-an-image", "not an image in a format Pillow reads (JPEG, PNG, "
                          "WebP, GIF, BMP, TIFF, ...)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise PosterError("truncated", str(error) or type(error).__name__) from None
    if channels_reversed is not None:
        planes = resize(channels_reversed, size).transpose(2, 0, 1)[::-1]
    else:
        planes = resize(pixels, size).transpose(2, 0, 1)
    if out is None:
        return np.ascontiguousarray(planes)
    np.copyto(out, planes)
    return out


def _plain_jpeg(data: bytes, image: Image.Image) -> np.ndarray | None:
    """The BGR pixels of a complete RGB JPEG without EXIF rotation, decoded by OpenCV: the same
    libjpeg-turbo decode as PIL's (identical pixels on every real poster, a test checks the
    property), at the scale ``draft`` chose, without PIL's copies. None for any other image,
    which PIL decodes."""
    if (image.format != "JPEG" or image.mode != "RGB" or not image.decoderconfig
            or not data.rstrip(b"\0\r\n ").endswith(JPEG_END)       # truncated: PIL says so
            or image.getexif().get(EXIF_ORIENTATION, 1) != 1):
        return None
    flags = REDUCED_READS.get(image.decoderconfig[0])
    if flags is None:
        return None
    with _stderr_silenced():     # libjpeg's warnings on corrupt data (PIL ignores them too)
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8),
                              flags | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None or pixels.shape != (image.height, image.width, 3):
        return None
    return pixels


@contextmanager
def _stderr_silenced():
    """File descriptor 2 pointed at /dev/null for the block (C libraries print there)."""
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array: bilinear up to 2x reduction, area averaging beyond."""
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    shrink = max(pixels.shape[0] / height, pixels.shape[1] / width)
    method = cv2.INTER_AREA if shrink > 2 else cv2.INTER_LINEAR
    return cv2.resize(pixels, (width, height), interpolation=method)
