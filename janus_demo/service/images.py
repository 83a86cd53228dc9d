"""Text to image (`/generate_images`): one request, from its settings to the final PNGs.

    request = prepare_images(backend, "A fox", 7)                 # settings in API order, or by name
    for progress in run_images(backend, request): ...             # ImageProgress or Heartbeat
    for event in text_to_image(backend, draw_on_gpu, "A fox", 7): ...   # janus_demo.service.events

The settings are checked and the prompt tokenized on the CPU (`prepare_images`; `check_images` is its cheap
part, for a browser validator); only then does `draw_on_gpu` run it under the model lock (borrowing a GPU on
ZeroGPU). The drawing itself is the one every image endpoint shares (`janus_demo.service.image_requests`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.service.drawing import DrawFn, drawing, guarded
from janus_demo.service.events import Event
from janus_demo.service.image_requests import check_drawing, drawing_seconds, image_request, run_drawing
from janus_demo.service.model_lock import Heartbeat

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend


def prepare_images(backend: Backend, *settings: object, **named: object) -> ImageRequest:
    """Check a text-to-image request and tokenize its prompt (CPU); InputError says what is wrong.

    `settings` are the `/generate_images` parameters, positional in API order or by name; seed -1 becomes a
    random seed (the request carries the one used).
    """
    schema = backend.schemas.images
    return image_request(backend, schema.check(schema.bind(*settings, **named)))


def check_images(backend: Backend, *settings: object, **named: object) -> None:
    """`prepare_images`' cheap checks (a browser validator's): the values and the GPU time; nothing tokenized."""
    schema = backend.schemas.images
    check_drawing(backend, schema.check(schema.bind(*settings, **named)))


def run_images(
    backend: Backend, request: ImageRequest, stop: threading.Event | None = None, deadline_s: float | None = None
) -> Iterator[ImageProgress | Heartbeat]:
    """Draw a prepared request under the model lock: progress, previews, then the final images (their PNG
    metadata holds the settings that reproduce them). It stops with BusyError after `deadline_s` seconds
    (default `limits.request_deadline_s`)."""
    return run_drawing(backend, lambda: request, {}, stop, deadline_s)


def images_duration(backend: Backend, request: ImageRequest) -> int:
    """Seconds a prepared text-to-image request borrows a ZeroGPU GPU for."""
    return backend.budget.duration(drawing_seconds(backend, request))


def text_to_image(backend: Backend, draw: DrawFn, *settings: object, **named: object) -> Iterator[Event]:
    """The run of one `/generate_images` request; a refusal or a failure is its last event, a `Problem`."""
    return guarded(_text_to_image(backend, draw, *settings, **named))


def _text_to_image(backend: Backend, draw: DrawFn, *settings: object, **named: object) -> Iterator[Event]:
    request = prepare_images(backend, *settings, **named)
    yield from drawing(draw, request, request)
