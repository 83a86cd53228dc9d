"""Through the served 8x8 app (gradio_client): an edit gives back the photo's own pixels where it is kept,
several redrawn images come best fit first, each under its own name (`janus-<seed>-<n>.png`: its place in the
seed's batch), and with `keep_photo_pixels` off the plain decode comes back."""

import dataclasses
import os

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image
from support import ASSETS
from support.png import read_png_metadata

from janus_demo.model.image_loop import encode_image, iter_image_generation
from janus_demo.service.edits import photo_weights
from janus_demo.service.intake import load_image, mask_grid, square_crop

PHOTO = str(ASSETS / "chelsea.png")  # 451x300
ORDERED = "ordered by fit to the rest of the photo"


def pixels(source) -> np.ndarray:
    return np.asarray(Image.open(source).convert("RGB") if isinstance(source, str) else source.convert("RGB"))


def drawn(client, api_name, *values):
    gallery, _, status = client.predict(*values, api_name=api_name)
    assert status.startswith("Done"), status
    return [item["image"] for item in gallery], status


def test_redrawn_images_keep_the_photo_outside_the_mask_and_come_best_fit_first(small_client, small_backend, tmp_path):
    mask = Image.new("L", (451, 300), 0)
    mask.paste(255, (200, 100, 260, 160))
    mask.save(tmp_path / "mask.png")
    values = (handle_file(PHOTO), handle_file(str(tmp_path / "mask.png")), "a cat", 5, 5.0, 1.0, 4, 0)
    kept, status = drawn(small_client, "/redraw_region", *values)  # keep_photo_pixels: on by default
    plain, _ = drawn(small_client, "/redraw_region", *values, False)

    shape = small_backend.image_shape
    crop, box = square_crop(load_image(PHOTO), shape)
    weights = photo_weights(~mask_grid(mask, box, shape), shape)
    photo, model = weights == 1, weights == 0
    assert 0.5 < photo.mean() < 1 and model.any()
    for path in kept:
        assert (pixels(path)[photo] == pixels(crop)[photo]).all(), "the photo's own pixels outside the mask"
        assert read_png_metadata(path)["pixels"] == "photo kept outside the mask (feather 4 px)"
    for path, decoded in zip(kept, plain, strict=True):  # the same tokens: the plain decode inside the mask
        assert (pixels(path)[model] == pixels(decoded)[model]).all()
        assert (pixels(decoded)[photo] != pixels(crop)[photo]).any(axis=-1).mean() > 0.5, "plain: not the photo"
        assert read_png_metadata(decoded)["pixels"] == "plain decode"

    assert ORDERED in status
    fits = [float(read_png_metadata(path)["fit_score"]) for path in kept]
    assert fits == sorted(fits, reverse=True)
    names = [os.path.basename(path) for path in kept]
    assert sorted(names) == [f"janus-5-{n}.png" for n in range(1, 5)] and names != sorted(names), names
    assert names == [os.path.basename(path) for path in plain]

    prepared = small_backend.prepare_redraw(*values[:2], "a cat", 5, 5.0, 1.0, 4, 0, False)
    request = dataclasses.replace(prepared.request, forced_tokens=encode_image(small_backend.loaded, crop))
    *_, alone = iter_image_generation(small_backend.loaded, request)  # the seed's batch, in its order
    for path, name in zip(plain, names, strict=True):
        place = int(name.removesuffix(".png").split("-")[-1])
        assert (pixels(path) == pixels(alone.images[place - 1])).all(), f"{name} is the seed's image {place}"
        assert float(read_png_metadata(path)["fit_score"]) == pytest.approx(alone.fit[place - 1], abs=1e-4)


def test_a_completion_keeps_the_photo_above_the_kept_rows_in_the_seeds_order(small_client, small_backend):
    paths, status = drawn(small_client, "/complete_image", handle_file(PHOTO), "a cat", 5, 3, 1.0, 1.0, 2, 0)
    crop, _ = square_crop(load_image(PHOTO), small_backend.image_shape)
    rows = 5 * small_backend.image_shape.patch
    for path in paths:
        assert (pixels(path)[:rows] == pixels(crop)[:rows]).all()
        assert "fit_score" not in read_png_metadata(path)
    assert [os.path.basename(path) for path in paths] == ["janus-3-1.png", "janus-3-2.png"] and ORDERED not in status
