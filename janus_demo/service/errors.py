"""Errors whose message is meant for the person using the demo.

The UI shows `InputError`, `BusyError` and `OutOfMemory` messages as they are (gr.Error); any other exception
is logged and replaced by a generic message, so paths and tracebacks never reach a browser.
"""


class InputError(ValueError):
    """The request is invalid (a bad number, an unreadable image, too long a prompt...)."""


class OutOfMemory(RuntimeError):
    """The device ran out of memory for this request; memory was released, smaller requests can work."""


class BusyError(RuntimeError):
    """The model is busy or the request ran past its deadline; trying again later can work."""
