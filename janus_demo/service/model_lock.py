"""The model lock: at most one generation (chat or image) uses the model at a time.

Gradio's queue cannot promise that (each event has its own queue, cancelling frees a slot
while the work runs on, some routes bypass the queue), so the model layer does:

    lock = ModelLock()
    for item in lock.stream(work, stop):      # work(emit) runs in a worker thread, under the lock
        ...                                    # each emit(x) arrives here as an item

Closing the consumer (Stop button, cancelled job, disconnected client) sets `stop`; the work
checks it every token or step, so it ends and frees the model within one step. The lock is
held by the worker thread, never across the consumer's `yield`.

A generator can only be closed while it is paused at a `yield`: one blocked waiting for the
model (or for a slow step) cannot be stopped, and gradio's cancel then hangs on it. With
`heartbeat=s` the stream yields a `Heartbeat` whenever nothing arrived for `s` seconds; consumers
pass it on as a "still waiting" update, which is where a cancel or a closed tab takes effect.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from janus_demo.service.errors import BusyError, OutOfMemory

log = logging.getLogger("janus_demo")
FATAL_EXIT_CODE = 70  # a supervisor (Spaces, systemd, docker --restart) restarts the process
OOM_MESSAGE = "The GPU ran out of memory for this request. Try fewer images or tokens, or load the model in 4-bit."

T = TypeVar("T")
_DONE = object()
before_fatal_exit: list[Callable[[], None]] = []  # best-effort cleanups (the cache folder) before status 70


@dataclass(frozen=True)
class Heartbeat:
    """Nothing new yet: the request waits for the model (`waiting`) or its work is in a long step."""

    waiting: bool


class ModelLock:
    """A lock around model work, with counters that tests and `/model_info` can read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.active = 0  # generations holding the lock now (0 or 1)
        self.max_active = 0  # most ever inside at once: must stay 1
        self.waiting = 0  # requests waiting for the lock
        self.entered = 0  # generations that ever entered: unchanged means the model was never used

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def stream(
        self,
        work: Callable[[Callable[[T], None]], None],
        stop: threading.Event,
        wait_timeout: float | None = None,
        heartbeat: float | None = None,
    ) -> Iterator[T | Heartbeat]:
        """Run `work(emit)` under the lock in a worker thread and yield what it emits.

        Exceptions raised by `work` are re-raised here. If the model stays busy longer than
        `wait_timeout` seconds, `BusyError` is raised and `work` never runs. With `heartbeat`, a
        `Heartbeat` is yielded after every `heartbeat` seconds without an item.
        """
        items: queue.Queue[Any] = queue.Queue()
        entered = threading.Event()
        worker = threading.Thread(
            target=self._run, args=(work, stop, items, wait_timeout, entered), name="janus-gpu", daemon=True
        )
        worker.start()
        try:
            while True:
                try:
                    item = items.get(timeout=heartbeat)
                except queue.Empty:
                    yield Heartbeat(waiting=not entered.is_set())
                    continue
                if item is _DONE:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            stop.set()  # the consumer is gone or done: make the work end at its next step

    def _run(
        self,
        work: Callable[[Callable[[Any], None]], None],
        stop: threading.Event,
        items: queue.Queue[Any],
        wait_timeout: float | None,
        entered: threading.Event,
    ) -> None:
        try:
            if not self._acquire(stop, wait_timeout):
                if not stop.is_set():
                    items.put(_Raised(BusyError("The model is busy with other requests. Please try again shortly.")))
                return
            try:
                self._enter()
                entered.set()
                if not stop.is_set():
                    work(items.put)
            finally:
                self._leave()
                self._lock.release()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises
            items.put(_Raised(translate_device_error(error)))
        finally:
            items.put(_DONE)

    def _acquire(self, stop: threading.Event, wait_timeout: float | None) -> bool:
        """Wait for the lock, giving up when the request is stopped or waits too long."""
        deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
        with self._count_lock:
            self.waiting += 1
        try:
            while not stop.is_set():
                if self._lock.acquire(timeout=0.05):
                    if stop.is_set():  # stopped while it waited: leave the model to the next request
                        self._lock.release()
                        return False
                    return True
                if deadline is not None and time.monotonic() > deadline:
                    return False
            return False
        finally:
            with self._count_lock:
                self.waiting -= 1

    def _enter(self) -> None:
        with self._count_lock:
            self.active += 1
            self.entered += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._count_lock:
            self.active -= 1


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError | MemoryError) or "out of memory" in str(error).lower()


def is_unrecoverable_cuda_error(error: BaseException) -> bool:
    """A CUDA error other than out-of-memory: the context is poisoned for every later request."""
    text = str(error)
    return not is_out_of_memory(error) and ("CUDA error" in text or "device-side assert" in text)


def translate_device_error(error: BaseException) -> BaseException:
    """Out-of-memory -> release memory and say so; a poisoned CUDA context -> exit soon; else unchanged."""
    if is_out_of_memory(error):
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return OutOfMemory(OOM_MESSAGE)
    if is_unrecoverable_cuda_error(error):
        log.critical("Unrecoverable CUDA error, exiting with status %d for a restart: %s", FATAL_EXIT_CODE, error)
        # Give the request a moment to receive its error message, then leave without cleanup
        # (cleanup would touch the broken CUDA context).
        threading.Timer(1.0, _fatal_exit).start()
        return BusyError("The GPU failed and the server is restarting. Please try again in a minute.")
    return error


def _fatal_exit() -> None:
    """Run the registered cleanups (never raising), then end the process with FATAL_EXIT_CODE."""
    for cleanup in before_fatal_exit:
        try:
            cleanup()
        except Exception:  # noqa: BLE001 - best effort: the process must still exit
            log.exception("cleanup before exit failed")
    os._exit(FATAL_EXIT_CODE)


class _Raised:
    """An exception travelling from the worker thread to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
