"""Completion and region redraw in the model layer: a source image's tokens forced into the image loop, the VQ
encoder's input, and the score of how well the drawn tokens fit the kept ones that follow them."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from support.requests import generate_image_tokens, image_request
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from janus_demo.model import internals
from janus_demo.model.image_batch import ImageBatch
from janus_demo.model.image_loop import (
    encode_image,
    guidance_input_ids,
    guided_logits,
    iter_image_generation,
    pad_id,
    vq_pixels,
)
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


def forcing_source(loaded, mask: torch.Tensor, **settings):
    """`forcing` at any model's size."""
    image = Image.open(PHOTO).convert("RGB").resize(loaded.image_shape.size)
    tokens = encode_image(loaded, image)
    return tokens, image_request(loaded, forced_tokens=tokens, forced_mask=mask, **settings)


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


# --- the VQ encoder's input, whatever the processor config says


def test_the_vq_input_is_the_photo_in_minus_1_to_1_whatever_the_processor_config_says(loaded_small):
    """A processor config with CLIP's mean and std (the class defaults) normalises otherwise, and fed to the VQ
    encoder it picks other codes; the encoder's input is built explicitly, so the tokens stay the same."""
    shape = loaded_small.image_shape
    crop = Image.open(PHOTO).convert("RGB").resize(shape.size)
    clip = copy.deepcopy(loaded_small.processor)
    clip.image_processor.image_mean, clip.image_processor.image_std = list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD)
    clip_pixels = clip.image_processor(crop, return_tensors="pt")["pixel_values"]
    expected = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    assert torch.equal(vq_pixels(crop, shape), expected) and expected.shape[-2:] == (shape.height, shape.width)
    assert not torch.equal(
        internals.encode_image_tokens(loaded_small.model, clip_pixels)[0], encode_image(loaded_small, crop)
    ), "CLIP's normalisation gives other tokens: the check below means something"
    tokens = encode_image(dataclasses.replace(loaded_small, processor=clip), crop)
    assert torch.equal(tokens, encode_image(loaded_small, crop))
    assert torch.equal(tokens, internals.encode_image_tokens(loaded_small.model, expected)[0])


# --- the fit of the drawn tokens to the kept ones that follow them


def region_mask(shape, rows, columns) -> torch.Tensor:
    """Kept everywhere but the tokens in `rows` x `columns` (ranges)."""
    keep = torch.ones(shape.rows, shape.columns, dtype=torch.bool)
    keep[rows.start : rows.stop, columns.start : columns.stop] = False
    return keep.flatten()


@torch.inference_mode()
def reference_fit(loaded, request, grid: torch.Tensor) -> list[float]:
    """Per image, the mean log-probability under the guided logits (temperature 1) of every forced token after
    the first drawn one, with the whole finished grid fed at once (teacher forcing, no KV cache)."""
    model, n = loaded.model, request.num_images
    rows = guidance_input_ids(request.prompt_ids, n, request.guided, pad_id(loaded))
    tokens = grid.repeat(2, 1) if request.guided else grid
    image = model.prepare_embeddings_for_image_generation(tokens)
    inputs = torch.cat([model.get_input_embeddings()(rows), image[:, :-1]], dim=1)
    hidden = internals.language_model(model)(inputs_embeds=inputs).last_hidden_state[:, rows.shape[1] - 1 :]
    logits = guided_logits(internals.generation_head(model)(hidden).float(), n, request.guidance_scale)
    chosen = torch.log_softmax(logits, dim=-1).gather(-1, grid[..., None])[..., 0]  # (images, tokens)
    first_drawn = int((~request.forced_mask).nonzero()[0])
    after = request.forced_mask.clone()
    after[: first_drawn + 1] = False
    return chosen[:, after].mean(dim=1).tolist()


def final_update(loaded, request):
    *_, last = iter_image_generation(loaded, request)
    assert last.done
    return last


def test_the_fit_is_the_guided_log_probability_of_the_kept_tokens_after_the_region(loaded_small):
    shape = loaded_small.image_shape
    mask = region_mask(shape, range(3, 5), range(2, 5))
    source, request = forcing_source(loaded_small, mask, num_images=3, seed=4, preview_every=0)
    last = final_update(loaded_small, request)
    grid = generate_image_tokens(loaded_small, request)
    assert torch.equal(grid[:, mask], source[mask].expand(3, -1))
    assert len(last.fit) == 3 and len(set(last.fit)) == 3, "each candidate has its own score"
    assert last.fit == pytest.approx(reference_fit(loaded_small, request, grid), abs=1e-4)


def test_the_batch_loop_gives_the_fit_the_one_request_loop_gives(loaded_small):
    shape = loaded_small.image_shape
    source, redraw = forcing_source(loaded_small, region_mask(shape, range(2, 4), range(0, 8)), num_images=2, seed=6)
    guided_off = dataclasses.replace(redraw, guidance_scale=1.0, seed=8)
    neighbour = image_request(loaded_small, "a tree", seed=5)  # a longer prompt beside them, nothing forced
    batch = ImageBatch(loaded_small, [redraw, guided_off, neighbour])
    members, fits = list(batch.members), {}
    while batch.members:
        batch.advance()
        for member in batch.finished():
            fits[members.index(member)] = member.fit.scores()
            batch.leave(member)
    for index, request in enumerate([redraw, guided_off]):
        assert fits[index] == pytest.approx(final_update(loaded_small, request).fit, abs=1e-4)
    assert fits[2] is None and final_update(loaded_small, neighbour).fit is None


def test_a_completion_has_no_fit_since_nothing_kept_follows_what_it_draws(loaded_small):
    mask = torch.zeros(loaded_small.image_shape.tokens, dtype=torch.bool)
    mask[:24] = True
    _, request = forcing_source(loaded_small, mask, num_images=2, seed=1, preview_every=0)
    assert final_update(loaded_small, request).fit is None
