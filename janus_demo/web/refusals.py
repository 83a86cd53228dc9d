"""Refusals next to the input they concern, before a request is queued (gradio's `validator=`).

    names = ["message", "history", *settings]          # the event's inputs, as API field names
    textbox.submit(respond, [textbox, chatbot, *settings], ..., validator=validator(prepare, names, "message"))

A browser event's validator runs the service's own prepare step (the one check of every value, image
intake, tokenizing; CPU only) when the browser submits. A refusal never enters the queue, the model or a
GPU: gradio paints each message onto its input and nothing else changes, so every input stays usable and
keeps what was typed or attached, and no error badge appears. A `FieldError` is shown on the input of its
field; any other refusal (an unreadable image, too long a conversation) on the event's main input. A
field that sits in a collapsed group is also named on the main input, so the message is seen.

The API endpoints do not use validators: their refusals stay gradio errors (gradio_client's AppError)
with the same messages.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gradio as gr

from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.fields import NumberField

log = logging.getLogger("janus_demo")


def refusal(error: InputError, names: Sequence[str], main: str, groups: Mapping[str, str]) -> list[dict]:
    """One `gr.validate` per input: the message on its field's input (else on `main`); the rest valid."""
    field = error.field if isinstance(error, FieldError) and error.field in names else main
    messages = {field: str(error)}
    if field != main and field in groups:  # the field may be out of sight: say so where the user looks
        messages[main] = f"{groups[field]}: {error}"
    return [gr.validate(name not in messages, messages.get(name, "")) for name in names]


def validator(
    prepare: Callable[..., Any], names: Sequence[str], main: str, groups: Mapping[str, str] | None = None
) -> Callable[..., list[dict]]:
    """A validator for an event whose inputs are `names`: it calls `prepare` with the event's values.

    `groups` maps a field to the collapsible group it sits in (e.g. "Generation settings").
    """

    def validate(*values: Any) -> list[dict]:
        try:
            prepare(*values)
        except InputError as error:
            return refusal(error, names, main, groups or {})
        except Exception:  # noqa: BLE001 - a validator that raises breaks the submit; the event itself reports it
            log.exception("validation failed")
        return [gr.validate(True, "") for _ in names]

    return validate


def out_of_range_note(field: NumberField, clamps: bool) -> Callable[[Any], dict]:
    """A validator for one number input, run when the user leaves it: the field's own check, and for a
    slider (whose box the browser clamps to its range) the value it was set to."""

    def note(value: Any) -> dict:
        try:
            field.check(value)
        except FieldError as error:
            number = value if isinstance(value, int | float) and math.isfinite(value) else 0  # as the browser
            if clamps and not field.minimum <= number <= field.maximum:
                clamped = min(max(number, field.minimum), field.maximum)
                return gr.validate(False, f"{error} It was set to {clamped:g}.")
            return gr.validate(False, str(error))
        return gr.validate(True, "")

    return note
