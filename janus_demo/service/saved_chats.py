"""The Chat tab's saved chats, kept in the browser so that its conversations survive a reload, and read back
as untrusted (API sessions' conversations are kept on the server: `janus_demo.service.session_histories`).

    chats = restore(stored, roots=[cache_dir, assets_dir], limits=Limits())   # whatever the browser sent
    chat_id, chats = remember(chats, chat_id, chatbot_messages, limits)       # after each answer
    messages = shown(chats[0], roots, limits)                                 # into the Chatbot again
    stored = to_storage(chats)                                                 # back to the browser

The browser keeps a list of conversations, newest first, each {"id": "3fa2c1d0", "messages": [gradio 6
messages]}. A client can write anything into its own storage, so every message is read through
`conversation.readable_messages` (unreadable entries are left out), images are kept by path only, and
only paths inside `roots` (gradio's cache folder of this process, the app's example pictures) are ever
shown again: any other path, or a file that is gone (gradio sweeps its cache after an hour, and a new
process starts with an empty one), becomes a note in the message instead of an image.

The list is bounded (`Limits.max_saved_chats` conversations, `max_saved_messages` newest messages each,
`max_saved_chars` characters of text in all), so the browser's storage and the requests that carry it
cannot grow without end. Reading it back costs time linear in its size: the list is measured before it is
read (`max_saved_size`), and only a path within `max_path_chars` and `max_path_parts` that is written under a
root is ever resolved (pathlib's resolve is quadratic in a path's parts: 957 KB of "/../tmp" took 6 s).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_demo.service.conversation import Message, file_block, readable_messages
from janus_demo.service.schemas import Limits

IMAGE_GONE = "(An image of this message is no longer on the server.)"
UNTITLED = "Chat"
TITLE_CHARS = 40
_ID = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class SavedChat:
    """One saved conversation: its id and its messages (gradio 6 shape, images by path only)."""

    id: str
    messages: tuple[Message, ...]

    @property
    def title(self) -> str:
        """The first words of its first text, as the list of saved chats shows it."""
        for message in self.messages:
            for block in message["content"]:
                if block["type"] == "text" and block["text"].strip() and block["text"] != IMAGE_GONE:
                    text = " ".join(block["text"].split())
                    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
        return UNTITLED

    def chars(self) -> int:
        return sum(len(block.get("text", "")) for message in self.messages for block in message["content"])


def new_id() -> str:
    return secrets.token_hex(4)


def restore(stored: object, roots: Sequence[str | os.PathLike[str]], limits: Limits) -> list[SavedChat]:
    """The browser's saved chats, read as untrusted data: unreadable conversations and messages are left out,
    images outside `roots` become notes, ids are made unique, and the caps apply (newest kept)."""
    chats: list[SavedChat] = []
    room = limits.max_saved_size
    for entry in stored[: limits.max_saved_chats] if isinstance(stored, list) else []:
        room -= size_of(entry, room)
        if room < 0:  # this one and the older ones are left out unread
            break
        if not isinstance(entry, Mapping):
            continue
        messages = tuple(_within(message, roots, limits) for message in stored_messages(entry.get("messages")))
        if not messages:
            continue
        chat_id = entry.get("id")
        if not isinstance(chat_id, str) or not _ID.fullmatch(chat_id) or any(c.id == chat_id for c in chats):
            chat_id = new_id()
        chats.append(SavedChat(chat_id, messages[-limits.max_saved_messages :]))
    return _within_chars(chats, limits)


def remember(
    chats: Sequence[SavedChat], chat_id: str | None, messages: object, limits: Limits
) -> tuple[str | None, list[SavedChat]]:
    """`chats` with the conversation `chat_id` (a new one for None) set to `messages` and moved to the front.
    An empty conversation is not kept. Returns its id (None when not kept) and the capped list."""
    kept = stored_messages(messages)[-limits.max_saved_messages :]
    others = [chat for chat in chats if chat.id != chat_id]
    if not kept:
        return None, others
    chat = SavedChat(chat_id or new_id(), tuple(kept))
    capped = _within_chars([chat, *others][: limits.max_saved_chats], limits)
    return (chat.id if capped and capped[0].id == chat.id else None), capped


def forget(chats: Sequence[SavedChat], chat_id: str | None) -> list[SavedChat]:
    return [chat for chat in chats if chat.id != chat_id]


def find(chats: Sequence[SavedChat], chat_id: object) -> SavedChat | None:
    return next((chat for chat in chats if chat.id == chat_id), None)


def shown(chat: SavedChat | None, roots: Sequence[str | os.PathLike[str]], limits: Limits) -> list[Message]:
    """The conversation as the Chatbot shows it: each image whose file is gone (or was never under `roots`)
    replaced by a note."""
    return [_within(message, roots, limits) for message in chat.messages] if chat else []


def to_storage(chats: Iterable[SavedChat]) -> list[dict[str, Any]]:
    """What the browser keeps: plain JSON."""
    return [{"id": chat.id, "messages": list(chat.messages)} for chat in chats]


def stored_messages(messages: object) -> list[Message]:
    """A chat's readable messages in the shape they are kept in: role, text blocks, images by path, and a
    status mark ("Stopped") by its title, with one empty text block (the Chatbot leaves out a message with no
    content at all, which lost the mark after a reload)."""
    kept = []
    for message in readable_messages(messages):
        if message["role"] not in ("user", "assistant"):
            continue
        content = [_block(block) for block in message["content"]]
        entry: Message = {"role": message["role"], "content": [block for block in content if block]}
        metadata = message.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("title"), str) and metadata["title"]:
            entry["metadata"] = {"title": metadata["title"][:TITLE_CHARS], "status": "done"}
        if "metadata" in entry and not entry["content"]:
            entry["content"] = [{"type": "text", "text": ""}]
        if entry["content"]:
            kept.append(entry)
    return kept


def _block(block: Mapping[str, Any]) -> dict[str, Any] | None:
    if block["type"] == "text":
        return {"type": "text", "text": block["text"]} if block["text"] else None
    file = block["file"]
    return {"type": "file", "file": {"path": file if isinstance(file, str) else file["path"]}}


def size_of(value: object, limit: int) -> int:
    """The size of JSON data in characters (a text counts its length, any other value 1), counted only until
    it passes `limit`. A loop over a stack, not recursion: deeply nested data cannot overflow it."""
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        total += len(item) if isinstance(item, str) else 1
        if isinstance(item, Mapping):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            pending += item
    return total


def _within(message: Message, roots: Sequence[str | os.PathLike[str]], limits: Limits) -> Message:
    """The message with each image that is not a file under `roots` replaced by IMAGE_GONE."""
    content = [
        block if block["type"] == "text" else _shown_file(block["file"]["path"], roots, limits)
        for block in message["content"]
    ]
    return {**message, "content": content}


def _shown_file(path: str, roots: Sequence[str | os.PathLike[str]], limits: Limits) -> dict[str, Any]:
    return file_block(path) if is_servable(path, roots, limits) else {"type": "text", "text": IMAGE_GONE}


def is_servable(path: str, roots: Sequence[str | os.PathLike[str]], limits: Limits) -> bool:
    """True when `path` is an existing file inside one of `roots` (after resolving links).

    Only a path within `limits.max_path_chars` and `max_path_parts` that lies under a root as written (no `..`
    part: gradio writes absolute, normalised paths) is resolved: resolving costs a system call per part and
    time quadratic in the parts (957 KB of "/../tmp" took 6 s), so any other path costs a string check only."""
    if len(path) > limits.max_path_chars or path.count(os.sep) > limits.max_path_parts:
        return False
    forms = [_root_forms(root) for root in roots]
    if os.pardir in path.split(os.sep) or not any(path.startswith(written) for written, _ in forms):
        return False
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return False
    return real.is_file() and any(real.is_relative_to(resolved) for _, resolved in forms)


@functools.lru_cache(maxsize=16)
def _root_forms(root: str | os.PathLike[str]) -> tuple[tuple[str, ...], Path]:
    """A root's prefixes as a path under it may be written (as given, and with its links resolved), and the
    resolved root. Cached: roots are the server's own folders, and a saved list may name thousands of paths."""
    resolved = Path(root).resolve()
    return (os.path.join(os.path.abspath(root), ""), os.path.join(resolved, "")), resolved


def _within_chars(chats: list[SavedChat], limits: Limits) -> list[SavedChat]:
    """The newest chats whose text fits `max_saved_chars` together; the newest alone is cut to its newest
    messages that fit."""
    kept, total = [], 0
    for chat in chats:
        if total + chat.chars() > limits.max_saved_chars:
            if not kept:
                kept.append(_newest_within(chat, limits.max_saved_chars))
            break
        kept.append(chat)
        total += chat.chars()
    return [chat for chat in kept if chat.messages]


def _newest_within(chat: SavedChat, max_chars: int) -> SavedChat:
    messages, total = [], 0
    for message in reversed(chat.messages):
        size = sum(len(block.get("text", "")) for block in message["content"])
        if total + size > max_chars:
            break
        messages.insert(0, message)
        total += size
    return SavedChat(chat.id, tuple(messages))
