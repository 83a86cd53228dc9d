"""Errors whose message is meant for the person using the demo.

The web layer shows `InputError` (and `FieldError`, which names the input it concerns), `BusyError` and
`OutOfMemory` messages as they are; any other exception is logged and replaced by a generic message, so
paths and tracebacks never reach a browser.
"""


class InputError(ValueError):
    """The request is invalid (a bad number, an unreadable image, too long a conversation...)."""


class FieldError(InputError):
    """One input of a request is invalid; `field` is its API parameter name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class OutOfMemory(RuntimeError):
    """The device ran out of memory for this request; memory was released, smaller requests can work."""


class BusyError(RuntimeError):
    """The model is busy or the request ran past its deadline; trying again later can work."""
