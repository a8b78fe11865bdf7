"""Decode one poster into the kit's canonical form: RGB, uint8, channels-first, fixed size."""
from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_SIZE = (345, 230)          # (height, width), the report's input
DEFAULT_MAX_PIXELS = 60_000_000    # larger images are refused as decompression bombs
WHITE = (255, 255, 255)


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
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to a uint8 array of shape (3, height, width).

    Raises PosterError with reason ``empty``, ``not-an-image``, ``oversized`` or ``truncated``.
    """
    if not data:
        raise PosterError("empty", "zero-byte file")
    height, width = size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise PosterError("oversized", f"{image.width}x{image.height} pixels exceeds the "
                                  f"{max_pixels:,}-pixel limit")
            # JPEG: let libjpeg decode at a reduced scale when the poster is much larger
            # (square request: EXIF may still rotate the image by 90 degrees).
            image.draft("RGB", (max(size), max(size)))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            pixels = np.asarray(to_rgb(image))
    except PosterError:
        raise
    except Image.DecompressionBombError as error:
        raise PosterError("oversized", str(error)) from None
    except UnidentifiedImageError as error:
        raise PosterError("not-an-image", str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise PosterError("truncated", str(error) or type(error).__name__) from None
    return np.ascontiguousarray(resize(pixels, size).transpose(2, 0, 1))


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array: bilinear up to 2x reduction, area averaging beyond."""
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    shrink = max(pixels.shape[0] / height, pixels.shape[1] / width)
    method = cv2.INTER_AREA if shrink > 2 else cv2.INTER_LINEAR
    return cv2.resize(pixels, (width, height), interpolation=method)
