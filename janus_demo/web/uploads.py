"""The files of a request that gradio received itself: an uploaded file's path, or a `data:` URL.

    uploaded(value)            # the path of a file gradio received and checked, a data: URL, else None
    uploads_only(message)      # /chat's message with every other file replaced by None

A value from a client is any JSON: a plain path could name any file on the server, so only a file dict that
carries gradio's FileData meta (gradio moved the upload into its cache and checked it) or a `data:` URL is
kept; anything else becomes None, which the service refuses, naming the field.
"""

from __future__ import annotations

from typing import Any


def uploaded(value: Any) -> str | None:
    """The path of a file gradio received and checked (a file dict carrying gradio's FileData meta), or a
    `data:` URL; None for anything else."""
    if isinstance(value, str):
        return value if value.startswith("data:") else None
    meta = value.get("meta") if isinstance(value, dict) else None
    if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData" and isinstance(value.get("path"), str):
        return value["path"]
    return None


def uploads_only(message: Any) -> Any:
    """`/chat`'s message with each file kept (as gradio sent it) only if `uploaded` accepts it, else None."""
    if not isinstance(message, dict) or not isinstance(message.get("files"), list):
        return message
    return {**message, "files": [item if uploaded(item) is not None else None for item in message["files"]]}
