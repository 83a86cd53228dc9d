"""PNG text chunks: what save_png writes, read_png_metadata reads back."""

import pytest
from PIL import Image

from janus_demo.png_metadata import read_png_metadata, save_png


def test_metadata_round_trip_with_non_latin_prompt(tmp_path):
    path = tmp_path / "fox.png"
    image = Image.new("RGB", (384, 384), (200, 80, 20))
    metadata = {"prompt": "Un renard roux 🦊 sous la neige, 雪", "seed": 42, "guidance_scale": 5.0, "model": "tiny"}
    save_png(image, path, metadata)
    assert read_png_metadata(path) == {key: str(value) for key, value in metadata.items()}
    with Image.open(path) as reloaded:
        assert reloaded.format == "PNG" and reloaded.tobytes() == image.tobytes()


def test_png_without_metadata_reads_as_empty(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    assert read_png_metadata(path) == {}


@pytest.mark.parametrize("key", ["", "k" * 80, "clé✓"])
def test_invalid_keys_are_refused(tmp_path, key):
    with pytest.raises(ValueError, match="keys"):
        save_png(Image.new("RGB", (8, 8)), tmp_path / "bad.png", {key: "value"})
