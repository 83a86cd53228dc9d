"""How much GPU memory a text-to-image request needs, checked before it starts.

    problem = image_memory_problem(loaded, num_images=4, prompt_len=40, guided=True)   # None: it fits

The service layer asks before a request waits for the model, so a request that cannot fit gets
"4 images need about 9.3 GB; the GPU has 6.1 GB free. Try at most 2 images." instead of an
out-of-memory error halfway through. The estimate (`estimate_image_memory`) is deliberately simple
and on the high side; `benchmarks/bench_memory.py` prints it next to measured peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

GB = 1e9
GPU_DEFAULT_IMAGES = 4  # the Images tab's default on a GPU; `--quantization auto` makes room for such a request
TYPICAL_PROMPT_TOKENS = 64  # a prompt of about 40 words, template included
DECODE_CHUNK = 4  # images decoded at once by the VQ decoder (bounds its activation memory)
CACHE_BUCKET = 64  # KV caches are sized in steps of this many positions, so requests can share CUDA graphs
SAFETY_BYTES = 256 * 2**20  # allocator fragmentation, CUDA graph pool, small buffers
PREFILL_WIDTHS = 4  # hidden-sized activations alive at once during the prefill (residual, norm, q/k/v...)
MLP_WIDTHS = 3  # intermediate-sized activations alive at once (gate, up, product)
SCORE_COPIES = 8  # codebook-wide float tensors per row while sampling (scores, guided, softmax, top-p sort...)
DECODE_WIDTHS = 6  # full-resolution VQ decoder feature maps alive at once per image
MAX_IMAGES_TRIED = 64


@dataclass(frozen=True)
class ImageMemoryShape:
    """What a request's memory depends on, read from the model's config."""

    layers: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    heads: int
    codebook: int
    image_tokens: int
    image_pixels: int  # output height x width
    decoder_channels: int  # widest VQ decoder feature map at full resolution
    dtype_bytes: int


@dataclass(frozen=True)
class ImageMemoryEstimate:
    """Bytes a request needs: `fixed` + `per_image` x images + `per_decoded_image` x images decoded at once."""

    fixed: int
    per_image: int
    per_decoded_image: int
    decode_chunk: int

    def total(self, num_images: int) -> int:
        return self.fixed + self.per_image * num_images + self.per_decoded_image * min(num_images, self.decode_chunk)

    def max_images(self, available: int, limit: int = MAX_IMAGES_TRIED) -> int:
        """The most images whose estimate fits in `available` bytes (0 when not even one does)."""
        fits = [n for n in range(1, limit + 1) if self.total(n) <= available]
        return max(fits, default=0)


def cache_length(prompt_len: int, image_tokens: int) -> int:
    """Positions of a request's KV cache: prompt + image tokens, rounded up to a multiple of CACHE_BUCKET."""
    return -(-(prompt_len + image_tokens) // CACHE_BUCKET) * CACHE_BUCKET


def memory_shape(model: torch.nn.Module, dtype: torch.dtype) -> ImageMemoryShape:
    """Read the sizes that matter from a JanusForConditionalGeneration's config."""
    config = model.config
    text = config.get_text_config(decoder=True)
    heads = text.num_attention_heads
    vq = config.vq_config
    image_tokens = config.vision_config.num_image_tokens
    scale = 2 ** (len(vq.channel_multiplier) - 1)
    side = round(image_tokens**0.5) * scale
    return ImageMemoryShape(
        layers=text.num_hidden_layers,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        heads=heads,
        codebook=vq.num_embeddings,
        image_tokens=image_tokens,
        image_pixels=side * side,
        decoder_channels=vq.base_channels * vq.channel_multiplier[0],
        dtype_bytes=torch.empty((), dtype=dtype).element_size(),
    )


def estimate_image_memory(
    shape: ImageMemoryShape, prompt_len: int, guided: bool, decode_chunk: int
) -> ImageMemoryEstimate:
    """KV cache, prefill activations and sampling per image; VQ decoding per image decoded at once.

    KV cache = 2 (keys, values) x layers x rows x cache length x kv heads x head dim x dtype bytes,
    with 2 rows per image under classifier-free guidance. The prefill counts a full fp32 attention
    matrix per head (the math attention path), so the estimate errs on the high side.
    """
    rows = 2 if guided else 1
    length = cache_length(prompt_len, shape.image_tokens)
    kv = 2 * shape.layers * rows * length * shape.kv_heads * shape.head_dim * shape.dtype_bytes
    prefill = rows * prompt_len * (PREFILL_WIDTHS * shape.hidden + MLP_WIDTHS * shape.intermediate) * shape.dtype_bytes
    attention = rows * shape.heads * prompt_len * length * 4
    sampling = rows * shape.codebook * 4 * SCORE_COPIES
    decode = DECODE_WIDTHS * shape.image_pixels * shape.decoder_channels * shape.dtype_bytes
    return ImageMemoryEstimate(
        fixed=SAFETY_BYTES,
        per_image=kv + prefill + attention + sampling,
        per_decoded_image=decode,
        decode_chunk=decode_chunk,
    )


def memory_message(num_images: int, needed: int, available: int, max_images: int) -> str:
    """The message a user sees when a request does not fit."""
    subject = "1 image needs" if num_images == 1 else f"{num_images} images need"
    head = f"{subject} about {needed / GB:.1f} GB; the GPU has {available / GB:.1f} GB free."
    if max_images < 1:
        return f"{head} Not even one image fits right now: try again shortly, or load the model in 4-bit."
    noun = "image" if max_images == 1 else "images"
    return f"{head} Try at most {max_images} {noun}."


def fit_problem(estimate: ImageMemoryEstimate, num_images: int, available: int) -> str | None:
    """`memory_message` when `num_images` do not fit in `available` bytes, else None."""
    needed = estimate.total(num_images)
    if needed <= available:
        return None
    return memory_message(num_images, needed, available, estimate.max_images(available))


def available_cuda_bytes(device: torch.device) -> int:
    """Free device memory plus what PyTorch's allocator holds but does not use (it can hand that out again)."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(cached, 0))


class PlacedModel(Protocol):
    """What the check reads of a loaded model (`janus_demo.model.loading.LoadedJanus` is one; naming that type
    here would make an import circle: loading needs this module)."""

    model: torch.nn.Module
    dtype: torch.dtype
    device: torch.device


def image_memory_problem(
    loaded: PlacedModel, num_images: int, prompt_len: int, guided: bool, decode_chunk: int, reclaimable: int = 0
) -> str | None:
    """On CUDA, why a request of `num_images` cannot fit in free GPU memory now; None when it can (or off CUDA).

    `reclaimable`: bytes held for earlier requests that would be released for this one (kept CUDA graphs).
    """
    if loaded.device.type != "cuda":
        return None
    estimate = estimate_image_memory(memory_shape(loaded.model, loaded.dtype), prompt_len, guided, decode_chunk)
    return fit_problem(estimate, num_images, available_cuda_bytes(loaded.device) + reclaimable)
