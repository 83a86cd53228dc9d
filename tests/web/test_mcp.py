"""--mcp: the named endpoints are MCP tools, described by their docstrings, callable over streamable HTTP."""

import asyncio
import base64

import httpx
import pytest
from support import ASSETS

from janus_demo.launch.server import configure_queue, launch_kwargs
from janus_demo.launch.settings import Settings

TOOLS = {"chat", "generate_images", "complete_image", "redraw_region", "variations", "model_info"}


@pytest.fixture(scope="module")
def mcp_url(tiny_backend, tmp_path_factory, monkeypatch_module):
    """The app with --mcp, launched with app.py's own launch arguments on a free port."""
    from janus_demo.web.demo import build_demo

    monkeypatch_module.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("mcp-gradio")))
    demo = build_demo(tiny_backend)
    settings = Settings(mcp=True)
    configure_queue(demo, settings.queue_size)
    kwargs = {**launch_kwargs(settings, tiny_backend), "server_port": None, "ssr_mode": False, "quiet": True}
    demo.launch(prevent_thread_lock=True, **kwargs)
    yield demo.local_url + "gradio_api/mcp/"
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


def test_an_mcp_client_lists_and_calls_the_tools(mcp_url, tiny_backend):
    message = {"text": "Say something.", "files": []}
    kept = len(tiny_backend.histories)
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
    assert len(tiny_backend.histories) == kept, "MCP calls share one session: each must be a new conversation"


def data_url(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_an_mcp_client_asks_about_an_image(mcp_url, tmp_path):
    """gradio 6.31 kept a `$ref` to `$defs` it dropped, so every call with a file failed (PointerToNowhere);
    the message's schema is now written out, and images travel as data: URLs (MCP has no uploads)."""
    photo = ASSETS / "chelsea.png"
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"just some text, not a picture")
    _, (answer, refused, link) = call_tools(
        mcp_url,
        [
            ("chat", {"message": {"text": "What is this?", "files": [data_url(photo)]}, "max_new_tokens": 4}, True),
            ("chat", {"message": {"text": "And this?", "files": [data_url(not_an_image)]}, "max_new_tokens": 4}, True),
            ("chat", {"message": {"text": "x", "files": ["https://example.com/cat.png"]}}, True),
        ],
    )
    assert not answer.isError and "tokens/s" in answer.content[-1].text
    assert refused.isError and "not an image we can read" in refused.content[0].text, "the image was decoded"
    assert link.isError and "data:image/" in link.content[0].text
    assert "PointerToNowhere" not in str([answer, refused, link])


def test_the_chat_tool_says_how_to_attach_images(schema):
    message = schema["chat"]["inputSchema"]["properties"]["message"]
    assert "data:image/" in message["description"]
    assert "$ref" not in str(message) and "$defs" not in str(message)


def test_an_mcp_client_completes_a_photo_sent_as_a_data_url(mcp_url):
    arguments = {"image": data_url(ASSETS / "chelsea.png"), "prompt": "a cat", "keep_rows": 20, "preview_every": 0}
    _, (done, refused) = call_tools(
        mcp_url,
        [("complete_image", arguments, True), ("complete_image", {**arguments, "keep_rows": 24}, True)],
    )
    text = str([block.text for block in done.content])
    assert not done.isError and "janus-" in text and "Done: 576 tokens" in text
    assert refused.isError and "Rows to keep must be a whole number between 1 and 23" in refused.content[0].text
