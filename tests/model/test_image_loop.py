"""Text-to-image on the tiny model: same tokens as transformers' generate, seeds, guidance, previews, Stop."""

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


@pytest.mark.parametrize("num_images", [1, 2])
def test_greedy_tokens_match_generate(loaded_tiny, num_images):
    request = image_request(loaded_tiny, PROMPT, seed=3, temperature=0.0, num_images=num_images)
    ours = generate_image_tokens(loaded_tiny, request)
    assert ours.shape == (num_images, 576)
    assert torch.equal(ours, reference_tokens(loaded_tiny, request, do_sample=False))


@pytest.mark.parametrize(
    ("num_images", "temperature", "top_p"),
    [(1, 1.0, 1.0), (2, 1.0, 1.0), (1, 0.7, 0.9)],
)
def test_sampled_tokens_match_generate(loaded_tiny, num_images, temperature, top_p):
    request = image_request(loaded_tiny, PROMPT, seed=11, temperature=temperature, top_p=top_p, num_images=num_images)
    ours = generate_image_tokens(loaded_tiny, request)
    assert torch.equal(ours, reference_tokens(loaded_tiny, request, do_sample=True))


def test_sampling_leaves_the_global_rng_alone(loaded_tiny):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    generate_image_tokens(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=5, guidance_scale=1.0))
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
def test_final_images_equal_transformers_postprocess_of_the_same_tokens(loaded_tiny):
    request = image_request(loaded_tiny, PROMPT, seed=8, num_images=2, preview_mode="off")
    final = run(loaded_tiny, request)[-1].images
    tokens = generate_image_tokens(loaded_tiny, request)
    pixels = loaded_tiny.model.decode_image_tokens(tokens)  # channels-last, roughly [-1, 1]
    assert (pixels.abs() > 1).any()  # values the clip decides
    channels_first = list(pixels.permute(0, 3, 1, 2).float().numpy())
    reference = loaded_tiny.processor.postprocess(channels_first, return_tensors="PIL.Image.Image")["pixel_values"]
    assert [image.tobytes() for image in final] == [image.tobytes() for image in reference]
    rounded = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert rounded.numpy().tobytes() != b"".join(image.tobytes() for image in reference)  # rounding would fail


# --- images, seeds and previews ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_images_with_previews(loaded_tiny) -> list[ImageProgress]:
    return run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=21, num_images=2, preview_every=48))


def test_final_images_are_384_rgb_and_differ_within_a_request(two_images_with_previews):
    final = two_images_with_previews[-1]
    assert final.done and final.step == final.total == 576 and final.eta == 0.0
    assert [(image.mode, image.size) for image in final.images] == [("RGB", (384, 384))] * 2
    assert final.images[0].tobytes() != final.images[1].tobytes()


def test_same_seed_same_images_other_seed_other_images(loaded_tiny, two_images_with_previews):
    torch.manual_seed(999)  # the global RNG must not matter
    again = run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=21, num_images=2, preview_mode="off"))[-1].images
    assert [image.tobytes() for image in again] == [image.tobytes() for image in two_images_with_previews[-1].images]
    other = run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=22, num_images=1, preview_mode="off"))[-1].images
    assert other[0].tobytes() != again[0].tobytes()


def test_progress_after_every_step_and_previews_before_the_images(two_images_with_previews):
    steps = [progress.step for progress in two_images_with_previews[:-1]]
    assert steps == list(range(1, 577))
    with_previews = [progress for progress in two_images_with_previews if progress.previews]
    assert [progress.step for progress in with_previews] == list(range(48, 576, 48))
    assert not any(progress.done for progress in with_previews)
    for progress in with_previews:
        assert [(image.mode, image.size) for image in progress.previews] == [("RGB", (384, 384))] * 2
    middle = two_images_with_previews[287]
    assert middle.steps_per_second > 0 and middle.eta is not None and middle.eta > 0


def test_guidance_one_switches_guidance_off_and_works(loaded_tiny):
    off = run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=4, guidance_scale=1.0, preview_every=0))
    on = run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=4, guidance_scale=5.0, preview_every=0))
    assert off[-1].done and len(off[-1].images) == 1
    assert off[-1].images[0].tobytes() != on[-1].images[0].tobytes()
    assert all(progress.previews is None for progress in off)


# --- Stop --------------------------------------------------------------------------------


def test_stop_ends_the_loop_within_one_step(loaded_tiny):
    stop = threading.Event()
    seen = []
    for progress in iter_image_generation(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=1), stop):
        seen.append(progress)
        if progress.step == 10:
            stop.set()
    assert seen[-1].step == 10 and not any(progress.done for progress in seen)


def test_stop_set_before_the_start_yields_nothing(loaded_tiny):
    stop = threading.Event()
    stop.set()
    assert run(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=1), stop) == []
    assert generate_image_tokens(loaded_tiny, image_request(loaded_tiny, PROMPT, seed=1), stop) is None
