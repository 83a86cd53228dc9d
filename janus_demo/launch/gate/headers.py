"""Where a request comes from, as its headers say, and the headers every response carries.

Every response gets `X-Content-Type-Options`, `Referrer-Policy` and a `frame-ancestors` policy that still lets a
Hugging Face Space embed the app; posts and logouts from other sites (a page elsewhere acting through a
visitor's browser) are told apart by Origin, Referer and Sec-Fetch-Site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from janus_demo.launch.gate.asgi import Message, Scope, Send, header

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"content-security-policy", b"frame-ancestors 'self' https://huggingface.co https://*.huggingface.co"),
]


def with_security_headers(send: Send) -> Send:
    """`send` that adds SECURITY_HEADERS to the response (unless the app set them)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def same_origin(scope: Scope) -> bool:
    """No Origin header (API clients), or one naming this host (or the host a proxy forwarded)."""
    origin = header(scope, b"origin")
    return origin is None or _from_here(origin, scope)


def same_site(scope: Scope) -> bool:
    """Sec-Fetch-Site, Origin and Referer, where present, all say this request came from this site."""
    site = header(scope, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    return all(
        value is None or _from_here(value, scope) for value in (header(scope, b"origin"), header(scope, b"referer"))
    )


def _from_here(url: str, scope: Scope) -> bool:
    return url != "null" and _hostname(urlsplit(url).netloc) in _hosts(scope)


def _hosts(scope: Scope) -> set[str]:
    """This server's host names as the request names them (directly, or as a proxy forwarded them)."""
    return {_hostname(header(scope, name)) for name in (b"host", b"x-forwarded-host")} - {None}


def _hostname(host: str | None) -> str | None:
    if not host:
        return None
    return (urlsplit(f"//{host}").hostname or "").lower() or None
