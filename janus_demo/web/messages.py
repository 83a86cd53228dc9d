"""What a person reads when a request fails: a known error's own text, anything else a generic line (the
error itself, with its traceback, goes to the log, never to the page).

    problem_text(error)    # the API raises it as gr.Error; the browser shows it in a status line after PROBLEM

The lines about a request that runs (waiting, in line, progress) are the service's:
`janus_demo.service.status_lines`.
"""

from __future__ import annotations

import logging

import gradio as gr

from janus_demo.service.errors import BusyError, InputError, OutOfMemory

log = logging.getLogger("janus_demo")

GENERIC_MESSAGE = "Something went wrong while generating. Please try again; the error was logged on the server."
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
