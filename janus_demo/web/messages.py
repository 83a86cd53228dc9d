"""Exceptions -> messages a person can act on, and never a path or a traceback.

with user_facing_errors():
    ...  # InputError / BusyError / OutOfMemory become gr.Error with their text; anything else is logged
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gradio as gr

from janus_demo.service.errors import BusyError, InputError, OutOfMemory

log = logging.getLogger("janus_demo")

GENERIC_MESSAGE = "Something went wrong while generating. Please try again; the error was logged on the server."
WAITING = "Waiting for the model…"


@contextlib.contextmanager
def user_facing_errors() -> Iterator[None]:
    """Re-raise known errors as gr.Error; log unknown ones and show a generic message."""
    try:
        yield
    except gr.Error:
        raise
    except (InputError, BusyError, OutOfMemory) as error:
        raise gr.Error(str(error), print_exception=False) from None
    except GeneratorExit:
        raise
    except Exception:
        log.exception("generation failed")
        raise gr.Error(GENERIC_MESSAGE, print_exception=False) from None
