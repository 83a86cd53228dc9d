"""Gradio inputs made from the request schemas: the label, range, step and default a field declares.

    settings = [widget(field) for field in backend.schemas.chat if field.name != "message"]

Events that take these inputs pass `preprocess=False`, so each value reaches the service layer exactly as
the client sent it and is checked there once, with a message that names the field. (gradio's own slider
check would refuse out-of-range values without naming the field, and crash on strings or null.) Minimum,
maximum and step still shape the widget in the browser.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from janus_demo.service.fields import ChoiceField, Field, NumberField


def widget(field: Field, **overrides: Any) -> gr.components.Component:
    """The gradio input for `field`: a slider, a number box or a dropdown (text fields are laid out by hand)."""
    common = {"label": field.label, "info": field.help or None, "elem_id": f"field-{field.name}"} | overrides
    if isinstance(field, NumberField) and field.box:
        precision = 0 if field.integer else None
        return gr.Number(field.default, minimum=field.minimum, maximum=field.maximum, precision=precision, **common)
    if isinstance(field, NumberField):
        return gr.Slider(field.minimum, field.maximum, value=field.default, step=field.step, **common)
    if isinstance(field, ChoiceField):
        return gr.Dropdown(list(field.choices), value=field.default, **common)
    raise TypeError(f"{field.name}: text fields are laid out by their tab")
