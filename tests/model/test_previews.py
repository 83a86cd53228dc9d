"""Previews on the tiny models (8x8 tokens, and Janus-Pro's 24x24 for the cost): sizes, grey unfinished parts,
decode = final decode, palette cached and cheap."""

import time

import numpy as np
import pytest
import torch
from support.requests import generate_image_tokens, image_request

from janus_demo.model import previews
from janus_demo.model.image_loop import decode_images

GREY = (previews.GREY,) * 3


@pytest.fixture(scope="module")
def tokens(loaded_small) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 16384, (2, 64), generator=generator)  # two images of 8x8 tokens


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def test_auto_is_decode_on_cuda_and_palette_elsewhere():
    assert previews.resolve_mode("auto", torch.device("cuda")) == "decode"
    assert previews.resolve_mode("auto", torch.device("cpu")) == "palette"
    assert previews.resolve_mode("decode", torch.device("cpu")) == "decode"


@pytest.mark.parametrize("mode", ["palette", "decode"])
def test_previews_are_rgb_final_size_one_per_image(loaded_small, tokens, mode):
    shots = previews.render_previews(loaded_small.model, tokens, 20, mode)
    assert [(shot.mode, shot.size) for shot in shots] == [("RGB", (128, 128))] * 2


def test_decode_preview_greys_unfinished_rows_and_ends_as_the_final_image(loaded_small, tokens):
    partial = pixels(previews.decode_previews(loaded_small.model, tokens, 5 * 8 + 3)[0])
    assert (partial[5 * 16 :] == GREY).all()  # 5 finished rows of 16 px, the half-done sixth row is grey
    assert not (partial[: 5 * 16] == GREY).all()
    full = previews.decode_previews(loaded_small.model, tokens, 64)
    assert [shot.tobytes() for shot in full] == [image.tobytes() for image in decode_images(loaded_small, tokens)]


def test_palette_preview_paints_generated_tokens_and_greys_the_rest(loaded_small, tokens):
    shot = pixels(previews.palette_previews(loaded_small.model, tokens, 30)[1])
    colours = previews.palette_colours(loaded_small.model, tokens[1, :30])
    assert colours.shape == (30, 3) and colours.dtype == torch.uint8
    assert (shot[8, 8] == colours[0].numpy()).all()  # token 0's 16x16 block
    assert (shot[3 * 16 + 8, 5 * 16 + 8] == colours[29].numpy()).all()  # token 29: row 3, column 5
    assert (shot[3 * 16 + 8, 6 * 16 + 8] == GREY).all() and (shot[100] == GREY).all()


@torch.inference_mode()
def test_each_palette_colour_is_the_mean_colour_of_its_code_decoded_alone(loaded_small):
    previews.clear_palette(loaded_small.model)
    codes = torch.randint(0, 16384, (40,), generator=torch.Generator().manual_seed(3))
    palette = previews.palette_colours(loaded_small.model, codes)  # decoded in one batch
    for code, colour in zip(codes.tolist(), palette, strict=True):
        vq = loaded_small.model.model.vqmodel
        latent = torch.nn.functional.normalize(vq.quantize.embedding(torch.tensor([code])), p=2, dim=-1)
        patch = vq.decoder(vq.post_quant_conv(latent.view(1, -1, 1, 1)))[0]  # this code alone: a 1x1 latent
        assert patch.shape == (3, 16, 16)
        mean = ((patch.mean(dim=(1, 2)) + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)  # as the final images
        assert torch.equal(colour, mean), code
    assert len(set(map(tuple, palette.tolist()))) > 1  # not one grey for all


def test_each_code_is_decoded_once(loaded_small, monkeypatch):
    previews.clear_palette(loaded_small.model)
    decoded = []
    real = previews.code_colours
    monkeypatch.setattr(
        previews, "code_colours", lambda model, codes: decoded.append(codes.clone()) or real(model, codes)
    )
    codes = torch.tensor([5, 9, 5, 700, 9])
    first = previews.palette_colours(loaded_small.model, codes)
    again = previews.palette_colours(loaded_small.model, torch.tensor([[9, 5], [700, 5]]))
    assert [batch.tolist() for batch in decoded] == [[5, 9, 700]]
    assert torch.equal(again, first[[1, 0, 3, 0]].view(2, 2, 3))
    previews.palette_colours(loaded_small.model, torch.arange(previews.PALETTE_BATCH + 10))
    assert [len(batch) for batch in decoded[1:]] == [previews.PALETTE_BATCH, 8]  # 5 and 9 are known: 264 new


def test_palette_previews_cost_under_ten_percent_of_generation_once_their_codes_are_known(loaded_tiny):
    request = image_request(loaded_tiny, "a lighthouse at dusk", seed=2, preview_mode="off")
    start = time.perf_counter()
    tokens = generate_image_tokens(loaded_tiny, request)
    generation = time.perf_counter() - start
    previews.palette_colours(loaded_tiny.model, tokens)  # each new code's one-time decode is not a repeat cost
    start = time.perf_counter()
    for step in range(48, 576, 48):  # what preview_every=48 renders during one request
        previews.render_previews(loaded_tiny.model, tokens, step, "palette")
    assert time.perf_counter() - start < 0.1 * generation
