"""Remote URLs where a request names a file. This app never fetches one; gradio 6.31 does, before any
function of the app runs, so the gate has to refuse such requests (HTTP 422 with `NOT_FETCHED`).

    remote_file_urls({"data": [{"path": "https://example.com/x.png", "meta": {"_type": "gradio.FileData"}}]})
    # ['https://example.com/x.png']
    remote_file_route("/gradio_api/file=https://example.com/x.png")      # 'https://example.com/x.png'

Where gradio 6.31 fetches (read in its source, and measured through the served app):
- Every file value of a request (a dict with `"meta": {"_type": "gradio.FileData"}`) whose `path` is an
  http(s) URL is downloaded into gradio's cache by `processing_utils.async_move_files_to_cache` (through
  `Block.async_move_resource_to_block_cache` and `async_ssrf_protected_download`), for every event and API
  endpoint, `preprocess=False` or not, before the validator and the function; it refuses only hosts that
  resolve to private addresses. The app then reads the downloaded file as if it had been uploaded.
- An MCP tool's file argument given as an http(s) URL string becomes such a file value
  (`GradioMCPServer.convert_strings_to_filedata`: `handle_file(url)`) and joins the queue through the loopback.
- `GET /gradio_api/file=<http(s) URL>` fetches the URL and streams it back (`secure_url_stream_response`): a
  proxy to any public host.

The gate calls `remote_file_urls` on every JSON body it lets through (queue joins, `/call`, `/run`, MCP tool
calls) and `remote_file_route` on every path. Pure functions: no gradio import, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

REMOTE = ("http://", "https://")
FILE_ROUTE = "/gradio_api/file="
# The names this app's requests give files under (the image fields of `janus_demo.service.schemas`, a chat
# message's `files`): an MCP client names a file there by a URL string.
FILE_PARAMETERS = frozenset({"image", "mask", "files"})
NOT_FETCHED = (
    "Files are never fetched from other servers (this request names {url}): upload the file instead, or send "
    "an image as a data:image/...;base64, URL."
)


def remote_file_urls(body: object) -> list[str]:
    """The http(s) URLs that `body` (parsed JSON) gives as files, in order: the `path` of a file value (its
    `url` when it has no path), and a URL string under a file parameter's name. A loop over a stack, not
    recursion: deeply nested bodies cannot overflow it."""
    found: list[str] = []
    pending: list[tuple[object, object]] = [(None, body)]
    while pending:
        key, value = pending.pop()
        if isinstance(value, Mapping):
            found += _file_value_url(value)
            pending += reversed(list(value.items()))
        elif isinstance(value, list | tuple):
            pending += [(key, item) for item in reversed(value)]
        elif key in FILE_PARAMETERS and is_remote(value):
            found.append(value)
    return found


def remote_file_route(path: str) -> str | None:
    """The URL that a `/gradio_api/file=<URL>` request path asks gradio to fetch, else None."""
    named = path.removeprefix(FILE_ROUTE)
    return named if named != path and is_remote(named) else None


def is_remote(value: object) -> TypeGuard[str]:
    """True for an http(s) URL (any case, surrounding spaces ignored)."""
    return isinstance(value, str) and value.strip().lower().startswith(REMOTE)


def _file_value_url(value: Mapping[object, object]) -> list[str]:
    path, url = value.get("path"), value.get("url")
    if is_remote(path):
        return [path]
    # A file value's `url` is where the browser shows it (this server's own /file= route): only without a
    # path is it what the request names.
    return [url] if is_remote(url) and not (isinstance(path, str) and path) else []
