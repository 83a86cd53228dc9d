"""The server's door: one ASGI middleware in front of gradio's app, for a public Space.

    demo.launch(..., app_kwargs=guard_app_kwargs(GuardConfig(max_body_bytes=2**20, ...), backend.clients))

What gradio 6.31 leaves open, and what this does about it (README "Robustness" lists the caps):
- Request bodies have no size limit (a 14 MB chat history held the event loop for 10 s and kept 200 MB
  per session): every body is capped, uploads at `max_upload_bytes`, everything else at `max_body_bytes`
  (HTTP 413, refused from Content-Length before anything is read, else while it streams).
- One client could fill the whole line and upload without end: jobs in line and upload bytes are counted
  per session, IP address and login (`janus_demo.service.clients.ClientLedger`), HTTP 429 beyond.
- A job whose client never reads its event stream ran to its end: the event streams are watched here, and
  the event functions stop a job nobody reads (`ClientLedger.abandoned`, via the `x-janus-job` header set
  on its join request).
- Under a login, sessions were not tied to it, `/gradio_api/cancel` and the heartbeat answered anyone, and
  `/login` was not throttled and stripped the user name: every session route needs the login here, a
  session hash belongs to the first login that uses it, failed logins are limited per IP address and user
  name, and a user name must match exactly.
- Cross-origin posts (a page elsewhere uploading through a visitor's browser) are refused, and every
  response carries `X-Content-Type-Options`, `Referrer-Policy` and a `frame-ancestors` policy that still
  lets a Hugging Face Space embed the app.

Pure ASGI (no gradio internals): it reads only what travels on the wire.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.middleware import Middleware
from starlette.requests import Request

from janus_demo.service.clients import MB, Client, ClientLedger

log = logging.getLogger("janus_demo")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API = "/gradio_api"
JOB_HEADER = b"x-janus-job"
CLOSE_STREAM = b'"msg":"close_stream"'  # gradio ends a stream itself when nothing of the session is pending
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"content-security-policy", b"frame-ancestors 'self' https://huggingface.co https://*.huggingface.co"),
]
UPLOAD_ROUTES = (f"{API}/upload", f"{API}/component_server", f"{API}/process_recording")
# Routes that act on a session or its events: under a login, none of them answers without it.
SESSION_ROUTES = (
    f"{API}/queue/join",
    f"{API}/queue/data",
    f"{API}/cancel",
    f"{API}/heartbeat/",
    f"{API}/stream/",
    f"{API}/reset",
    f"{API}/call/",
)
LOGIN_BODY_LIMIT = 64 * 1024
TOO_LARGE = "Request too large: {size}; the limit is {limit}. If this is a long conversation, clear it and start again."
TOO_MANY_VALUES = (
    "Request too large: over {limit:,} values (texts, numbers, lists) in one request. If this is a long "
    "conversation, clear it and start again."
)
INCORRECT = "Incorrect credentials."


@dataclass(frozen=True)
class GuardConfig:
    """The caps this middleware enforces; `login_required` when the app was launched with logins."""

    max_body_bytes: int
    max_upload_bytes: int
    max_body_values: int = 20_000  # values in a JSON body (gradio's per-request work grows with them)
    login_required: bool = False
    proxy_hops: int = 0  # proxies in front that append to X-Forwarded-For (1 on a Hugging Face Space)


class BodyTooLarge(Exception):
    """Raised from `receive` when a streamed body passes its cap."""


CacheRoom = Callable[[int, int], "str | None"]  # (bytes, files) about to be written -> a refusal, or None


def guard_app_kwargs(config: GuardConfig, ledger: ClientLedger, cache_room: CacheRoom | None = None) -> dict[str, Any]:
    """`launch(app_kwargs=...)`: gradio's FastAPI app gets the guard as its own middleware; `cache_room` says
    whether the app's cache folder has room for an upload."""
    return {"middleware": [Middleware(Guard, config=config, ledger=ledger, cache_room=cache_room)]}


class Guard:
    """The ASGI middleware; see the module docstring."""

    def __init__(
        self, app: Callable, config: GuardConfig, ledger: ClientLedger, cache_room: CacheRoom | None = None
    ) -> None:
        self.app, self.config, self.ledger, self.cache_room = app, config, ledger, cache_room
        self._tokens: OrderedDict[str, str] = OrderedDict()  # login cookie value -> user name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _without_header(scope, JOB_HEADER)  # only this middleware sets it
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self._route(scope, receive, send_with_headers)
        except BodyTooLarge as error:
            if started:
                raise
            await _respond(send_with_headers, 413, str(error))

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if method == "POST" and not path.startswith(f"{API}/mcp") and not self._same_origin(scope):
            await _respond(send, 403, "Cross-origin requests are refused.")
            return
        if method == "POST" and path.rstrip("/") == "/login":
            await self._login(scope, receive, send)
            return
        if method == "GET" and path.rstrip("/") == "/logout":
            self._forget_login(self._user(scope))
            await self.app(scope, receive, send)
            return
        if path.startswith(SESSION_ROUTES) and self.config.login_required and self._user(scope) is None:
            await _respond(send, 401, "Not authenticated: log in first.")
            return
        if method == "POST" and (path == f"{API}/queue/join" or _is_call_join(path)):
            await self._join(scope, receive, send)
        elif method == "POST" and path == f"{API}/cancel":
            await self._cancel(scope, receive, send)
        elif method == "GET" and (path == f"{API}/queue/data" or _is_call_stream(path)):
            await self._stream(scope, receive, send)
        elif path.startswith(f"{API}/heartbeat/") and not self._owns(scope, path.rsplit("/", 1)[-1]):
            await _respond(send, 403, "This session belongs to another login.")
        elif method in ("POST", "PUT", "PATCH"):
            await self._capped(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # --- bodies ----------------------------------------------------------------------------------

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other body: refused by its declared length, else counted as it streams in; JSON by its values too."""
        upload = scope["path"].rstrip("/") in UPLOAD_ROUTES
        if not upload:  # at most max_body_bytes: read it whole, and count its values if it is JSON
            body = await self._read(scope, receive, self.config.max_body_bytes)
            await self.app(scope, _replay(body, receive), send)
            return
        limit = self.config.max_upload_bytes if upload else self.config.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _respond(send, 413, _too_large(declared, limit))
            return
        client = self._client(scope, None)
        if upload and (refusal := self.ledger.admit_upload(client, declared or limit)):
            log.info("refused an upload from %s: %s", client.ip, refusal)
            await _respond(send, 429, refusal, [(b"retry-after", b"60")])
            return
        if upload and self.cache_room and (refusal := self.cache_room(declared or limit, 1)):
            log.warning("refused an upload: %s", refusal)
            await _respond(send, 507, refusal, [(b"retry-after", b"60")])
            return
        await self.app(scope, _counting(receive, limit), send)

    async def _read(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        """The whole body (refused beyond `limit`), for the small requests this middleware must read."""
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            raise BodyTooLarge(_too_large(declared, limit))
        chunks, counted = [], _counting(receive, limit)
        while True:
            message = await counted()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if _json_values(body, self.config.max_body_values) is not None:
            raise BodyTooLarge(TOO_MANY_VALUES.format(limit=self.config.max_body_values))
        return body

    # --- jobs ------------------------------------------------------------------------------------

    async def _join(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request joining the line: counted against its client before gradio queues it."""
        body = await self._read(scope, receive, self.config.max_body_bytes)
        session = _json_field(body, "session_hash")
        if session is not None and not self._owns(scope, session):
            await _respond(send, 403, "This session belongs to another login.")
            return
        counted = _is_call_join(scope["path"]) or self.ledger.is_job(_json_number(body, "fn_index"))
        if not counted:  # e.g. a field's own check when the user leaves it: no model work
            await self.app(scope, _replay(body, receive), send)
            return
        job, client = secrets.token_hex(12), self._client(scope, session)
        if refusal := self.ledger.admit_job(job, client):
            log.info("refused a request from %s: %s", client.ip, refusal)
            await _respond(send, 429, refusal, [(b"retry-after", b"5")])
            return
        status, answer = 0, []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(_with_header(scope, JOB_HEADER, job.encode()), _replay(body, receive), watch)
        finally:
            event_id = _json_field(b"".join(answer), "event_id") if status == 200 else None
            if event_id:
                self.ledger.job_event(job, event_id)
            else:
                self.ledger.job_ended(job)

    async def _cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._read(scope, receive, self.config.max_body_bytes)
        session = _json_field(body, "session_hash")
        if session is not None and not self._owns(scope, session):
            await _respond(send, 403, "This session belongs to another login.")
            return
        await self.app(scope, _replay(body, receive), send)
        if event_id := _json_field(body, "event_id"):
            self.ledger.event_ended(event_id)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An event stream: who reads it (and whether writes to it get through), and which events complete."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session = (query.get("session_hash") or [None])[0]
        if session is None and _is_call_stream(scope["path"]):
            session = self.ledger.session_of(scope["path"].rstrip("/").rsplit("/", 1)[-1])
        if session is None:
            await self.app(scope, receive, send)
            return
        if not self._owns(scope, session):
            await _respond(send, 403, "This session belongs to another login.")
            return
        opened = ended = False

        async def watch(message: Message) -> None:
            nonlocal opened, ended
            if message["type"] == "http.response.start" and message["status"] == 200:
                opened = True
                self.ledger.stream_opened(session)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                for event_id in _completed_events(chunk):
                    self.ledger.event_ended(event_id)
                ended = ended or CLOSE_STREAM in chunk
            self.ledger.stream_writing(session, True)
            try:
                await send(message)
            finally:
                self.ledger.stream_writing(session, False)

        try:
            await self.app(scope, receive, watch)
        finally:
            if opened:
                self.ledger.stream_closed(session, disconnected=not ended)

    # --- logins ----------------------------------------------------------------------------------

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Throttled per IP address and user name; the user name must match exactly; remember the cookie."""
        body = await self._read(scope, receive, LOGIN_BODY_LIMIT)
        form = await Request(dict(scope), _replay(body, receive)).form()
        user, ip = str(form.get("username") or ""), self._client(scope, None).ip
        if refusal := self.ledger.login_refusal(ip, user):
            log.warning("login refused for %r from %s: too many failures", user, ip)
            await _respond(send, 429, refusal, [(b"retry-after", b"60")])
            return
        if user != user.strip():  # gradio strips it, so " alice" would log in as alice
            self.ledger.login_failed(ip, user)
            await _respond(send, 400, INCORRECT)
            return
        status, cookies = 0, []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                cookies.extend(value for name, value in message.get("headers", []) if name.lower() == b"set-cookie")
            await send(message)

        await self.app(scope, _replay(body, receive), watch)
        if status == 200:
            for token in _login_tokens(cookies):
                self._tokens[token] = user
                self._tokens.move_to_end(token)
            while len(self._tokens) > self.ledger.limits.max_tracked:
                self._tokens.popitem(last=False)
        elif 400 <= status < 500:
            self.ledger.login_failed(ip, user)

    def _user(self, scope: Scope) -> str | None:
        """The login behind this request's cookie, as this middleware saw it succeed; None without one."""
        header = _header(scope, b"cookie")
        if not header:
            return None
        try:
            cookies = SimpleCookie(header)
        except CookieError:
            return None
        for name, morsel in cookies.items():
            if name.startswith("access-token") and morsel.value in self._tokens:
                return self._tokens[morsel.value]
        return None

    def _forget_login(self, user: str | None) -> None:
        """Logout ends every session of the user in gradio; forget its cookies here too."""
        for token in [token for token, owner in self._tokens.items() if owner == user]:
            del self._tokens[token]

    def _owns(self, scope: Scope, session: str) -> bool:
        """Without logins every session is anyone's; with them, it is the first login's that used it."""
        if not self.config.login_required:
            return True
        user = self._user(scope)
        return user is not None and self.ledger.session_owner(session, user)

    # --- who is asking -----------------------------------------------------------------------------

    def _client(self, scope: Scope, session: str | None) -> Client:
        return Client(session, _client_ip(scope, self.config.proxy_hops), self._user(scope))

    @staticmethod
    def _same_origin(scope: Scope) -> bool:
        """No Origin header (API clients), or one naming this host (or the host a proxy forwarded)."""
        origin = _header(scope, b"origin")
        if origin is None:
            return True
        hosts = {_hostname(_header(scope, name)) for name in (b"host", b"x-forwarded-host")} - {None}
        return _hostname(urlsplit(origin).netloc) in hosts if origin != "null" else False


# --- ASGI helpers --------------------------------------------------------------------------------


async def _respond(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON error as gradio sends them: the browser shows `detail`, gradio_client raises with the status."""
    body = json.dumps({"detail": detail}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start + list(headers or [])})
    await send({"type": "http.response.body", "body": body})


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive` that raises BodyTooLarge once more than `limit` bytes arrived."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(_too_large(received, limit, more=True))
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over `body` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _without_header(scope: Scope, name: bytes) -> Scope:
    headers = scope.get("headers", [])
    if not any(key.lower() == name for key, _ in headers):
        return scope
    return {**scope, "headers": [(key, value) for key, value in headers if key.lower() != name]}


def _with_header(scope: Scope, name: bytes, value: bytes) -> Scope:
    return {**scope, "headers": [*scope.get("headers", []), (name, value)]}


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value and value.isdigit() else None


def _too_large(size: int, limit: int, more: bool = False) -> str:
    return TOO_LARGE.format(size=("over " if more else "") + _megabytes(size), limit=_megabytes(limit))


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size:,} bytes"


def _json_field(body: bytes, name: str) -> str | None:
    """A string field of a JSON object body, or None (gradio answers malformed bodies itself)."""
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _json_number(body: bytes, name: str) -> int | None:
    """A whole-number field of a JSON object body, or None."""
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_values(body: bytes, limit: int) -> int | None:
    """How many values a JSON `body` holds, once there are more than `limit` (None: within it, or not JSON)."""
    try:
        stack, count = [json.loads(body)], 0
    except ValueError:
        return None
    while stack:
        value = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _completed_events(chunk: bytes) -> list[str]:
    """Event ids of `process_completed` messages in a chunk of gradio's event stream."""
    ids = []
    for line in chunk.split(b"\n"):
        if line.startswith(b"data:") and b"process_completed" in line:
            event_id = _json_field(line[5:], "event_id")
            if event_id:
                ids.append(event_id)
    return ids


def _login_tokens(set_cookies: list[bytes]) -> list[str]:
    """The values of gradio's login cookies in a login response's Set-Cookie headers."""
    tokens = []
    for header in set_cookies:
        try:
            cookie = SimpleCookie(header.decode("latin-1"))
        except CookieError:
            continue
        tokens += [morsel.value for name, morsel in cookie.items() if name.startswith("access-token")]
    return tokens


def _call_route(path: str) -> list[str] | None:
    """The parts after /gradio_api/call[/v2]/ (gradio's curl-friendly routes), or None for other paths."""
    parts = path.strip("/").split("/")
    if parts[:2] != [API.strip("/"), "call"]:
        return None
    rest = parts[2:]
    return rest[1:] if rest[:1] == ["v2"] else rest


def _is_call_join(path: str) -> bool:
    """POST /gradio_api/call/<api_name>: joins the line like /queue/join."""
    rest = _call_route(path)
    return rest is not None and len(rest) == 1


def _is_call_stream(path: str) -> bool:
    """GET /gradio_api/call/<api_name>/<event_id>: the event stream of a /call join."""
    rest = _call_route(path)
    return rest is not None and len(rest) == 2


def _client_ip(scope: Scope, proxy_hops: int) -> str:
    """The peer's address; behind `proxy_hops` proxies, the address the outermost of them saw."""
    peer = (scope.get("client") or ("unknown",))[0]
    if proxy_hops <= 0:
        return peer
    forwarded = [part.strip() for part in (_header(scope, b"x-forwarded-for") or "").split(",") if part.strip()]
    if not forwarded:
        return peer
    return forwarded[-proxy_hops] if len(forwarded) >= proxy_hops else forwarded[0]


def _hostname(host: str | None) -> str | None:
    if not host:
        return None
    return (urlsplit(f"//{host}").hostname or "").lower() or None
