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
    assert fed[0].shape == (4, kept), "the kept rows go in with the prompt, in one forward"
    assert torch.equal(fed[0], source[:kept].expand(4, kept)), "guided and unguided rows see the same tokens"
    assert len(fed) == 1 + 576 - kept


def test_with_every_row_kept_the_output_is_the_input_whatever_the_seed(loaded_tiny):
    mask = torch.ones(576, dtype=torch.bool)  # 23 rows kept, and the last row forced too
    source, request = forcing(loaded_tiny, mask, seed=1)
    assert torch.equal(generate_image_tokens(loaded_tiny, request)[0], source)
    other = dataclasses.replace(request, seed=2, temperature=2.0)
    assert torch.equal(generate_image_tokens(loaded_tiny, other)[0], source)


def test_previews_show_the_kept_rows_at_once_and_forced_tokens_as_they_come(loaded_tiny):
    mask = torch.zeros(576, dtype=torch.bool)
    mask[: 6 * ROW] = True  # the top quarter kept
    mask[20 * ROW :] = True  # and the bottom rows, forced as the loop reaches them
    source, request = forcing(loaded_tiny, mask, preview_every=48, preview_mode="palette", guidance_scale=1.0)
    updates = list(iter_image_generation(loaded_tiny, request))
    assert updates[0].step == 6 * ROW + 1, "the kept rows come with the first update"
    shown = {p.step: p.previews[0] for p in updates if p.previews}
    kept = palette_previews(loaded_tiny.model, source[None], 6 * ROW)[0]
    assert shown[192].crop((0, 0, 384, 96)).tobytes() == kept.crop((0, 0, 384, 96)).tobytes()
    final = generate_image_tokens(loaded_tiny, request)
    assert torch.equal(final[0, 20 * ROW :], source[20 * ROW :])
    late = palette_previews(loaded_tiny.model, final, 528)[0]  # rows 20-21 forced: as the source's
    assert shown[528].tobytes() == late.tobytes()
