"""Holding the image scheduler's worker and reading its line, for tests of many visitors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from janus_demo.model import image_loop
from janus_demo.service.scheduler import ImageScheduler


@contextlib.contextmanager
def holding(scheduler: ImageScheduler) -> Iterator[threading.Event]:
    """The worker holds its next batch until the yielded event is set (the model 'busy' with it)."""
    release, original = threading.Event(), scheduler._draw

    def draw(batch):
        release.wait(120)
        original(batch)

    scheduler._draw = draw
    try:
        yield release
    finally:
        release.set()
        scheduler._draw = original


def waiting(scheduler: ImageScheduler, count: int) -> bool:
    """At least `count` requests wait in the scheduler's line."""
    with scheduler._state:
        return len(scheduler._line) >= count


def running(scheduler: ImageScheduler) -> int:
    """Requests in the batch being drawn now."""
    with scheduler._state:
        return len(scheduler._running)


def paused_at_step(monkeypatch, step: int) -> tuple[threading.Event, list[bool]]:
    """Image generation pauses after `step` until the returned event is set (e.g. when a chat has answered);
    the list records, per image request, whether the event was set when it went on."""
    answered, during = threading.Event(), []
    original = image_loop.iter_image_generation

    def paused(loaded, request, stop):
        for progress in original(loaded, request, stop):
            if progress.step == step:
                answered.wait(120)
                during.append(answered.is_set())
            yield progress

    monkeypatch.setattr(image_loop, "iter_image_generation", paused)
    return answered, during
