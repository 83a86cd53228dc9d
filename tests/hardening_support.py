"""Helpers for the tests/test_hardening_*.py files: a controllable fake backend, served demos, raw API calls.

    backend = FakeBackend(loaded_tiny, token_delay=0.01)   # real validation, tokenizer and GpuSection
    with served(backend, queue_size=2) as (demo, url):
        client = new_client(url, tmp_path)
        ...

`FakeBackend` replaces only the model work (`Backend._answer` / `Backend._draw`): everything before the
GPU section (validation, image intake, tokenization) and the section itself stay real. Its work counts
tokens (chat) and steps (images) in `produced`, tracks how many runs are inside at once (`max_inside`),
and can be slowed, paused (`gate`) or made to raise (`fail_seeds`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import torch
from PIL import Image

from janus_demo import chat, imagegen
from janus_demo.backend import Backend

IMAGE_STEPS = 24  # fake image generation: steps per picture, unless `image_steps` is changed


# --- a backend whose model work is a controllable fake


class FakeBackend(Backend):
    """A Backend around a real (tiny) `loaded` whose chat and image work are fakes.

    Chat answers are "seed=<seed> " followed by one "x" per token, so every request's answer names its seed.
    `fail_seeds(seed)` True makes the work raise `error(seed)` (FileNotFoundError with a server path by default).
    """

    def __init__(self, loaded: Any, *, token_delay: float = 0.0, step_delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(loaded, **kwargs)
        self.gate = threading.Event()  # cleared: the work waits (holding the section) until it is set again
        self._lock = threading.Lock()
        self.reset(token_delay=token_delay, step_delay=step_delay)

    def reset(self, token_delay: float = 0.0, step_delay: float = 0.0) -> FakeBackend:
        """Back to fast, open and never failing, counters at zero (the section's too)."""
        self.token_delay, self.step_delay, self.image_steps = token_delay, step_delay, IMAGE_STEPS
        self.fail_seeds: Callable[[int], bool] = lambda seed: False
        self.error: Callable[[int], BaseException] = lambda seed: FileNotFoundError("/secret/path/weights.safetensors")
        self.gate.set()
        self.produced = 0  # tokens + image steps produced so far, by every request
        self.inside = self.max_inside = 0
        self.prompt_lengths: list[int] = []
        self.section.max_active = self.section.entered = 0
        return self

    # --- the fakes

    def _answer(self, inputs, options: chat.ChatOptions, stop: threading.Event, emit) -> None:
        with self._inside():
            self.prompt_lengths.append(chat.prompt_length(inputs))
            self._maybe_fail(options.seed)
            text, count, start, reason = f"seed={options.seed} ", 0, time.perf_counter(), None
            while count < options.max_new_tokens and not (reason := self._why_stop(stop, options.deadline)):
                self._step(self.token_delay, stop)
                count, text = count + 1, text + "x"
                emit(chat.ChatChunk(text, count, time.perf_counter() - start))
            elapsed = time.perf_counter() - start
            emit(chat.ChatChunk(text, count, elapsed, done=True, stop_reason=reason or "length"))

    def _draw(self, request: imagegen.ImageRequest, stop: threading.Event) -> Iterator[imagegen.ImageProgress]:
        with self._inside():
            self._maybe_fail(request.seed)
            start = time.perf_counter()
            total = self.image_steps
            for step in range(1, total + 1):
                if stop.is_set():
                    return
                self._step(self.step_delay, stop)
                elapsed = time.perf_counter() - start
                yield imagegen.ImageProgress(step, total, elapsed, step / max(elapsed, 1e-9))
            images = [Image.new("RGB", (8, 8), (request.seed % 256, 0, 0)) for _ in range(request.num_images)]
            yield imagegen.ImageProgress(total, total, time.perf_counter() - start, 1.0, images=images)

    # --- helpers

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        with self._lock:
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
        try:
            yield
        finally:
            with self._lock:
                self.inside -= 1

    def _maybe_fail(self, seed: int) -> None:
        if self.fail_seeds(seed):
            raise self.error(seed)

    def _step(self, delay: float, stop: threading.Event) -> None:
        while not self.gate.wait(0.01) and not stop.is_set():
            pass
        if delay:
            time.sleep(delay)
        with self._lock:
            self.produced += 1

    @staticmethod
    def _why_stop(stop: threading.Event, deadline: float | None) -> str | None:
        if stop.is_set():
            return "stopped"
        if deadline is not None and time.monotonic() > deadline:
            return "deadline"
        return None


# --- serving and clients


@contextlib.contextmanager
def served(backend: Backend, queue_size: int = 32) -> Iterator[tuple[Any, str]]:
    """build_demo(backend) served on a free loopback port with app.py's queue and safety options."""
    from conftest import serve

    from janus_demo.ui import build_demo

    demo = build_demo(backend)
    url = serve(demo, queue_size)
    try:
        yield demo, url
    finally:
        demo.close()


def new_client(url: str, download_dir: Any = None):
    """One user: its own gradio_client session and download folder (None: files are not downloaded)."""
    from gradio_client import Client

    return Client(url, download_files=str(download_dir) if download_dir else False, verbose=False)


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


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> float:
    """Poll `condition`; return the seconds it took to hold, or raise AssertionError after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start


def section_idle(backend: Backend) -> bool:
    section = backend.section
    return not section.busy and section.active == 0 and section.waiting == 0


# --- raw calls (bodies gradio_client cannot send: NaN, inf)


def fn_index(url: str, api_name: str) -> int:
    """The dependency id of a public endpoint, read from the served config."""
    config = httpx.get(url + "config", timeout=10).json()
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return dependency["id"]
    raise KeyError(api_name)


def raw_join(http: httpx.Client, index: int, data: list[Any], session_hash: str) -> httpx.Response:
    """POST /queue/join with `data` serialised by Python's json (which writes NaN and Infinity)."""
    body = {"data": data, "fn_index": index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    return http.post("gradio_api/queue/join", content=json.dumps(body), headers={"content-type": "application/json"})


def raw_call(
    url: str, index: int, data: list[Any], timeout: float = 30, session_hash: str | None = None
) -> tuple[dict[str, Any], str]:
    """Join the queue and read the event stream to the end: (the process_completed message, the raw stream)."""
    session_hash = session_hash or uuid.uuid4().hex
    with httpx.Client(base_url=url, timeout=timeout) as http:
        joined = raw_join(http, index, data, session_hash)
        joined.raise_for_status()
        seen = []
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                seen.append(line)
                if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                    return json.loads(line[5:]), "\n".join(seen)
    raise AssertionError("the event stream ended without process_completed")


# --- watching the real model


class ModelUseCounter:
    """Counts runs inside a module's forward at once (forward hooks); `max_inside` must stay 1."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.inside = self.max_inside = self.calls = 0
        self._lock = threading.Lock()
        self._handles = [
            module.register_forward_pre_hook(lambda *_: self._enter()),
            module.register_forward_hook(lambda *_: self._leave()),
        ]

    def _enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.calls += 1
            self.max_inside = max(self.max_inside, self.inside)

    def _leave(self) -> None:
        with self._lock:
            self.inside -= 1

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# --- memory


class PeakRss:
    """Samples this process's resident memory in a thread; `growth_mb` is the peak above the start."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self._process, self._interval = psutil.Process(), interval
        self.start = self.peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20
