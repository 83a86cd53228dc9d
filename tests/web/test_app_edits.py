"""/complete_image, /redraw_region and /variations through gradio_client: what is kept stays, what is drawn
varies with the seed, variations come with their description, PNGs say how they were made, the crop, the
mask and the ranges follow the model's grid.

Pixel differences are measured between two seeds of the same request (guidance off, to halve the work), on the
app around Janus-Pro's 24x24 grid. The tiny model's VQ decoder has random weights and attention over the whole
image, so a kept token's pixels still move a little when other tokens change; on 24x24 kept regions move
several times less than drawn ones (on an 8x8 latent the attention mixes so much that they do not). The rest
runs on the app around the 8x8 tiny model (64 tokens, 128 px).
"""

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from support import ASSETS
from support.png import read_png_metadata

PHOTO = str(ASSETS / "chelsea.png")  # 451x300


def draw(client, api_name, *values):
    job = client.submit(*values, api_name=api_name)
    job.result(timeout=120)
    return job.outputs()


def final_paths(outputs):
    gallery, seed, status = outputs[-1][:3]
    assert status.startswith("Done"), status
    return [item["image"] for item in gallery], seed


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def seed_difference(client, api_name, *values_before_seed) -> tuple[float, dict[str, str]]:
    """Mean absolute pixel difference between the plain decodes (the photo's pixels not put back) of seeds 1 and 2
    of the same request, and the second image's PNG metadata."""
    images = []
    for seed in (1, 2):
        paths, used = final_paths(draw(client, api_name, *values_before_seed, seed, 1.0, 1.0, 1, 0, False))
        assert used == seed
        images.append(pixels(paths[0]))
    return float(np.abs(images[0] - images[1]).mean()), read_png_metadata(paths[0])


def mask_file(folder, box=None) -> str:
    """A mask the photo's size: white inside `box` (everything when None), black elsewhere."""
    mask = Image.new("L", (451, 300), 255 if box is None else 0)
    if box:
        mask.paste(255, box)
    path = folder / ("full.png" if box is None else "small.png")
    mask.save(path)
    return str(path)


def test_keeping_23_rows_varies_far_less_across_seeds_than_keeping_1(tiny_client):
    client = tiny_client
    photo = handle_file(PHOTO)
    few, _ = seed_difference(client, "/complete_image", photo, "a cat", 1)
    most, meta = seed_difference(client, "/complete_image", photo, "a cat", 23)
    assert most < few / 3, (most, few)
    assert (meta["mode"], meta["keep_rows"], meta["source_size"], meta["seed"]) == ("complete", "23", "451x300", "2")


def test_a_small_mask_varies_far_less_across_seeds_than_a_full_one(tiny_client, tmp_path):
    client = tiny_client
    photo = handle_file(PHOTO)
    small_mask = handle_file(mask_file(tmp_path, (200, 100, 230, 130)))
    small, meta = seed_difference(client, "/redraw_region", photo, small_mask, "a cat")
    full, _ = seed_difference(client, "/redraw_region", photo, handle_file(mask_file(tmp_path)), "a cat")
    assert small < full / 3, (small, full)
    assert meta["mode"] == "redraw" and meta["mask"] == "9 of 576 tokens (rows 9-11, columns 11-13)"


def test_an_8x8_models_edits_draw_its_size_keep_its_rows_and_redraw_its_tokens(small_client, tmp_path):
    outputs = draw(small_client, "/complete_image", handle_file(PHOTO), "a cat", 7, 3, 1.0, 1.0, 2, 8)
    paths, _ = final_paths(outputs)
    assert [Image.open(path).size for path in paths] == [(128, 128)] * 2
    assert read_png_metadata(paths[0])["keep_rows"] == "7"
    assert any(isinstance(status, str) and "/64 · " in status for _, _, status in outputs[:-1]), "64 steps"
    mask = handle_file(mask_file(tmp_path, (200, 100, 230, 130)))
    paths, _ = final_paths(draw(small_client, "/redraw_region", handle_file(PHOTO), mask, "a cat", 3, 1.0, 1.0, 1, 0))
    assert Image.open(paths[0]).size == (128, 128)
    assert read_png_metadata(paths[0])["mask"] == "4 of 64 tokens (rows 3-4, columns 4-5)"


def test_variations_return_the_description_and_the_images(small_client):
    outputs = draw(small_client, "/variations", handle_file(PHOTO), 2, 5, 1.0, 1.0, 0)
    gallery, seed, status, description = outputs[-1]
    assert status.startswith("Done") and seed == 5
    assert isinstance(description, str) and description.strip()
    assert len(gallery) == 2
    streamed = [out[3] for out in outputs if isinstance(out[2], str) and out[2].startswith("Describing")]
    assert streamed, "the description streams before the images"
    meta = read_png_metadata(gallery[0]["image"])
    assert meta["mode"] == "variations" and meta["prompt"] == description and meta["source_size"] == "451x300"


@pytest.mark.parametrize(
    ("api_name", "values", "message"),
    [
        ("/complete_image", ("a cat", 8), "Rows to keep must be a whole number between 1 and 7"),
        ("/redraw_region", ("black", "a cat"), "The mask is empty"),
        ("/redraw_region", ("wrong size", "a cat"), "The mask is 64x64 pixels but the image is 451x300"),
        ("/variations", (17,), "Number of images must be"),
    ],
)
def test_bad_edits_are_refused_with_a_message_naming_the_field(small_client, tmp_path, api_name, values, message):
    masks = {"black": Image.new("L", (451, 300)), "wrong size": Image.new("L", (64, 64), 255)}
    if values[0] in masks:
        masks[values[0]].save(tmp_path / "mask.png")
        values = (handle_file(str(tmp_path / "mask.png")), *values[1:])
    with pytest.raises(AppError, match=message):
        small_client.predict(handle_file(PHOTO), *values, api_name=api_name)


def test_a_file_that_is_not_an_image_is_refused_naming_the_image(small_client, tmp_path):
    broken = tmp_path / "photo.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(AppError, match="^Image: This file is not an image"):
        small_client.predict(handle_file(str(broken)), "a cat", 4, api_name="/complete_image")


def test_a_forged_file_path_or_a_link_is_never_read(app_url, small_backend):
    """Raw queue calls naming a server file outside gradio's upload folder, a plain path, or a link: refused
    before the model (a link at the gate, which never lets gradio fetch it), and nothing of the file comes back."""
    import httpx
    from support.raw_api import fn_index, raw_call, raw_join

    entered = small_backend.entered
    index = fn_index(app_url, "complete_image")
    meta = {"_type": "gradio.FileData"}
    for image in ({"path": "/etc/passwd", "meta": meta}, "/etc/passwd"):
        done, stream = raw_call(app_url, index, [image, "a cat", 12, 1, 5.0, 1.0, 1, 0, True])
        assert not done["success"] and "root:" not in stream
    link = {"path": None, "url": "https://example.com/cat.png", "meta": meta}
    with httpx.Client(base_url=app_url, timeout=30) as http:
        joined = raw_join(http, index, [link, "a cat", 12, 1, 5.0, 1.0, 1, 0, True], "linker")
    assert joined.status_code == 422 and "never fetched" in joined.json()["detail"]
    assert small_backend.entered == entered
