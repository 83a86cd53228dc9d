"""The few ASGI pieces the gate is made of: typed aliases, headers, a refusal and its JSON answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class Refused(Exception):
    """A request the gate answers itself: an HTTP status and the `detail` gradio's clients show."""

    def __init__(self, status: int, detail: str, headers: Headers | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, list(headers or [])


async def respond(send: Send, status: int, detail: str, headers: Headers | None = None) -> None:
    """A JSON error as gradio sends them: the browser shows `detail`, gradio_client raises with the status."""
    body = json.dumps({"detail": detail}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + list(headers or [])})
    await send({"type": "http.response.body", "body": body})


def headers_named(scope: Scope, name: bytes) -> list[str]:
    """Every value of header `name` (lower case), in order."""
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name]


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name`, or None."""
    values = headers_named(scope, name)
    return values[0] if values else None


def without_header(scope: Scope, name: bytes) -> Scope:
    headers = scope.get("headers", [])
    if not any(key.lower() == name for key, _ in headers):
        return scope
    return {**scope, "headers": [(key, value) for key, value in headers if key.lower() != name]}


def with_header(scope: Scope, name: bytes, value: bytes) -> Scope:
    return {**scope, "headers": [*scope.get("headers", []), (name, value)]}


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def watch_response(send: Send, seen: Callable[[Message], None]) -> Send:
    """`send` that shows every message to `seen` first."""

    async def watched(message: Message) -> None:
        seen(message)
        await send(message)

    return watched


def query_param(scope: Scope, name: str) -> str | None:
    """The first value of query parameter `name`, or None."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


def json_answer(chunks: list[bytes]) -> Any:
    """A JSON response body, or None."""
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return None
