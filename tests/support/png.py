"""Save PNGs with the settings that made them, as PNG text chunks, and read them back.

    save_png(image, "fox.png", {"prompt": "A red fox", "seed": 42, "guidance_scale": 5.0, "model": "..."})
    read_png_metadata("fox.png")  # {"prompt": "A red fox", "seed": "42", "guidance_scale": "5.0", "model": "..."}

Values are written as text (`str(value)`) and come back as strings. Text that Latin-1 cannot hold
(most non-English prompts) goes into an international (iTXt, UTF-8) chunk; image viewers and
`exiftool` show both kinds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from PIL import Image, PngImagePlugin


def save_png(image: Image.Image, path: str | os.PathLike, metadata: Mapping[str, object]) -> None:
    """Write `image` as a PNG at `path` with one text chunk per metadata entry."""
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        _check_key(key)
        info.add_text(key, str(value))  # falls back to UTF-8 iTXt when Latin-1 cannot encode the value
    image.save(path, format="PNG", pnginfo=info)


def read_png_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks of the PNG at `path` (an empty dict when it has none)."""
    with Image.open(path) as image:
        image.load()  # text chunks after the image data are only read with the pixels
        return {str(key): str(value) for key, value in getattr(image, "text", {}).items()}


def _check_key(key: object) -> None:
    """PNG keywords are 1-79 Latin-1 characters (the spec's limit)."""
    if not isinstance(key, str) or not 1 <= len(key) <= 79:
        raise ValueError(f"PNG metadata keys must be 1-79 characters, got {key!r}.")
    try:
        key.encode("latin-1")
    except UnicodeEncodeError as error:
        raise ValueError(f"PNG metadata keys must be Latin-1 text, got {key!r}.") from error
