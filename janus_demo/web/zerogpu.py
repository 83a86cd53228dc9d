"""ZeroGPU glue: `@on_gpu(duration=...)` is `@spaces.GPU(duration=...)`, or nothing without `spaces`.

    @on_gpu(duration=chat_duration)
    def chat(message, history, max_new_tokens, temperature, top_p, seed): ...

On a ZeroGPU Space (SPACES_ZERO_GPU=true) each call of a decorated function borrows a GPU in a
forked worker for `duration` seconds: its arguments and what it yields are pickled, so it takes and
yields strings, numbers and PIL images only. `duration` may be a callable with the function's own
signature; the two below size a request from what it asks for (tokens, images), because shorter
requests are scheduled sooner. Everywhere else spaces.GPU returns the function unchanged, and
without the package `on_gpu` does the same.

The estimates are deliberately generous for Janus-Pro-7B in bfloat16 on a ZeroGPU slice; they run
before the request is validated, so any input (NaN, a string, a missing value) gives a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from janus_demo.model import chat

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
IMAGE_TOKENS = 576  # one 384x384 Janus image is 24x24 tokens
IMAGE_STEP_S = 0.05  # one decoding step of the whole batch at batch size 1
IMAGE_BATCH_GROWTH = 0.15  # each extra row in the batch (images x 2 with guidance) adds this much of a step
IMAGE_PREVIEW_S = 0.3  # one preview through the VQ decoder
MAX_IMAGES = 16


def on_gpu(duration: Callable[..., float]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the spaces package is installed, else the identity."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def chat_duration(
    message: Any,
    history: Any = None,
    max_new_tokens: Any = chat.DEFAULT_MAX_NEW_TOKENS,
    temperature: Any = chat.DEFAULT_TEMPERATURE,
    top_p: Any = chat.DEFAULT_TOP_P,
    seed: Any = chat.DEFAULT_SEED,
) -> int:
    """GPU seconds for one chat answer: base + per token + per image in the conversation."""
    tokens = _clamp(_number(max_new_tokens, chat.DEFAULT_MAX_NEW_TOKENS), 1, 8192)
    files = message.get("files") if isinstance(message, dict) else None
    images = (len(files) if isinstance(files, list | tuple) else 0) + _count_files(history)
    return _seconds(CHAT_BASE_S + tokens * CHAT_PER_TOKEN_S + images * CHAT_PER_IMAGE_S)


def images_duration(
    prompt: Any,
    seed: Any = -1,
    guidance_scale: Any = 5.0,
    temperature: Any = 1.0,
    num_images: Any = 1,
    top_p: Any = 1.0,
    preview_every: Any = 48,
    preview_mode: Any = "auto",
) -> int:
    """GPU seconds for one text-to-image batch: base + 576 steps of the batch + previews."""
    images = _clamp(round(_number(num_images, 1)), 1, MAX_IMAGES)
    rows = images * (2 if _number(guidance_scale, 5.0) > 1 else 1)  # guidance runs a second, unconditioned row
    steps_s = IMAGE_TOKENS * IMAGE_STEP_S * (1 + IMAGE_BATCH_GROWTH * (rows - 1))
    every = _clamp(_number(preview_every, 48), 0, IMAGE_TOKENS)
    previews = 0 if every < 1 or preview_mode == "off" else (IMAGE_TOKENS - 1) // int(every)
    return _seconds(IMAGE_BASE_S + steps_s + previews * IMAGE_PREVIEW_S * images)


# --- helpers -----------------------------------------------------------------------------------


def _number(value: Any, default: float) -> float:
    """A finite float from an untrusted value, else `default`."""
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return number if math.isfinite(number) else default


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _seconds(estimate: float) -> int:
    return int(_clamp(math.ceil(estimate), MIN_DURATION_S, MAX_DURATION_S))


def _count_files(value: Any) -> int:
    """Files in a chat history, in the browser's shape ({"type": "file", ...}) or the API's ({"path": ...})."""
    if isinstance(value, dict):
        if "path" in value or value.get("type") == "file":
            return 1
        return sum(_count_files(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_count_files(item) for item in value)
    return 0
