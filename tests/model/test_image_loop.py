"""Text-to-image on the tiny models: same tokens as transformers' generate (on Janus-Pro's 24x24 grid and the 8x8
one), seeds, guidance, previews and Stop (on the 8x8 grid: the loop does not depend on the grid's size)."""

import threading

import pytest
import torch
from support.requests import PROMPT, generate_image_tokens, image_request

from janus_demo.model.image_loop import (
    ImageProgress,
    ImageRequest,
    guidance_input_ids,
    iter_image_generation,
    pad_id,
)


def reference_tokens(loaded, request: ImageRequest, do_sample: bool) -> torch.Tensor:
    """What `model.generate(generation_mode="image")` produces for `request`, global RNG seeded with its seed."""
    processor = loaded.processor
    messages = [{"role": "user", "content": [{"type": "text", "text": request.prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=text, generation_mode="image", return_tensors="pt")
    extra = {}
    if do_sample:
        extra = {"num_return_sequences": request.num_images, "top_k": 0, "top_p": request.top_p}
    else:  # greedy generate refuses num_return_sequences > 1: repeat the prompt instead
        inputs = {key: value.repeat(request.num_images, 1) for key, value in inputs.items()}
    torch.manual_seed(request.seed)
    return loaded.model.generate(
        **inputs,
        generation_mode="image",
        do_sample=do_sample,
        temperature=request.temperature if do_sample else 1.0,
        guidance_scale=request.guidance_scale,
        **extra,
    )


def run(loaded, request: ImageRequest, stop: threading.Event | None = None) -> list[ImageProgress]:
    return list(iter_image_generation(loaded, request, stop))


# --- same tokens as transformers ---------------------------------------------------------

REAL, SMALL = "loaded_tiny", "loaded_small"  # Janus-Pro's 24x24 grid, and 8x8


@pytest.mark.parametrize(("model", "num_images"), [(SMALL, 1), (SMALL, 2), (REAL, 2)], ids=str)
def test_greedy_tokens_match_generate(request, model, num_images):
    loaded = request.getfixturevalue(model)
    image = image_request(loaded, PROMPT, seed=3, temperature=0.0, num_images=num_images)
    ours = generate_image_tokens(loaded, image)
    assert ours.shape == (num_images, loaded.image_shape.tokens)
    assert torch.equal(ours, reference_tokens(loaded, image, do_sample=False))


@pytest.mark.parametrize(
    ("model", "num_images", "temperature", "top_p"),
    [(SMALL, 1, 1.0, 1.0), (SMALL, 2, 1.0, 1.0), (SMALL, 1, 0.7, 0.9), (REAL, 1, 0.7, 0.9)],
    ids=str,
)
def test_sampled_tokens_match_generate(request, model, num_images, temperature, top_p):
    loaded = request.getfixturevalue(model)
    image = image_request(loaded, PROMPT, seed=11, temperature=temperature, top_p=top_p, num_images=num_images)
    ours = generate_image_tokens(loaded, image)
    assert torch.equal(ours, reference_tokens(loaded, image, do_sample=True))


def test_the_real_grid_is_janus_pros(loaded_tiny):
    assert (loaded_tiny.image_shape.rows, loaded_tiny.image_shape.columns) == (24, 24)
    assert loaded_tiny.image_shape.tokens == 576 and loaded_tiny.image_shape.size == (384, 384)


def test_sampling_leaves_the_global_rng_alone(loaded_small):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    generate_image_tokens(loaded_small, image_request(loaded_small, PROMPT, seed=5, guidance_scale=1.0))
    assert torch.equal(torch.get_rng_state(), before)


# --- DeepSeek's prompt handling and transformers' postprocess --------------------------------


def official_rows(input_ids: torch.Tensor, parallel_size: int, pad: int) -> torch.Tensor:
    """DeepSeek's generation_inference.py: rows interleaved cond/uncond, `tokens[i, 1:-1] = pad_id` on odd rows."""
    tokens = torch.zeros((parallel_size * 2, input_ids.shape[1]), dtype=torch.long)
    for i in range(parallel_size * 2):
        tokens[i, :] = input_ids
        if i % 2 != 0:
            tokens[i, 1:-1] = pad
    return tokens


def test_unconditional_rows_are_built_as_deepseek_builds_them(loaded_tiny):
    tokenizer = loaded_tiny.processor.tokenizer
    ids = image_request(loaded_tiny, PROMPT).prompt_ids
    bos, boi = ids[0, 0].item(), ids[0, -1].item()
    assert bos == tokenizer.bos_token_id and boi == tokenizer.convert_tokens_to_ids("<begin_of_image>")
    # BOS and BOI inside the prompt too: only the first and the last token survive in unconditional rows
    ids = torch.cat([ids[:, :3], torch.tensor([[bos, boi]]), ids[:, 3:]], dim=1)
    pad = pad_id(loaded_tiny)
    ours = guidance_input_ids(ids, 2, guided=True, pad=pad)
    theirs = official_rows(ids, 2, pad)
    assert torch.equal(ours[:2], theirs[0::2]) and torch.equal(ours[2:], theirs[1::2])
    assert ours[2:, 1:-1].eq(pad).all() and ours[2, 0] == bos and ours[2, -1] == boi
    assert torch.equal(guidance_input_ids(ids, 3, guided=False, pad=pad), ids.repeat(3, 1))


@torch.inference_mode()
def test_final_images_equal_transformers_postprocess_of_the_same_tokens(loaded_small):
    request = image_request(loaded_small, PROMPT, seed=8, num_images=2, preview_mode="off")
    final = run(loaded_small, request)[-1].images
    tokens = generate_image_tokens(loaded_small, request)
    pixels = loaded_small.model.decode_image_tokens(tokens)  # channels-last, roughly [-1, 1]
    assert (pixels.abs() > 1).any()  # values the clip decides
    channels_first = list(pixels.permute(0, 3, 1, 2).float().numpy())
    reference = loaded_small.processor.postprocess(channels_first, return_tensors="PIL.Image.Image")["pixel_values"]
    assert [image.tobytes() for image in final] == [image.tobytes() for image in reference]
    rounded = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert rounded.numpy().tobytes() != b"".join(image.tobytes() for image in reference)  # rounding would fail


# --- images, seeds and previews ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_images_with_previews(loaded_small) -> list[ImageProgress]:
    return run(loaded_small, image_request(loaded_small, PROMPT, seed=21, num_images=2, preview_every=16))


def test_final_images_are_the_models_size_rgb_and_differ_within_a_request(loaded_small, two_images_with_previews):
    final = two_images_with_previews[-1]
    assert final.done and final.step == final.total == 64 and final.eta == 0.0
    assert [(image.mode, image.size) for image in final.images] == [("RGB", (128, 128))] * 2
    assert final.images[0].tobytes() != final.images[1].tobytes()


def test_same_seed_same_images_other_seed_other_images(loaded_small, two_images_with_previews):
    torch.manual_seed(999)  # the global RNG must not matter
    again = run(loaded_small, image_request(loaded_small, PROMPT, seed=21, num_images=2, preview_mode="off"))
    assert [image.tobytes() for image in again[-1].images] == [
        image.tobytes() for image in two_images_with_previews[-1].images
    ]
    other = run(loaded_small, image_request(loaded_small, PROMPT, seed=22, num_images=1, preview_mode="off"))
    assert other[-1].images[0].tobytes() != again[-1].images[0].tobytes()


def test_progress_after_every_step_and_previews_before_the_images(two_images_with_previews):
    steps = [progress.step for progress in two_images_with_previews[:-1]]
    assert steps == list(range(1, 65))
    with_previews = [progress for progress in two_images_with_previews if progress.previews]
    assert [progress.step for progress in with_previews] == [16, 32, 48]
    assert not any(progress.done for progress in with_previews)
    for progress in with_previews:
        assert [(image.mode, image.size) for image in progress.previews] == [("RGB", (128, 128))] * 2
    middle = two_images_with_previews[31]
    assert middle.steps_per_second > 0 and middle.eta is not None and middle.eta > 0


def test_guidance_one_switches_guidance_off_and_works(loaded_small):
    off = run(loaded_small, image_request(loaded_small, PROMPT, seed=4, guidance_scale=1.0, preview_every=0))
    on = run(loaded_small, image_request(loaded_small, PROMPT, seed=4, guidance_scale=5.0, preview_every=0))
    assert off[-1].done and len(off[-1].images) == 1
    assert off[-1].images[0].tobytes() != on[-1].images[0].tobytes()
    assert all(progress.previews is None for progress in off)


# --- Stop --------------------------------------------------------------------------------


def test_stop_ends_the_loop_within_one_step(loaded_small):
    stop = threading.Event()
    seen = []
    for progress in iter_image_generation(loaded_small, image_request(loaded_small, PROMPT, seed=1), stop):
        seen.append(progress)
        if progress.step == 10:
            stop.set()
    assert seen[-1].step == 10 and not any(progress.done for progress in seen)


def test_stop_set_before_the_start_yields_nothing(loaded_small):
    stop = threading.Event()
    stop.set()
    assert run(loaded_small, image_request(loaded_small, PROMPT, seed=1), stop) == []
    assert generate_image_tokens(loaded_small, image_request(loaded_small, PROMPT, seed=1), stop) is None
