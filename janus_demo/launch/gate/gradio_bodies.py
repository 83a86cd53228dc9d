"""The one adapter to gradio's request models: a body read exactly as gradio 6.31 will read it.

gradio validates `/queue/join`, `/run/...` and `/cancel` bodies with pydantic models in lax mode, so an
`fn_index` of `"50"` or `50.0` is function 50 to gradio; a gate that looked at JSON integers only was bypassed.
These models are not part of gradio's documented API: `tests/launch/test_gate_bodies.py` fails when gradio
changes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic
from gradio.data_classes import CancelBody, PredictBody

from janus_demo.launch.gate.asgi import Refused

MALFORMED = "Malformed request: {problem}."


@dataclass(frozen=True)
class Join:
    """What a queue join (or a queue-less run) asks for, as gradio understands it."""

    fn_index: int | None
    session_hash: str | None


@dataclass(frozen=True)
class Cancel:
    """What a cancel names, as gradio understands it: it cancels `event_id` whatever session the body names."""

    session_hash: str
    fn_index: int
    event_id: str


def read_join(value: Any) -> Join:
    """A join/run body as gradio's `PredictBody`; 422 for what gradio would refuse anyway."""
    body = _validated(PredictBody, value)
    return Join(body.fn_index, body.session_hash)


def read_cancel(value: Any) -> Cancel:
    body = _validated(CancelBody, value)
    return Cancel(body.session_hash, body.fn_index, body.event_id)


def _validated(model: type[pydantic.BaseModel], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as error:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise Refused(422, MALFORMED.format(problem=problem)) from None
