import io

import numpy as np
import pytest
from PIL import Image

from kit.imaging import PosterError, decode_poster


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("mode, colour", [
    ("L", 128), ("LA", (128, 255)), ("P", 3), ("RGB", (10, 200, 30)),
    ("RGBA", (10, 200, 30, 255)), ("CMYK", (0, 255, 255, 0)), ("I;16", 40000),
])
def test_every_mode_becomes_rgb_at_the_store_size(mode, colour):
    image = Image.new(mode, (60, 90), colour)
    fmt = "JPEG" if mode in ("CMYK",) else ("TIFF" if mode == "I;16" else "PNG")
    pixels = decode_poster(encode(image, fmt))
    assert pixels.shape == (3, 345, 230) and pixels.dtype == np.uint8


def test_grey_is_repeated_into_three_equal_channels():
    pixels = decode_poster(encode(Image.new("L", (23, 34), 77)), size=(34, 23))
    assert (pixels == 77).all()


def test_sixteen_bit_grey_is_scaled_not_clipped():
    pixels = decode_poster(encode(Image.new("I;16", (23, 34), 32768), "TIFF"), size=(34, 23))
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1


def test_transparency_is_composited_on_white():
    image = Image.new("RGBA", (23, 34), (255, 0, 0, 0))
    assert (decode_poster(encode(image), size=(34, 23)) == 255).all()
    half = Image.new("RGBA", (23, 34), (0, 0, 0, 128))
    assert abs(int(decode_poster(encode(half), size=(34, 23))[0, 5, 5]) - 127) <= 1


def test_palette_transparency_is_composited_on_white():
    image = Image.new("P", (23, 34), 0)
    image.putpalette([0, 0, 0] * 256)
    assert (decode_poster(encode(image, transparency=0), size=(34, 23)) == 255).all()


def test_exif_orientation_is_applied():
    # Stored landscape, red on the left; orientation 6 means "rotate 90 degrees clockwise".
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = decode_poster(encode(image, "JPEG", exif=exif.tobytes(), quality=95), size=(40, 20))
    assert pixels.shape == (3, 40, 20)
    assert pixels[0, 5, 10] > 200 and pixels[2, 5, 10] < 60      # top is red after rotation
    assert pixels[2, 35, 10] > 200 and pixels[0, 35, 10] < 60    # bottom is blue


def test_large_jpeg_is_reduced_without_aliasing_to_garbage():
    image = Image.new("RGB", (2000, 3000), (12, 34, 56))
    pixels = decode_poster(encode(image, "JPEG", quality=95))
    assert pixels.shape == (3, 345, 230)
    assert np.abs(pixels.reshape(3, -1).mean(1) - [12, 34, 56]).max() < 3


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"this is not an image at all", "not-an-image"),
])
def test_unusable_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(PosterError) as error:
        decode_poster(data)
    assert error.value.reason == reason
    assert "0x" not in str(error.value)         # no "<_io.BytesIO object at 0x7f...>"


def test_truncated_jpeg_is_refused():
    data = encode(Image.effect_noise((200, 300), 50).convert("RGB"), "JPEG")
    with pytest.raises(PosterError) as error:
        decode_poster(data[: len(data) // 2])
    assert error.value.reason == "truncated"


def test_pillows_own_bomb_guard_also_reads_as_oversized():
    from tests.test_hostile_data import png_header_claiming
    with pytest.raises(PosterError) as error:
        decode_poster(png_header_claiming(20_000, 20_000))
    assert error.value.reason == "oversized"


def test_decompression_bomb_is_refused_before_decoding():
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(PosterError) as error:
        decode_poster(data, max_pixels=1_000_000)
    assert error.value.reason == "oversized"


def pil_decode(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The reference: PIL's decode at draft's scale, resized as the store resizes."""
    from kit.imaging import resize
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (max(size), max(size)))
    return np.ascontiguousarray(resize(np.asarray(image.convert("RGB")), size).transpose(2, 0, 1))


@pytest.mark.parametrize("shape, size", [((445, 300), (345, 230)), ((900, 600), (345, 230)),
                                         ((1800, 1200), (345, 230)), ((3600, 2400), (345, 230)),
                                         ((345, 230), (345, 230)), ((101, 67), (345, 230))])
@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0},
                                     {"quality": 30, "subsampling": 2}])
def test_plain_jpegs_decode_to_the_pixels_pil_gives(shape, size, options):
    """Plain RGB JPEGs take OpenCV's libjpeg-turbo path (faster, fewer copies): pixel for pixel
    what PIL decodes, at each of draft's reduced scales."""
    rng = np.random.default_rng(shape[0])
    smooth = np.linspace(0, 255, shape[0] * shape[1] * 3).reshape(*shape, 3)
    noisy = (smooth + rng.normal(0, 20, smooth.shape)).clip(0, 255).astype(np.uint8)
    data = encode(Image.fromarray(noisy), "JPEG", **options)
    np.testing.assert_array_equal(decode_poster(data, size), pil_decode(data, size))


def test_a_corrupt_jpeg_decodes_without_printing(capfd):
    """libjpeg warns on stderr about corrupt data; the store's decode keeps quiet, as PIL does."""
    rng = np.random.default_rng(0)
    data = bytearray(encode(Image.fromarray(rng.integers(0, 255, (445, 300, 3), np.uint8)),
                            "JPEG"))
    data[2000:2400:7] = bytes(len(range(2000, 2400, 7)))
    assert decode_poster(bytes(data)).shape == (3, 345, 230)
    assert capfd.readouterr().err == ""
