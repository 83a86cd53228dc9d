"""The model lock: at most one generation (chat or image) uses the model at a time.

Gradio's queue cannot promise that (each event has its own queue, cancelling frees a slot
while the work runs on, some routes bypass the queue), so this lock, in the service layer, does:

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

Requests get the model in the order they asked for it (first come, first served, chat and images in one
line). A waiting request's heartbeat says its place in that line and, once runs of each kind have been
timed, about how long it will wait: the running request's own estimate (`expect_done_in`) or its kind's
typical duration, plus the typical duration of each request ahead.
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

from janus_demo.model.options import on_zero_gpu
from janus_demo.service.errors import BusyError, OutOfMemory

log = logging.getLogger("janus_demo")
FATAL_EXIT_CODE = 70  # a supervisor (Spaces, systemd, docker --restart) restarts the process
JOIN_S = 0.5  # how long a closed stream waits for the model thread to finish its step (it still uses the GPU)
SERVER_PID = os.getpid()  # on ZeroGPU, model work runs in processes forked from this one
GPU_FAILED = "The GPU failed and the server is restarting. Please try again in a minute."
GPU_WORKER_FAILED = "The GPU failed during this request. Please try again: the next request gets a fresh GPU."
OOM_MESSAGE = "The GPU ran out of memory for this request. Try fewer images or tokens, or load the model in 4-bit."

T = TypeVar("T")
_DONE = object()
before_fatal_exit: list[Callable[[], None]] = []  # best-effort cleanups (the cache folder) before status 70


@dataclass(frozen=True)
class Heartbeat:
    """Nothing new yet: the request waits for the model (`waiting`) or its work is in a long step.

    While waiting: `place` in line (1: next) and `wait_s`, an estimate of the seconds left (None until runs
    of the kinds involved have been timed).
    """

    waiting: bool
    place: int = 0
    wait_s: float | None = None


@dataclass(eq=False)
class _Ticket:
    """One request's place in line, then its run."""

    kind: str
    started: float | None = None  # time.monotonic() when it got the model
    done_in: float | None = None  # the running work's own estimate of seconds left, at `reported`
    reported: float = 0.0


TYPICAL_WEIGHT = 0.3  # weight of the newest run in a kind's typical duration (an exponential moving average)


class ModelLock:
    """A first-come-first-served lock around model work, with counters that tests and `/model_info` can read."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._line: list[_Ticket] = []  # waiting, oldest first
        self._holder: _Ticket | None = None
        self._typical: dict[str, float] = {}  # seconds a finished run of each kind usually takes
        self.active = 0  # generations holding the lock now (0 or 1)
        self.max_active = 0  # most ever inside at once: must stay 1
        self.waiting = 0  # requests waiting for the lock
        self.entered = 0  # generations that ever entered: unchanged means the model was never used

    @property
    def busy(self) -> bool:
        return self._holder is not None

    def stream(
        self,
        work: Callable[[Callable[[T], None]], None],
        stop: threading.Event,
        wait_timeout: float | None = None,
        heartbeat: float | None = None,
        kind: str = "work",
        exclusive: bool = True,
    ) -> Iterator[T | Heartbeat]:
        """Run `work(emit)` under the lock in a worker thread and yield what it emits.

        Exceptions raised by `work` are re-raised here. If the model stays busy longer than
        `wait_timeout` seconds, `BusyError` is raised and `work` never runs. With `heartbeat`, a
        `Heartbeat` is yielded after every `heartbeat` seconds without an item. `kind` names the sort
        of work ("chat", "images") whose typical duration estimates the wait of those behind it. Work that is
        not `exclusive` (image drawing through `janus_demo.service.scheduler`, which owns its own line) runs
        beside the lock's holder, with the same heartbeats, stop and error handling.
        """
        items: queue.Queue[Any] = queue.Queue()
        ticket = self._join(kind) if exclusive else None
        target, args = (
            (self._run, (work, stop, items, wait_timeout, ticket)) if exclusive else (_run_free, (work, items))
        )
        worker = threading.Thread(target=target, args=args, name="janus-gpu", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = items.get(timeout=heartbeat)
                except queue.Empty:
                    yield self._heartbeat(ticket)
                    continue
                if item is _DONE:
                    return
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            stop.set()  # the consumer is gone or done: make the work end at its next step ...
            worker.join(JOIN_S)  # ... and let it (bounded): on ZeroGPU the GPU is released once this returns

    def expect_done_in(self, seconds: float | None) -> None:
        """The running work's own estimate of the seconds it has left (called from inside `work`)."""
        with self._state:
            if self._holder is not None:
                self._holder.done_in, self._holder.reported = seconds, time.monotonic()

    # --- the line

    def _join(self, kind: str) -> _Ticket:
        ticket = _Ticket(kind)
        with self._state:
            self._line.append(ticket)
            self.waiting += 1
        return ticket

    def _heartbeat(self, ticket: _Ticket | None) -> Heartbeat:
        with self._state:
            if ticket is None or ticket not in self._line:
                return Heartbeat(waiting=False)
            place = self._line.index(ticket) + 1
            return Heartbeat(waiting=True, place=place, wait_s=self._wait_estimate(self._line[: place - 1]))

    def _wait_estimate(self, ahead: list[_Ticket]) -> float | None:
        """Seconds until the model is free for the one behind `ahead` (under `_state`); None if unknown."""
        now, left = time.monotonic(), 0.0
        holder = self._holder
        if holder is not None and holder.done_in is not None:
            left = max(0.0, holder.done_in - (now - holder.reported))
        elif holder is not None:
            if holder.kind not in self._typical:
                return None
            left = max(0.0, self._typical[holder.kind] - (now - (holder.started or now)))
        for waiting in ahead:
            if waiting.kind not in self._typical:
                return None
            left += self._typical[waiting.kind]
        return left

    def _run(
        self,
        work: Callable[[Callable[[Any], None]], None],
        stop: threading.Event,
        items: queue.Queue[Any],
        wait_timeout: float | None,
        ticket: _Ticket,
    ) -> None:
        try:
            if not self._acquire(ticket, stop, wait_timeout):
                if not stop.is_set():
                    items.put(_Raised(BusyError("The model is busy with other requests. Please try again shortly.")))
                return
            finished = False
            try:
                if not stop.is_set():
                    work(items.put)
                    finished = not stop.is_set()
            finally:
                self._release(ticket, finished)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises
            items.put(_Raised(translate_device_error(error)))
        finally:
            items.put(_DONE)

    def _acquire(self, ticket: _Ticket, stop: threading.Event, wait_timeout: float | None) -> bool:
        """Wait until `ticket` is first in line and the model is free, giving up when stopped or too late."""
        deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
        with self._state:
            try:
                while self._holder is not None or self._line[0] is not ticket:
                    if stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                        return False
                    self._state.wait(timeout=0.05)
                if stop.is_set():  # stopped while it waited: leave the model to the next request
                    return False
                self._holder, ticket.started = ticket, time.monotonic()
                self.active += 1
                self.entered += 1
                self.max_active = max(self.max_active, self.active)
                return True
            finally:
                self._line.remove(ticket)
                self.waiting -= 1
                self._state.notify_all()

    def _release(self, ticket: _Ticket, finished: bool) -> None:
        """Free the model; a run that finished (not stopped) updates its kind's typical duration."""
        with self._state:
            if finished and ticket.started is not None:
                took = time.monotonic() - ticket.started
                before = self._typical.get(ticket.kind)
                self._typical[ticket.kind] = took if before is None else before + TYPICAL_WEIGHT * (took - before)
            self._holder = None
            self.active -= 1
            self._state.notify_all()


def _run_free(work: Callable[[Callable[[Any], None]], None], items: queue.Queue[Any]) -> None:
    """`work` outside the lock: what it emits, then the end (or its error, translated)."""
    try:
        work(items.put)
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises
        items.put(_Raised(translate_device_error(error)))
    finally:
        items.put(_DONE)


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
    if is_unrecoverable_cuda_error(error) and in_zero_gpu_worker():
        # Only this worker process is poisoned: end it (without the server's cleanups, which would remove the
        # server's cache folder); spaces forks a fresh worker for the next request. The server keeps running.
        log.critical("Unrecoverable CUDA error in a ZeroGPU worker, ending the worker: %s", error)
        threading.Timer(1.0, _end_worker).start()
        return BusyError(GPU_WORKER_FAILED)
    if is_unrecoverable_cuda_error(error):
        log.critical("Unrecoverable CUDA error, exiting with status %d for a restart: %s", FATAL_EXIT_CODE, error)
        # Give the request a moment to receive its error message, then leave without cleanup
        # (cleanup would touch the broken CUDA context).
        threading.Timer(1.0, _fatal_exit).start()
        return BusyError(GPU_FAILED)
    return error


def in_zero_gpu_worker() -> bool:
    """True in a process that spaces forked on ZeroGPU to run model work (not the server process)."""
    return on_zero_gpu() and os.getpid() != SERVER_PID


def _end_worker() -> None:
    os._exit(FATAL_EXIT_CODE)


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
