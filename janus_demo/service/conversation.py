"""Gradio chat history -> Janus messages: one pure function, both shapes gradio produces.

From the browser, message content is typed blocks:
    {"role": "user", "content": [{"type": "file", "file": {"path": "a.png"}}, {"type": "text", "text": "Hi"}]}
Through the API (gradio_client), content is raw:
    {"role": "user", "content": [{"path": "a.png"}, "Hi"]}, {"role": "assistant", "content": "Hello"}

    messages, image_paths = to_janus_conversation(history, {"text": "And now?", "files": ["b.png"]})

`messages` is what `processor.apply_chat_template` takes; `image_paths` are the images in the
order their placeholders appear, which is the order the processor pairs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Message = dict[str, Any]


def to_janus_conversation(
    history: Iterable[Any] | None, message: Mapping[str, Any] | str | None = None, max_turns: int | None = None
) -> tuple[list[Message], list[str]]:
    """Convert gradio's history plus the new user message into Janus messages and image paths.

    Consecutive messages of one role are merged into one turn, empty turns are dropped, and
    with `max_turns` only the newest user turns (with their answers) are kept.
    """
    turns: list[Message] = []
    for entry in list(history or []) + ([_new_message(message)] if message is not None else []):
        role, items = _entry_items(entry)
        if not items or role not in ("user", "assistant"):
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(items)
        else:
            turns.append({"role": role, "content": items})
    while turns and turns[0]["role"] != "user":
        turns.pop(0)  # Janus conversations start with the user
    if max_turns is not None:
        turns = _newest_turns(turns, max_turns)
    return [_as_janus(turn) for turn in turns], [
        item["path"] for turn in turns for item in turn["content"] if "path" in item
    ]


def count_user_turns(history: Iterable[Any] | None, message: Mapping[str, Any] | str | None = None) -> int:
    """User turns in history plus message, counted as `to_janus_conversation` counts them (before `max_turns`)."""
    messages, _ = to_janus_conversation(history, message)
    return sum(1 for turn in messages if turn["role"] == "user")


def replace_images(messages: list[Message], indices: Iterable[int], text: str) -> list[Message]:
    """Copies of `messages` where the image placeholders at `indices` (counted across all turns) become `text`."""
    wanted, count, result = set(indices), 0, []
    for message in messages:
        content = []
        for block in message["content"]:
            if block.get("type") == "image":
                block = {"type": "text", "text": text} if count in wanted else block
                count += 1
            content.append(block)
        result.append({**message, "content": content})
    return result


def _new_message(message: Mapping[str, Any] | str) -> dict[str, Any]:
    """The MultimodalTextbox value ({"text", "files"}) as a history entry."""
    if isinstance(message, str):
        return {"role": "user", "content": [message]}
    files = [{"path": f} if isinstance(f, str) else f for f in message.get("files") or []]
    return {"role": "user", "content": [*files, message.get("text") or ""]}


def _entry_items(entry: Any) -> tuple[str, list[dict[str, str]]]:
    """One history entry as (role, [{"text": ...} | {"path": ...}])."""
    if isinstance(entry, Mapping):
        role, content = entry.get("role", ""), entry.get("content")
    else:  # a ChatMessage-like object
        role, content = getattr(entry, "role", ""), getattr(entry, "content", None)
    if isinstance(entry, Mapping) and (entry.get("metadata") or {}).get("title"):
        return role, []  # a "thinking"/status bubble, not part of the conversation
    blocks = content if isinstance(content, list | tuple) and not _is_legacy_file_tuple(content) else [content]
    items = [item for block in blocks if (item := _item(block)) is not None]
    return str(role).lower(), items


def _item(block: Any) -> dict[str, str] | None:
    """A content block as {"text": ...} or {"path": ...}; None for anything else."""
    if block is None:
        return None
    if isinstance(block, str):
        return {"text": block} if block.strip() else None
    if isinstance(block, tuple):  # old (path, alt_text) file tuples
        return _item({"path": block[0]}) if block else None
    if isinstance(block, Mapping):
        kind = block.get("type")
        if kind == "text":
            return _item(block.get("text"))
        if kind in ("file", "image") and block.get(kind) is not None:
            return _item(block[kind])
        if block.get("path"):
            return {"path": str(block["path"])}
        return None
    path = getattr(block, "path", None)  # FileData and similar objects
    return {"path": str(path)} if path else None


def _is_legacy_file_tuple(content: Any) -> bool:
    return isinstance(content, tuple) and bool(content) and isinstance(content[0], str)


def _newest_turns(turns: list[Message], max_turns: int) -> list[Message]:
    """Keep the last `max_turns` user turns and what follows them."""
    user_indices = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
    if len(user_indices) <= max_turns:
        return turns
    return turns[user_indices[-max_turns] :]


def _as_janus(turn: Message) -> Message:
    content = [
        {"type": "image"} if "path" in item else {"type": "text", "text": item["text"]} for item in turn["content"]
    ]
    return {"role": turn["role"], "content": content}
