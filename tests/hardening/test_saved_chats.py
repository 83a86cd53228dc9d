"""Saved chats come from the browser's storage, which its owner can rewrite at will: through the served app, a
forged list never makes the server serve a file outside its cache, and an oversized one is cut to the caps.
"""

import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
from support.browser import CAT

NOTE = "(An image of this message is no longer on the server.)"


def page_load_event(url):
    """The page-load event that reads the saved chats: the browser-state component in, the chatbot among its outputs."""
    config = httpx.get(url + "config", timeout=10).json()
    types = {component["id"]: component["type"] for component in config["components"]}
    for dependency in config["dependencies"]:
        if [types[i] for i in dependency["inputs"]] == ["browserstate"] and "load" in str(dependency["targets"]):
            return dependency["id"], [types[i] for i in dependency["outputs"]]
    raise AssertionError("the saved chats' page-load event was not found")


def load_page(url, stored):
    """What the page-load event answers for `stored` (as the browser would send it from its storage)."""
    index, outputs = page_load_event(url)
    body = {"data": [stored], "fn_index": index, "session_hash": uuid.uuid4().hex, "event_data": None}
    response = httpx.post(url + "gradio_api/run/predict", json=body, timeout=10)
    response.raise_for_status()
    return dict(zip(outputs, response.json()["data"], strict=True))


def image_message(path):
    return {"role": "user", "content": [{"type": "file", "file": {"path": str(path)}}, {"type": "text", "text": "hi"}]}


def test_a_forged_saved_chat_never_serves_a_file_outside_the_cache(fake, tmp_path):
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    kept = cache / "saved-chat-test" / "cat.png"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(CAT, kept)
    secret = tmp_path / "secret.png"
    secret.write_text("not for visitors")
    paths = ["/etc/passwd", str(secret), f"{cache}/../{tmp_path.name}/secret.png", str(Path.cwd() / "app.py")]
    forged = [{"id": "0123abcd", "messages": [image_message(path) for path in [*paths, kept]]}]

    answer = load_page(fake.url, forged)

    shown = answer["chatbot"]
    files = [block["file"] for m in shown for block in m["content"] if block.get("type") == "file"]
    notes = [block["text"] for m in shown for block in m["content"] if block.get("text") == NOTE]
    assert len(files) == 1 and Path(files[0]["path"]).name == "cat.png", files
    assert len(notes) == len(paths)
    served = httpx.get(files[0]["url"], timeout=10)
    assert served.status_code == 200 and served.content == Path(CAT).read_bytes(), "the cached picture is shown"
    stored = str(answer["browserstate"])
    assert all(path not in stored for path in paths), "the forged paths are not written back either"
    for path in paths:  # gradio itself would have served none of them anyway
        assert httpx.get(f"{fake.url}gradio_api/file={path}", timeout=10).status_code in (403, 404)


def test_an_oversized_saved_list_is_cut_to_the_caps(fake):
    hello = {"role": "user", "content": [{"type": "text", "text": "hello"}]}
    forged = [{"id": f"{n:08x}", "messages": [hello] * 120} for n in range(15)]

    answer = load_page(fake.url, forged)

    stored = answer["browserstate"]
    assert len(stored) == fake.limits.max_saved_chats
    assert all(len(chat["messages"]) == fake.limits.max_saved_messages for chat in stored)
    assert len(answer["chatbot"]) == fake.limits.max_saved_messages, "the newest chat is opened"
    assert [choice[1] for choice in answer["dropdown"]["choices"]] == [chat["id"] for chat in stored]


def test_a_forged_path_of_a_million_characters_is_never_resolved(fake, monkeypatch):
    """A saved chat with one path of 957 KB ("/tmp/../tmp/..." 140,000 times) cost 6 s of CPU per request in
    pathlib's resolve (quadratic in a path's parts), in an event that skips the queue. Now the list is measured
    before it is read and no path over the cap is resolved: the work is linear in the request's size."""
    resolved = []
    resolve = Path.resolve

    def spy(self, strict=False):
        resolved.append(len(str(self)))
        return resolve(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", spy)
    cases = [
        ("/tmp" + "/../tmp" * 140_000, "the list is over max_saved_size: left out unread", []),
        ("/tmp" + "/../tmp" * 40_000, "the path is over max_path_chars: a note", [[NOTE, "hi"]]),
    ]
    for forged_path, why, expected in cases:
        started = time.process_time()
        answer = load_page(fake.url, [{"id": "0123abcd", "messages": [image_message(forged_path)]}])
        print(
            f"\nCPU time of one forged saved-chat request ({len(forged_path):,} characters): "
            f"{time.process_time() - started:.3f} s"
        )

        assert [[block.get("text") for block in m["content"]] for m in answer["chatbot"]] == expected, why
        assert forged_path not in str(answer["browserstate"])
    assert max(resolved, default=0) <= fake.limits.max_path_chars, "no path over the cap was resolved"
