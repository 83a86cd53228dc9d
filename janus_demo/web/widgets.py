"""Gradio inputs made from the request schemas: the label, range, step and default a field declares.

    settings = [widget(field) for field in backend.schemas.chat if field.name != "message"]

Events that take these inputs pass `preprocess=False`, so each value reaches the service layer exactly as
the client sent it and is checked there once, with a message that names the field. (gradio's own slider
check would refuse out-of-range values without naming the field, and crash on strings or null.) Minimum,
maximum and step still shape the widget in the browser.

A number typed out of range is never changed silently: when the user leaves the box, the field's own
check runs (`janus_demo.web.refusals.out_of_range_note`) and its message appears on the input, saying
the allowed range and, for a slider (the browser clamps its box), the value it was set to.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components import Component

from janus_demo.service.fields import BooleanField, ChoiceField, Field, NumberField
from janus_demo.web.refusals import out_of_range_note


def widget(field: Field, **overrides: Any) -> gr.components.Component:
    """The gradio input for `field`: a slider, a number box, a dropdown or a checkbox (text fields are laid out by
    hand)."""
    common = {"label": field.label, "info": field.help or None, "elem_id": f"field-{field.name}"} | overrides
    if isinstance(field, NumberField) and field.box:
        precision = 0 if field.integer else None
        box = gr.Number(field.default, minimum=field.minimum, maximum=field.maximum, precision=precision, **common)
        return note_out_of_range(box, box.blur, field, clamps=False)
    if isinstance(field, NumberField):
        slider = gr.Slider(field.minimum, field.maximum, value=field.default, step=field.step, **common)
        return note_out_of_range(slider, slider.release, field, clamps=True)
    if isinstance(field, ChoiceField):
        return gr.Dropdown(list(field.choices), value=field.default, **common)
    if isinstance(field, BooleanField):
        return gr.Checkbox(field.default, **common)
    raise TypeError(f"{field.name}: text fields are laid out by their tab")


def note_out_of_range(component: Component, event: Any, field: NumberField, clamps: bool) -> Component:
    """Check the value whenever the user leaves `component` (`event`: blur or release), showing any problem
    on it. The event itself does nothing; it takes no queue slot (`concurrency_limit=None`)."""
    event(
        lambda value: None,
        component,
        None,
        validator=out_of_range_note(field, clamps),
        preprocess=False,
        show_progress="hidden",
        concurrency_limit=None,
        api_visibility="private",
    )
    return component
