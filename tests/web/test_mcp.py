"""--mcp: the named endpoints are MCP tools, described by their docstrings, callable over streamable HTTP."""

import asyncio
import base64
import importlib
import io
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image
from support import ASSETS, ROOT
from support.serving import free_port, launch_on_loopback

from janus_demo.launch.cache import GRADIO_IMPORT_TIME_DIRS
from janus_demo.launch.server import configure_queue, launch_kwargs
from janus_demo.launch.settings import Settings

TOOLS = {"chat", "generate_images", "complete_image", "redraw_region", "variations", "model_info"}


@pytest.fixture(scope="module")
def mcp_url(small_backend, tmp_path_factory, monkeypatch_module):
    """The app with --mcp, launched with app.py's own launch arguments on a free port."""
    from janus_demo.web.demo import build_demo

    monkeypatch_module.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("mcp-gradio")))
    demo = build_demo(small_backend)
    settings = Settings(mcp=True)
    configure_queue(demo, settings.queue_size)
    url = launch_on_loopback(demo, **(launch_kwargs(settings, small_backend) | {"server_port": None}))
    yield url + "gradio_api/mcp/"
    demo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def schema(mcp_url):
    response = httpx.get(mcp_url + "schema", timeout=30)
    response.raise_for_status()
    return {tool["name"]: tool for tool in response.json()}


def test_the_named_endpoints_are_the_tools(schema):
    assert set(schema) == TOOLS
    assert {name: tool["meta"]["endpoint_name"] for name, tool in schema.items()} == {name: name for name in TOOLS}


def test_tools_are_described_by_their_docstrings(schema):
    assert schema["chat"]["description"].startswith("Chat with Janus-Pro about images")
    assert schema["generate_images"]["description"].startswith("Generate images from a text prompt")
    assert "model_id" in schema["model_info"]["description"]
    chat_inputs = schema["chat"]["inputSchema"]["properties"]
    assert set(chat_inputs) == {"message", "max_new_tokens", "temperature", "top_p", "seed"}
    image_inputs = schema["generate_images"]["inputSchema"]["properties"]
    assert schema["generate_images"]["inputSchema"]["required"] == ["prompt"]
    for properties in (chat_inputs, image_inputs):
        for name, spec in properties.items():
            assert spec.get("description"), f"{name} has no description (its Args: line in the docstring)"


def call_tools(url: str, calls: list[tuple[str, dict, bool]]) -> tuple[set[str], list]:
    """List the tools, then make each call (with a progress callback when asked) over streamable HTTP."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def progress(done, total, message):
        pass

    async def session():
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as mcp:
            await mcp.initialize()
            names = {tool.name for tool in (await mcp.list_tools()).tools}
            results = []
            for name, arguments, with_progress in calls:
                callback = progress if with_progress else None
                results.append(await asyncio.wait_for(mcp.call_tool(name, arguments, progress_callback=callback), 120))
            return names, results

    return asyncio.run(session())


def test_an_mcp_client_lists_and_calls_the_tools(mcp_url, small_backend):
    message = {"text": "Say something.", "files": []}
    kept = len(small_backend.histories)
    names, (info, answer, quiet) = call_tools(
        mcp_url,
        [
            ("model_info", {}, False),
            ("chat", {"message": message, "max_new_tokens": 8, "temperature": 0}, True),
            ("chat", {"message": message, "max_new_tokens": 8, "temperature": 0}, False),
        ],
    )
    assert names == TOOLS
    assert not info.isError and "'random_weights': True" in info.content[0].text
    assert not answer.isError and "tokens/s" in answer.content[-1].text
    assert not quiet.isError and "tokens/s" in quiet.content[-1].text, "with or without a progress token"
    assert len(small_backend.histories) == kept, "MCP calls share one session: each must be a new conversation"


def data_url(path) -> str:
    return png_data_url(path.read_bytes())


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_an_mcp_client_asks_about_an_image(mcp_url, tmp_path):
    """gradio 6.31 kept a `$ref` to `$defs` it dropped, so every call with a file failed (PointerToNowhere);
    the message's schema is now written out, and images travel as data: URLs (MCP has no uploads). An image
    named by an http(s) URL is refused by the gate before the tool runs (tests/hardening/test_remote_files.py)."""
    photo = ASSETS / "chelsea.png"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"just some text, not a picture")
    _, (answer, refused) = call_tools(
        mcp_url,
        [
            ("chat", {"message": {"text": "What is this?", "files": [data_url(photo)]}, "max_new_tokens": 4}, True),
            ("chat", {"message": {"text": "And this?", "files": [data_url(not_an_image)]}, "max_new_tokens": 4}, True),
        ],
    )
    assert not answer.isError and "tokens/s" in answer.content[-1].text
    assert refused.isError and "not an image we can read" in refused.content[0].text, "the image was decoded"
    assert "PointerToNowhere" not in str([answer, refused])


def test_the_chat_tool_says_how_to_attach_images(schema):
    message = schema["chat"]["inputSchema"]["properties"]["message"]
    assert "data:image/" in message["description"]
    assert "$ref" not in str(message) and "$defs" not in str(message)


def test_an_mcp_client_completes_a_photo_sent_as_a_data_url(mcp_url, small_backend):
    shape = small_backend.image_shape
    arguments = {"image": data_url(ASSETS / "chelsea.png"), "prompt": "a cat", "keep_rows": 5, "preview_every": 0}
    _, (done, refused) = call_tools(
        mcp_url,
        [("complete_image", arguments, True), ("complete_image", {**arguments, "keep_rows": shape.rows}, True)],
    )
    text = str([block.text for block in done.content])
    assert not done.isError and "janus-" in text and f"Done: {shape.tokens} tokens" in text
    expected = f"Rows to keep must be a whole number between 1 and {shape.rows - 1}"
    assert refused.isError and expected in refused.content[0].text


def noise_png(seed: int) -> bytes:
    """A 64x64 PNG of its own content (gradio names a saved data: image by the hash of its content)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), bytes((seed * 7919 + n) % 251 for n in range(64 * 64 * 3))).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_app_py_keeps_mcp_images_in_its_own_cache_folder_and_removes_it_on_sigterm(tiny_dir, tmp_path):
    """gradio's MCP server saves the `data:` image of an image input as a file before the call, under the temp
    folder gradio.mcp read when it was imported, before app.py claimed its own: 40 refused calls left 25 MB
    outside it, still present after a restart. Now they land in the process's own folder (counted by the cache
    budget, swept), and on SIGTERM app.py removes that folder with its files: nothing is left once it has exited.
    (The one app.py start of the cache folder's end to end; tests/hardening/test_disk.py has the rest.)"""
    base, port = tmp_path / "gradio", free_port()
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(base),
        "JANUS_MODEL": str(tiny_dir),
        "JANUS_DEVICE": "cpu",
        "JANUS_QUANTIZATION": "none",
    }
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        command = [sys.executable, "app.py", "--port", str(port), "--mcp"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Running on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        pictures = [noise_png(seed) for seed in range(3)]
        refused = {"prompt": "a cat", "keep_rows": 24, "preview_every": 0}  # rows out of range: refused by the app
        calls = [("complete_image", {**refused, "image": png_data_url(png)}, False) for png in pictures]
        _, results = call_tools(f"http://127.0.0.1:{port}/gradio_api/mcp/", calls)
        assert all(result.isError and "Rows to keep" in result.content[0].text for result in results)
        (own,) = base.glob("janus-*")
        outside = [path for path in base.rglob("*") if path.is_file() and own not in path.parents]
        assert outside == [], "gradio saved them outside the app's own folder"
        saved = {path.read_bytes() for path in own.rglob("*") if path.is_file()}
        assert set(pictures) <= saved
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert [path for path in base.rglob("*") if path.is_file()] == [], log.read_text()


def test_gradio_still_copies_its_temp_folder_at_import():
    """janus_demo.launch.cache.gradio_writes_into sets these gradio module attributes (gradio has no public
    setting for them); when a gradio version renames or drops one, look again at what writes where."""
    for module, attribute in GRADIO_IMPORT_TIME_DIRS:
        assert hasattr(importlib.import_module(module), attribute), f"{module}.{attribute}"
