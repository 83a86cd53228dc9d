"""Upscale 2x (`/upscale`, with `--upscaler`): one request, from the image to the larger PNG.

    prepared = prepare_upscale(backend, "photo.png")
    for item in run_upscale(backend, prepared): ...   # Heartbeats while waiting, Upscaling, then one Upscaled
    for event in upscale_image(backend, upscale_on_gpu, path):
        ...          # Started, Progress (waiting, then "Upscaling 42% · 5.1 s · about 7 s left"), then Result

The image is checked and read on the CPU (`prepare_upscale`); only then does `upscale_on_gpu` run it under
the model lock (borrowing a GPU on ZeroGPU). The PNG, `<name>-2x.png`, keeps the source's text and notes
the checkpoint it was enlarged with (by file name only: a server path stays on the server). While the
network runs, the status says how far it is, how long it has taken and about how long is left, after each of
its blocks (23 lines for Real-ESRGAN x2plus: `janus_demo.model.upscaler`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from janus_demo.model import upscaler
from janus_demo.service import intake
from janus_demo.service.downloads import download_folder, save_png
from janus_demo.service.drawing import guarded
from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.events import Event, Progress, Result, Started, Stopped
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.png_metadata import png_text
from janus_demo.service.status_lines import STARTING, about, waiting_text

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend

UpscaleFn = Callable[[Any], Iterator[Any]]
NO_UPSCALER = "This server has no upscaler (start it with --upscaler to offer Upscale 2x)."
UPSCALING = "Upscaling…"


@dataclass(frozen=True)
class PreparedUpscale:
    """A checked image to enlarge, with the PNG text it came with (kept in the result)."""

    image: Image.Image
    metadata: dict[str, str]
    name: str  # the source file's name without its extension ("image" for a data URL)


@dataclass(frozen=True)
class Upscaling:
    """How far an upscale is: the share of the network's work `done` after `elapsed` seconds."""

    done: float
    elapsed: float


@dataclass(frozen=True)
class Upscaled:
    """An upscale's result: the larger image (its `info` holds the source's PNG text and an "upscaled" note)."""

    image: Image.Image
    seconds: float


def prepare_upscale(backend: Backend, *settings: object, **named: object) -> PreparedUpscale:
    """Check an `/upscale` request and read its image (CPU); InputError (FieldError "image") says why not."""
    if backend.upscaler is None:
        raise InputError(NO_UPSCALER)
    schema = backend.schemas.upscale
    source = schema.check(schema.bind(*settings, **named))["image"]
    try:
        image = intake.load_image(source, backend.image_limits)
    except InputError as error:
        raise FieldError("image", f"Image: {error}") from None
    side = backend.limits.max_upscale_side
    if max(image.size) > side:
        raise FieldError(
            "image", f"Image is {image.width}x{image.height} pixels; upscaling takes at most {side} a side."
        )
    if problem := upscaler.memory_problem(backend.upscaler, image.width, image.height):
        raise InputError(problem)
    name = "image" if source.startswith("data:") else Path(source).stem
    return PreparedUpscale(image, png_text(image), name)


def run_upscale(
    backend: Backend, prepared: PreparedUpscale, stop: threading.Event | None = None, deadline_s: float | None = None
) -> Iterator[Any]:
    """Enlarge a prepared image under the model lock: Heartbeats while waiting (at most `deadline_s`, default
    `limits.request_deadline_s`), `Upscaling` as it starts and after each of the network's blocks, then one
    `Upscaled` (nothing more if stopped)."""
    stop = stop or threading.Event()
    up = backend.upscaler
    if up is None:
        raise InputError(NO_UPSCALER)

    def work(emit: Callable[[Upscaling | Upscaled], None]) -> None:
        start = time.perf_counter()
        emit(Upscaling(0.0, 0.0))
        try:
            image = up.upscale(prepared.image, stop, lambda done: emit(Upscaling(done, time.perf_counter() - start)))
        except upscaler.Stopped:
            return
        source = prepared.image
        note = f"{up.scale}x from {source.width}x{source.height} with {Path(up.source.rpartition(':')[2]).name}"
        image.info.update(prepared.metadata | {"upscaled": note})
        emit(Upscaled(image, time.perf_counter() - start))

    return backend.stream(work, stop, "upscale", deadline_s)


def upscale_duration(backend: Backend, prepared: PreparedUpscale) -> int:
    """Seconds a prepared upscale borrows a ZeroGPU GPU for (its work grows with the image's area)."""
    budget = backend.budget
    return budget.duration(budget.upscale_seconds(prepared.image.width, prepared.image.height))


def upscale_image(backend: Backend, upscale: UpscaleFn, image: object) -> Iterator[Event]:
    """The run of one upscale; a refusal or a failure is its last event, a `Problem`."""
    return guarded(_upscale_image(backend, upscale, image))


def _upscale_image(backend: Backend, upscale: UpscaleFn, image: object) -> Iterator[Event]:
    prepared = prepare_upscale(backend, image)
    yield Started(STARTING)
    with download_folder() as folder, contextlib.closing(upscale(prepared)) as stream:
        for item in stream:
            if isinstance(item, Heartbeat):
                yield Progress(waiting_text(item) if item.waiting else None)
                continue
            if isinstance(item, Upscaling):
                yield Progress(upscaling_text(item), round(100 * item.done), 100)
                continue
            source, larger = prepared.image, item.image
            path = save_png(larger, folder / f"{prepared.name}-2x.png")
            size = f"{source.width}×{source.height} → {larger.width}×{larger.height}"
            yield Result(f"Upscaled {size} in {item.seconds:.1f} s.", (path,))
            return
    yield Stopped("Stopped.")


def upscaling_text(progress: Upscaling) -> str:
    """'Upscaling 42% · 5.1 s · about 7 s left' ('Upscaling…' before the first block is done)."""
    if progress.done <= 0:
        return UPSCALING
    left = progress.elapsed * (1 - progress.done) / progress.done
    return f"Upscaling {progress.done:.0%} · {progress.elapsed:.1f} s · {about(left)} left"
