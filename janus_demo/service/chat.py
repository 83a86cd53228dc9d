"""Chat (`/chat`): one turn, from the message to the whole answer.

    prepared = prepare_chat(backend, {"text": "What is this?", "files": ["cat.png"]}, history, 512)
    for chunk in run_chat(backend, prepared): ...       # ChatChunk (the answer so far) or Heartbeat
    for event in chat_turn(backend, answer_on_gpu, draw_on_gpu, {"text": "Hi", "files": []}, history, 512):
        ...                                              # Started, then Text per token (and while waiting), Result

`prepare_chat` checks the turn against its schema, reads its images safely, parses the conversation once and
tokenizes it (CPU): everything that can refuse it happens there, before it waits for the model, and on
ZeroGPU before a GPU is borrowed (`check_chat` is its cheap part, for a browser validator). The prepared turn
is plain data (it crosses into ZeroGPU's worker process). `run_chat` answers it under the model lock; closing
the stream stops the generation within one token. `chat_turn` is the endpoint's run as events.

A message that starts with `/imagine ` draws the rest of its text instead (`imagine_prompt`): one image, with
the Text to image settings' other defaults, through the same run as `/generate_images`
(`janus_demo.service.images`: its checks, the GPU-time check, the scheduler's line). Its events are that
run's (previews, then a `Result` with the PNG) and its answer names the file and the seed: "Drew
janus-7-1.png (seed 7)." Shown in the chat (the image in the assistant's message), the image is part of the
conversation: the next question is asked about it (`janus_demo.service.conversation`).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from janus_demo.model import chat
from janus_demo.model.chat import ChatChunk, ChatOptions
from janus_demo.service import images, intake
from janus_demo.service.conversation import Conversation, parse_conversation, parse_message
from janus_demo.service.drawing import DrawFn, guarded
from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.events import Event, Result, Started, Text
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.schemas import concrete_seed
from janus_demo.service.status_lines import READING, STARTING, answer_status, waiting_text

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend

AnswerFn = Callable[[Any], Iterator[ChatChunk | Heartbeat]]
UNREADABLE_IMAGE = "[an image that is no longer available]"  # what the model reads instead of a lost image
CONVERSATION_TOO_LONG = "This conversation is too long; clear it and start again."
IMAGES_ONLY = "This server only draws images (it was started with --images-only): chat is off."
IMAGINE = re.compile(r"\s*/imagine(?:\s|$)")  # a message that draws: "/imagine a red fox"
IMAGES_DRAWN = 1  # a drawing in a conversation is one image (each costs the model 578 tokens in every later turn)
EMPTY_DRAWING = "Say what to draw after /imagine, e.g. “/imagine a red fox”."
DRAWING_WITH_IMAGES = "/imagine draws from words only: remove the attached images (or ask about them without /imagine)."
# Tokenizing costs time in proportion to the text: a conversation with more characters than this many per
# allowed token is refused before it is tokenized (real text averages about 4 characters per token).
MAX_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class PreparedChat:
    """A checked chat turn, tokenized: what the model runs, and what to tell the user about it."""

    inputs: dict[str, Any]  # CPU tensors from the processor
    options: ChatOptions  # the seed is concrete; the deadline is set when the run starts
    images: int  # images in the conversation
    notes: tuple[str, ...] = ()  # e.g. older turns left out


def prepare_chat(
    backend: Backend, message: object, history: object = None, *settings: object, **named: object
) -> PreparedChat:
    """Check a chat turn and tokenize its conversation (CPU); InputError says what is wrong.

    `settings` are the `/chat` parameters after the message, positional in API order or by name. Only the
    newest `limits.max_history_turns` user turns are used, and earlier images that can no longer be read are
    left out; the notes say so.
    """
    values, conversation = _checked_turn(backend, message, history, *settings, **named)
    images, stand_ins = _load_images(backend, conversation)
    inputs = _encode(backend, conversation, images, stand_ins)
    seed = concrete_seed(values["seed"])
    options = ChatOptions(values["max_new_tokens"], values["temperature"], values["top_p"], seed)
    return PreparedChat(inputs, options, len(images), _notes(backend, conversation, stand_ins))


def check_chat(backend: Backend, message: object, history: object = None, *settings: object, **named: object) -> None:
    """`prepare_chat`'s cheap checks (a browser validator's): the values, the conversation's images counted
    and the new ones sniffed (not decoded), its length in characters; nothing is tokenized. A `/imagine`
    message gets a drawing's checks instead (`images.check_images`: the values and the GPU time)."""
    if imagine_prompt(message) is not None:
        images.check_images(backend, **drawing_values(backend, message, history, *settings, **named))
        return
    _, conversation = _checked_turn(backend, message, history, *settings, **named)
    paths = conversation.image_paths
    new = paths[len(paths) - conversation.new_images :]
    intake.check_images(new, backend.image_limits, max_images=backend.limits.max_images_per_conversation)
    _check_length(backend, conversation)


def run_chat(
    backend: Backend, prepared: PreparedChat, stop: threading.Event | None = None, deadline_s: float | None = None
) -> Iterator[ChatChunk | Heartbeat]:
    """Answer a prepared turn under the model lock, streaming ChatChunks that carry its notes; the answer
    stops ("stopped at the time limit") after `deadline_s` seconds (default `limits.request_deadline_s`)."""
    stop = stop or threading.Event()
    limit_s = deadline_s or backend.limits.request_deadline_s
    options = replace(prepared.options, deadline=time.monotonic() + limit_s)
    stream = backend.stream(lambda emit: backend._answer(prepared.inputs, options, stop, emit), stop, "chat")
    return _with_note(stream, "; ".join(prepared.notes)) if prepared.notes else stream


def chat_duration(backend: Backend, prepared: PreparedChat) -> int:
    """Seconds a prepared chat turn borrows a ZeroGPU GPU for (its own estimate plus the margin)."""
    return backend.budget.chat_duration(backend.billions, prepared.options.max_new_tokens, prepared.images)


def chat_turn(
    backend: Backend, answer: AnswerFn, draw: DrawFn, message: object, history: object, *settings: object
) -> Iterator[Event]:
    """The run of one chat turn: `Started`, `Text` updates, then a `Result` with the whole answer; a refusal or
    a failure is its last event, a `Problem`. A `/imagine` message is drawn by `draw` (`drawing_turn`)."""
    if imagine_prompt(message) is not None:
        return guarded(drawing_turn(backend, draw, message, history, *settings))
    return guarded(_chat_turn(backend, answer, message, history, *settings))


def _chat_turn(backend: Backend, answer: AnswerFn, message: object, history: object, *settings: object):
    prepared = prepare_chat(backend, message, history, *settings)
    text = Text("", STARTING, answering=False)
    for event in answering(answer, prepared):
        text = event if isinstance(event, Text) else text
        yield event
    yield Result(text.status, text=text.text)


def drawing_turn(backend: Backend, draw: DrawFn, message: object, history: object, *settings: object):
    """A `/imagine` turn: the run of `/generate_images` for its prompt (`Started`, `Progress`, `Preview`, ...),
    its `Result` answering with the file's name and the seed."""
    seed = None
    for event in images.text_to_image(backend, draw, **drawing_values(backend, message, history, *settings)):
        seed = event.seed if isinstance(event, Started) else seed
        yield replace(event, text=drawn_text(event.files, seed)) if isinstance(event, Result) else event


def imagine_prompt(message: object) -> str | None:
    """What a `/imagine <prompt>` message draws ("" for a bare `/imagine`); None for any other message (a
    malformed one too: the chat's own checks say what is wrong with it)."""
    text = message.get("text") if isinstance(message, dict) else message
    found = IMAGINE.match(text) if isinstance(text, str) else None
    return text[found.end() :].strip() if found else None


def drawing_values(
    backend: Backend, message: object, history: object, *settings: object, **named: object
) -> dict[str, Any]:
    """A `/imagine` turn checked as any message (its text's length, the chat's settings), then its values for
    `/generate_images`: the prompt, one image; the other settings are that schema's defaults. Refused with
    images attached, with nothing to draw, or when the conversation has no room for one more image."""
    if not backend.can_chat:
        raise InputError(IMAGES_ONLY)
    text, paths = parse_message(message)
    schema = backend.schemas.chat
    schema.check(schema.bind(text, *settings, **named))
    if paths:
        raise FieldError("message", DRAWING_WITH_IMAGES)
    prompt = imagine_prompt(text)
    if not prompt:
        raise FieldError("message", EMPTY_DRAWING)
    count = len(parse_conversation(history, "", [], backend.limits.max_history_turns).image_paths)
    limit = backend.limits.max_images_per_conversation
    if count + IMAGES_DRAWN > limit:
        raise InputError(
            f"This conversation has {count} images; the limit is {limit}, so there is no room for a drawing. "
            "Please start a new chat."
        )
    return {"prompt": prompt, "num_images": IMAGES_DRAWN}


def drawn_text(files: tuple[Any, ...], seed: int | None) -> str:
    """The answer to a drawing: 'Drew janus-7-1.png (seed 7).'"""
    return f"Drew {', '.join(Path(file).name for file in files)} (seed {seed})."


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


# --- preparing a turn


def _checked_turn(
    backend: Backend, message: object, history: object, *settings: object, **named: object
) -> tuple[dict[str, Any], Conversation]:
    """A turn's values checked, its conversation parsed, its images counted."""
    if not backend.can_chat:
        raise InputError(IMAGES_ONLY)
    raw_text, image_paths = parse_message(message)
    schema = backend.schemas.chat
    values = schema.check(schema.bind(raw_text, *settings, **named))
    conversation = parse_conversation(history, values["message"], image_paths, backend.limits.max_history_turns)
    if conversation.new_images == 0 and not values["message"].strip():
        raise InputError("Type a message or attach an image.")
    count, limit = len(conversation.image_paths), backend.limits.max_images_per_conversation
    if count > limit:
        raise InputError(
            f"This conversation has {count} images; the limit is {limit}. Please clear it and start a new one."
        )
    return values, conversation


def _load_images(backend: Backend, conversation: Conversation) -> tuple[list[Image.Image], dict[int, str]]:
    """The conversation's images: the new message's must all be readable (else InputError); an earlier one
    that no longer is (a refused upload the browser kept, a file swept from gradio's cache) is left out."""
    paths, limits = conversation.image_paths, backend.image_limits
    earlier, new = paths[: len(paths) - conversation.new_images], paths[len(paths) - conversation.new_images :]
    images, stand_ins = [], {}
    for index, path in enumerate(earlier):
        try:
            images.append(intake.load_image(path, limits))
        except InputError:
            stand_ins[index] = UNREADABLE_IMAGE
    images += intake.load_images(new, limits, max_images=backend.limits.max_images_per_conversation)
    return images, stand_ins


def _encode(
    backend: Backend, conversation: Conversation, images: list[Image.Image], stand_ins: dict[int, str]
) -> dict[str, Any]:
    """Tokenize the conversation (CPU); refuse one over `max_context_tokens`, by its length first."""
    limit = backend.limits.max_context_tokens
    _check_length(backend, conversation)
    inputs = chat.encode_conversation(backend.loaded, conversation.janus_messages(stand_ins), images)
    if chat.prompt_length(inputs) > limit:
        raise InputError(
            f"{CONVERSATION_TOO_LONG} (It is {chat.prompt_length(inputs):,} tokens; the limit is {limit:,}.)"
        )
    return inputs


def _check_length(backend: Backend, conversation: Conversation) -> None:
    """Refuse a conversation too long to tokenize, by its characters (before any tokenizing)."""
    if conversation.text_length() > backend.limits.max_context_tokens * MAX_CHARS_PER_TOKEN:
        raise InputError(f"{CONVERSATION_TOO_LONG} (It has {conversation.text_length():,} characters.)")


def _notes(backend: Backend, conversation: Conversation, stand_ins: dict[int, str]) -> tuple[str, ...]:
    notes = []
    if conversation.left_out_turns:
        notes.append(f"only the last {backend.limits.max_history_turns} turns of this conversation were used")
    if stand_ins:
        notes.append(f"{len(stand_ins)} earlier image(s) could not be read and were left out")
    if conversation.unreadable_entries:
        notes.append(f"{conversation.unreadable_entries} unreadable earlier message(s) were left out")
    return tuple(notes)


def _with_note(stream: Iterator[ChatChunk | Heartbeat], note: str) -> Iterator[ChatChunk | Heartbeat]:
    """The chunks of `stream` carrying `note`; closing this closes `stream` (which stops the generation)."""
    with contextlib.closing(stream):
        for chunk in stream:
            yield chunk if isinstance(chunk, Heartbeat) else replace(chunk, note=note)
