"""Input components whose values reach the handler exactly as a client sent them.

    seed = CheckedNumber(value=42, precision=0, minimum=0, label="Seed")   # looks and acts like gr.Number

Gradio's own server-side checks are not enough and get in the way: a Slider passes NaN, refuses
inf or -1 with "Value -1 is less than minimum value 1." (no field named), and a string, null or
NaN in a precision-0 Number crashes its preprocessing into an unexplained error. These subclasses
skip gradio's preprocessing so the backend's validators, which name each field ("Temperature must
be a number between 0 and 2 (got nan)."), judge every value. Minimum, maximum and choices still
shape the widget in the browser. `is_template` makes the browser render them as the parent.
"""

from __future__ import annotations

from typing import Any

import gradio as gr


class CheckedSlider(gr.Slider):
    """A gr.Slider whose value is passed on unchecked; `janus_demo.service.validation` checks it."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class CheckedNumber(gr.Number):
    """A gr.Number whose value is passed on unchecked and unrounded; `janus_demo.service.validation` checks it."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload


class CheckedDropdown(gr.Dropdown):
    """A gr.Dropdown whose value is passed on unchecked; `janus_demo.service.validation` checks it."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return payload
