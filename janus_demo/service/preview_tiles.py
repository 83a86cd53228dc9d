"""A batch's previews as tiles, one per image, laid out like the final gallery and costing about one image.

    tiles = preview_tiles(previews)   # 16 previews of 384x384 -> 16 tiles of 96x96 (a 4x4 gallery)
    every = preview_spacing(every, tokens, 24, num_images)   # a 16-image batch streams at most 6 previews

gradio writes every image an event yields to a file in its cache, and the browser fetches each. A batch's
previews are shown as its final gallery will be (assets/style.css gives 1, 2, 3 or 4 columns for 1, 2-4, 5-9 or
10-16 images), so each tile is shrunk to the width of one column of a single image's area: together they are as
many pixels as one preview. A larger batch also streams fewer previews, so the files of one request stay about
`max_preview_updates` x the columns (96 for 16 images) instead of `max_preview_updates` x its images.
"""

from __future__ import annotations

import math

from PIL import Image


def columns(count: int) -> int:
    """Tiles per row for `count` images, as the gallery lays them out: 1, 2 (2-4), 3 (5-9), 4 (10-16), ..."""
    return math.ceil(math.sqrt(count))


def preview_tiles(previews: list[Image.Image]) -> list[Image.Image]:
    """Each preview shrunk to 1/columns of its side (a single preview is kept as it is)."""
    across = columns(len(previews))
    if across == 1:
        return previews
    return [preview.resize(_tile_size(preview, across), Image.Resampling.BILINEAR) for preview in previews]


def preview_spacing(every: int, tokens: int, max_updates: int, num_images: int) -> int:
    """`every` (tokens between previews; 0: none), widened so that a request of `num_images` streams at most
    `max_updates` previews, divided by its columns (24 for one image, 12 for 2-4, 8 for 5-9, 6 for 10-16)."""
    updates = max(1, max_updates // columns(num_images))
    return every and max(every, math.ceil(tokens / updates))


def _tile_size(preview: Image.Image, across: int) -> tuple[int, int]:
    return max(1, preview.width // across), max(1, preview.height // across)
