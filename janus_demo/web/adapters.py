"""The two front ends of a run (`janus_demo.service.events`): the API's outputs and the browser's.

    api = api_function("generate_images", schema, summary, returns, lambda request, *values: api_outputs(
        text_to_image(backend, draw, *values), lambda event: (gallery_of(event), seed, status)))
    browser_outputs(run, lambda event: {status_box: event.status, ...})      # never raises

An API endpoint's parameters are its schema's fields, in order (`api_function` gives the function that
signature, so gradio names, types and documents them from the schema); a `Problem` becomes a gr.Error with the
message a person may read. The browser's mapping returns a dict of outputs {component: value}: components it
leaves out keep their value, and a `Problem` is shown like any other event.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr

from janus_demo.service.events import Event, Problem, Text
from janus_demo.service.fields import BooleanField, Field, NumberField
from janus_demo.service.schemas import Schema
from janus_demo.web.messages import problem_text

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend

T = TypeVar("T")
# A browser redraws the whole message for each update of a streamed answer (markdown, code highlighting): a
# model that writes 50-100 tokens a second on a GPU would keep a phone's page busy for nothing, and each update
# costs the server the chat's postprocessing. Ten a second reads as smooth streaming.
TEXT_UPDATES_PER_SECOND = 10.0


def shown(value: Any) -> Any:
    """`value`, or gradio's "leave this output as it is" for None."""
    return gr.skip() if value is None else value


def api_outputs(events: Iterator[Event], outputs: Callable[[Event], T | None]) -> Iterator[T]:
    """The API's view of a run: `outputs(event)` for each event (None: nothing to send); a Problem raises."""
    with contextlib.closing(events):
        for event in events:
            if isinstance(event, Problem):
                error = event.error
                raise error if isinstance(error, gr.Error) else gr.Error(problem_text(error), print_exception=False)
            if (output := outputs(event)) is not None:
                yield output


def browser_outputs(events: Iterator[Event], outputs: Callable[[Event], dict | None]) -> Iterator[dict]:
    """The browser's view of a run: `outputs(event)`, a dict {component: value}, for each event (None: nothing
    to send), a streamed answer at most `TEXT_UPDATES_PER_SECOND` times a second (`paced`). It never raises:
    `outputs` shows a Problem like any other event."""
    with contextlib.closing(paced(events)) as shown_events:
        for event in shown_events:
            if (output := outputs(event)) is not None:
                yield output


def paced(
    events: Iterator[Event], per_second: float = TEXT_UPDATES_PER_SECOND, clock: Callable[[], float] = time.monotonic
) -> Iterator[Event]:
    """`events` with at most `per_second` `Text` events a second. Each Text holds the whole answer so far, so one
    that comes sooner after the last one shown is held and replaced by the next; a held Text is shown before
    any other event, and the first token of an answer (`answering` turns true) is never held."""
    held: Text | None = None
    last_time, last_answering = -math.inf, False
    with contextlib.closing(events):
        for event in events:
            if isinstance(event, Text):
                now = clock()
                if now - last_time < 1 / per_second and event.answering == last_answering:
                    held = event
                    continue
                held, last_time, last_answering = None, now, event.answering
            elif held is not None:
                yield held
                held = None
            yield event
        if held is not None:
            yield held


def api_function(
    name: str,
    schema: Schema,
    summary: str,
    returns: str,
    body: Callable[..., Iterator[Any]],
    hints: dict[str, Any] | None = None,
    return_hint: Any = inspect.Signature.empty,
    required: tuple[str, ...] | None = None,
) -> Callable[..., Iterator[Any]]:
    """The event function `name(request, <schema's fields>)` that yields `body(request, *values)`'s items; its
    signature, type hints (`hints` overrides some) and docstring come from `schema`. With `required`, the other
    fields get their defaults (`gr.api` makes them optional)."""

    def endpoint(request: gr.Request, *values: Any) -> Iterator[Any]:
        yield from body(request, *values)

    types = {field.name: _python_type(field) for field in schema} | (hints or {})
    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)]
    empty = inspect.Parameter.empty
    parameters += [
        inspect.Parameter(
            field.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=empty if required is None or field.name in required else field.default,
            annotation=types[field.name],
        )
        for field in schema
    ]
    endpoint.__signature__ = inspect.Signature(parameters, return_annotation=return_hint)  # type: ignore[attr-defined]
    endpoint.__annotations__ = {"request": gr.Request, **types} | (
        {} if return_hint is inspect.Signature.empty else {"return": return_hint}
    )
    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = schema.docstring(summary, returns)
    return endpoint


def _python_type(field: Field) -> Any:
    if isinstance(field, NumberField):
        return int if field.integer else float
    if isinstance(field, BooleanField):
        return bool
    return Any if field.__class__.__name__ == "ImageField" else str


def image_concurrency(backend: Backend) -> int | str:
    """How many image requests gradio hands over at once: as many as the scheduler may draw together (it is
    the line that counts), else one at a time (gradio's default: the model lock, or ZeroGPU's own workers)."""
    return backend.scheduler.max_rows if backend.scheduler is not None else "default"
