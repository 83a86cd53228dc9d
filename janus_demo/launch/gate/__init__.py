"""The gate in front of gradio: one ASGI middleware that denies by default, for a public Space.

    demo.launch(..., app_kwargs=gate_app_kwargs(GateConfig(...), backend.clients, cache_room=budget.admit_upload))

Only the routes this app's pages, API clients and MCP clients use pass (`routes`); every body is bounded in
bytes, values, depth, files and read time before gradio reads it (`bodies`), and read the way gradio will read
it (`gradio_bodies`); every job is counted against its client (`janus_demo.service.clients.ClientLedger`) and
belongs to it: only its creator may cancel it or read its results (`jobs`); logins are throttled without
lockouts and bound to their sessions (`logins`); addresses are the peer's own or, behind `--proxy-hops`
proxies, what the outermost one saw (`addresses`); every response carries the security headers, and posts
from other sites are refused (`headers`). Pure ASGI: it reads what travels on the wire, and gradio's request
models through one adapter.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

from janus_demo.launch.gate import bodies, gradio_bodies
from janus_demo.launch.gate.addresses import client_ip
from janus_demo.launch.gate.asgi import (
    Message,
    Receive,
    Refused,
    Scope,
    Send,
    header,
    json_answer,
    query_param,
    replay,
    respond,
    watch_response,
    with_header,
    without_header,
)
from janus_demo.launch.gate.headers import same_origin, with_security_headers
from janus_demo.launch.gate.jobs import JobOwners
from janus_demo.launch.gate.logins import Logins
from janus_demo.launch.gate.remote_files import NOT_FETCHED, remote_file_route, remote_file_urls
from janus_demo.launch.gate.routes import Kind, call_event, heartbeat_session, route_of
from janus_demo.service.clients import Client, ClientLedger

log = logging.getLogger("janus_demo")

JOB_HEADER = b"x-janus-job"  # names the ledger's job on a join request; only the gate sets it
CLOSE_STREAM = b'"msg":"close_stream"'  # gradio ends a stream itself when nothing of the session is pending
SESSION_KINDS = {
    Kind.JOIN,
    Kind.RUN,
    Kind.CALL,
    Kind.CALL_STREAM,
    Kind.CANCEL,
    Kind.RESET,
    Kind.QUEUE_STREAM,
    Kind.HEARTBEAT,
    Kind.UPLOAD,
}
ANOTHER_LOGIN = "This session belongs to another login."
MCP_PATH = "/gradio_api/mcp"
CacheRoom = Callable[[int, int], "str | None"]  # (bytes, files) about to be written -> a refusal, or None


@dataclass(frozen=True)
class GateConfig:
    """The bounds the gate enforces; `login_required` when the app was launched with logins."""

    body: bodies.BodyLimits
    login_required: bool = False
    proxy_hops: int = 0  # proxies in front that append to X-Forwarded-For (1 on a Hugging Face Space)


def gate_app_kwargs(config: GateConfig, ledger: ClientLedger, cache_room: CacheRoom | None = None) -> dict[str, Any]:
    """`launch(app_kwargs=...)`: gradio's FastAPI app gets the gate as its own middleware; `cache_room` says
    whether the app's cache folder has room for an upload."""
    return {"middleware": [Middleware(Gate, config=config, ledger=ledger, cache_room=cache_room)]}


class Gate:
    """The ASGI middleware; see the module docstring."""

    def __init__(
        self, app: Callable, config: GateConfig, ledger: ClientLedger, cache_room: CacheRoom | None = None
    ) -> None:
        self.app, self.config, self.ledger, self.cache_room = app, config, ledger, cache_room
        self.owners = JobOwners()
        self.logins = Logins(ledger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # gradio 6.31 serves this app over HTTP only
            await send({"type": "websocket.close", "code": 1008})
            return
        scope, started = without_header(scope, JOB_HEADER), False

        def seen(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"

        send = watch_response(with_security_headers(send), seen)
        try:
            await self._route(scope, receive, send)
        except Refused as refused:
            log.info("refused %s %s: %s %s", scope["method"], scope["path"][:200], refused.status, refused.detail)
            if not started:
                await respond(send, refused.status, refused.detail, refused.headers)
        except ClientDisconnect:  # a browser closed while it sent a body: nothing to answer, nothing to report
            log.info("client went away during %s %s", scope["method"], scope["path"][:200])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_of(scope["method"], scope["path"])
        if url := remote_file_route(scope["path"]):  # gradio's /file= would fetch it and stream it back
            raise Refused(404, NOT_FETCHED.format(url=url[:200]))
        if scope["method"] == "POST" and not same_origin(scope):
            raise Refused(403, "Cross-origin requests are refused.")
        if route.kind in SESSION_KINDS and self.config.login_required and self.logins.user(scope) is None:
            raise Refused(401, "Not authenticated: log in first.")
        handler = getattr(self, f"_{route.kind.value}", None)
        if handler is None:
            await self.app(scope, receive, send)
        else:
            await handler(scope, receive, send)

    def _client(self, scope: Scope, session: str | None) -> Client:
        return Client(session, client_ip(scope, self.config.proxy_hops), self.logins.user(scope))

    def _check_session(self, scope: Scope, session: str | None) -> None:
        """Without logins every session is anyone's; with them, it is the first login's that used it."""
        if session is None or not self.config.login_required:
            return
        user = self.logins.user(scope)
        if user is None or not self.ledger.session_owner(session, user):
            raise Refused(403, ANOTHER_LOGIN)

    async def _json(self, scope: Scope, receive: Receive) -> tuple[bytes, Any]:
        """A JSON body within its bounds, naming no remote file (gradio would fetch it before the app runs)."""
        limits = self.config.body
        body = await bodies.read_body(scope, receive, limits.max_bytes, limits.read_s)
        value = bodies.parse_json(body, limits)
        if scope["path"].startswith(MCP_PATH):  # answered as JSON-RPC by _mcp
            return body, value
        if urls := remote_file_urls(value):
            raise Refused(422, NOT_FETCHED.format(url=urls[0][:200]))
        return body, value

    # --- jobs ------------------------------------------------------------------------------------

    async def _join(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A request joining the line: read as gradio will, counted against its client, bound to it."""
        body, value = await self._json(scope, receive)
        join = gradio_bodies.read_join(value)
        if join.session_hash is None or join.fn_index is None:
            raise Refused(400, "Malformed request: a join names its session_hash and fn_index.")
        self._check_session(scope, join.session_hash)
        await self._queue(scope, receive, send, body, self._client(scope, join.session_hash), join.fn_index)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /call/<api>: joins the line like /queue/join, with no session of its own."""
        body, value = await self._json(scope, receive)
        gradio_bodies.read_join({"data": [], **value} if isinstance(value, dict) else value)
        await self._queue(scope, receive, send, body, self._client(scope, None), None)

    async def _queue(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, client: Client, fn_index: int | None
    ) -> None:
        """Let a join through if its client has room; bind the event gradio makes to that client."""
        counted = fn_index is None or self.ledger.is_job(fn_index)  # /call joins always count
        job = secrets.token_hex(12)
        if counted and (refusal := self.ledger.admit_job(job, client)):
            log.info("refused a request from %s: %s", client.ip, refusal)
            raise Refused(429, refusal, [(b"retry-after", b"5")])
        status, answer = 0, []

        def seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))

        event_id = None
        try:
            scope = with_header(scope, JOB_HEADER, job.encode()) if counted else scope
            await self.app(scope, replay(body, receive), watch_response(send, seen))
        finally:
            answered = json_answer(answer) if status == 200 else None
            event_id = answered.get("event_id") if isinstance(answered, dict) else None
            if isinstance(event_id, str) and event_id:
                self.owners.created(event_id, client, live=counted)
                if counted:
                    self.ledger.job_event(job, event_id)
            elif counted:
                self.ledger.job_ended(job)

    async def _cancel(self, scope: Scope, receive: Receive, send: Send) -> None:
        """gradio cancels the event a body names whatever its session: only the event's creator may."""
        body, value = await self._json(scope, receive)
        cancel = gradio_bodies.read_cancel(value)
        self._check_session(scope, cancel.session_hash)
        self.owners.check(cancel.event_id, cancel.session_hash, self._client(scope, None))
        await self.app(scope, replay(body, receive), send)
        self._ended(cancel.event_id)

    async def _reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, _ = await self._json(scope, receive)
        await self.app(scope, replay(body, receive), send)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A queue-less event (gradio refuses queued ones here): bounded, and in its own session."""
        body, value = await self._json(scope, receive)
        self._check_session(scope, gradio_bodies.read_join(value).session_hash)
        await self.app(scope, replay(body, receive), send)

    def _ended(self, event_id: str) -> None:
        self.ledger.event_ended(event_id)
        self.owners.ended(event_id)

    # --- streams ---------------------------------------------------------------------------------

    async def _queue_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = query_param(scope, "session_hash")
        self._check_session(scope, session)
        await self._stream(scope, receive, send, session)

    async def _call_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A /call job's results, for the client that made it only."""
        event_id = call_event(scope["path"])
        self.owners.check(event_id, None, self._client(scope, None))
        await self._stream(scope, receive, send, event_id)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._check_session(scope, heartbeat_session(scope["path"]))
        await self.app(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, session: str | None) -> None:
        """An event stream: who reads it (and whether writes to it get through), and which events complete."""
        if session is None:
            await self.app(scope, receive, send)
            return
        opened = ended = False

        async def watching(message: Message) -> None:
            nonlocal opened, ended
            if message["type"] == "http.response.start" and message["status"] == 200:
                opened = True
                self.ledger.stream_opened(session)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                for event_id in completed_events(chunk):
                    self._ended(event_id)
                ended = ended or CLOSE_STREAM in chunk
            self.ledger.stream_writing(session, True)
            try:
                await send(message)
            finally:
                self.ledger.stream_writing(session, False)

        try:
            await self.app(scope, receive, watching)
        finally:
            if opened:
                self.ledger.stream_closed(session, disconnected=not ended)

    # --- uploads, logins, MCP --------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Files: bounded in bytes, files and time; counted against the client and the cache folder."""
        limits = self.config.body
        declared = bodies.declared_length(scope)
        if declared is not None and declared > limits.max_upload_bytes:
            raise bodies.too_large(declared, limits.max_upload_bytes)
        boundary = bodies.multipart_boundary(scope)
        size, client = declared or limits.max_upload_bytes, self._client(scope, None)
        if refusal := self.ledger.admit_upload(client, size):
            raise Refused(429, refusal, [(b"retry-after", b"60")])
        if self.cache_room and (refusal := self.cache_room(size, 1)):
            raise Refused(507, refusal, [(b"retry-after", b"60")])
        counted = bodies.bounded(receive, limits.max_upload_bytes, bodies.upload_seconds(scope, limits))
        await self.app(scope, bodies.counting_files(counted, boundary, limits.max_files), send)

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.logins.login(scope, receive, send, self.app, client_ip(scope, self.config.proxy_hops))

    async def _logout(self, scope: Scope, receive: Receive, send: Send) -> None:
        if refusal := self.logins.logout_refusal(scope):
            raise Refused(403, refusal)
        self.logins.forget(self.logins.user(scope))
        await self.app(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        """MCP: bounded JSON-RPC bodies; a tool call is a job of its client (its MCP session and address)."""
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, value = await self._json(scope, receive)
        calls = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]
        if not any(call.get("method") == "tools/call" for call in calls):
            await self.app(scope, replay(body, receive), send)
            return
        if urls := remote_file_urls([call.get("params") for call in calls]):
            await _json_rpc_error(send, calls[0].get("id"), NOT_FETCHED.format(url=urls[0][:200]))
            return
        job, client = secrets.token_hex(12), self._client(scope, header(scope, b"mcp-session-id"))
        if refusal := self.ledger.admit_job(job, client):
            raise Refused(429, refusal, [(b"retry-after", b"5")])
        try:
            await self.app(scope, replay(body, receive), send)
        finally:
            self.ledger.job_ended(job)


async def _json_rpc_error(send: Send, request_id: Any, message: str) -> None:
    """An MCP tool call refused as MCP clients expect it: a JSON-RPC error (an HTTP error ends their session)."""
    error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": message}}
    body = json.dumps(error).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def completed_events(chunk: bytes) -> list[str]:
    """Event ids of `process_completed` messages in a chunk of gradio's event stream."""
    ids = []
    for line in chunk.split(b"\n"):
        if line.startswith(b"data:") and b"process_completed" in line:
            answered = json_answer([line[5:]])
            event_id = answered.get("event_id") if isinstance(answered, dict) else None
            if isinstance(event_id, str) and event_id:
                ids.append(event_id)
    return ids
