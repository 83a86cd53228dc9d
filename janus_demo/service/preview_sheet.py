"""One preview image for a whole batch: the batch's previews as tiles of one sheet the size of one preview.

    sheet = preview_sheet(previews)   # 16 previews of 384x384 -> one 384x384 image of 4x4 tiles

gradio writes every image an event yields to a file in its cache. A preview update of 16 images was
16 files of 384x384 (9,214 files for one request with previews every step); as one sheet it is one
file the size of one image, whatever the batch.
"""

from __future__ import annotations

import math

from PIL import Image

BACKGROUND = (128, 128, 128)


def preview_sheet(previews: list[Image.Image]) -> Image.Image:
    """The previews in reading order on a grid of ceil(sqrt(n)) columns, as wide as one of them: a sheet
    costs what one preview costs."""
    columns = math.ceil(math.sqrt(len(previews)))
    rows = math.ceil(len(previews) / columns)
    tile = previews[0].width // columns
    sheet = Image.new("RGB", (columns * tile, rows * tile), BACKGROUND)
    for index, preview in enumerate(previews):
        row, column = divmod(index, columns)
        sheet.paste(preview.resize((tile, tile), Image.Resampling.BILINEAR), (column * tile, row * tile))
    return sheet
