"""ZeroGPU glue: `@on_gpu(duration=...)` is `@spaces.GPU(duration=...)`, or nothing without `spaces`; every
function that borrows a GPU is made by `gpu_function`.

    answer_on_gpu = gpu_function("answer_on_gpu", run_chat, chat_duration, backend)   # janus_demo.service.chat
    for chunk in answer_on_gpu(prepared): ...      # in the server process; an error in the loan is raised here

On a ZeroGPU Space (SPACES_ZERO_GPU=true) each call of a decorated function borrows a GPU in a worker
process forked from the server, for `duration` seconds: its arguments and what it yields are pickled. The
decorated functions take requests the service layer has already checked and prepared on the CPU, so a
refused request never borrows a GPU, and `duration` (a callable with the function's own signature) sizes
the loan from the checked request and the loaded model (`janus_demo.service.gpu_budget`); the run stops
itself before the loan ends, so the app's own "stopped at the time limit" comes first.

spaces keeps a worker (and the weights it has on the GPU) for the next call only when the function ends
normally: an exception makes the next request fork a new worker and copy the weights again, inside its own
loan. So errors never leave a decorated function: `kept_warm` ends its stream with a `Failed` marker that
carries the error, and `raised` raises it again in the server process, where it becomes the same message
as without ZeroGPU. Everywhere else spaces.GPU returns the function unchanged (without the package,
`on_gpu` does the same), and the markers work the same way.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from janus_demo.service.backend import Backend
from janus_demo.web.messages import KNOWN_ERRORS, problem_text

try:
    import spaces
except ModuleNotFoundError as missing:  # without the package, nothing to wrap
    if missing.name != "spaces":
        raise
    spaces = None

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def on_gpu(duration: Callable[..., float]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` when the spaces package is installed, else the identity."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def gpu_function(
    name: str,
    run: Callable[..., Iterator[T]],
    duration: Callable[[Backend, Any], int],
    backend: Backend,
) -> Callable[[Any], Iterator[T]]:
    """A function that runs `run(backend, prepared, deadline_s=...)` in a function `name` that borrows a GPU on
    ZeroGPU for `duration(backend, prepared)` seconds; the run stops itself before the loan ends (with
    `backend`'s GPU budget; else at the request's own limit). Errors inside the loan end it normally and are
    raised again here."""

    def borrowed(prepared: Any) -> Iterator[T | Failed]:
        limit = backend.budget.run_deadline(duration(backend, prepared)) if backend.gpu_budget else None
        yield from kept_warm(run(backend, prepared, deadline_s=limit))

    def sized(prepared: Any) -> int:  # spaces calls it with the function's own arguments
        return duration(backend, prepared)

    borrowed.__name__ = borrowed.__qualname__ = name
    on_loan = on_gpu(duration=sized)(borrowed)

    def in_server(prepared: Any) -> Iterator[T]:
        yield from raised(on_loan(prepared))

    in_server.__name__ = in_server.__qualname__ = name
    return in_server


@dataclass(frozen=True)
class Failed:
    """The error that ended a GPU function's stream, carried out as its last item (see the module docstring)."""

    error: Exception


def kept_warm(stream: Iterator[T]) -> Iterator[T | Failed]:
    """Inside a GPU function: `stream`'s items; an error ends it normally, with a `Failed` marker."""
    try:
        with contextlib.closing(stream):
            yield from stream
    except Exception as error:  # noqa: BLE001 - carried to the server process, which raises it again
        yield Failed(portable(error))


def raised(stream: Iterator[T | Failed]) -> Iterator[T]:
    """In the server process: a GPU function's items, raising the error its `Failed` marker carries."""
    with contextlib.closing(stream):
        for item in stream:
            if isinstance(item, Failed):
                raise item.error
            yield item


def portable(error: Exception) -> Exception:
    """`error` itself when the user is shown its text and it survives pickling (it crosses back from the worker);
    otherwise a gr.Error with the message the user would see (an unknown error is logged here, with its traceback)."""
    if isinstance(error, (*KNOWN_ERRORS, gr.Error)):
        with contextlib.suppress(Exception):
            return pickle.loads(pickle.dumps(error))
    return gr.Error(problem_text(error), print_exception=False)
