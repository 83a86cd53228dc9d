"""Watching the app from outside: polling, model-use counters, resident memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from janus_demo.service.backend import Backend


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> float:
    """Poll `condition`; return the seconds it took to hold, or raise AssertionError after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - start


def lock_idle(backend: Backend) -> bool:
    lock = backend.lock
    return not lock.busy and lock.active == 0 and lock.waiting == 0


def work_over(backend: Backend) -> bool:
    """The model is free and no model work runs or waits (a FakeBackend's work has returned): nothing more
    will be produced, so a test can count what was."""
    return lock_idle(backend) and getattr(backend, "inside", 0) == 0


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
