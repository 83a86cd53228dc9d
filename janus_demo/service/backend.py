"""What every request shares: the loaded model, its lock, the request limits and the schemas they give, the
per-client ledger and the API sessions' conversations.

    backend = Backend(load_janus("tiny"))
    prepared = prepare_chat(backend, {"text": "What is this?", "files": ["cat.png"]}, [], seed=1)
    for chunk in run_chat(backend, prepared): ...        # janus_demo.service.chat

The use cases take it as their first argument: `janus_demo.service.chat`, `.images`, `.edits`, `.variations`
and `.upscale` each prepare a request on the CPU (checks, intake, tokenizing: everything that can refuse it)
and run it under the lock (`stream`); the drawing path they share is `janus_demo.service.image_requests`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from PIL import Image

from janus_demo.model import chat, image_loop
from janus_demo.model.chat import ChatOptions
from janus_demo.model.image_batch import batch_fits
from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.model.loading import LoadedJanus
from janus_demo.model.options import on_zero_gpu
from janus_demo.model.upscaler import Upscaler
from janus_demo.service import intake
from janus_demo.service.clients import ClientLedger, ClientLimits
from janus_demo.service.gpu_budget import GpuBudget
from janus_demo.service.model_lock import Heartbeat, ModelLock
from janus_demo.service.scheduler import ImageScheduler, Joined
from janus_demo.service.schemas import Limits, schemas_for
from janus_demo.service.session_histories import Histories

HEARTBEAT_S = 0.2  # how long a stream stays silent at most, so a cancelled request is closed promptly


class Backend:
    """A loaded model, its lock, the request limits and the schemas they give (their image fields follow the
    model's `image_shape`: its token grid and image size).

    On ZeroGPU (or with `gpu_budget`) every request must fit the longest GPU loan: the caps on answer length
    and images are lowered to fit the loaded model (their fields say so).
    """

    def __init__(
        self,
        loaded: LoadedJanus,
        limits: Limits | None = None,
        image_limits: intake.ImageLimits | None = None,
        client_limits: ClientLimits | None = None,
        gpu_budget: GpuBudget | None = None,
        upscaler: Upscaler | None = None,
        max_batch_rows: int = 16,
    ) -> None:
        self.loaded = loaded
        self.image_shape = loaded.image_shape
        self.upscaler = upscaler
        self.gpu_budget = gpu_budget or (GpuBudget() if on_zero_gpu() else None)
        self.billions = loaded.language_billions
        limits = limits or Limits()
        if self.gpu_budget:
            limits = self.gpu_budget.fitted(limits, self.billions, steps=self.image_shape.tokens)
        self.limits = limits
        self.image_limits = image_limits or intake.ImageLimits()
        gpu = loaded.device.type == "cuda"  # a GPU draws 4 images by default; random weights answer briefly
        self.schemas = schemas_for(self.limits, gpu, self.image_shape, random_weights=loaded.random_weights)
        self.lock = ModelLock()
        self.clients = ClientLedger(client_limits)  # per-client counts, fed by the server's middleware
        self.histories = Histories(self.clients.limits.max_sessions, self.clients.limits.session_ttl_s)
        self.scheduler = self._scheduler(max_batch_rows)

    def _scheduler(self, max_rows: int) -> ImageScheduler | None:
        """The image scheduler (visitors' images drawn together, beside chat), except on ZeroGPU, where each
        request has a worker and a GPU of its own, and with `max_rows` 0 (one request at a time)."""
        if self.gpu_budget is not None or max_rows < 1:
            return None
        return ImageScheduler(self.loaded, max_rows, fits=partial(batch_fits, self.loaded))

    def info(self) -> dict[str, Any]:
        """Model id, device, dtype, quantization and why, quantized layer count, footprint, layout, random weights."""
        return self.loaded.info()

    @property
    def can_chat(self) -> bool:
        """False when the model was loaded for images only (no vision tower, no lm_head)."""
        return self.loaded.can_chat

    @property
    def can_upscale(self) -> bool:
        """True when the server was started with an upscaler (--upscaler)."""
        return self.upscaler is not None

    @property
    def busy(self) -> bool:
        """True while the model works for a request: under the lock, or drawing a batch of images."""
        return self.lock.busy or (self.scheduler is not None and self.scheduler.busy)

    @property
    def entered(self) -> int:
        """Requests that ever reached the model (under the lock or in a batch): unchanged means never used."""
        return self.lock.entered + (self.scheduler.entered if self.scheduler is not None else 0)

    @property
    def budget(self) -> GpuBudget:
        """The GPU-time figures: the ZeroGPU budget, or the defaults off ZeroGPU (where durations are unused)."""
        return self.gpu_budget or GpuBudget()

    def stream(
        self,
        work: Callable[[Callable[[Any], None]], None],
        stop: threading.Event,
        kind: str,
        deadline_s: float | None = None,
        exclusive: bool = True,
    ) -> Iterator[Any]:
        """Run `work(emit)` under the model lock, streaming what it emits; wait at most the deadline (default
        `limits.request_deadline_s`) for the lock, with heartbeats (the place in line). Work that is not
        `exclusive` (drawing through the scheduler) runs beside the lock's holder."""
        limit = deadline_s or self.limits.request_deadline_s
        return self.lock.stream(work, stop, wait_timeout=limit, heartbeat=HEARTBEAT_S, kind=kind, exclusive=exclusive)

    # --- the model's work, under the lock (tests replace these three with fakes: tests/support/fake_backend.py)

    def _answer(self, inputs: dict[str, Any], options: ChatOptions, stop: threading.Event, emit: Callable) -> None:
        chat.generate_answer(self.loaded, inputs, options, stop, emit)

    def _draw(self, request: ImageRequest, stop: threading.Event) -> Iterator[ImageProgress | Heartbeat | Joined]:
        if self.scheduler is not None:  # drawn with the other requests waiting then
            return self.scheduler.draw(request, stop)
        return image_loop.iter_image_generation(self.loaded, request, stop)

    def _encode_source(self, crop: Image.Image) -> Any:
        return image_loop.encode_image(self.loaded, crop)
