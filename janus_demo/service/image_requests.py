"""The drawing every image endpoint shares: a request made ready on the CPU, then drawn under the model lock.

    request = image_request(backend, values)                 # checked values -> the model's ImageRequest
    for progress in run_drawing(backend, lambda: request, {}, stop): ...    # ImageProgress or Heartbeat

`image_request` draws the seed, widens the preview spacing (more for a larger batch), tokenizes the prompt and
refuses a request that would not fit the GPU's free memory or, on ZeroGPU, the longest GPU loan (naming the
number of images). `run_drawing` streams the drawing, previews of a batch as small tiles (one per image), and
puts the settings that reproduce each image into its PNG text as it is decoded; it stops with BusyError at the
request's deadline, unless every token is drawn (the images being decoded are the user's).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from janus_demo.model import cuda_graphs, image_loop, memory
from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.service.errors import BusyError, FieldError, InputError
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.png_metadata import image_metadata
from janus_demo.service.preview_tiles import preview_spacing, preview_tiles
from janus_demo.service.scheduler import Joined
from janus_demo.service.schemas import concrete_seed

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend


def image_request(backend: Backend, values: dict[str, Any], forced_mask: Any = None) -> ImageRequest:
    """The model's request for checked `values` (seed drawn, previews widened, prompt tokenized), refused
    when it would not fit in the GPU's free memory or the GPU budget."""
    values["seed"] = concrete_seed(values["seed"])
    values["preview_every"] = preview_every(backend, values["preview_every"], values["num_images"])
    prompt_ids = image_loop.encode_prompt(backend.loaded, values["prompt"])
    request = ImageRequest(prompt_ids=prompt_ids, forced_mask=forced_mask, **values)
    forced = image_loop.forced_prefix(forced_mask, backend.image_shape.tokens)  # fed with the prompt
    problem = memory.image_memory_problem(
        backend.loaded,
        request.num_images,
        request.prompt_ids.shape[1] + forced,
        request.guided,
        memory.DECODE_CHUNK,
        reclaimable=cuda_graphs.held_bytes(backend.loaded.model),  # kept CUDA graphs make way for a new request
    )
    if problem:
        raise InputError(problem)
    check_gpu_time(backend, request.num_images, request.guided, previews(backend, request))
    return request


def check_drawing(backend: Backend, values: Mapping[str, Any]) -> None:
    """Checked drawing `values` against the GPU budget (the number of images a loan can draw): a browser
    validator's check, nothing tokenized."""
    every = preview_every(backend, values["preview_every"], values["num_images"])
    count = preview_count(backend, every, values.get("preview_mode", "auto"))
    check_gpu_time(backend, values["num_images"], image_loop.is_guided(values["guidance_scale"]), count)


def drawing_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """An edit's checked values as a text-to-image request's: full-distribution sampling, previews by device."""
    names = ("prompt", "seed", "guidance_scale", "temperature", "num_images", "preview_every")
    return {name: values[name] for name in names} | {"top_p": 1.0, "preview_mode": "auto"}


def drawing_seconds(backend: Backend, request: ImageRequest) -> float:
    """The GPU seconds a prepared request's drawing is estimated to take (ZeroGPU's figures)."""
    steps = backend.image_shape.tokens
    return backend.budget.image_seconds(
        backend.billions, request.num_images, request.guided, previews(backend, request), steps=steps
    )


def run_drawing(
    backend: Backend,
    make_request: Callable[[], ImageRequest],
    metadata: Mapping[str, str],
    stop: threading.Event | None,
    deadline_s: float | None = None,
) -> Iterator[ImageProgress | Heartbeat]:
    """Under the model lock: `make_request()`, then its drawing streamed, with `metadata` in the PNGs too. It
    stops with BusyError after `deadline_s` seconds (default `limits.request_deadline_s`)."""
    stop = stop or threading.Event()
    limit_s = deadline_s or backend.limits.request_deadline_s

    scheduled = backend.scheduler is not None

    def work(emit: Callable[[ImageProgress | Heartbeat | Joined], None]) -> None:
        waiting_until = time.monotonic() + limit_s  # through the scheduler: the wait for its batch
        deadline = None if scheduled else time.monotonic() + limit_s  # the drawing itself, from its start
        request = make_request()
        spaced = _spaced_previews(backend.limits.preview_interval_s)
        for progress in backend._draw(request, stop):
            if isinstance(progress, Heartbeat | Joined):  # the scheduler's line: waiting, then its batch
                deadline = time.monotonic() + limit_s if isinstance(progress, Joined) else deadline
                if deadline is None and time.monotonic() > waiting_until:
                    stop.set()
                    raise BusyError("The model is busy with other requests. Please try again shortly.")
                emit(progress)
                continue
            progress = spaced(progress)
            if progress.previews:  # small tiles: a batch's previews cost about one image
                progress.previews = preview_tiles(progress.previews)
            for image in progress.images or progress.decoded or ():  # into the PNG text (gradio copies it too)
                image.info.update(image_metadata(request, backend.loaded.model_id) | dict(metadata))
            emit(progress)
            if not scheduled:
                backend.lock.expect_done_in(progress.eta)  # what those waiting behind this request are told
            if deadline is not None and time.monotonic() > deadline and progress.step < progress.total:
                stop.set()
                raise BusyError(f"Image generation ran past the {limit_s:g} s limit and was stopped. Try fewer images.")

    return backend.stream(work, stop, "images", exclusive=not scheduled)


def preview_every(backend: Backend, every: int, num_images: int) -> int:
    """`every`, widened so that a request streams at most `limits.max_preview_updates` previews (fewer for a
    batch: `preview_tiles.preview_spacing`)."""
    return preview_spacing(every, backend.image_shape.tokens, backend.limits.max_preview_updates, num_images)


def previews(backend: Backend, request: ImageRequest) -> int:
    """How many previews a prepared request streams."""
    return preview_count(backend, request.preview_every, request.preview_mode)


def preview_count(backend: Backend, every: int, mode: str) -> int:
    """How many previews a drawing streams with one every `every` tokens (widened) in `mode`."""
    return 0 if every < 1 or mode == "off" else (backend.image_shape.tokens - 1) // every


def check_gpu_time(backend: Backend, num_images: int, guided: bool, previews: int) -> None:
    """Refuse, naming the number of images, a request whose estimate does not fit the GPU budget."""
    budget = backend.gpu_budget
    if budget is None:
        return
    steps = backend.image_shape.tokens
    estimate = budget.image_seconds(backend.billions, num_images, guided, previews, steps=steps)
    if budget.fits(estimate):
        return
    fit = budget.max_images(backend.billions, guided, steps=steps)
    how = "with guidance" if guided else "without guidance"
    fewer = f"at most {fit} fit {how}" if fit else f"not even one fits {how}"
    instead = " (or set Guidance scale to 1)" if guided else ""
    raise FieldError(
        "num_images",
        f"{num_images} images {how} need about {estimate:.0f} s of GPU time, and {budget.limit_text()}: "
        f"{fewer}. Ask for fewer images{instead}.",
    )


def _spaced_previews(interval_s: float) -> Callable[[ImageProgress], ImageProgress]:
    """Drop the previews of a progress that comes sooner than `interval_s` after the last preview kept
    (`Limits.preview_interval_s`)."""
    last = -math.inf

    def spaced(progress: ImageProgress) -> ImageProgress:
        nonlocal last
        if progress.previews and interval_s:
            if time.monotonic() - last < interval_s:
                progress.previews = None
            else:
                last = time.monotonic()
        return progress

    return spaced
