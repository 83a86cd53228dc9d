"""Many visitors, one model: image requests that arrive while the model draws are drawn together in the next batch.

    scheduler = ImageScheduler(loaded, max_rows=16)
    for item in scheduler.draw(request, stop):   # from any thread, one call per request
        ...   # Heartbeat (waiting: place in line), Joined (drawn with n others), ImageProgress (previews, images)

One worker thread owns the image work. It takes the requests waiting in line, oldest first, while their rows fit
`max_rows` and `fits` (the memory estimate), and draws them in one loop (`janus_demo.model.image_batch`), each
with everything of its own (prompt, seed, settings, forced tokens, previews, Stop, deadline). The first request
that does not fit closes the batch and is first in the next one, so nobody waits more than one batch behind
someone who came later. A request stopped by its owner, or one whose previews fail, leaves the batch at the next
step; the others go on. A batch of one request runs the one-request loop (`image_loop`, with CUDA graphs).

Joining the running batch at a step boundary was not chosen: a request that joined late would need its prompt
prefilled beside rows that are hundreds of tokens further on, and it would still finish last; the next batch
starts as soon as the running one ends, so the wait is bounded by one batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from janus_demo.model import image_loop, previews
from janus_demo.model.image_batch import ImageBatch, Member
from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.model.loading import LoadedJanus
from janus_demo.service.model_lock import Heartbeat, translate_device_error

log = logging.getLogger("janus_demo")
HEARTBEAT_S = 0.25  # a waiting request hears where it stands at least this often
GATHER_S = (
    0.1  # an idle worker waits this long for requests sent at the same moment (gradio hands them over one by one)
)
_END = object()


@dataclass(frozen=True)
class Joined:
    """The request's batch starts: it is drawn together with `others` other requests."""

    others: int


@dataclass(eq=False)
class _Ticket:
    request: ImageRequest
    stop: threading.Event
    items: queue.Queue = field(default_factory=queue.Queue)
    started: float | None = None

    @property
    def rows(self) -> int:
        return self.request.num_images * (2 if self.request.guided else 1)


class ImageScheduler:
    """The line of image requests and the worker that draws them in batches; thread-safe."""

    def __init__(
        self,
        loaded: LoadedJanus,
        max_rows: int = 16,
        fits: Callable[[list[ImageRequest]], bool] | None = None,
        gather_s: float = GATHER_S,
    ) -> None:
        self.loaded, self.max_rows, self.fits, self.gather_s = loaded, max_rows, fits, gather_s
        self._line: list[_Ticket] = []
        self._state = threading.Condition()
        self._typical_step_s: float | None = None  # seconds per step of the last batch (for wait estimates)
        self._running: list[_Ticket] = []
        self._steps_left = 0
        self.batches = 0  # batches drawn so far
        self.largest = 0  # most requests drawn in one batch
        self.entered = 0  # requests that began drawing: unchanged means the model was never used for images
        threading.Thread(target=self._work, name="janus-images", daemon=True).start()

    @property
    def busy(self) -> bool:
        """True while a batch is being drawn."""
        with self._state:
            return bool(self._running)

    # --- the caller's side

    def draw(self, request: ImageRequest, stop: threading.Event) -> Iterator[ImageProgress | Heartbeat | Joined]:
        """Queue `request`; yield Heartbeats while it waits, then its progress; closing this stops it."""
        ticket = _Ticket(request, stop)
        with self._state:
            self._line.append(ticket)
            self._state.notify_all()
        try:
            while True:
                try:
                    item = ticket.items.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    yield self._heartbeat(ticket)
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with self._state:
                if ticket in self._line:
                    self._line.remove(ticket)

    def _heartbeat(self, ticket: _Ticket) -> Heartbeat:
        with self._state:
            if ticket not in self._line:
                return Heartbeat(waiting=False)
            place = self._line.index(ticket) + 1
            wait = None if self._typical_step_s is None else self._steps_left * self._typical_step_s
            return Heartbeat(waiting=True, place=place, wait_s=wait)

    # --- the worker's side

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._draw(batch)
            except BaseException as error:  # noqa: BLE001 - every member hears it; the worker goes on
                error = translate_device_error(error)
                for ticket in batch:
                    ticket.items.put(error)
            finally:
                for ticket in batch:
                    ticket.items.put(_END)
                with self._state:
                    self._running, self._steps_left = [], 0

    def _next_batch(self) -> list[_Ticket]:
        """The oldest waiting requests that fit together (at least one), taken out of the line."""
        with self._state:
            while not any(not t.stop.is_set() for t in self._line):
                self._line = [t for t in self._line if not t.stop.is_set()]
                self._state.wait()
                gather_until = time.monotonic() + self.gather_s  # the worker was idle: let a burst arrive whole
                while sum(t.rows for t in self._line) < self.max_rows and time.monotonic() < gather_until:
                    self._state.wait(timeout=max(0.0, gather_until - time.monotonic()))
            self._line = [t for t in self._line if not t.stop.is_set()]
            batch = [self._line[0]]
            for ticket in self._line[1:]:
                rows = sum(t.rows for t in batch) + ticket.rows
                if rows > self.max_rows or (self.fits and not self.fits([t.request for t in [*batch, ticket]])):
                    break  # the first that does not fit is first in the next batch
                batch.append(ticket)
            del self._line[: len(batch)]
            self._running, self._steps_left = batch, self.loaded.image_shape.tokens
            self.batches += 1
            self.entered += len(batch)
            self.largest = max(self.largest, len(batch))
            return batch

    def _draw(self, batch: list[_Ticket]) -> None:
        start = time.perf_counter()
        for ticket in batch:
            ticket.started = start
            ticket.items.put(Joined(len(batch) - 1))
        if len(batch) == 1:  # the one-request loop (CUDA graphs on a GPU)
            ticket = batch[0]
            for progress in image_loop.iter_image_generation(self.loaded, ticket.request, ticket.stop):
                ticket.items.put(progress)
                self._note_step(progress.step, time.perf_counter() - start)
            return
        members = ImageBatch(self.loaded, [t.request for t in batch], [t.stop for t in batch])
        tickets = dict(zip(members.members, batch, strict=True))
        mode = {t: previews.resolve_mode(t.request.preview_mode, self.loaded.device) for t in batch}
        total = self.loaded.image_shape.tokens
        while members.members:
            for member in members.advance():
                ticket = tickets[member]
                elapsed = time.perf_counter() - ticket.started
                try:
                    shots = self._previews(member, mode[ticket], total)
                except Exception as error:  # noqa: BLE001 - this request's end, not its neighbours'
                    ticket.items.put(translate_device_error(error))
                    ticket.stop.set()
                    continue
                ticket.items.put(ImageProgress(member.step, total, elapsed, member.step / max(elapsed, 1e-9), shots))
                self._note_step(max(m.step for m in members.members), time.perf_counter() - start)
            for member in members.finished():
                self._finish(member, tickets[member])
                members.leave(member)

    def _previews(self, member: Member, mode: str, total: int) -> list | None:
        every = member.request.preview_every
        if mode == "off" or every <= 0 or member.step % every or member.step >= total:
            return None
        return previews.render_previews(self.loaded.model, member.tokens, member.step, mode)

    def _finish(self, member: Member, ticket: _Ticket) -> None:
        """A member that leaves: its images decoded and handed over a few at a time (Stop heard between them;
        nothing when it was stopped before), then its end."""
        try:
            if not member.stopped:
                updates = image_loop.decoding_updates(
                    self.loaded, member.tokens, ticket.stop, ticket.started, fit=member.fit.scores()
                )
                for progress in updates:
                    ticket.items.put(progress)
        except Exception as error:  # noqa: BLE001 - this request's end, not its neighbours'
            ticket.items.put(translate_device_error(error))
        finally:
            ticket.items.put(_END)

    def _note_step(self, step: int, elapsed: float) -> None:
        with self._state:
            if step:
                self._typical_step_s = elapsed / step
                self._steps_left = self.loaded.image_shape.tokens - step
