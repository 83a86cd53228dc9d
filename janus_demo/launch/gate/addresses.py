"""Who is asking, by address: the peer, or behind `--proxy-hops` proxies the address the outermost one saw.

uvicorn rewrites a request's client address from `X-Forwarded-For` whenever the peer is on its trusted list
(127.0.0.1 unless `FORWARDED_ALLOW_IPS` says otherwise), and gradio's launch gives no way to turn that off: a
client on this machine could name any address it liked. `distrust_forwarded_headers` empties that list, so the
address the gate reads is the peer's own, and `client_ip` believes exactly as many forwarded addresses as the
host configured, from every `X-Forwarded-For` line (a client can send several).
"""

from __future__ import annotations

import os

from janus_demo.launch.gate.asgi import Scope, headers_named

UVICORN_TRUSTED = "FORWARDED_ALLOW_IPS"  # read by uvicorn.Config when gradio's launch makes it


def distrust_forwarded_headers() -> None:
    """Make uvicorn trust no peer's `X-Forwarded-For` (call before launch; the gate reads the header itself)."""
    os.environ[UVICORN_TRUSTED] = ""


def forwarded_for(scope: Scope) -> list[str]:
    """Every address of every `X-Forwarded-For` line, in order (the nearest proxy's last)."""
    return [
        part.strip() for line in headers_named(scope, b"x-forwarded-for") for part in line.split(",") if part.strip()
    ]


def client_ip(scope: Scope, proxy_hops: int) -> str:
    """The peer's address; behind `proxy_hops` proxies, the address the outermost of them saw."""
    peer = (scope.get("client") or ("unknown",))[0]
    if proxy_hops <= 0:
        return peer
    forwarded = forwarded_for(scope)
    if not forwarded:
        return peer
    return forwarded[-proxy_hops] if len(forwarded) >= proxy_hops else forwarded[0]
