"""What a person reads about a request: errors without paths or tracebacks, waiting, stopping.

with user_facing_errors():     # the API: InputError / BusyError / OutOfMemory become gr.Error
    ...
problem_text(error)            # the browser: the same text, shown in a status line (no error badge)
waiting_text(heartbeat)        # "Waiting for the model · 2nd in line · about 40 s"
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gradio as gr

from janus_demo.service.errors import BusyError, InputError, OutOfMemory
from janus_demo.service.model_lock import Heartbeat

log = logging.getLogger("janus_demo")

GENERIC_MESSAGE = "Something went wrong while generating. Please try again; the error was logged on the server."
WAITING = "Waiting for the model…"
STARTING = "Starting…"
PROBLEM = "⚠️ "  # the mark of a status line that reports a problem
KNOWN_ERRORS = (InputError, BusyError, OutOfMemory)


def problem_text(error: BaseException) -> str:
    """The message for `error`: a known error's own text; anything else is logged and replaced."""
    if isinstance(error, gr.Error):
        return str(error.message)
    if isinstance(error, KNOWN_ERRORS):
        return str(error)
    log.error("generation failed", exc_info=error)
    return GENERIC_MESSAGE


@contextlib.contextmanager
def user_facing_errors() -> Iterator[None]:
    """Re-raise known errors as gr.Error; log unknown ones and show a generic message."""
    try:
        yield
    except gr.Error:
        raise
    except GeneratorExit:
        raise
    except Exception as error:
        raise gr.Error(problem_text(error), print_exception=False) from None


def waiting_text(beat: Heartbeat) -> str:
    """'Waiting for the model · 2nd in line · about 40 s' (the estimate once runs have been timed)."""
    if not beat.place:
        return WAITING
    text = f"{WAITING.rstrip('…')} · {ordinal(beat.place)} in line"
    return text + (f" · {about(beat.wait_s)}" if beat.wait_s is not None else "")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def about(seconds: float) -> str:
    """'about 40 s', 'about 3 min'; never 'about 0 s'."""
    if seconds >= 90:
        return f"about {round(seconds / 60)} min"
    return f"about {max(1, round(seconds))} s"
