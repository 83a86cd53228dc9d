"""Previews on the tiny model: sizes, grey unfinished parts, decode = final decode, palette cached and cheap."""

import time

import numpy as np
import pytest
import torch
from support.requests import generate_image_tokens, image_request

from janus_demo.model import previews
from janus_demo.model.image_loop import decode_images

GREY = (previews.GREY,) * 3


@pytest.fixture(scope="module")
def tokens(loaded_tiny) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 16384, (2, 576), generator=generator)


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def test_auto_is_decode_on_cuda_and_palette_elsewhere():
    assert previews.resolve_mode("auto", torch.device("cuda")) == "decode"
    assert previews.resolve_mode("auto", torch.device("cpu")) == "palette"
    assert previews.resolve_mode("decode", torch.device("cpu")) == "decode"


@pytest.mark.parametrize("mode", ["palette", "decode"])
def test_previews_are_rgb_final_size_one_per_image(loaded_tiny, tokens, mode):
    shots = previews.render_previews(loaded_tiny.model, tokens, 100, mode)
    assert [(shot.mode, shot.size) for shot in shots] == [("RGB", (384, 384))] * 2


def test_decode_preview_greys_unfinished_rows_and_ends_as_the_final_image(loaded_tiny, tokens):
    partial = pixels(previews.decode_previews(loaded_tiny.model, tokens, 5 * 24 + 7)[0])
    assert (partial[5 * 16 :] == GREY).all()  # 5 finished rows of 16 px, the half-done sixth row is grey
    assert not (partial[: 5 * 16] == GREY).all()
    full = previews.decode_previews(loaded_tiny.model, tokens, 576)
    assert [shot.tobytes() for shot in full] == [image.tobytes() for image in decode_images(loaded_tiny, tokens)]


def test_palette_preview_paints_generated_tokens_and_greys_the_rest(loaded_tiny, tokens):
    palette = previews.code_palette(loaded_tiny.model)
    assert palette.shape == (16384, 3) and palette.dtype == torch.uint8
    shot = pixels(previews.palette_previews(loaded_tiny.model, tokens, 30)[1])
    assert (shot[8, 8] == palette[tokens[1, 0]].numpy()).all()  # token 0's 16x16 block
    assert (shot[16 + 8, 5 * 16 + 8] == palette[tokens[1, 29]].numpy()).all()  # token 29: row 1, column 5
    assert (shot[16 + 8, 6 * 16 + 8] == GREY).all() and (shot[200] == GREY).all()


def test_palette_is_fitted_once_per_model(loaded_tiny):
    first = previews.code_palette(loaded_tiny.model)
    assert previews.code_palette(loaded_tiny.model) is first


def test_palette_previews_cost_under_ten_percent_of_generation(loaded_tiny):
    previews.code_palette(loaded_tiny.model)  # the one-time fit is not part of a request
    request = image_request(loaded_tiny, "a lighthouse at dusk", seed=2, preview_mode="off")
    start = time.perf_counter()
    tokens = generate_image_tokens(loaded_tiny, request)
    generation = time.perf_counter() - start
    start = time.perf_counter()
    for step in range(48, 576, 48):  # what preview_every=48 renders during one request
        previews.render_previews(loaded_tiny.model, tokens, step, "palette")
    assert time.perf_counter() - start < 0.1 * generation
