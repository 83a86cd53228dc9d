"""Completion and region redraw in the model layer: a source image's tokens forced into the image loop."""

import dataclasses

import torch
from PIL import Image
from support.requests import generate_image_tokens, image_request

from janus_demo.model.image_loop import encode_image, iter_image_generation
from janus_demo.model.previews import palette_previews

PHOTO = "assets/chelsea.png"
ROW = 24


def source_tokens(loaded) -> torch.Tensor:
    image = Image.open(PHOTO).convert("RGB").resize((384, 384))
    return encode_image(loaded, image)


def forcing(loaded, mask: torch.Tensor, **settings):
    tokens = source_tokens(loaded)
    request = image_request(loaded, forced_tokens=tokens, forced_mask=mask, **settings)
    return tokens, request


def test_the_encoder_gives_576_codebook_ids_and_the_same_ones_every_time(loaded_tiny):
    tokens = source_tokens(loaded_tiny)
    assert tokens.shape == (576,) and tokens.dtype == torch.long
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 16384
    assert torch.equal(tokens, source_tokens(loaded_tiny))
    assert tokens.unique().numel() > 1, "a photo is not one code"


def test_forced_tokens_equal_the_encoded_tokens_in_both_guidance_rows(loaded_tiny):
    kept = 12 * ROW
    mask = torch.zeros(576, dtype=torch.bool)
    mask[:kept] = True
    source, request = forcing(loaded_tiny, mask, num_images=2, seed=3)
    fed = []  # every token fed back: (2 * images, 1), the conditional rows first, then the unconditional ones
    hook = loaded_tiny.model.model.generation_embeddings.register_forward_hook(
        lambda module, args, output: fed.append(args[0].clone())
    )
    try:
        out = generate_image_tokens(loaded_tiny, request)
    finally:
        hook.remove()
    assert torch.equal(out[:, :kept], source[:kept].expand(2, kept))
    assert not torch.equal(out[0, kept:], out[1, kept:]), "the rest is sampled, per image"
    assert not torch.equal(out[0, kept:], source[kept:])
    assert len(fed) == 576
    for step in range(kept):
        assert fed[step].flatten().tolist() == [int(source[step])] * 4, "guided and unguided rows see the same token"


def test_with_every_row_kept_the_output_is_the_input_whatever_the_seed(loaded_tiny):
    mask = torch.ones(576, dtype=torch.bool)  # 23 rows kept, and the last row forced too
    source, request = forcing(loaded_tiny, mask, seed=1)
    assert torch.equal(generate_image_tokens(loaded_tiny, request)[0], source)
    other = dataclasses.replace(request, seed=2, temperature=2.0)
    assert torch.equal(generate_image_tokens(loaded_tiny, other)[0], source)


def test_previews_show_the_forced_tokens_as_they_come(loaded_tiny):
    mask = torch.zeros(576, dtype=torch.bool)
    mask[: 6 * ROW] = True  # the top quarter kept
    source, request = forcing(loaded_tiny, mask, preview_every=96, preview_mode="palette", guidance_scale=1.0)
    shown = [p for p in iter_image_generation(loaded_tiny, request) if p.previews]
    first = shown[0]  # at step 96: four rows, all of them the source's
    assert first.step == 96
    expected = palette_previews(loaded_tiny.model, source[None], 96)[0]
    assert first.previews[0].tobytes() == expected.tobytes()
