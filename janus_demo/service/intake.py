"""Turn an untrusted uploaded file into a safe, upright, 8-bit RGB PIL image.

    image = load_image(path)                      # one upload; raises InputError for the user
    check_image(path)                             # the same checks without decoding (a validator's)
    mask = load_image(path, background=BLACK)     # a mask: transparent pixels become black (keep)
    crop, box = square_crop(image, shape)         # the centre square at the model's size (384x384 for Janus-Pro)
    redraw = mask_grid(mask, box, shape)          # (shape.tokens,) bool: the tokens a white mask touches
    images = load_images(paths, max_images=4)     # several, with a per-request count cap

Gradio hands us whatever was uploaded (or fetched from a URL) as a file path: any bytes, any
extension, any size. Before a pixel is decoded the file size, the format (sniffed from the
content, never the extension) and the declared width x height are checked, so a 20 KB PNG that
claims 20000x20000 pixels is refused in milliseconds instead of eating gigabytes. Accepted images
are reduced to their first frame, turned upright by their EXIF orientation and converted to RGB
(transparency onto white, 16-bit and float data scaled, not clipped). The result is detached from
the file, which is closed. Every problem a user can cause becomes an `InputError` whose message
names no server path.

For the Edit tab, a photo becomes what Janus sees: its centre square resized to the model's image size
(`shape`, the loaded model's `ImageShape`: 384x384, 24x24 tokens of 16x16 pixels for Janus-Pro; the crop
the user is shown), and a mask, white where to redraw, the photo's size, goes through the same crop; any
token it touches (a pixel of 128 or brighter) is redrawn.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from janus_demo.model.image_shape import ImageShape
from janus_demo.service.errors import FieldError, InputError

# Pillow openers we let sniff the content. The JPEG opener also returns MPO (the multi-picture JPEG
# cameras write); MPO has no opener of its own, and naming it here would make Image.open raise KeyError.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WEBP, GIF, BMP or TIFF"  # what the user is told
JPEG_FORMATS = ("JPEG", "MPO")
BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white
BLACK = (0, 0, 0)  # ... or onto black, for masks (transparent: not painted)

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_AN_IMAGE = f"This file is not an image we can read ({FORMAT_NAMES})."
DAMAGED = "This image could not be decoded: the file is damaged or incomplete."

# EXIF Orientation -> the transpose that makes the image upright (same table as ImageOps.exif_transpose).
ORIENTATION_TAG = 0x0112
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageLimits:
    """What an uploaded image may cost. Janus sees 384x384 anyway, so the caps are generous but bounded.

    max_pixels: decoded width x height (16 MP: an RGBA decode stays under ~64 MB).
    max_file_bytes: size of the file on disk.
    max_side: longest decoded side, so 100000x100 strips are refused too.
    max_jpeg_pixels: JPEGs above max_pixels but at most this large (phone photos of 24-50 MP) are decoded by
        libjpeg at 1/2, 1/4 or 1/8 scale, which is cheap, to fit under max_pixels; above it they are refused.
    """

    max_pixels: int = 16_000_000
    max_file_bytes: int = 20 * 1024 * 1024
    max_side: int = 8192
    max_jpeg_pixels: int = 64_000_000


# --- public API


def load_image(
    path: str | os.PathLike[str], limits: ImageLimits = ImageLimits(), background: tuple[int, int, int] = BACKGROUND
) -> Image.Image:
    """Return the uploaded image at `path` as a detached, upright 8-bit RGB image, or raise InputError.

    `path` may also be a `data:` URL (base64; how MCP clients attach images): it is decoded in memory.
    Transparent pixels are composited onto `background`.
    """
    with _opened(path, limits) as file:
        return _read(file, limits, background)


def check_image(path: str | os.PathLike[str], limits: ImageLimits = ImageLimits()) -> tuple[int, int]:
    """The cheap part of `load_image`: the file (or data: URL), its format and its declared size are checked,
    nothing is decoded; InputError as `load_image` would raise it. Returns the declared (width, height)."""
    with _opened(path, limits) as file, _pillow_errors(limits), Image.open(file, formats=ALLOWED_FORMATS) as image:
        _shrink_jpeg(image, limits)
        _check_dimensions(*image.size, limits)
        return image.size


@contextlib.contextmanager
def _opened(path: str | os.PathLike[str], limits: ImageLimits) -> Iterator[BinaryIO]:
    """The upload at `path` (or a data: URL's bytes) open for reading, its size checked."""
    if isinstance(path, str) and path.startswith("data:"):
        yield io.BytesIO(_data_url_bytes(path, limits))
        return
    _check_file(path, limits)
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below; its errors are the upload's, not the decoder's
    except OSError as exc:  # the file vanished or cannot be read (not a decoding problem: those are handled)
        raise InputError("The uploaded file could not be read; please upload it again.") from exc
    with file:
        _check_file_size(os.fstat(file.fileno()).st_size, limits)
        yield file


def load_images(
    paths: Sequence[str | os.PathLike[str]], limits: ImageLimits = ImageLimits(), *, max_images: int = 4
) -> list[Image.Image]:
    """Load several uploads with `load_image`, refusing more than `max_images`; messages say which image failed."""
    return _each(load_image, paths, limits, max_images)


def check_images(
    paths: Sequence[str | os.PathLike[str]], limits: ImageLimits = ImageLimits(), *, max_images: int = 4
) -> None:
    """`load_images`' checks without decoding (`check_image` of each), with the same messages."""
    _each(check_image, paths, limits, max_images)


def _each(read: Callable[..., T], paths: Sequence[str | os.PathLike[str]], limits: ImageLimits, max_images: int):
    """`read(path, limits)` of each path, refusing more than `max_images`; messages say which image failed."""
    if len(paths) > max_images:
        raise InputError(f"Too many images: {len(paths)} were sent; the limit is {max_images}.")
    results = []
    for number, path in enumerate(paths, start=1):
        try:
            results.append(read(path, limits))
        except InputError as exc:
            raise InputError(f"Image {number}: {exc}" if len(paths) > 1 else str(exc)) from exc
    return results


# --- checks before decoding


def _data_url_bytes(url: str, limits: ImageLimits) -> bytes:
    """The bytes of a base64 `data:` URL, size-checked before decoding; InputError when it is not one."""
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InputError("An attached data: URL must be base64 (data:image/png;base64,...).")
    _check_file_size(len(payload) * 3 // 4, limits)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("An attached data: URL could not be decoded (invalid base64).") from exc


def _check_file(path: str | os.PathLike[str], limits: ImageLimits) -> None:
    """Refuse missing paths and anything that is not a regular file (a FIFO would block, /dev/zero never ends)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise InputError("The uploaded file could not be found; please upload it again.") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(NOT_AN_IMAGE)
    _check_file_size(info.st_size, limits)


def _check_file_size(size: int, limits: ImageLimits) -> None:
    if size == 0:
        raise InputError("The uploaded file is empty.")
    if size > limits.max_file_bytes:
        raise InputError(f"The file is {_mb(size)}; the limit is {_mb(limits.max_file_bytes)}.")


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Refuse a declared size above the limits (read from the header; nothing is decoded yet)."""
    if width < 1 or height < 1:
        raise InputError(DAMAGED)
    if width * height > limits.max_pixels:
        raise InputError(
            f"The image is {width}x{height} pixels; the limit is {_megapixels(limits.max_pixels)} megapixels."
        )
    if max(width, height) > limits.max_side:
        raise InputError(
            f"The image is {width}x{height} pixels; sides longer than {limits.max_side} pixels are not accepted."
        )


def _fits(width: int, height: int, limits: ImageLimits) -> bool:
    return width * height <= limits.max_pixels and max(width, height) <= limits.max_side


def _shrink_jpeg(image: Image.Image, limits: ImageLimits) -> None:
    """Ask libjpeg to decode an over-size JPEG at 1/2, 1/4 or 1/8 scale when that fits the limits."""
    width, height = image.size
    if image.format not in JPEG_FORMATS or _fits(width, height, limits) or width * height > limits.max_jpeg_pixels:
        return
    for scale in (2, 4, 8):
        if width // scale and height // scale and _fits(-(-width // scale), -(-height // scale), limits):
            # draft() picks the largest power of two <= min(width // w, height // h): exactly `scale` here.
            image.draft(None, (width // scale, height // scale))
            return


# --- decoding


def _read(file: BinaryIO, limits: ImageLimits, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Sniff, size-check, decode and normalise the image in the open `file`."""
    with _pillow_errors(limits), Image.open(file, formats=ALLOWED_FORMATS) as image:
        _shrink_jpeg(image, limits)
        _check_dimensions(*image.size, limits)
        image.load()  # frame 0 only; raises on truncated or corrupt data
        orientation = _orientation(image)
        rgb = to_rgb(image, background)
        text = dict(getattr(image, "text", {}))  # a PNG's text chunks (our images' prompt, seed, ...)
    upright = _upright(rgb, orientation)
    upright.info["text"] = text
    return upright


@contextlib.contextmanager
def _pillow_errors(limits: ImageLimits) -> Iterator[None]:
    """Pillow's errors on a bad upload as InputErrors a person can act on."""
    try:
        yield
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fired while opening (above ~89/179 MP, far beyond ours): say how large it is.
        raise InputError(_bomb_message(str(exc), limits)) from exc
    except UnidentifiedImageError as exc:
        raise InputError(NOT_AN_IMAGE) from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        log.info("refused an image that did not decode: %r", exc)
        raise InputError(DAMAGED) from exc


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when absent or unreadable: a broken EXIF block is not worth refusing."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
        return value if isinstance(value, int) else 1
    except Exception:
        return 1


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    method = UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)


# --- colour conversion


def to_rgb(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Return a new 8-bit RGB copy of a loaded image of any Pillow mode; transparency goes onto `background`.

    16-bit data is scaled (65535 -> 255); 32-bit integer and float data are scaled by the range they
    appear to use (see `_scale_to_l`), so a mid-grey stays mid-grey instead of clipping to white.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _scale_to_l(image).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info:
        return _flatten(image, background)
    if image.mode == "LAB":
        return _lab_to_rgb(image)
    return image.convert("RGB")


def _flatten(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Composite an image with alpha (or a transparent colour/palette entry) onto a plain background."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=rgba)
    return canvas


def _scale_to_l(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit integer or float pixels linearly onto 0..255 (mode L).

    Unsigned 16-bit modes use their full range. For "I" and "F" the range is inferred from the data:
    0..1 (floats) or 0..255 are kept as such, 0..65535 is treated as 16-bit, anything else is stretched
    from its minimum to its maximum.
    """
    wide = image if image.mode in ("I", "F") else image.convert("I")
    low, high = wide.getextrema()
    if image.mode.startswith("I;16"):
        low, high = 0, 65535
    elif not (math.isfinite(low) and math.isfinite(high)):  # NaN or inf in float data: clip to 0..255
        low, high = 0, 255
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, high = 0, 1
    elif low >= 0 and high <= 255:
        low, high = 0, 255
    elif low >= 0 and high <= 65535:
        low, high = 0, 65535
    scale = 255 / (high - low) if high > low else 1.0
    offset = 0.5 - low * scale  # + 0.5: Pillow truncates towards zero, we want rounding
    return wide.point(lambda v: v * scale + offset).convert("L")


def _lab_to_rgb(image: Image.Image) -> Image.Image:
    from PIL import ImageCms  # needs littlecms; imported here because only CIELab TIFFs use it

    transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(image, transform)


# --- messages


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.3g} MB"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def _bomb_message(pillow_message: str, limits: ImageLimits) -> str:
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    size = f"{round(int(match.group(1)) / 1_000_000)} megapixels" if match else "too many pixels"
    return f"The image has {size}; the limit is {_megapixels(limits.max_pixels)} megapixels."


# --- a photo as Janus sees it, and a mask on its token grid

PAINTED = 128  # mask pixels this bright or brighter mean "redraw"
Box = tuple[int, int, int, int]  # left, top, right, bottom in the upload's pixels


def square_box(size: tuple[int, int]) -> Box:
    """The centre square of an image of `size` (width, height)."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_crop(image: Image.Image, shape: ImageShape) -> tuple[Image.Image, Box]:
    """The centre square of `image` resized to the model's image size (Lanczos), and the square's box in `image`."""
    box = square_box(image.size)
    return image.resize(shape.size, Image.Resampling.LANCZOS, box=box), box


def mask_grid(mask: Image.Image, box: Box, shape: ImageShape) -> torch.Tensor:
    """(tokens,) bool in raster order: True for each token whose cell of the cropped `mask` has a pixel of
    PAINTED brightness or more. The cells split the square `box` as the resized crop does."""
    rows, columns = shape.rows, shape.columns
    painted = np.asarray(mask.convert("L").crop(box)) >= PAINTED
    side = painted.shape[0]
    grid = np.zeros((rows, columns), dtype=bool)
    for row in range(rows):
        top, bottom = row * side // rows, -(-(row + 1) * side // rows)
        for column in range(columns):
            left, right = column * side // columns, -(-(column + 1) * side // columns)
            grid[row, column] = painted[top:bottom, left:right].any()
    return torch.from_numpy(grid.reshape(-1))


def check_mask(mask: Image.Image, image_size: tuple[int, int], redraw: torch.Tensor | None = None) -> None:
    """FieldError("mask") for a mask not the image's size, or one that marks nothing to redraw."""
    if mask.size != image_size:
        raise FieldError(
            "mask",
            f"The mask is {mask.size[0]}x{mask.size[1]} pixels but the image is {image_size[0]}x{image_size[1]}: "
            "draw the mask on the image itself, at its size.",
        )
    if redraw is not None and not bool(redraw.any()):
        raise FieldError(
            "mask", "The mask is empty: paint the part to redraw in white (black or transparent parts are kept)."
        )


def kept_rows_mask(keep_rows: int, shape: ImageShape) -> torch.Tensor:
    """(tokens,) bool: True for the tokens of the first `keep_rows` rows."""
    keep = torch.zeros(shape.tokens, dtype=torch.bool)
    keep[: keep_rows * shape.columns] = True
    return keep


def mask_summary(redraw: torch.Tensor, shape: ImageShape) -> str:
    """'37 of 576 tokens (rows 3-8, columns 5-12)': how much is redrawn, and where (1-based, inclusive)."""
    where = redraw.view(shape.rows, shape.columns).nonzero()
    count, total = int(redraw.sum()), redraw.numel()
    if not count:
        return f"0 of {total} tokens"
    (top, left), (bottom, right) = where.min(dim=0).values.tolist(), where.max(dim=0).values.tolist()
    return f"{count} of {total} tokens (rows {top + 1}-{bottom + 1}, columns {left + 1}-{right + 1})"
