"""Edits of a photo, prepared on the CPU: the crop, the mask reduced to the token grid, and every refusal naming
its field (an empty mask, a mask of another size, an unreadable image, keep_rows outside 1-23). On Janus-Pro's
24x24 grid, and the crop, the grid and the ranges following an 8x8 model's. Then run (8x8): the photo's own
pixels where it is kept, and several redrawn images best fit first."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from janus_demo.model.chat import ChatChunk
from janus_demo.model.image_loop import ImageProgress, encode_image, iter_image_generation
from janus_demo.model.image_shape import JANUS_PRO, ImageShape
from janus_demo.service.edits import keep_photo, photo_weights, run_edit
from janus_demo.service.errors import FieldError
from janus_demo.service.events import Problem
from janus_demo.service.intake import mask_grid, mask_summary, square_crop
from janus_demo.service.variations import EMPTY_DESCRIPTION, variations

PHOTO = "assets/chelsea.png"  # 451x300


def save(image: Image.Image, path) -> str:
    image.save(path)
    return str(path)


def mask_file(tmp_path, size, boxes=(), mode="L", name="mask.png"):
    mask = Image.new(mode, size, 0)
    for box in boxes:
        mask.paste(255 if mode == "L" else (255, 255, 255, 255), box)
    return save(mask, tmp_path / name)


def test_the_crop_is_the_centre_square_at_the_models_size():
    crop, box = square_crop(Image.new("RGB", (451, 300)), JANUS_PRO)
    assert crop.size == (384, 384) and box == (75, 0, 375, 300)
    assert square_crop(Image.new("RGB", (200, 500)), JANUS_PRO)[1] == (0, 150, 200, 350)
    assert square_crop(Image.new("RGB", (451, 300)), ImageShape(8, 8, 16))[0].size == (128, 128)


def test_a_mask_touching_a_token_redraws_it_and_only_it():
    mask = Image.new("L", (768, 768), 0)
    mask.putpixel((32 * 5 + 31, 32 * 2), 255)  # the last pixel column of token (row 2, column 5)
    grid = mask_grid(mask, (0, 0, 768, 768), JANUS_PRO)
    assert grid.sum() == 1 and grid.view(24, 24)[2, 5]
    assert mask_summary(grid, JANUS_PRO) == "1 of 576 tokens (rows 3-3, columns 6-6)"
    faint = Image.new("L", (384, 384), 100)  # darker than half: not painted
    assert not mask_grid(faint, (0, 0, 384, 384), JANUS_PRO).any()
    small = ImageShape(8, 8, 16)  # the same pixel on an 8x8 grid: 96 px cells, row 0, column 1
    assert mask_summary(mask_grid(mask, (0, 0, 768, 768), small), small) == "1 of 64 tokens (rows 1-1, columns 2-2)"


def test_the_mask_follows_the_crop_of_a_wide_photo():
    mask = Image.new("L", (451, 300), 0)
    mask.paste(255, (0, 0, 75, 300))  # only the part the crop cuts away
    assert not mask_grid(mask, square_crop(mask, JANUS_PRO)[1], JANUS_PRO).any()
    mask.paste(255, (75, 0, 76, 300))  # the crop's first pixel column: the first token column
    grid = mask_grid(mask, square_crop(mask, JANUS_PRO)[1], JANUS_PRO).view(24, 24)
    assert grid[:, 0].all() and grid.sum() == 24


def test_redraw_keeps_the_tokens_outside_the_mask(tiny_backend, tmp_path):
    mask = mask_file(tmp_path, (451, 300), [(75, 0, 375, 50)])  # the top sixth of the crop
    prepared = tiny_backend.prepare_redraw(PHOTO, mask, "a cat", 3, 5.0, 1.0, 1, 0)
    keep = prepared.request.forced_mask.view(24, 24)
    assert not keep[:4].any() and keep[4:].all()
    assert prepared.crop.size == (384, 384) and prepared.request.seed == 3
    about = dict(prepared.metadata)
    assert about["mode"] == "redraw" and about["source_size"] == "451x300"
    assert about["mask"] == "96 of 576 tokens (rows 1-4, columns 1-24)"
    assert about["pixels"] == "photo kept outside the mask (feather 4 px)" and prepared.keep_photo_pixels


def test_complete_keeps_the_first_rows(tiny_backend):
    prepared = tiny_backend.prepare_complete(PHOTO, "a cat", 5, 1, 5.0, 1.0, 2, 0)
    assert prepared.request.forced_mask.tolist() == [True] * 120 + [False] * 456
    assert dict(prepared.metadata) == {
        "mode": "complete",
        "keep_rows": "5",
        "source_size": "451x300",
        "pixels": "photo kept in the kept rows (feather 4 px)",
    }
    assert prepared.request.forced_tokens is None, "encoded when it runs, on the model's device"


def test_an_exif_rotated_photo_is_turned_upright_before_the_crop(tiny_backend, tmp_path):
    photo = Image.new("RGB", (300, 200), (200, 30, 30))
    exif = photo.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to show
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif)
    prepared = tiny_backend.prepare_complete(str(path), "a red square", 12)
    assert dict(prepared.metadata)["source_size"] == "200x300"


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ("black", "The mask is empty"),
        ("transparent", "The mask is empty"),
        ("smaller", "The mask is 225x150 pixels but the image is 451x300"),
        ("broken", "Mask: This file is not an image"),
    ],
)
def test_masks_that_cannot_be_used_are_refused_naming_the_mask(tiny_backend, tmp_path, mask, message):
    paths = {
        "black": lambda: mask_file(tmp_path, (451, 300)),
        "transparent": lambda: save(Image.new("RGBA", (451, 300), (255, 255, 255, 0)), tmp_path / "clear.png"),
        "smaller": lambda: mask_file(tmp_path, (225, 150), [(0, 0, 50, 50)]),
        "broken": lambda: save_bytes(tmp_path / "broken.png", b"not a picture"),
    }
    with pytest.raises(FieldError) as caught:
        tiny_backend.prepare_redraw(PHOTO, paths[mask](), "a cat")
    assert caught.value.field == "mask" and str(caught.value).startswith(message)


def save_bytes(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("keep_rows", [0, 24, 1.5, math.nan, None, "12"])
def test_keep_rows_outside_1_to_23_is_refused(tiny_backend, keep_rows):
    with pytest.raises(FieldError, match=r"^Rows to keep must be a whole number between 1 and 23") as caught:
        tiny_backend.prepare_complete(PHOTO, "a cat", keep_rows)
    assert caught.value.field == "keep_rows"


@pytest.mark.parametrize("image", [None, "", 7, "/no/such/file.png"])
def test_a_missing_or_unreadable_image_is_refused_naming_the_image(tiny_backend, image):
    for prepare in (tiny_backend.prepare_complete, tiny_backend.prepare_variations):
        with pytest.raises(FieldError) as caught:
            prepare(image) if prepare == tiny_backend.prepare_variations else prepare(image, "a cat", 12)
        assert caught.value.field == "image" and "/no/such" not in str(caught.value)


def test_preparing_an_edit_never_enters_the_model(tiny_backend, tmp_path):
    entered = tiny_backend.entered
    tiny_backend.prepare_complete(PHOTO, "a cat", 12)
    tiny_backend.prepare_redraw(PHOTO, mask_file(tmp_path, (451, 300), [(200, 100, 210, 110)]), "a cat")
    tiny_backend.prepare_variations(PHOTO, 2, 5)
    assert tiny_backend.entered == entered


def test_a_description_becomes_the_images_prompt(tiny_backend):
    prepared = tiny_backend.prepare_described('  "A cat\n on a  sofa." ', 2, 9, source_size=(451, 300))
    assert prepared.request.prompt == "A cat on a sofa." and prepared.request.num_images == 2
    assert dict(prepared.metadata) == {"mode": "variations", "source_size": "451x300"}
    with pytest.raises(FieldError, match=r"^Description is empty\.$") as caught:
        tiny_backend.prepare_described("   ", 1)
    assert caught.value.field == "description"


def test_an_empty_description_from_the_model_is_said_in_one_sentence(small_backend):
    """Random weights can describe a photo with nothing but blanks and quotes: nothing is drawn, and the
    message says why and what to do (it read "The description is empty or not text: Prompt is empty.")."""

    def answer(prepared):
        yield ChatChunk(' " ', 8, 0.1, done=True, stop_reason="eos")

    events = list(variations(small_backend, answer, lambda prepared: pytest.fail("nothing to draw"), PHOTO, 1, 5))
    assert isinstance(events[-1], Problem) and events[-1].error.field == "description"
    assert str(events[-1].error) == EMPTY_DESCRIPTION
    assert EMPTY_DESCRIPTION.startswith("The model's description of the photo was empty, so nothing was drawn: ")


def test_the_variations_question_asks_for_a_prompt_about_the_crop(tiny_backend):
    prepared = tiny_backend.prepare_variations(PHOTO, 1, 4)
    assert prepared.settings["seed"] == 4 and prepared.describe.images == 1
    assert prepared.describe.options.seed == 4
    assert "pixel_values" in prepared.describe.inputs


def test_an_8x8_models_edits_use_its_grid_crop_and_row_range(small_backend, tmp_path):
    mask = mask_file(tmp_path, (451, 300), [(75, 0, 375, 50)])  # the top sixth of the crop: 2 of 8 rows
    redraw = small_backend.prepare_redraw(PHOTO, mask, "a cat", 3, 5.0, 1.0, 1, 0)
    keep = redraw.request.forced_mask.view(8, 8)
    assert not keep[:2].any() and keep[2:].all() and redraw.crop.size == (128, 128)
    assert dict(redraw.metadata)["mask"] == "16 of 64 tokens (rows 1-2, columns 1-8)"
    complete = small_backend.prepare_complete(PHOTO, "a cat", 7)
    assert complete.request.forced_mask.tolist() == [True] * 56 + [False] * 8 and complete.crop.size == (128, 128)
    with pytest.raises(FieldError, match=r"^Rows to keep must be a whole number between 1 and 7"):
        small_backend.prepare_complete(PHOTO, "a cat", 8)
    assert small_backend.prepare_variations(PHOTO, 1, 4).crop.size == (128, 128)


# --- run: the photo's pixels kept, best fit first (8x8 model)


def final(updates) -> ImageProgress:
    *_, last = updates
    assert isinstance(last, ImageProgress) and last.done
    return last


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_the_photo_weights_are_one_on_kept_tokens_and_fade_into_the_drawn_ones():
    shape = ImageShape(4, 4, 16)
    kept = torch.ones(16, dtype=torch.bool)
    kept[5] = False  # row 1, column 1: pixels 16-31 both ways
    weights = photo_weights(kept, shape)
    assert weights.shape == (64, 64)
    assert (weights[:16] == 1).all() and (weights[32:] == 1).all() and (weights[:, :16] == 1).all()
    assert weights[23, 23] == 0 and weights[24, 24] == 0, "the middle of the drawn token is the model's"
    assert weights[16:32, 16].tolist() == pytest.approx([0.8] * 16)  # one pixel from the kept ones
    assert weights[20, 16:21].tolist() == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])
    crop, drawn = Image.new("RGB", (64, 64), (200, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 100))
    drawn.info["seed"] = "3"
    blended = keep_photo(crop, drawn, weights)
    assert blended.getpixel((0, 0)) == (200, 0, 0) and blended.getpixel((24, 24)) == (0, 0, 100)
    assert blended.getpixel((18, 20)) == (80, 0, 60) and blended.info == {"seed": "3"}


def test_a_redraw_keeps_the_photos_pixels_outside_the_mask_and_its_feather(small_backend, tmp_path):
    mask = mask_file(tmp_path, (451, 300), [(200, 100, 230, 130)])
    kept = small_backend.prepare_redraw(PHOTO, mask, "a cat", 3, 1.0, 1.0, 1, 0)
    plain = small_backend.prepare_redraw(PHOTO, mask, "a cat", 3, 1.0, 1.0, 1, 0, False)
    ours, decoded = final(run_edit(small_backend, kept)).images[0], final(run_edit(small_backend, plain)).images[0]
    weights = photo_weights(kept.request.forced_mask, small_backend.image_shape)
    photo = weights == 1
    assert photo.mean() > 0.8, "a small mask: most of the photo is kept"
    assert (pixels(ours)[photo] == pixels(kept.crop)[photo]).all()
    assert (pixels(ours)[weights == 0] == pixels(decoded)[weights == 0]).all(), "inside: the model's pixels"
    assert (pixels(decoded)[photo] != pixels(kept.crop)[photo]).mean() > 0.5, "the plain decode is not the photo"
    assert ours.info["pixels"].startswith("photo kept outside the mask") and decoded.info["pixels"] == "plain decode"


def test_several_redrawn_images_come_best_fit_first(small_backend, tmp_path):
    mask = mask_file(tmp_path, (451, 300), [(150, 100, 260, 180)])
    prepared = small_backend.prepare_redraw(PHOTO, mask, "a cat", 5, 5.0, 1.0, 4, 0, False)
    last = final(run_edit(small_backend, prepared))
    request = dataclasses.replace(prepared.request, forced_tokens=encode_image(small_backend.loaded, prepared.crop))
    alone = final(iter_image_generation(small_backend.loaded, request))  # the seed's order, with its scores
    assert last.order == sorted(range(4), key=lambda index: -alone.fit[index]) and last.order != [0, 1, 2, 3]
    assert last.fit == sorted(last.fit, reverse=True) == [alone.fit[index] for index in last.order]
    assert [image.tobytes() for image in last.images] == [alone.images[index].tobytes() for index in last.order]
    assert [image.info["fit_score"] for image in last.images] == [f"{fit:.4f}" for fit in last.fit]


def test_a_completion_keeps_the_photo_above_the_drawn_rows_and_the_seeds_order(small_backend):
    prepared = small_backend.prepare_complete(PHOTO, "a cat", 5, 2, 1.0, 1.0, 2, 0)
    last = final(run_edit(small_backend, prepared))
    kept_rows = 5 * small_backend.image_shape.patch
    assert last.order is None and last.fit is None, "nothing kept follows the drawn rows"
    for image in last.images:
        assert (pixels(image)[:kept_rows] == pixels(prepared.crop)[:kept_rows]).all()
        assert (pixels(image)[kept_rows + 4 :] != pixels(prepared.crop)[kept_rows + 4 :]).any()
        assert "fit_score" not in image.info and image.info["pixels"] == "photo kept in the kept rows (feather 4 px)"
