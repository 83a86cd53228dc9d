"""A chat history in gradio 6's message shape, plus the new message, parsed once into a typed Conversation.

    conversation = parse_conversation(history, {"text": "And now?", "files": ["b.png"]}, max_turns=20)
    conversation.image_paths          # every image, in the order the model reads them
    conversation.janus_messages()     # what `processor.apply_chat_template` takes

gradio 6 hands over a history as a list of messages, each
    {"role": "user", "content": [{"type": "file", "file": {"path": "a.png"}}, {"type": "text", "text": "Hi"}]}
(the Chatbot's value, and what the app keeps per API session). Consecutive messages of one role are one
turn; "thinking"/status bubbles (metadata with a title) are not part of the conversation; a history entry
that cannot be read is left out and counted, so one forged or broken turn never breaks the later ones.
An image in an assistant's message (one drawn in the chat: `/imagine`) is read as if the user had attached
it, so the next question can be about it (Janus reads images in user turns only).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from janus_demo.service.errors import FieldError
from janus_demo.service.fields import clean_text

Message = dict[str, Any]
ROLES = ("user", "assistant")


@dataclass(frozen=True)
class ImagePath:
    """An image in the conversation, by the path of its file."""

    path: str


Part = str | ImagePath


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Conversation:
    """The turns the model reads (oldest first, ending with the new user turn) and what was left out."""

    turns: tuple[Turn, ...]
    new_images: int  # images attached to the new message (the last of `image_paths`)
    left_out_turns: int = 0  # older user turns beyond `max_turns`
    unreadable_entries: int = 0  # history entries that were not messages of gradio 6's shape

    @property
    def image_paths(self) -> list[str]:
        return [part.path for turn in self.turns for part in turn.parts if isinstance(part, ImagePath)]

    def text_length(self) -> int:
        return sum(len(part) for turn in self.turns for part in turn.parts if isinstance(part, str))

    def janus_messages(self, stand_ins: Mapping[int, str] | None = None) -> list[Message]:
        """The turns as Janus chat messages; the images numbered in `stand_ins` become that text instead."""
        stand_ins, count, messages = stand_ins or {}, 0, []
        for turn in self.turns:
            content = []
            for part in turn.parts:
                if isinstance(part, ImagePath):
                    text = stand_ins.get(count)
                    content.append({"type": "image"} if text is None else {"type": "text", "text": text})
                    count += 1
                else:
                    content.append({"type": "text", "text": part})
            messages.append({"role": turn.role, "content": content})
        return messages


def parse_message(message: object) -> tuple[str, list[str]]:
    """The new message, {"text": str, "files": [path or {"path": ...}]}, as (text, image paths)."""
    if isinstance(message, str):
        return message, []
    if not isinstance(message, Mapping):
        raise FieldError("message", 'Message must be {"text": ..., "files": [...]}.')
    text, files = message.get("text") or "", message.get("files") or []
    if not isinstance(text, str):
        raise FieldError("message", "Message text must be text.")
    if not isinstance(files, list | tuple) or not all(_file_path(item) for item in files):
        raise FieldError("message", 'Message files must be a list of uploaded files or "data:image/...;base64," URLs.')
    return text, [_file_path(item) for item in files]


def parse_conversation(history: object, text: str, image_paths: list[str], max_turns: int) -> Conversation:
    """History (gradio 6 messages) plus the new message's text and images, newest `max_turns` user turns."""
    entries = history if isinstance(history, list | tuple) else []
    turns: list[Turn] = []
    unreadable = 0 if isinstance(history, list | tuple) or history is None else 1
    for entry in entries:
        parsed = _entry(entry)
        if parsed is None:
            unreadable += 1
        else:
            for turn in _as_read(parsed):
                _append(turns, turn)
    new = Turn("user", (*(ImagePath(path) for path in image_paths), *([text] if text.strip() else [])))
    _append(turns, new)
    while turns and turns[0].role != "user":
        turns.pop(0)  # Janus conversations start with the user
    kept, left_out = _newest(turns, max_turns)
    return Conversation(tuple(kept), len(image_paths), left_out, unreadable)


def _as_read(turn: Turn) -> tuple[Turn, ...]:
    """A turn as the model reads it: an assistant's images become a user turn of their own before its words."""
    images = tuple(part for part in turn.parts if isinstance(part, ImagePath))
    if turn.role != "assistant" or not images:
        return (turn,)
    return Turn("user", images), Turn("assistant", tuple(part for part in turn.parts if isinstance(part, str)))


def _append(turns: list[Turn], turn: Turn) -> None:
    if turns and turns[-1].role == turn.role:
        turns[-1] = Turn(turn.role, turns[-1].parts + turn.parts)
    elif turn.parts:
        turns.append(turn)


def _entry(entry: object) -> Turn | None:
    """A gradio 6 message as a Turn (no parts for a status bubble); None when it is not one."""
    if not isinstance(entry, Mapping) or entry.get("role") not in (*ROLES, "system"):
        return None
    metadata = entry.get("metadata")
    if (isinstance(metadata, Mapping) and metadata.get("title")) or entry["role"] == "system":
        return Turn(entry["role"], ())
    content = entry.get("content")
    if not isinstance(content, list | tuple):
        return None
    parts = [_part(block) for block in content]
    if any(part is None for part in parts):
        return None
    return Turn(entry["role"], tuple(part for part in parts if part != ""))


def _part(block: object) -> Part | None:
    """{"type": "text", "text": ...} or {"type": "file", "file": {"path": ...}}; "" for blank text."""
    if not isinstance(block, Mapping):
        return None
    if block.get("type") == "text" and isinstance(block.get("text"), str):
        return clean_text(block["text"]) if block["text"].strip() else ""
    if block.get("type") == "file" and (path := _file_path(block.get("file"))):
        return ImagePath(path)
    return None


def _file_path(item: object) -> str | None:
    if isinstance(item, str) and item:
        return item
    if isinstance(item, Mapping) and isinstance(item.get("path"), str) and item["path"]:
        return item["path"]
    return None


def _newest(turns: list[Turn], max_turns: int) -> tuple[list[Turn], int]:
    """The last `max_turns` user turns and what follows them, and how many user turns were left out."""
    users = [i for i, turn in enumerate(turns) if turn.role == "user"]
    if len(users) <= max_turns:
        return turns, 0
    return turns[users[-max_turns] :], len(users) - max_turns


def readable_messages(history: object) -> list[Message]:
    """The history's entries that `parse_conversation` can read, their text cleaned (what a chat can show
    again); the others are left out, as they are for the model."""
    readable = []
    for entry in history if isinstance(history, list | tuple) else []:
        if _entry(entry) is None or not isinstance(entry.get("content"), list | tuple):
            continue
        content = [  # a status bubble's content is not read by `_entry`: its unreadable blocks go here
            {**block, "text": clean_text(block["text"])} if block.get("type") == "text" else block
            for block in entry["content"]
            if _part(block) is not None
        ]
        readable.append({**entry, "content": content})
    return readable


def history_message(role: str, parts: Iterable[Part]) -> Message:
    """A gradio 6 message for the API session's history (the shape `parse_conversation` reads)."""
    content = [
        file_block(part.path) if isinstance(part, ImagePath) else {"type": "text", "text": part} for part in parts
    ]
    return {"role": role, "content": content}


def file_block(path: str) -> dict[str, Any]:
    """An image as a gradio 6 content block; its MIME type makes the Chatbot show it as a picture (without
    one it shows a file link)."""
    return {"type": "file", "file": {"path": path, "mime_type": mimetypes.guess_type(path)[0]}}
