"""Holding the image scheduler's worker and reading its line, for tests of many visitors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

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
