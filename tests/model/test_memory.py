"""The GPU memory estimate of a text-to-image request and the message that caps the number of images."""

import dataclasses
import re

import pytest
import torch

from janus_demo.model import memory

GB = 10**9

PRO_7B = memory.ImageMemoryShape(
    layers=30,
    kv_heads=32,
    head_dim=128,
    hidden=4096,
    intermediate=11008,
    heads=32,
    codebook=16384,
    image_tokens=576,
    image_pixels=384 * 384,
    decoder_channels=128,
    dtype_bytes=2,
)


def test_kv_cache_term_is_2_layers_rows_length_heads_head_dim_bytes():
    one = memory.estimate_image_memory(PRO_7B, prompt_len=50, guided=True, decode_chunk=4)
    kv = 2 * 30 * 2 * (50 + 576) * 32 * 128 * 2  # one image = 2 rows with guidance
    assert kv <= one.per_image < 1.2 * kv  # the KV cache dominates; activations and sampling are the rest
    unguided = memory.estimate_image_memory(PRO_7B, prompt_len=50, guided=False, decode_chunk=4)
    assert unguided.per_image == pytest.approx(one.per_image / 2)
    assert one.total(4) == one.fixed + 4 * one.per_image + 4 * one.per_decoded_image
    assert one.total(9) == one.fixed + 9 * one.per_image + 4 * one.per_decoded_image  # decoded 4 at a time
    assert 2.4 * GB < one.total(4) < 4.0 * GB  # 7B, 4 images: 2.5 GB of KV cache + VQ decoding + margin


def test_max_images_is_the_largest_count_that_fits():
    estimate = memory.ImageMemoryEstimate(fixed=100, per_image=10, per_decoded_image=5, decode_chunk=4)
    assert estimate.max_images(99) == 0
    assert estimate.max_images(115) == 1
    assert estimate.max_images(100 + 4 * 10 + 4 * 5) == 4
    assert estimate.max_images(100 + 4 * 10 + 4 * 5 - 1) == 3
    assert estimate.max_images(100 + 16 * 10 + 20) == 16


def test_message_names_the_need_the_free_memory_and_a_count_that_fits():
    estimate = memory.ImageMemoryEstimate(fixed=GB, per_image=2 * GB, per_decoded_image=0, decode_chunk=4)
    problem = memory.fit_problem(estimate, num_images=4, available=6 * GB)
    assert problem == "4 images need about 9.0 GB; the GPU has 6.0 GB free. Try at most 2 images."
    assert memory.fit_problem(estimate, num_images=2, available=6 * GB) is None  # fits
    assert memory.memory_message(1, 3 * GB, int(2.5 * GB), 0).startswith(
        "1 image needs about 3.0 GB; the GPU has 2.5 GB free. Not even one image fits"
    )
    assert memory.memory_message(3, 9 * GB, 4 * GB, 1).endswith("Try at most 1 image.")


def test_shape_is_read_from_the_model_config(loaded_tiny):
    shape = memory.memory_shape(loaded_tiny.model, torch.bfloat16)
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.hidden) == (2, 4, 32, 128)
    assert (shape.codebook, shape.image_tokens, shape.image_pixels) == (16384, 576, 384 * 384)
    assert shape.dtype_bytes == 2


def test_cpu_requests_are_not_checked(loaded_tiny, monkeypatch):
    monkeypatch.setattr(memory, "available_cuda_bytes", lambda device: pytest.fail("asked for GPU memory on CPU"))
    assert memory.image_memory_problem(loaded_tiny, 16, 40, True, 4) is None


def test_a_cuda_request_that_does_not_fit_says_how_many_would(loaded_tiny, monkeypatch):
    monkeypatch.setattr(memory, "available_cuda_bytes", lambda device: 500 * 2**20)
    on_cuda = dataclasses.replace(loaded_tiny, device=torch.device("cuda"))
    problem = memory.image_memory_problem(on_cuda, 16, 40, True, 4)
    assert re.match(r"^16 images need about 0\.\d GB; the GPU has 0\.5 GB free\. Try at most \d+ image", problem)


def test_cache_length_rounds_up_to_the_bucket():
    assert memory.cache_length(14, 576) == 640 and memory.cache_length(64, 576) == 640
    assert memory.cache_length(65, 576) == 704 and memory.cache_length(0, 576) == 576


def test_memory_held_by_kept_cuda_graphs_counts_as_available(loaded_tiny, monkeypatch):
    monkeypatch.setattr(memory, "available_cuda_bytes", lambda device: 100 * 2**20)
    on_cuda = dataclasses.replace(loaded_tiny, device=torch.device("cuda"))
    assert memory.image_memory_problem(on_cuda, 4, 40, True, 4) is not None
    assert memory.image_memory_problem(on_cuda, 4, 40, True, 4, reclaimable=2 * GB) is None
