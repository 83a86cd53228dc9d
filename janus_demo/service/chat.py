"""Chat (`/chat`): one turn's run, from the message to the whole answer.

    for event in chat_turn(backend, answer_on_gpu, {"text": "Hi", "files": []}, history, 512):
        ...                                            # Started, then Text per token (and while waiting), Result

The turn is checked, its images read and its conversation tokenized on the CPU (`Backend.prepare_chat`);
only then does `answer_on_gpu` run it under the model lock (borrowing a GPU on ZeroGPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from janus_demo.model.chat import ChatChunk
from janus_demo.service.drawing import guarded
from janus_demo.service.events import Event, Result, Started, Text
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.status_lines import READING, STARTING, answer_status, waiting_text

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend, PreparedChat

AnswerFn = Callable[[Any], Iterator[ChatChunk | Heartbeat]]


def chat_turn(
    backend: Backend, answer: AnswerFn, message: object, history: object, *settings: object
) -> Iterator[Event]:
    """The run of one chat turn: `Started`, `Text` updates, then a `Result` with the whole answer; a refusal or
    a failure is its last event, a `Problem`."""
    return guarded(_chat_turn(backend, answer, message, history, *settings))


def _chat_turn(backend: Backend, answer: AnswerFn, message: object, history: object, *settings: object):
    prepared = backend.prepare_chat(message, history, *settings)
    text = Text("", STARTING, answering=False)
    for event in answering(answer, prepared):
        text = event if isinstance(event, Text) else text
        yield event
    yield Result(text.status, text=text.text)


def answering(answer: AnswerFn, prepared: PreparedChat) -> Iterator[Started | Text]:
    """`Started` at once, then the answer so far with its status: one per token, and one per heartbeat (its
    place in line while it waits)."""
    yield Started(STARTING)
    text, status, answered = "", STARTING, False
    with contextlib.closing(answer(prepared)) as chunks:
        for chunk in chunks:
            if isinstance(chunk, Heartbeat):  # yielding it is what lets gradio stop us while nothing happens
                status = waiting_text(chunk) if chunk.waiting else status if answered else READING
            else:
                text, status, answered = chunk.text, answer_status(chunk), True
            yield Text(text, status, answered)
