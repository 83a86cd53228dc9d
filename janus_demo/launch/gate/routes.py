"""The routes this app's pages, API clients (gradio_client, curl) and MCP clients use; nothing else passes.

gradio 6.31 serves about 80 routes (run history, vibe editing, profiling, a proxy, media streams, monitoring,
component servers, ...). The gate lets through only the ones below, each with its methods and what its body
may be; any other path gets 404 and a known path with another method 405, before gradio reads a byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from janus_demo.launch.gate.asgi import Refused

API = "/gradio_api"


class Kind(Enum):
    """What the gate does with a route's requests (see `janus_demo.launch.gate.Gate`)."""

    PAGE = "page"  # static files, config, page data: no body
    JOIN = "join"  # POST /queue/join: a request joins the line
    RUN = "run"  # POST /run/<name>: a queue-less event (gradio refuses queued ones there)
    CALL = "call"  # POST /call/<api>: joins the line, curl-style
    CALL_STREAM = "call_stream"  # GET /call/<api>/<event_id>: that join's results
    CANCEL = "cancel"  # POST /cancel
    RESET = "reset"  # POST /reset (a no-op in gradio 6.31, kept for its client)
    QUEUE_STREAM = "queue_stream"  # GET /queue/data?session_hash=...: a session's results
    HEARTBEAT = "heartbeat"  # GET /heartbeat/<session_hash>
    UPLOAD = "upload"  # POST /upload: multipart files
    LOGIN = "login"
    LOGOUT = "logout"
    MCP = "mcp"  # the MCP server (streamable HTTP and SSE)


@dataclass(frozen=True)
class Route:
    kind: Kind
    methods: frozenset[str]
    pattern: re.Pattern[str]


def _route(kind: Kind, methods: str, pattern: str) -> Route:
    return Route(kind, frozenset(methods.split()), re.compile(pattern))


PAGE_FILES = r"/|/config/?|/favicon\.ico|/robots\.txt|/manifest\.json|/theme\.css|/pwa_icon(/\d+)?"
PAGE_FOLDERS = r"/(assets|static|svelte)/[^?#]+"
PAGE_API = (
    r"/gradio_api/(info/?|theme\.css|upload_progress|startup-events|app_id/?|login_check/?|token/?|user/?"
    r"|file=[^?#]+)"
)
ROUTES = (
    _route(Kind.PAGE, "GET HEAD", PAGE_FILES),
    _route(Kind.PAGE, "GET HEAD", PAGE_FOLDERS),
    _route(Kind.PAGE, "GET HEAD", PAGE_API),
    _route(Kind.JOIN, "POST", r"/gradio_api/queue/join"),
    _route(Kind.RUN, "POST", r"/gradio_api/run/[^/]+/?"),
    _route(Kind.CALL, "POST", r"/gradio_api/call(/v2)?/[^/]+/?"),
    _route(Kind.CALL_STREAM, "GET", r"/gradio_api/call(/v2)?/[^/]+/[^/]+/?"),
    _route(Kind.CANCEL, "POST", r"/gradio_api/cancel/?"),
    _route(Kind.RESET, "POST", r"/gradio_api/reset/?"),
    _route(Kind.QUEUE_STREAM, "GET", r"/gradio_api/queue/data"),
    _route(Kind.HEARTBEAT, "GET", r"/gradio_api/heartbeat/[^/]+"),
    _route(Kind.UPLOAD, "POST", r"/gradio_api/upload"),
    _route(Kind.LOGIN, "POST", r"/login/?"),
    _route(Kind.LOGOUT, "GET", r"/logout/?"),
    _route(Kind.MCP, "GET POST DELETE", r"/gradio_api/mcp(/|/messages/?)?"),
    _route(Kind.MCP, "GET HEAD", r"/gradio_api/mcp/(schema|sse)"),
)
NOT_FOUND = "Not found. This app's endpoints are listed at /?view=api; they join the queue (use gradio_client)."
NOT_ALLOWED = "Method not allowed."


def route_of(method: str, path: str) -> Route:
    """The route a request is for; Refused 404 (unknown path) or 405 (known path, other method)."""
    known = [route for route in ROUTES if route.pattern.fullmatch(path)]
    for route in known:
        if method in route.methods:
            return route
    raise Refused(405 if known else 404, NOT_ALLOWED if known else NOT_FOUND)


def call_event(path: str) -> str:
    """The event id at the end of a `/call/<api>/<event_id>` path."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def heartbeat_session(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
