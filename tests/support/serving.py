"""Serving a demo on loopback and talking to it as users do (gradio_client)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from janus_demo.service.backend import Backend


def serve(demo, backend: Backend, queue_size: int = 32, settings: Any = None, logins: Any = None) -> str:
    """Launch `demo` (built around `backend`) on a free loopback port with app.py's queue, safety and style
    options (the guard middleware included); return its URL."""
    from janus_demo.launch.server import configure_queue, safe_launch_options
    from janus_demo.launch.settings import Settings
    from janus_demo.web.demo import launch_options

    configure_queue(demo, queue_size)
    options = safe_launch_options(settings or Settings(), backend, logins) | launch_options()  # the page's style too
    return launch_on_loopback(demo, server_name="127.0.0.1", auth=logins, **options)


def launch_on_loopback(demo, **options: Any) -> str:
    """demo.launch(**options) in this process on a free port the system chose; return its URL.

    Not gradio's own search from port 7860: two test workers once took 7860 at the same moment, and an MCP app
    that failed to start once never starts again (its session manager runs once), so the search failed on all
    100 ports. Gradio's launch asks its own page once (3 s at most) and gives up with "localhost is not
    accessible" when the answer is late, as it was once on a busy 2-core machine: then it starts again."""
    for attempt in range(3):
        ports = {"server_port": free_port()} if options.get("server_port") is None else {}
        try:
            demo.launch(prevent_thread_lock=True, **(options | ports | {"ssr_mode": False, "quiet": True}))
            return demo.local_url
        except ValueError as error:
            if "localhost is not accessible" not in str(error) or attempt == 2:
                raise
            demo.close()
    raise AssertionError("unreachable")


def free_port() -> int:
    """A loopback port nothing listens on now (the system's pick among its ephemeral ports)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(
    backend: Backend, queue_size: int = 32, settings: Any = None, logins: Any = None
) -> Iterator[tuple[Any, str]]:
    """build_demo(backend) served on a free loopback port with app.py's queue and safety options."""
    from janus_demo.web.demo import build_demo

    demo = build_demo(backend)
    url = serve(demo, backend, queue_size, settings, logins)
    try:
        yield demo, url
    finally:
        demo.close()


# gradio_client's requests (its /config and /info at start, each upload and call) wait this long at most: httpx's
# default 5 s timed out when 50 clients started at once on a busy 2-core machine. Streams get gradio's heartbeat.
CLIENT_HTTPX = {"timeout": 60.0}


def new_client(url: str, download_dir: Any = None, visitor: int | None = None):
    """One user: its own gradio_client session and download folder (None: files are not downloaded); a
    `visitor` number makes it a visitor at its own address behind one proxy (the app served with proxy_hops=1).

    No certificates to check on loopback's plain http: with ssl_verify on, every request gradio_client makes
    (each its own httpx client) loaded certifi's bundle first, 35 ms of CPU each, which was most of a
    session's start and half the CPU of a short /chat call."""
    from gradio_client import Client

    headers = {"x-forwarded-for": f"198.51.100.{visitor % 250}"} if visitor is not None else None
    downloads = str(download_dir) if download_dir else False
    return Client(
        url, download_files=downloads, verbose=False, headers=headers, ssl_verify=False, httpx_kwargs=dict(CLIENT_HTTPX)
    )


def close_all(clients: list[Any]) -> None:
    """Close clients in parallel (each close waits up to 1 s for its heartbeat thread)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
        list(pool.map(lambda client: client.close(), clients))


def chat_message(text: str, files: tuple[str, ...] = ()) -> dict[str, Any]:
    from gradio_client import handle_file

    return {"text": text, "files": [handle_file(f) for f in files]}


def chat_args(max_new_tokens: Any = 4, temperature: Any = 0.0, top_p: Any = 0.95, seed: Any = 1) -> list[Any]:
    """The /chat settings after the message, in endpoint order."""
    return [max_new_tokens, temperature, top_p, seed]


def image_args(
    seed: Any = 1,
    guidance_scale: Any = 5.0,
    temperature: Any = 1.0,
    num_images: Any = 1,
    top_p: Any = 1.0,
    preview_every: Any = 0,
    preview_mode: Any = "off",
) -> list[Any]:
    """The /generate_images settings after the prompt, in endpoint order."""
    return [seed, guidance_scale, temperature, num_images, top_p, preview_every, preview_mode]
