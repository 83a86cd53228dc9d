"""ZeroGPU glue: `@on_gpu(duration=...)` is `@spaces.GPU(duration=...)`, or nothing without `spaces`.

    @on_gpu(duration=chat_duration)
    def answer_on_gpu(prepared: PreparedChat): ...

On a ZeroGPU Space (SPACES_ZERO_GPU=true) each call of a decorated function borrows a GPU in a forked
worker for `duration` seconds: its arguments and what it yields are pickled. The decorated functions take
requests the service layer has already checked and prepared on the CPU, so a refused request never
borrows a GPU, and `duration` (a callable with the function's own signature) sizes the loan from checked
values: shorter requests are scheduled sooner. Everywhere else spaces.GPU returns the function unchanged,
and without the package `on_gpu` does the same.

The estimates are deliberately generous for Janus-Pro-7B in bfloat16 on a ZeroGPU slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from janus_demo.service.backend import ImageRequest, PreparedChat
from janus_demo.service.requests import IMAGE_TOKENS

try:
    import spaces
except ModuleNotFoundError as missing:  # without the package, nothing to wrap
    if missing.name != "spaces":
        raise
    spaces = None

F = TypeVar("F", bound=Callable[..., Any])

MIN_DURATION_S = 15
MAX_DURATION_S = 120  # longer requests are capped here rather than refused by the scheduler

CHAT_BASE_S = 10.0  # worker start and prompt prefill
CHAT_PER_TOKEN_S = 0.05  # 20 tokens/s: 7B decodes faster than that on a ZeroGPU slice
CHAT_PER_IMAGE_S = 2.0  # each image in the conversation goes through the vision encoder again

IMAGE_BASE_S = 10.0
IMAGE_STEP_S = 0.05  # one decoding step of the whole batch at batch size 1
IMAGE_BATCH_GROWTH = 0.15  # each extra row in the batch (images x 2 with guidance) adds this much of a step
IMAGE_PREVIEW_S = 0.3  # one preview through the VQ decoder

UPSCALE_DURATION_S = MIN_DURATION_S  # one 2x upscale: ~0.7 TMAC for 384 -> 768, well under a second on a GPU


def on_gpu(duration: Callable[..., float] | int) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the spaces package is installed, else the identity."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def chat_duration(prepared: PreparedChat) -> int:
    """GPU seconds for one chat answer: base + per token + per image in the conversation."""
    tokens = prepared.options.max_new_tokens
    return _seconds(CHAT_BASE_S + tokens * CHAT_PER_TOKEN_S + prepared.images * CHAT_PER_IMAGE_S)


def images_duration(request: ImageRequest) -> int:
    """GPU seconds for one text-to-image batch: base + 576 steps of the batch + previews."""
    rows = request.num_images * (2 if request.guided else 1)  # guidance runs a second, unconditioned row
    steps_s = IMAGE_TOKENS * IMAGE_STEP_S * (1 + IMAGE_BATCH_GROWTH * (rows - 1))
    every = request.preview_every
    previews = 0 if every < 1 or request.preview_mode == "off" else (IMAGE_TOKENS - 1) // every
    return _seconds(IMAGE_BASE_S + steps_s + previews * IMAGE_PREVIEW_S * request.num_images)


def _seconds(estimate: float) -> int:
    return int(max(MIN_DURATION_S, min(MAX_DURATION_S, math.ceil(estimate))))
