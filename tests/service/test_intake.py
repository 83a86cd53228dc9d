"""Tests for janus_demo.service.intake: every upload becomes an upright RGB image or a clear message.

All fixture files are written on the fly into tmp_path with Pillow (or by hand, for the PNG bombs).
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from janus_demo.service.errors import InputError
from janus_demo.service.intake import ImageLimits, load_image, load_images, to_rgb

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def save(image: Image.Image, path: Path, format: str | None = None, **params) -> Path:
    image.save(path, format=format, **params)
    return path


def file_info(path: Path) -> dict:
    """What Pillow itself says about a fixture file (checks the fixture is what the test means it to be)."""
    with Image.open(path) as image:
        return {"size": image.size, "format": image.format, "n_frames": getattr(image, "n_frames", 1)}


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 0) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of width x height zeros: a few KB on disk, gigabytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


# --- every mode comes out as 8-bit RGB with the right colours


def _palette_with_transparent_entry() -> Image.Image:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # 0 black, 1 red
    image.putpixel((0, 0), 0)
    image.info["transparency"] = 0
    return image


def _rgb_with_transparent_colour() -> Image.Image:
    image = Image.new("RGB", (4, 4), RED)
    image.putpixel((0, 0), (1, 2, 3))
    image.info["transparency"] = (1, 2, 3)
    return image


def _filled(mode: str, value) -> Image.Image:
    return Image.new(mode, (4, 4), value)


def _ramp_16bit(mode: str) -> Image.Image:
    image = Image.new(mode, (4, 4), 32768)  # mid-level 16-bit grey
    image.putpixel((1, 0), 65535)
    return image


# (name, image, file format, {pixel: expected RGB})
MODE_CASES = [
    ("1", _filled("1", 1), "PNG", {(0, 0): WHITE}),
    ("L", _filled("L", 100), "PNG", {(0, 0): (100, 100, 100)}),
    ("LA transparent", _filled("LA", (100, 0)), "PNG", {(0, 0): WHITE}),
    ("LA opaque", _filled("LA", (100, 255)), "PNG", {(0, 0): (100, 100, 100)}),
    ("P", _palette_with_transparent_entry(), "BMP", {(1, 1): RED}),
    ("P transparent entry", _palette_with_transparent_entry(), "PNG", {(0, 0): WHITE, (1, 1): RED}),
    ("P transparent GIF", _palette_with_transparent_entry(), "GIF", {(0, 0): WHITE, (1, 1): RED}),
    ("RGB transparent colour", _rgb_with_transparent_colour(), "PNG", {(0, 0): WHITE, (1, 1): RED}),
    ("RGBA transparent", _filled("RGBA", (0, 0, 0, 0)), "PNG", {(0, 0): WHITE}),
    ("RGBA half", _filled("RGBA", (0, 0, 0, 128)), "PNG", {(0, 0): (127, 127, 127)}),
    ("RGBA WEBP", _filled("RGBA", (0, 0, 0, 0)), "WEBP", {(0, 0): WHITE}),
    ("CMYK", _filled("CMYK", (0, 255, 255, 0)), "TIFF", {(0, 0): RED}),
    ("CMYK JPEG", _filled("CMYK", (0, 255, 255, 0)), "JPEG", {(0, 0): RED}),
    ("I;16", _ramp_16bit("I;16"), "PNG", {(0, 0): (128, 128, 128), (1, 0): WHITE}),
    ("I;16B", _ramp_16bit("I;16B"), "TIFF", {(0, 0): (128, 128, 128), (1, 0): WHITE}),
    ("I 8-bit range", _filled("I", 100), "TIFF", {(0, 0): (100, 100, 100)}),
    ("I 16-bit range", _ramp_16bit("I"), "TIFF", {(0, 0): (128, 128, 128), (1, 0): WHITE}),
    ("F 0..1", _filled("F", 0.5), "TIFF", {(0, 0): (128, 128, 128)}),
    ("YCbCr JPEG", _filled("YCbCr", (76, 85, 255)), "JPEG", {(0, 0): RED}),
    ("RGB BMP", _filled("RGB", BLUE), "BMP", {(0, 0): BLUE}),
]


@pytest.mark.parametrize(("name", "image", "format", "expected"), MODE_CASES, ids=[c[0] for c in MODE_CASES])
def test_every_mode_becomes_rgb_with_the_right_colours(tmp_path, name, image, format, expected):
    path = save(image, tmp_path / f"image.{format.lower()}", format)
    result = load_image(path)
    assert result.mode == "RGB"
    assert result.size == image.size
    tolerance = 8 if format in ("JPEG", "WEBP") else 1
    for xy, colour in expected.items():
        assert close_to(result.getpixel(xy), colour, tolerance), (name, xy, result.getpixel(xy), colour)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("YCbCr", (76, 85, 255), RED),
        ("HSV", (0, 255, 255), RED),
        ("RGBa", (0, 0, 0, 0), WHITE),
        ("PA", (0, 0), WHITE),
        ("LAB", (255, 128, 128), WHITE),
        ("F", -10.0, BLACK),  # an arbitrary float range is stretched from its minimum...
        ("I", -1000, BLACK),
    ],
)
def test_modes_without_a_file_format_convert_too(mode, value, expected):
    image = Image.new(mode, (2, 1), value)
    if mode in ("F", "I"):
        image.putpixel((1, 0), -value)  # ...to its maximum
    result = to_rgb(image)
    assert result.mode == "RGB"
    assert close_to(result.getpixel((0, 0)), expected, 3)
    if mode in ("F", "I"):
        assert result.getpixel((1, 0)) == WHITE


def test_float_image_with_nan_and_inf_does_not_fail():
    image = Image.new("F", (3, 1))
    for x, value in enumerate([float("nan"), float("inf"), 100.0]):
        image.putpixel((x, 0), value)
    result = to_rgb(image)
    assert result.mode == "RGB" and result.getpixel((2, 0)) == (100, 100, 100)


# --- EXIF orientation

# How a camera stores the upright picture for each EXIF Orientation value (from the EXIF spec).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # "rotate 90 degrees clockwise to view": stored turned counter-clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _upright_picture() -> Image.Image:
    """60x30 grey with a red top-left and a blue top-right corner: every one of the 8 orientations differs."""
    image = Image.new("RGB", (60, 30), (128, 128, 128))
    image.paste(RED, (0, 0, 12, 12))
    image.paste(BLUE, (48, 0, 60, 12))
    return image


@pytest.mark.parametrize("format", ["JPEG", "PNG", "TIFF", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(tmp_path, orientation, format):
    upright = _upright_picture()
    stored = upright if STORED_AS[orientation] is None else upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(stored, tmp_path / f"photo.{format.lower()}", format, exif=exif)
    if orientation >= 5 and format != "TIFF":  # Pillow's TIFF reader applies the orientation itself
        assert file_info(path)["size"] == (30, 60)  # the file itself is portrait

    result = load_image(path)
    assert result.size == (60, 30)
    assert close_to(result.getpixel((3, 3)), RED, 30)
    assert close_to(result.getpixel((56, 3)), BLUE, 30)
    assert close_to(result.getpixel((3, 26)), (128, 128, 128), 30)


def test_broken_orientation_value_is_ignored(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9
    path = save(_upright_picture(), tmp_path / "photo.jpg", "JPEG", exif=exif)
    assert load_image(path).size == (60, 30)


# --- the format comes from the content, not the name


@pytest.mark.parametrize(
    ("format", "name"), [("PNG", "image.jpg"), ("JPEG", "image.gif"), ("GIF", "image.png"), ("WEBP", "image")]
)
def test_wrong_or_missing_extension_loads_fine(tmp_path, format, name):
    path = save(Image.new("RGB", (8, 8), RED), tmp_path / name, format)
    result = load_image(path)
    assert result.mode == "RGB" and close_to(result.getpixel((4, 4)), RED, 8)


# --- only the first frame of animations and multi-page files


@pytest.mark.parametrize(
    ("format", "name"), [("GIF", "a.gif"), ("PNG", "a.png"), ("TIFF", "a.tiff"), ("WEBP", "a.webp")]
)
def test_only_the_first_frame_is_used(tmp_path, format, name):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    path = save(frames[0], tmp_path / name, format, save_all=True, append_images=frames[1:], lossless=True)
    assert file_info(path)["n_frames"] == 3  # really animated / multi-page
    result = load_image(path)
    assert result.mode == "RGB" and close_to(result.getpixel((4, 4)), RED, 2)


def test_mpo_from_a_camera_gives_its_first_picture(tmp_path):
    pictures = [Image.new("RGB", (16, 16), colour) for colour in (RED, GREEN)]
    path = save(pictures[0], tmp_path / "camera.jpg", "MPO", save_all=True, append_images=pictures[1:])
    assert file_info(path)["format"] == "MPO"
    assert close_to(load_image(path).getpixel((8, 8)), RED, 8)


# --- files we cannot or will not read: a clear message, never a server path

PNG_BYTES = b"\x89PNG\r\n\x1a\n"


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def _ppm_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PPM")
    return buffer.getvalue()


UNREADABLE = {
    "zero bytes": (b"", "empty"),
    "random bytes": (random.Random(0).randbytes(4096), "not an image"),
    "html": (b"<!DOCTYPE html><html><body><img src=x></body></html>", "not an image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>', "not an image"),
    "text": (b"hello, this is a text file\n" * 20, "not an image"),
    "png signature only": (PNG_BYTES, "not an image"),
    "truncated png": (_png_bytes()[:600], "damaged"),
    "truncated jpeg": (_jpeg_bytes()[:700], "damaged"),
    "ppm (readable by Pillow, not accepted)": (_ppm_bytes(), "not an image"),
}


@pytest.mark.parametrize(("content", "expected"), UNREADABLE.values(), ids=UNREADABLE.keys())
@pytest.mark.parametrize("name", ["upload.png", "upload.jpg"])
def test_unreadable_files_give_a_clear_message_without_paths(tmp_path, content, expected, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_image(path)
    message = str(caught.value)
    assert "/" not in message and str(tmp_path) not in message
    assert expected in message
    if expected == "not an image":
        assert "PNG, JPEG, WEBP, GIF, BMP or TIFF" in message


def test_missing_file_and_directory(tmp_path):
    for path in (tmp_path / "gone.png", tmp_path, "bad\0path.png"):
        with pytest.raises(InputError) as caught:
            load_image(path)
        assert "/" not in str(caught.value)


def test_file_size_is_checked_before_reading(tmp_path):
    path = save(Image.effect_noise((64, 64), 50), tmp_path / "noise.png", "PNG")
    with pytest.raises(InputError, match=r"The file is .* MB; the limit is .* MB"):
        load_image(path, ImageLimits(max_file_bytes=1024))


# --- oversized images are refused before decoding


def _refusal_cost(path: Path) -> dict:
    """Load `path` in a fresh interpreter; return the message, seconds and peak-RSS growth (MB) of the attempt.

    RSS, not tracemalloc: Pillow allocates pixels in C, which tracemalloc does not see.
    """
    script = """
import json, resource, sys, time
from janus_demo.service.errors import InputError
from janus_demo.service.intake import load_image
def status_mb(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(key))
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak (VmHWM) to the current RSS, so the imports' peak does not count
    peak_key = "VmHWM:"
except OSError:
    peak_key = None  # fall back to the process peak: an overestimate, so the test only gets stricter
before, start, message = status_mb("VmRSS:"), time.perf_counter(), None
try:
    load_image(sys.argv[1])
except InputError as exc:
    message = str(exc)
seconds = time.perf_counter() - start
peak = status_mb(peak_key) if peak_key else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"message": message, "seconds": seconds, "growth_mb": peak - before}))
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("measures memory through /proc (Linux)")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("side", "expected"), [(20000, "20000x20000|400 megapixels"), (12000, "12000x12000")])
def test_png_bomb_is_refused_fast_and_small(tmp_path, side, expected):
    path = write_blank_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 100_000
    cost = _refusal_cost(path)
    assert cost["message"] is not None and "limit is 16 megapixels" in cost["message"]
    assert any(part in cost["message"] for part in expected.split("|"))
    assert cost["seconds"] < 3.0
    assert cost["growth_mb"] < 50


def test_the_memory_measure_sees_a_real_decode(tmp_path):
    """Guards the test above: loading an accepted 15 MP image does show up in the measure."""
    path = write_blank_png(tmp_path / "big.png", 5000, 3000)
    cost = _refusal_cost(path)
    assert cost["message"] is None
    assert cost["growth_mb"] > 50  # 15 MB of 1-bit pixels, then 60 MB of RGB (4 bytes per pixel)


def _jpeg_declaring(width: int, height: int, path: Path) -> Path:
    data = bytearray(_jpeg_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_jpeg_declaring_a_huge_size_is_refused(tmp_path):
    path = _jpeg_declaring(12000, 12000, tmp_path / "flood.jpg")
    with pytest.raises(InputError, match="12000x12000 pixels; the limit is 16 megapixels"):
        load_image(path)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_as_error_is_refused_too(tmp_path):
    path = _jpeg_declaring(12000, 12000, tmp_path / "flood.jpg")
    with pytest.raises(InputError, match="The image has 144 megapixels; the limit is 16 megapixels"):
        load_image(path)


def test_long_side_is_refused(tmp_path):
    path = write_blank_png(tmp_path / "strip.png", 9000, 10)
    with pytest.raises(InputError, match="9000x10 pixels; sides longer than 8192 pixels"):
        load_image(path)


def test_big_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = save(Image.new("RGB", (2000, 1000), RED), tmp_path / "photo.jpg", "JPEG")
    result = load_image(path, ImageLimits(max_pixels=1_000_000))
    assert result.size == (1000, 500)
    assert close_to(result.getpixel((500, 250)), RED, 8)
    with pytest.raises(InputError, match="2000x1000 pixels"):
        load_image(path, ImageLimits(max_pixels=1_000_000, max_jpeg_pixels=1_500_000))


# --- the result stands on its own


def test_result_is_detached_and_the_file_closed(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN)]
    path = save(frames[0], tmp_path / "a.tiff", "TIFF", save_all=True, append_images=frames[1:])
    open_files = len(os.listdir("/proc/self/fd"))
    result = load_image(path)
    assert len(os.listdir("/proc/self/fd")) == open_files
    path.unlink()
    assert getattr(result, "fp", None) is None
    assert result.resize((4, 4)).getpixel((2, 2)) == RED


def test_rgb_input_is_returned_as_a_copy(tmp_path):
    path = save(Image.new("RGB", (8, 8), RED), tmp_path / "a.png", "PNG")
    first, second = load_image(path), load_image(path)
    first.putpixel((0, 0), BLUE)
    assert second.getpixel((0, 0)) == RED


# --- several images per request


def test_load_images_caps_the_count_and_says_which_image_failed(tmp_path):
    good = save(Image.new("RGB", (8, 8), RED), tmp_path / "good.png", "PNG")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")

    assert [image.size for image in load_images([good, good], max_images=2)] == [(8, 8), (8, 8)]
    with pytest.raises(InputError, match="Too many images: 3 were sent; the limit is 2."):
        load_images([good] * 3, max_images=2)
    with pytest.raises(InputError, match="^Image 2: This file is not an image"):
        load_images([good, bad], max_images=2)
    with pytest.raises(InputError, match="^This file is not an image"):
        load_images([bad], max_images=2)
