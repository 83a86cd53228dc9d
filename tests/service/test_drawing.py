"""The drawing every image endpoint shares, as events: each image is the user's as soon as it is decoded (its
PNG, with its metadata, in a `Decoding` event), so a Stop while decoding keeps it and stops the model at once; a
drawing that ends inside the model while decoding ends with what was decoded; a batch's previews are one small
tile per image, fewer for a larger batch. On a FakeBackend around the 8x8 model (real checks, fake drawing)."""

from __future__ import annotations

import zipfile

import pytest
from PIL import Image
from support.fake_backend import FakeBackend
from support.meters import wait_until
from support.png import read_png_metadata

from janus_demo.model.image_loop import ImageProgress
from janus_demo.service.drawing import drawing
from janus_demo.service.events import Decoding, Preview, Result, Stopped
from janus_demo.service.images import prepare_images, run_images, text_to_image
from janus_demo.service.preview_tiles import preview_spacing, preview_tiles


@pytest.fixture
def fake(loaded_small):
    backend = FakeBackend(loaded_small)
    backend.image_steps = 64
    return backend


def draw_images(fake, **settings):
    """The events of a `/generate_images` run on `fake`."""
    return text_to_image(fake, lambda request: run_images(fake, request), "A red fox", 7, **settings)


def test_each_image_is_kept_as_it_is_decoded_and_stop_while_decoding_keeps_them(fake):
    fake.hold_decoding(after=2)
    events = draw_images(fake, num_images=4, preview_every=16)
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, Decoding) and len(event.files) == 2:
            kept = [(path.name, read_png_metadata(path)) for path in event.files]  # the files exist now
            events.close()  # Stop, as gradio closes a run
            break
    decoding = [event for event in seen if isinstance(event, Decoding)]
    assert [event.status.split(" · ")[0] for event in decoding] == ["Decoding 0/4", "Decoding 1/4", "Decoding 2/4"]
    assert [name for name, _ in kept] == ["janus-7-1.png", "janus-7-2.png"]
    assert all(meta["prompt"] == "A red fox" and meta["seed"] == "7" for _, meta in kept)
    assert len(decoding[-1].previews) == 2 and len(decoding[-1].images) == 4, "the other two: their last previews"
    wait_until(lambda: fake.inside == 0, timeout=30)
    assert fake.decoded == 2, "the model stopped decoding at the Stop"


def test_a_drawing_that_ends_inside_the_model_while_decoding_ends_with_the_images_decoded(loaded_small, fake):
    request = prepare_images(fake, "A red fox", 5, num_images=3)
    images = [Image.new("RGB", (128, 128), (n * 80, 0, 0)) for n in range(3)]

    def draw(_):  # decoded one image, then the drawing ended by itself (stopped inside the model)
        yield ImageProgress(64, 64, 1.0, 64.0)
        yield ImageProgress(64, 64, 1.2, 53.0, decoded=images[:1])

    for result in drawing(draw, request, request):  # the files live until the run ends: read them as they come
        if isinstance(result, Result):
            with zipfile.ZipFile(result.archive) as zipped:
                names = zipped.namelist()
    assert isinstance(result, Result) and result.status == "Stopped while decoding: 1 of 3 images kept."
    assert [path.name for path in result.files] == names == ["janus-5-1.png"]

    def draw_none(_):
        yield ImageProgress(64, 64, 1.0, 64.0)

    assert list(drawing(draw_none, request, request))[-1] == Stopped("Stopped while decoding: 0 of 3 images kept.")


def test_the_final_images_reuse_the_pngs_saved_while_decoding(fake):
    events = list(draw_images(fake, num_images=3, preview_every=0))
    decoded = [event for event in events if isinstance(event, Decoding) and event.files]
    result = events[-1]
    assert isinstance(result, Result)
    assert [path.name for path in result.files] == ["janus-7-1.png", "janus-7-2.png", "janus-7-3.png"]
    assert list(decoded[-1].files) == list(result.files[:2])


def test_a_batchs_previews_are_one_small_tile_per_image_each_file_written_once(fake):
    sizes, names = [], []
    for event in draw_images(fake, num_images=4, preview_every=16):  # the files live until the run ends
        if isinstance(event, Preview):
            sizes.append([Image.open(path).size for path in event.images])
            names.extend(path.name for path in event.images)
    assert len(sizes) >= 3 and all(len(tiles) == 4 for tiles in sizes)
    assert {size for tiles in sizes for size in tiles} == {(192, 192)}, "half of 384: 2 columns"
    assert len(set(names)) == len(names), "a file of its own for each tile of each preview"


def test_tiles_cost_about_one_image_and_a_larger_batch_streams_fewer_previews():
    sheet = [Image.new("RGB", (384, 384)) for _ in range(16)]
    assert {tile.size for tile in preview_tiles(sheet)} == {(96, 96)}
    assert preview_tiles(sheet[:1])[0].size == (384, 384)
    assert [576 // preview_spacing(1, 576, 24, n) for n in (1, 4, 9, 16)] == [24, 12, 8, 6]
    assert preview_spacing(0, 576, 24, 16) == 0, "0 still turns previews off"
    assert preview_spacing(200, 576, 24, 16) == 200, "a wider spacing is kept"
