"""Finished images as files people can keep: `janus-<seed>-<n>.png` (settings in the PNG metadata) and one zip.

    with download_folder() as folder:
        paths = [save_png(image, folder / png_name(7, n)) for n, image in enumerate(images, 1)]  # janus-7-1.png
        archive = zip_files(paths, folder / "janus-7.zip")
        yield paths, archive                               # gradio copies outputs into its cache, names kept

The folder is deleted when the `with` ends: by then gradio has copied what was yielded into its own cache
(which `delete_cache` sweeps), keeping each file's name for the download.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import Image, PngImagePlugin


@contextlib.contextmanager
def download_folder() -> Iterator[Path]:
    """A fresh folder for one request's files, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="janus-images-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def png_name(seed: int, index: int) -> str:
    """'janus-7-1.png': the seed that reproduces the batch, and the image's place in it (from 1)."""
    return f"janus-{seed}-{index}.png"


def save_png(image: Image.Image, path: Path) -> Path:
    """`image` as a PNG at `path`, the text values of its `info` (prompt, seed, guidance, ...) as text chunks."""
    metadata = PngImagePlugin.PngInfo()
    for key, value in image.info.items():
        if isinstance(value, str):
            metadata.add_text(key, value)  # iTXt when the text is not Latin-1, so any prompt survives
    image.save(path, format="PNG", pnginfo=metadata)
    return path


def zip_files(paths: Sequence[Path], archive: Path) -> Path:
    """The files in one zip (stored, not compressed: PNGs are compressed already)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
        for path in paths:
            zipped.write(path, arcname=path.name)
    return archive
