"""Requests drawn together in one batch give the tokens each gives alone (same seed, fp32 on CPU), whatever
their neighbours' prompts, settings, forced tokens and ends."""

from __future__ import annotations

import threading

import pytest
import torch
from support.requests import generate_image_tokens, image_request

from janus_demo.model.image_batch import ImageBatch


def run_batch(loaded, requests, stops=None, stop_after=None):
    """Every member's final grid (None for one stopped before the end); `stop_after` = {index: step}."""
    stops = stops or [threading.Event() for _ in requests]
    batch, grids = ImageBatch(loaded, requests, stops), {}
    members = list(batch.members)
    while batch.members:
        for member in batch.advance():
            index = members.index(member)
            if stop_after and stop_after.get(index) == member.step:
                stops[index].set()
        for member in batch.finished():
            index = members.index(member)
            grids[index] = None if member.stopped else member.tokens.clone()
            batch.leave(member)
    return [grids[index] for index in range(len(requests))]


def requests_of(loaded):
    """Neighbours that differ in everything: prompt length, seed, guidance, temperature, top-p, images."""
    return [
        image_request(loaded, "A red fox", seed=1, guidance_scale=5.0, temperature=1.0, top_p=0.9, num_images=2),
        image_request(loaded, "A lighthouse on a cliff at dusk, oil on canvas", seed=7, guidance_scale=1.0),
        image_request(loaded, "cat", seed=3, guidance_scale=3.0, temperature=0.0, num_images=1),
    ]


def test_each_request_in_a_batch_draws_what_it_draws_alone(loaded_small):
    requests = requests_of(loaded_small)
    alone = [generate_image_tokens(loaded_small, request) for request in requests]
    together = run_batch(loaded_small, requests)
    for index, (one, many) in enumerate(zip(alone, together, strict=True)):
        assert torch.equal(one, many), f"request {index} drew other tokens in the batch"


def test_an_edit_with_forced_tokens_draws_in_a_batch_what_it_draws_alone(loaded_small):
    tokens = loaded_small.image_shape.tokens
    source = torch.randint(0, 100, (tokens,), generator=torch.Generator().manual_seed(0))
    completion = torch.zeros(tokens, dtype=torch.bool)
    completion[: tokens // 2] = True  # keep the top half: fed with the prompt
    region = torch.zeros(tokens, dtype=torch.bool)
    region[::3] = True  # a scattered region kept as it is
    requests = [
        image_request(loaded_small, "a cat", seed=2, forced_tokens=source, forced_mask=completion),
        image_request(loaded_small, "a dog on a sofa", seed=4, num_images=2, forced_tokens=source, forced_mask=region),
        image_request(loaded_small, "a tree", seed=5),
    ]
    alone = [generate_image_tokens(loaded_small, request) for request in requests]
    together = run_batch(loaded_small, requests)
    for index, (one, many) in enumerate(zip(alone, together, strict=True)):
        assert torch.equal(one, many), f"request {index} drew other tokens in the batch"
    assert torch.equal(together[0][:, : tokens // 2], source[: tokens // 2].expand(1, -1))


def test_one_member_stopping_leaves_the_others_whole(loaded_small):
    requests = requests_of(loaded_small)
    alone = [generate_image_tokens(loaded_small, request) for request in requests]
    together = run_batch(loaded_small, requests, stop_after={1: 5})
    assert together[1] is None
    assert torch.equal(together[0], alone[0]) and torch.equal(together[2], alone[2])


@pytest.mark.slow
def test_on_the_real_grid_too(loaded_tiny):
    """24x24 tokens, the real processor: two requests of different prompt lengths."""
    requests = requests_of(loaded_tiny)[:2]
    alone = [generate_image_tokens(loaded_tiny, request) for request in requests]
    together = run_batch(loaded_tiny, requests)
    assert all(torch.equal(one, many) for one, many in zip(alone, together, strict=True))
