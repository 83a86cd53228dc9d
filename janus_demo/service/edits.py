"""Edits of an uploaded photo: its 384x384 crop, a mask reduced to the 24x24 token grid, what to say about them.

    crop, box = square_crop(photo)                        # the centre square, resized to 384x384
    redraw = mask_grid(mask, box, rows=24, columns=24)    # (576,) bool: True where a token is redrawn
    keep = ~redraw                                        # the positions the image loop forces
    summary = mask_summary(redraw, 24)                    # "37 of 576 tokens (rows 3-8, columns 5-12)"

Janus draws 384x384 images as 24x24 tokens of 16x16 pixels in raster order. An upload of any size is turned
upright (by intake), then its centre square is resized to 384 (the crop the user is shown). A mask, white
where to redraw, must be the upload's size; it goes through the same crop, and any token it touches (a pixel
of 128 or brighter, in any channel's mean) is redrawn. Pure PIL and numpy: no model, no gradio.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from janus_demo.service.errors import FieldError

SIDE = 384  # Janus' image size
PAINTED = 128  # mask pixels this bright or brighter mean "redraw"
Box = tuple[int, int, int, int]  # left, top, right, bottom in the upload's pixels

# What the model is asked before it draws variations: a prompt in the style text-to-image models read.
DESCRIBE_INSTRUCTION = (
    "Write a prompt for a text-to-image model that would recreate this image. In one paragraph, describe the "
    "subject, the setting, the composition, the colours, the lighting and the style. Answer with the prompt only."
)
DESCRIBE_TOKENS = 160  # the longest description asked for
DESCRIBE_TEMPERATURE = 0.1  # DeepSeek's chat default: faithful descriptions


def square_box(size: tuple[int, int]) -> Box:
    """The centre square of an image of `size` (width, height)."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_crop(image: Image.Image) -> tuple[Image.Image, Box]:
    """The centre square of `image` resized to 384x384 (Lanczos), and the square's box in `image`."""
    box = square_box(image.size)
    return image.resize((SIDE, SIDE), Image.Resampling.LANCZOS, box=box), box


def mask_grid(mask: Image.Image, box: Box, rows: int, columns: int) -> torch.Tensor:
    """(rows*columns,) bool in raster order: True for each token whose cell of the cropped `mask` has a pixel
    of PAINTED brightness or more. The cells split the square `box` as the resized crop does."""
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


def kept_rows_mask(keep_rows: int, rows: int, columns: int) -> torch.Tensor:
    """(rows*columns,) bool: True for the tokens of the first `keep_rows` rows."""
    keep = torch.zeros(rows * columns, dtype=torch.bool)
    keep[: keep_rows * columns] = True
    return keep


def mask_summary(redraw: torch.Tensor, columns: int) -> str:
    """'37 of 576 tokens (rows 3-8, columns 5-12)': how much is redrawn, and where (1-based, inclusive)."""
    where = redraw.view(-1, columns).nonzero()
    count, total = int(redraw.sum()), redraw.numel()
    if not count:
        return f"0 of {total} tokens"
    (top, left), (bottom, right) = where.min(dim=0).values.tolist(), where.max(dim=0).values.tolist()
    return f"{count} of {total} tokens (rows {top + 1}-{bottom + 1}, columns {left + 1}-{right + 1})"


def clean_description(text: str, max_chars: int) -> str:
    """The model's description as a prompt: one line, no surrounding quotes, at most `max_chars`."""
    line = " ".join(text.split()).strip().strip('"').strip()
    return line[:max_chars].rstrip()
