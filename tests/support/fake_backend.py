"""A Backend whose model work is a controllable fake: real validation, intake, tokenizer and model lock.

    backend = FakeBackend(loaded_tiny, token_delay=0.01)

`FakeBackend` replaces only the model work (`Backend._answer` / `Backend._draw`): everything before the
model lock (validation, image intake, tokenization) and the lock itself stay real. Its work counts
tokens (chat) and steps (images) in `produced`, tracks how many runs are inside at once (`max_inside`),
and can be slowed, paused (`gate`), held in its decoding (`hold_decoding(n)`: after n images decoded, until
`decoding_gate` is set or the run is stopped) or made to raise (`fail_seeds`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from janus_demo.model import chat
from janus_demo.model import image_loop as imagegen
from janus_demo.service.schemas import chat_schema
from support.service_calls import Backend

IMAGE_STEPS = 24  # fake image generation: steps per picture, unless `image_steps` is changed


class FakeBackend(Backend):
    """A Backend around a real (tiny) `loaded` whose chat and image work are fakes.

    Chat answers are "seed=<seed> " followed by one "x" per token, so every request's answer names its seed.
    Images are 384x384, one colour per image of the batch; previews (every `preview_every` steps) grey below.
    After the last step the images are "decoded" one at a time, as the model does (an update with each but the
    last, then the final one with all).
    `fail_seeds(seed)` True makes the work raise `error(seed)` (FileNotFoundError with a server path by default).
    """

    def __init__(self, loaded: Any, *, token_delay: float = 0.0, step_delay: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("max_batch_rows", 0)  # one request at a time under the model lock: the fakes' timing
        super().__init__(loaded, **kwargs)
        self.schemas = self.schemas._replace(chat=chat_schema(self.limits))  # a real model's defaults: fake work
        self.gate = threading.Event()  # cleared: the work waits (holding the section) until it is set again
        self.decoding_gate = threading.Event()  # cleared: decoding waits after `decoded_before_hold` images
        self.decoded_before_hold: int | None = None
        self.decoded = 0  # images "decoded" so far, by every request
        self._lock = threading.Lock()
        self.reset(token_delay=token_delay, step_delay=step_delay)

    def reset(self, token_delay: float = 0.0, step_delay: float = 0.0) -> FakeBackend:
        """Back to fast, open and never failing, counters at zero (the section's too)."""
        self.token_delay, self.step_delay, self.image_steps = token_delay, step_delay, IMAGE_STEPS
        self.fail_seeds: Callable[[int], bool] = lambda seed: False
        self.error: Callable[[int], BaseException] = lambda seed: FileNotFoundError("/secret/path/weights.safetensors")
        self.gate.set()
        self.decoding_gate.set()
        self.decoded_before_hold, self.decoded = None, 0
        self.produced = 0  # tokens + image steps produced so far, by every request
        self.inside = self.max_inside = 0
        self.prompt_lengths: list[int] = []
        self.images_read: list[int] = []  # images in each chat answer's input (what the model was shown)
        self.lock.max_active = self.lock.entered = 0
        return self

    # --- the fakes

    def _answer(self, inputs, options: chat.ChatOptions, stop: threading.Event, emit) -> None:
        with self._inside():
            self.prompt_lengths.append(chat.prompt_length(inputs))
            self.images_read.append(len(inputs["pixel_values"]) if "pixel_values" in inputs else 0)
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
                previews = None
                if request.preview_every and request.preview_mode != "off" and step % request.preview_every == 0:
                    previews = fake_images(request, filled=step / total)
                yield imagegen.ImageProgress(step, total, elapsed, step / max(elapsed, 1e-9), previews=previews)
            images = fake_images(request)
            for n, image in enumerate(images[:-1], start=1):  # decoded one at a time, each handed over
                if not self._decode(n - 1, stop):
                    return
                yield imagegen.ImageProgress(total, total, time.perf_counter() - start, 1.0, decoded=[image])
            if not self._decode(len(images) - 1, stop):
                return
            yield imagegen.ImageProgress(total, total, time.perf_counter() - start, 1.0, images=images)

    def hold_decoding(self, after: int) -> None:
        """Make the next drawing wait in its decoding once `after` images are decoded, until `decoding_gate` is
        set (or the run is stopped)."""
        self.decoded_before_hold = after
        self.decoding_gate.clear()

    # --- helpers

    def _decode(self, done: int, stop: threading.Event) -> bool:
        """Wait where `hold_decoding` says (`done` images decoded so far), then count one more; False if stopped."""
        if done == self.decoded_before_hold:
            while not self.decoding_gate.wait(0.01) and not stop.is_set():
                pass
        if stop.is_set():
            return False
        with self._lock:
            self.decoded += 1
        return True

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


def fake_images(request: imagegen.ImageRequest, filled: float = 1.0) -> list[Image.Image]:
    """384x384 like Janus': image n of the batch in its own colour (from the seed), the unfinished part grey."""
    images = []
    for n in range(request.num_images):
        image = Image.new("RGB", (384, 384), (request.seed % 256, (40 + 50 * n) % 256, (200 - 30 * n) % 256))
        if filled < 1.0:
            image.paste((128, 128, 128), (0, int(384 * filled), 384, 384))
        images.append(image)
    return images
