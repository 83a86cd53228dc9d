"""Remote URLs in file inputs are never fetched: a file value whose path is `http://...` (chat message files, the
edit endpoints, /upscale, the MCP tools, gradio's own /file= route) makes the server download nothing, and the
request is refused with a message.

gradio 6.31 moves every file value of a request into its cache before any function of the app runs, with
`preprocess=False` too: a `path` that is an http(s) URL is downloaded (`async_ssrf_protected_download`, which
only refuses hosts that resolve to private addresses), and the app reads the download as an upload. In these
tests a loopback server stands in for a public host (`safehttpx.async_validate_url` is told it is public) and
counts what the server fetches from it. Measured before the door refused them: every endpoint below fetched
its picture (1 request each, 2 for /redraw_region's image and mask) and drew from it.

The gate (janus_demo/launch/gate) calls `janus_demo.launch.gate.remote_files` on the bodies and paths it lets
through: such requests are refused before gradio sees them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import uuid

import httpx
import pytest
import safehttpx
from support import ASSETS
from support.raw_api import fn_index

from janus_demo.launch.gate.remote_files import (
    FILE_PARAMETERS,
    NOT_FETCHED,
    remote_file_route,
    remote_file_urls,
)
from janus_demo.service.fields import ImageField
from janus_demo.service.schemas import Limits, schemas_for

PICTURE = (ASSETS / "chelsea.png").read_bytes()


# --- the pure functions


def file_data(url):
    """A file value as gradio's clients send it (FileData), naming a remote URL instead of an upload."""
    return {"path": url, "url": url, "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}


def join_data(url):
    """Each endpoint's request data with its file values naming pictures at `url`."""
    return {
        "chat": [{"text": "What is this?", "files": [file_data(url + "/chat.png")]}, 4, 0.0, 0.95, 1],
        "complete_image": [file_data(url + "/complete.png"), "a cat", 12, 1, 5.0, 1.0, 1, 0, True],
        "redraw_region": [
            file_data(url + "/redraw.png"),
            file_data(url + "/mask.png"),
            "a cat",
            1,
            5.0,
            1.0,
            1,
            0,
            True,
        ],
        "variations": [file_data(url + "/vary.png"), 1, 1, 5.0, 1.0, 0],
        "upscale": [file_data(url + "/upscale.png")],
    }


def test_file_values_naming_remote_urls_are_found_in_every_endpoints_body():
    url = "https://example.com"
    named = {"chat": ["chat"], "complete_image": ["complete"], "redraw_region": ["redraw", "mask"]}
    named |= {"variations": ["vary"], "upscale": ["upscale"]}
    for api, data in join_data(url).items():
        body = {"data": data, "fn_index": 3, "session_hash": "abc", "event_data": None}
        assert remote_file_urls(body) == [f"{url}/{name}.png" for name in named[api]], api
    assert remote_file_urls({"data": [{"url": "HTTPS://example.com/a.png", "meta": {}}]}) == [
        "HTTPS://example.com/a.png"
    ], "a url without a path is what the request names"
    assert remote_file_urls([{"path": " http://10.0.0.1/x"}]) == [" http://10.0.0.1/x"]


def test_mcp_tool_arguments_naming_remote_urls_are_found():
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call"}
    image = {**call, "params": {"name": "redraw_region", "arguments": {"image": "https://a.example/p.png"}}}
    both = {"name": "redraw_region", "arguments": {"image": "data:image/png;base64,AAAA", "mask": "http://b/m.png"}}
    files = {"name": "chat", "arguments": {"message": {"text": "hi", "files": ["https://c.example/f.png"]}}}
    assert remote_file_urls(image) == ["https://a.example/p.png"]
    assert remote_file_urls({**call, "params": both}) == ["http://b/m.png"]
    assert remote_file_urls([{**call, "params": files}]) == ["https://c.example/f.png"], "a batch too"


def test_honest_bodies_name_no_remote_file():
    cached = "/tmp/gradio/4f2a/cat.png"
    uploaded = {**file_data(cached), "url": "http://127.0.0.1:7860/gradio_api/file=" + cached}
    history = [{"role": "user", "content": [{"type": "file", "file": uploaded}, {"type": "text", "text": "hi"}]}]
    bodies = [
        {"data": [{"text": "https://example.com is down, why?", "files": [uploaded]}, history, 4], "fn_index": 1},
        {"data": ["https://example.com/cat.png in watercolour", 1, 5.0], "fn_index": 2},  # a prompt, not a file
        {"method": "tools/call", "params": {"name": "generate_images", "arguments": {"prompt": "http://x.png"}}},
        {"data": [{"path": "data:image/png;base64,AAAA"}, None, 7.5, [], {}]},
        "https://example.com/x.png",
        None,
    ]
    for body in bodies:
        assert remote_file_urls(body) == [], body


def test_a_deeply_nested_body_is_walked_without_recursion():
    nested: object = [{"path": "https://example.com/deep.png"}]
    for _ in range(100_000):  # deeper than Python's recursion limit
        nested = [nested]
    assert remote_file_urls({"data": nested}) == ["https://example.com/deep.png"]


def test_the_file_parameters_are_every_image_field_of_the_schemas():
    named = {field.name for schema in schemas_for(Limits(), gpu=False) for field in schema}
    images = {
        field.name for schema in schemas_for(Limits(), gpu=False) for field in schema if isinstance(field, ImageField)
    }
    assert images <= FILE_PARAMETERS and not (FILE_PARAMETERS - {"files"}) - images
    assert not (named - images) & FILE_PARAMETERS, "no text or number field shares a file parameter's name"


def test_gradios_file_route_naming_a_remote_url_is_found():
    assert remote_file_route("/gradio_api/file=https://example.com/x.png") == "https://example.com/x.png"
    assert remote_file_route("/gradio_api/file=HTTP://10.0.0.1/x") == "HTTP://10.0.0.1/x"
    assert remote_file_route("/gradio_api/file=/tmp/gradio/4f2a/cat.png") is None
    assert remote_file_route("/gradio_api/info") is None
    assert "https://example.com/x.png" in NOT_FETCHED.format(url="https://example.com/x.png")


# --- through the served app


class Counting(http.server.BaseHTTPRequestHandler):
    """Serves the test picture at any path and notes each path asked for."""

    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        Counting.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(PICTURE)))
        self.end_headers()
        self.wfile.write(PICTURE)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def picture_host():
    """A tiny HTTP server on loopback that counts the requests it gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def public_host(picture_host, monkeypatch):
    """The picture host as if it were on the internet (gradio's SSRF check lets it through), under a folder of
    this test's own (gradio keeps what it downloaded by URL, and would not ask again)."""
    Counting.hits.clear()
    real = safehttpx.async_validate_url

    async def validate(hostname):
        return "127.0.0.1" if hostname == "127.0.0.1" else await real(hostname)

    monkeypatch.setattr(safehttpx, "async_validate_url", validate)
    return f"{picture_host}/{uuid.uuid4().hex[:8]}"


def test_the_stand_in_host_is_one_gradio_would_fetch_from(public_host):
    """The control: without the door, gradio's download (the one its file intake uses) reaches the host."""
    from gradio import processing_utils

    response = asyncio.run(processing_utils.async_ssrf_protected_get(public_host + "/control.png"))

    assert response.status_code == 200 and response.content == PICTURE
    assert Counting.hits == [httpx.URL(public_host).path + "/control.png"]


def joined(url, index, data):
    """Join the queue with `data` and read the event stream to the end: (HTTP status of the join, the error
    message: the join's refusal or the job's, None when the job succeeded)."""
    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(base_url=url, timeout=60) as http:
        join = http.post("gradio_api/queue/join", json=body)
        if join.status_code != 200:
            return join.status_code, join.text
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    output = message.get("output") or {}
                    return 200, None if message.get("success") else str(output.get("error"))
    raise AssertionError("the event stream ended without process_completed")


@pytest.mark.parametrize("api", ["chat", "complete_image", "redraw_region", "variations", "upscale"])
def test_a_remote_url_as_a_file_is_refused_and_never_fetched(upscaling, public_host, api):
    status, error = joined(upscaling.url, fn_index(upscaling.url, api), join_data(public_host)[api])

    assert Counting.hits == [], f"the server fetched {Counting.hits}"
    assert error and "never fetched" in error, (status, error)


def test_a_remote_url_in_the_browsers_chat_message_is_refused_and_never_fetched(upscaling, public_host):
    config = httpx.get(upscaling.url + "config", timeout=10).json()
    types = {component["id"]: component["type"] for component in config["components"]}
    submit = next(d for d in config["dependencies"] if d["inputs"] and types[d["inputs"][0]] == "multimodaltextbox")
    message = {"text": "What is this?", "files": [file_data(public_host + "/browser.png")]}
    data = [message, [], 4, 0.0, 0.95, 1]

    status, error = joined(upscaling.url, submit["id"], data)

    assert Counting.hits == [], f"the server fetched {Counting.hits}"
    assert status != 200 and "never fetched" in str(error), (status, error)


def test_gradios_file_route_never_fetches_a_remote_url(upscaling, public_host):
    answer = httpx.get(f"{upscaling.url}gradio_api/file={public_host}/route.png", timeout=30)

    assert Counting.hits == [], f"the server fetched {Counting.hits}"
    assert answer.status_code in (403, 404, 422) and answer.content != PICTURE


@pytest.fixture(scope="module")
def mcp_url(loaded_tiny, tmp_path_factory):
    """The app with an upscaler and --mcp, launched with app.py's own launch arguments on a free port."""
    from support.fake_backend import FakeBackend
    from support.serving import launch_on_loopback
    from support.upscaler import tiny_upscaler

    from janus_demo.launch.server import configure_queue, launch_kwargs
    from janus_demo.launch.settings import Settings
    from janus_demo.web.demo import build_demo

    backend = FakeBackend(loaded_tiny, upscaler=tiny_upscaler(tmp_path_factory.mktemp("upscaler")))
    demo = build_demo(backend)
    settings = Settings(mcp=True)
    configure_queue(demo, settings.queue_size)
    url = launch_on_loopback(demo, **(launch_kwargs(settings, backend) | {"server_port": None}))
    yield url + "gradio_api/mcp/"
    demo.close()


def call_tool(url, name, arguments):
    """One MCP tool call over streamable HTTP: its result, or the error that ended the call."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def session():
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as mcp:
            await mcp.initialize()
            return await asyncio.wait_for(mcp.call_tool(name, arguments), 60)

    try:
        return asyncio.run(session())
    except Exception as error:  # noqa: BLE001 - a refused HTTP request ends the MCP session with an error
        return error


def mcp_arguments(tool, host):
    """A tool call's arguments, its image (and mask) named by a URL at `host`."""
    image = f"{host}/{tool}.png"
    return {
        "complete_image": {"image": image, "prompt": "a cat", "keep_rows": 12, "preview_every": 0},
        "redraw_region": {"image": image, "mask": f"{host}/mask.png", "prompt": "a cat", "preview_every": 0},
        "variations": {"image": image, "preview_every": 0},
        "upscale": {"image": image},
    }[tool]


@pytest.mark.parametrize("tool", ["complete_image", "redraw_region", "variations", "upscale"])
def test_an_mcp_tool_given_a_remote_url_never_fetches_it(mcp_url, public_host, tool):
    result = call_tool(mcp_url, tool, mcp_arguments(tool, public_host))

    assert Counting.hits == [], f"the server fetched {Counting.hits}"
    assert isinstance(result, Exception) or result.isError, result
    assert "never fetched" in repr(result), "the client is told why (a JSON-RPC error, or the tool's error)"
