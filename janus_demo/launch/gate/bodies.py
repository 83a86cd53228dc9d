"""Request bodies, bounded before gradio reads them: bytes, read time, JSON values and depth, files per upload.

Every body the gate lets through has passed these bounds; what breaks one is answered here with a 4xx (413
too large, 408 too slow, 400 malformed), never a 500 or a traceback. Small bodies (JSON, forms) are read
whole and replayed to gradio; uploads stream through, counted as they pass.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import anyio

from janus_demo.launch.gate.asgi import Message, Receive, Refused, Scope, header

MB = 2**20
TOO_LARGE = "Request too large: {size}; the limit is {limit}. If this is a long conversation, clear it and start again."
TOO_MANY_VALUES = (
    "Request too large: over {limit:,} values (texts, numbers, lists) in one request. If this is a long "
    "conversation, clear it and start again."
)
TOO_DEEP = "Request refused: its values are nested more than {limit} levels deep."
TOO_SLOW = "Request refused: its body took longer than {seconds:.0f} s to arrive."
TOO_MANY_FILES = "Too many files in one upload (the limit is {limit})."
MALFORMED = "Malformed request: the body is not the JSON this route takes."


@dataclass(frozen=True)
class BodyLimits:
    """What one request body may be."""

    max_bytes: int = 1 * MB  # any body other than an upload
    max_upload_bytes: int = 81 * MB  # one upload request
    max_values: int = 20_000  # values in a JSON body (gradio's work per request grows with them)
    max_depth: int = 32  # nesting of a JSON body (gradio's deepest, a chat history with files, is under 10)
    max_files: int = 16  # files in one upload request (a person picking 5 images gets the app's own refusal)
    read_s: float = 30.0  # time for a small body to arrive whole
    min_upload_rate: int = 64 * 1024  # bytes/s an upload must keep up, on top of `read_s`


def declared_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    return int(value) if value and value.isdigit() else None


def too_large(size: int, limit: int, more: bool = False) -> Refused:
    return Refused(413, TOO_LARGE.format(size=("over " if more else "") + megabytes(size), limit=megabytes(limit)))


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size:,} bytes"


def bounded(receive: Receive, limit: int, seconds: float) -> Receive:
    """`receive` that refuses (413) once more than `limit` bytes came, or (408) once `seconds` have passed."""
    received, deadline = 0, time.monotonic() + seconds

    async def counted() -> Message:
        nonlocal received
        left = deadline - time.monotonic()
        with anyio.move_on_after(max(left, 0)) as waited:
            message = await receive()
        if waited.cancelled_caught:
            raise Refused(408, TOO_SLOW.format(seconds=seconds))
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(received, limit, more=True)
        return message

    return counted


async def read_body(scope: Scope, receive: Receive, limit: int, seconds: float) -> bytes:
    """The whole body, at most `limit` bytes arriving within `seconds`."""
    declared = declared_length(scope)
    if declared is not None and declared > limit:
        raise too_large(declared, limit)
    chunks, counted = [], bounded(receive, limit, seconds)
    while True:
        message = await counted()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def parse_json(body: bytes, limits: BodyLimits) -> Any:
    """The JSON value of `body` within the value and depth bounds; 400/413 otherwise."""
    try:
        value = json.loads(body)
    except RecursionError:  # deeper than Python's own recursion limit
        raise Refused(413, TOO_DEEP.format(limit=limits.max_depth)) from None
    except ValueError:
        raise Refused(400, MALFORMED) from None
    check_shape(value, limits)
    return value


def check_shape(value: Any, limits: BodyLimits) -> None:
    """Refuse (413) a value with more than `max_values` values or nested deeper than `max_depth`."""
    stack, count = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > limits.max_values:
            raise Refused(413, TOO_MANY_VALUES.format(limit=limits.max_values))
        if depth > limits.max_depth:
            raise Refused(413, TOO_DEEP.format(limit=limits.max_depth))
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def upload_seconds(scope: Scope, limits: BodyLimits) -> float:
    """How long an upload may take to arrive: `read_s` plus its size at `min_upload_rate`."""
    size = declared_length(scope) or limits.max_upload_bytes
    return limits.read_s + math.ceil(size / limits.min_upload_rate)


def multipart_boundary(scope: Scope) -> bytes:
    """The boundary of a multipart/form-data body; 400 for any other body."""
    content_type = header(scope, b"content-type") or ""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise Refused(400, "An upload must be multipart/form-data.")
    return match.group(1).encode("latin-1")


def counting_files(receive: Receive, boundary: bytes, max_files: int) -> Receive:
    """`receive` that refuses (413) a multipart body with more than `max_files` parts.

    Written by hand: python-multipart, which gradio parses uploads with, only limits the parts once they have
    been written to disk (gradio allows 1,000); counting delimiters as the bytes pass refuses before that."""
    opening = b"--" + boundary + b"\r\n"  # a part begins; the closing delimiter ends in "--" instead
    tail, parts = b"", 0

    async def counted() -> Message:
        nonlocal tail, parts
        message = await receive()
        if message["type"] == "http.request":
            data = tail + message.get("body", b"")
            parts += data.count(opening)
            tail = data[-(len(opening) - 1) :]  # too short to hold a whole delimiter: none is counted twice
            if parts > max_files:
                raise Refused(413, TOO_MANY_FILES.format(limit=max_files))
        return message

    return counted
