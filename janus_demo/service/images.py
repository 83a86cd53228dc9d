"""Text to image (`/generate_images`): one request's run, from its settings to the final PNGs.

    for event in text_to_image(backend, draw_on_gpu, "A fox", 7):   # settings in API order, or by name
        ...                                                          # janus_demo.service.events

The settings are checked and the prompt tokenized on the CPU (`Backend.prepare_images`); only then does
`draw_on_gpu` run it under the model lock (borrowing a GPU on ZeroGPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from janus_demo.service.drawing import DrawFn, drawing, guarded
from janus_demo.service.events import Event

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend


def text_to_image(backend: Backend, draw: DrawFn, *settings: object, **named: object) -> Iterator[Event]:
    """The run of one `/generate_images` request; a refusal or a failure is its last event, a `Problem`."""
    return guarded(_text_to_image(backend, draw, *settings, **named))


def _text_to_image(backend: Backend, draw: DrawFn, *settings: object, **named: object) -> Iterator[Event]:
    request = backend.prepare_images(*settings, **named)
    yield from drawing(draw, request, request)
