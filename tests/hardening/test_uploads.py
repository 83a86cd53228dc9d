"""Hostile and odd image files through /chat on the real tiny app: a clean answer or a clean error, never a crash.

Measured (printed with -s): a 20000x20000 PNG bomb and a 12000x12000 RGB pixel flood (each under 0.5 MB on disk,
400+ MB decoded) are refused within 1 s with a message giving their size, while this process (server and client)
grows by less than 50 MB and the model is never entered. Every Pillow mode, EXIF rotation, wrong extension,
animation and broken file of the list below ends in an answer or in its expected message. A refused upload does
not stay in the conversation, and an earlier image that can no longer be read is left out with a note.
"""

import io
import os
import struct
import time
import zlib

import pytest
from gradio_client.exceptions import AppError
from PIL import Image
from support import ASSETS
from support.meters import PeakRss
from support.serving import chat_args, chat_message

from janus_demo.service.intake import DAMAGED, NOT_AN_IMAGE

# --- files


def png_of_zeros(width, height, channels):
    """A valid PNG of black pixels built row by row: tiny on disk, width*height*channels bytes decoded."""
    compressor, row = zlib.compressobj(9), b"\0" * (1 + width * channels)
    data = b"".join(compressor.compress(row * 50) for _ in range(height // 50)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encoded(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gradient(mode, size=(48, 32)):
    rgb = Image.linear_gradient("L").resize(size).convert("RGB")
    return rgb if mode == "RGB" else rgb.convert(mode)


def palette_with_transparency():
    image = gradient("RGB").convert("P")
    image.info["transparency"] = 0
    return encoded(image, "PNG", transparency=0)


def high_bit_depth(mode, fmt):
    image = Image.linear_gradient("L").resize((48, 32)).convert("I")
    image = image.point(lambda value: value * 257)  # 0..65535
    if mode == "F":
        image = image.convert("F")
    return encoded(image if mode != "I;16" else image.convert("I;16"), fmt)


def exif_rotated():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return encoded(gradient("RGB"), "JPEG", exif=exif.tobytes())


def frames(fmt, **options):
    first, *rest = [gradient("RGB").rotate(angle) for angle in (0, 90, 180)]
    return encoded(first, fmt, save_all=True, append_images=rest, **options)


def truncated_png():
    noise = Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3))
    data = encoded(noise, "PNG")
    return data[: len(data) // 2]


ANSWERED = None  # the expected outcome of a file the model gets to see
CASES = {  # name: (file name, bytes, expected error text or ANSWERED)
    "mode 1": ("bw.png", lambda: encoded(gradient("1"), "PNG"), ANSWERED),
    "mode L": ("grey.png", lambda: encoded(gradient("L"), "PNG"), ANSWERED),
    "mode LA": ("grey-alpha.png", lambda: encoded(gradient("LA"), "PNG"), ANSWERED),
    "mode P": ("palette.png", lambda: encoded(gradient("P"), "PNG"), ANSWERED),
    "mode P + transparency": ("palette-t.png", palette_with_transparency, ANSWERED),
    "mode RGBA": ("rgba.png", lambda: encoded(gradient("RGBA"), "PNG"), ANSWERED),
    "mode CMYK": ("cmyk.jpg", lambda: encoded(gradient("CMYK"), "JPEG"), ANSWERED),
    "mode I;16": ("sixteen.png", lambda: high_bit_depth("I;16", "PNG"), ANSWERED),
    "mode I": ("int32.tif", lambda: high_bit_depth("I", "TIFF"), ANSWERED),
    "mode F": ("float.tif", lambda: high_bit_depth("F", "TIFF"), ANSWERED),
    "EXIF orientation 6": ("rotated.jpg", exif_rotated, ANSWERED),
    "PNG named .jpg": ("really-png.jpg", lambda: encoded(gradient("RGB"), "PNG"), ANSWERED),
    "JPEG named .webp": ("really-jpeg.webp", lambda: encoded(gradient("RGB"), "JPEG"), ANSWERED),
    "animated GIF": ("animated.gif", lambda: frames("GIF", duration=100, loop=0), ANSWERED),
    "APNG": ("animated.png", lambda: frames("PNG", duration=100), ANSWERED),
    "multi-page TIFF": ("pages.tif", lambda: frames("TIFF"), ANSWERED),
    "truncated PNG": ("cut.png", truncated_png, DAMAGED),
    "zero bytes": ("empty.png", lambda: b"", "The uploaded file is empty."),
    "random bytes": ("noise.png", lambda: os.urandom(4096), NOT_AN_IMAGE),
    "SVG": ("drawing.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', NOT_AN_IMAGE),
    "HTML": ("page.html", lambda: b"<html><body><script>alert(1)</script></body></html>", NOT_AN_IMAGE),
}


def ask_about(client, path, **settings):
    job = client.submit(chat_message("What is this?", (str(path),)), *chat_args(**settings), api_name="/chat")
    return job.result(timeout=60)


# --- bombs


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    (folder / "bomb.png").write_bytes(png_of_zeros(20000, 20000, 1))
    (folder / "flood.png").write_bytes(png_of_zeros(12000, 12000, 3))
    return folder


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bomb.png", "The image has 400 megapixels; the limit is 16 megapixels."),
        ("flood.png", "The image is 12000x12000 pixels; the limit is 16 megapixels."),
    ],
)
def test_decompression_bombs_are_refused_fast_without_memory(client, tiny_backend, bombs, name, message):
    path = bombs / name
    assert path.stat().st_size < 512 * 1024
    ask_about(client, ASSET_CAT)  # warm up: the first request of a session allocates caches
    entered = tiny_backend.entered
    with PeakRss() as memory:
        start = time.monotonic()
        with pytest.raises(AppError) as refused:
            ask_about(client, path)
        elapsed = time.monotonic() - start
    assert str(refused.value) == message
    assert memory.growth_mb < 50, "refused from its header, never decoded"
    assert tiny_backend.entered == entered
    print(f"\n[hardening] {name}: refused in {elapsed:.2f} s, memory growth {memory.growth_mb:.1f} MB")


# --- every kind of odd file


@pytest.mark.parametrize("case", list(CASES))
def test_odd_files_get_an_answer_or_a_clean_error(client, tmp_path, case):
    file_name, make, expected = CASES[case]
    path = tmp_path / file_name
    path.write_bytes(make())
    if expected is ANSWERED:
        answer, status = ask_about(client, path)
        assert "tokens/s" in status
    else:
        with pytest.raises(AppError) as refused:
            ask_about(client, path)
        text = str(refused.value)
        assert expected in text
        assert str(tmp_path) not in text and "Traceback" not in text


# --- refused uploads do not stay in the conversation


ASSET_CAT = str(ASSETS / "chelsea.png")


def test_a_refused_upload_does_not_poison_the_conversation(client, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(AppError, match="not an image"):
        ask_about(client, broken)
    answer, status = client.predict(chat_message("Hello again"), *chat_args(), api_name="/chat")
    assert "tokens/s" in status


def test_an_earlier_image_that_cannot_be_read_is_left_out_with_a_note(tiny_backend, tmp_path):
    """The browser keeps a refused upload in its history, and gradio sweeps old files from its cache."""
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": str(tmp_path / "gone.png")}}]},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    ]
    chunks = list(tiny_backend.chat({"text": "And now?", "files": [ASSET_CAT]}, history, 4, 0.0, 0.95, 1))
    assert chunks[-1].done and chunks[-1].note == "1 earlier image(s) could not be read and were left out"
    with pytest.raises(Exception, match="could not be found"):  # the new message's own images stay strict
        list(tiny_backend.chat({"text": "x", "files": [str(tmp_path / "gone.png")]}, [], 4, 0.0, 0.95, 1))
