"""The edits of a photo (`/complete_image`, `/redraw_region`, `/variations`, and drawing from an edited
description): each request's run, from its photo and settings to the final PNGs.

    for event in edit(backend.prepare_redraw, edit_on_gpu, photo, mask, "A cat", 7): ...
    for event in variations(backend, answer_on_gpu, edit_on_gpu, photo, 4): ...   # Text (the description) first

The request is checked, its photo read and cropped on the CPU (`Backend.prepare_*`); only then does the GPU
function run it under the model lock. Variations ask the model for a description first (a chat turn), then
draw from it with the settings checked with the photo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from janus_demo.service.chat import AnswerFn, answering
from janus_demo.service.drawing import DrawFn, drawing, guarded
from janus_demo.service.events import Event, Started, Text
from janus_demo.service.status_lines import DESCRIBING, STARTING

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend, PreparedEdit


def edit(prepare: Callable[..., PreparedEdit], draw: DrawFn, *values: object) -> Iterator[Event]:
    """The run of one edit that `prepare(*values)` prepares (complete, redraw, or from a description)."""
    return guarded(_edit(prepare, draw, *values))


def _edit(prepare: Callable[..., PreparedEdit], draw: DrawFn, *values: object) -> Iterator[Event]:
    prepared = prepare(*values)
    yield from drawing(draw, prepared, prepared.request, crop=prepared.crop)


def variations(backend: Backend, answer: AnswerFn, draw: DrawFn, *values: object) -> Iterator[Event]:
    """The run of one `/variations` request: `Started` (the seed, the crop), the description as `Text` while the
    model writes it, then the drawing from it (its `Started` carries the description as the prompt)."""
    return guarded(_variations(backend, answer, draw, *values))


def _variations(backend: Backend, answer: AnswerFn, draw: DrawFn, *values: object) -> Iterator[Event]:
    prepared = backend.prepare_variations(*values)
    yield Started(STARTING, prepared.settings["seed"], prepared.crop, total=backend.image_shape.tokens)
    description = ""
    for event in answering(answer, prepared.describe):
        description = event.text if isinstance(event, Text) else description
        yield Text(description, f"{DESCRIBING} · {event.status}", getattr(event, "answering", False))
    described = backend.described(description, prepared.settings, prepared.source_size)
    yield from drawing(draw, described, described.request, prompt=described.request.prompt)
