"""Request bodies are capped on every route, no request holds the event loop, and responses carry safety headers.

A 14 MB chat history (100,000 turns) posted to the browser's chat event through /queue/join, and to the
queue-less Undo route, is refused with HTTP 413 before the model and the server grows by less than 80 MB; a
history just under the 1 MB cap is answered. Measured (printed with -s, not asserted: tests assert no speed):
the 413 comes in milliseconds, and a client polling meanwhile waits well under a second. Cross-origin posts are
refused; every response carries X-Content-Type-Options, Referrer-Policy and a frame-ancestors policy that lets
huggingface.co embed it.
"""

import json
import threading
import time
import uuid

import httpx
import pytest
from support.meters import PeakRss, wait_until
from support.raw_api import raw_call

from janus_demo.service.clients import ClientLimits

MB = 2**20


def history_of(turns: int, text: str = "hi") -> list[dict]:
    """`turns` answered exchanges in the browser's message shape."""
    messages = []
    for n in range(turns):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"{text} {n}"}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    return messages


def dependency(url: str, trigger: str) -> dict:
    """The chat event with this trigger ("submit" on the composer, "undo" on the chatbot), from the served config."""
    config = httpx.get(url + "config", timeout=10).json()
    types = {component["id"]: component["type"] for component in config["components"]}
    for dep in config["dependencies"]:
        if any(t[1] == trigger and types.get(t[0]) in ("chatbot", "multimodaltextbox") for t in dep["targets"]):
            return dep
    raise AssertionError(f"no chat {trigger} event")


class Poller:
    """Another client asking for a tiny page every 20 ms; `worst` is its longest wait (a printed figure)."""

    def __init__(self, url: str) -> None:
        self.url, self.worst, self._stop = url, 0.0, threading.Event()
        self._answered = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Poller":
        self._thread.start()
        assert self._answered.wait(60), "the app answers a first poll"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                start = time.monotonic()
                http.get(self.url + "gradio_api/app_id")
                self.worst = max(self.worst, time.monotonic() - start)
                self._answered.set()
                time.sleep(0.02)


def post_json(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=60)


@pytest.mark.parametrize("route", ["queue/join", "queue-less undo"])
def test_a_14_mb_history_is_refused_without_memory_or_stalls(fake, route):
    if route == "queue/join":
        dep, path = dependency(fake.url, "submit"), "gradio_api/queue/join"
        data = [{"text": "and?", "files": []}, history_of(100_000, "hello there"), 4, 0.0, 0.95, 1]
    else:
        dep = dependency(fake.url, "undo")
        path, data = f"gradio_api/run/{dep['api_name']}", [history_of(100_000, "hello there")]
    body = json.dumps({"data": data, "fn_index": dep["id"], "session_hash": uuid.uuid4().hex}).encode()
    assert len(body) > 14_000_000
    with Poller(fake.url) as other, PeakRss() as memory:
        start = time.monotonic()
        response = post_json(fake.url, path, body)
        seconds = time.monotonic() - start
    assert response.status_code == 413
    assert "clear it and start again" in response.json()["detail"]
    assert memory.growth_mb < 80
    assert fake.lock.entered == 0
    print(
        f"\n[hardening] 14 MB history via {route}: 413 in {seconds:.2f} s, server grew {memory.growth_mb:.0f} MB,"
        f" another client waited at most {other.worst:.2f} s"
    )


LARGEST_ALLOWED = {  # histories just under the caps: 1 MB of long messages, and 20,000 values of short ones
    "1 MB": lambda: history_of(80, text="x" * 12_000) + history_of(20),  # the 20 turns the model reads are short
    "19,600 values": lambda: history_of(1400),
}


@pytest.mark.parametrize("shape", list(LARGEST_ALLOWED))
def test_the_largest_history_allowed_is_answered(fake, shape):
    history = LARGEST_ALLOWED[shape]()
    body = json.dumps(history)
    assert ClientLimits().max_body_bytes * 0.9 < len(body) < ClientLimits().max_body_bytes or "values" in shape
    dep = dependency(fake.url, "submit")
    with Poller(fake.url) as other, PeakRss() as memory:
        completed, _ = raw_call(fake.url, dep["id"], [{"text": "and?", "files": []}, history, 40, 0.0, 0.95, 1])
    assert completed["success"], completed
    chatbot, status = completed["output"]["data"][0], completed["output"]["data"][2]
    assert "only the last 20 turns" in status
    assert len(chatbot) <= fake.limits.max_shown_messages + 2, "older messages leave the chat"
    print(
        f"\n[hardening] {len(body) / MB:.2f} MB history ({len(history)} messages, {shape}) answered with 40 tokens;"
        f" another client waited at most {other.worst:.2f} s; peak growth {memory.growth_mb:.0f} MB"
    )


def test_a_history_of_too_many_values_is_refused(fake):
    dep = dependency(fake.url, "submit")
    body = json.dumps({"data": [{"text": "x", "files": []}, history_of(3000), 4, 0.0, 0.95, 1], "fn_index": dep["id"]})
    assert len(body) < ClientLimits().max_body_bytes
    response = post_json(fake.url, "gradio_api/queue/join", body.encode())
    assert response.status_code == 413
    assert response.json()["detail"].startswith("Request too large: over 20,000 values")


def test_a_cross_origin_upload_is_refused_and_a_same_origin_one_accepted(app_url):
    files = {"files": ("cat.png", b"\x89PNG" + b"\0" * 64, "image/png")}
    elsewhere = httpx.post(app_url + "gradio_api/upload", files=files, headers={"origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "Cross-origin" in elsewhere.json()["detail"]
    here = httpx.post(app_url + "gradio_api/upload", files=files, headers={"origin": app_url.rstrip("/")})
    assert here.status_code == 200


def test_ten_19_mb_files_in_one_upload_are_refused(app_url):
    one = b"\x89PNG" + b"\0" * (19 * MB)
    files = [("files", (f"{n}.png", one, "image/png")) for n in range(10)]
    response = httpx.post(app_url + "gradio_api/upload", files=files, timeout=60)
    assert response.status_code == 413
    assert "Request too large" in response.json()["detail"]


def test_a_chunked_body_past_the_cap_is_cut_off(app_url):
    def chunks():
        for _ in range(3):
            yield b"[" * MB

    response = httpx.post(
        app_url + "gradio_api/queue/join", content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["", "config", "gradio_api/info", "gradio_api/app_id"])
def test_responses_carry_security_headers(app_url, path):
    headers = httpx.get(app_url + path, timeout=10).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "https://huggingface.co" in policy


# --- per-session state ---------------------------------------------------------------------------


def test_session_state_is_bounded_and_expires(loaded_tiny, tmp_path, monkeypatch):
    """An API session's history is forgotten `session_ttl_s` after its last use, and beyond `max_sessions`
    the least recently used session is forgotten (gradio kept 10,000 sessions for good)."""
    from support.fake_backend import FakeBackend
    from support.serving import chat_message, close_all, new_client, served

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    backend = FakeBackend(loaded_tiny, client_limits=ClientLimits(max_sessions=2, session_ttl_s=2.0))
    with served(backend) as (_, url):
        users = [new_client(url) for _ in range(3)]

        def prompt_length(user, text):
            user.predict(chat_message(text), 2, 0.0, 0.95, 1, api_name="/chat")
            return backend.prompt_lengths[-1]

        fresh = prompt_length(users[0], "one")
        assert prompt_length(users[0], "two") > fresh, "a follow-up sees the earlier turn"
        wait_until(lambda: len(backend.histories) == 0, timeout=60)  # idle past session_ttl_s: forgotten
        assert prompt_length(users[0], "six") == fresh, "the history expired"
        prompt_length(users[1], "one"), prompt_length(users[2], "one")  # two newer sessions
        assert prompt_length(users[0], "ten") == fresh, "the oldest session was forgotten"
        close_all(users)
