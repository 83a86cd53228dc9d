"""CUDA graphs for the image loop's decode step: one graph launch per step instead of hundreds of kernels.

Used automatically by `janus_demo.model.image_loop.ImageTokenLoop` on CUDA; nothing to call by hand:

    JANUS_CUDA_GRAPHS=0 python app.py     # turn it off: eager steps, as on CPU

How: `language_model` + `generation_head` for one token of the whole batch is captured once per
(batch rows, KV-cache length) into a `torch.cuda.CUDAGraph` over static buffers (the next input
embeddings, a 2-D attention mask as wide as the cache) and a `StaticCache` that the capture owns. Cache
lengths come in buckets (`memory.cache_length`), so requests of the same batch size and similar prompt
lengths share one capture: a new request resets the cache and the mask (`Cache.reset()`, in place, so the
graph's addresses hold) and replays from its first decode step. A model keeps at most MAX_KEPT captures,
least recently used first out, and fewer when the free GPU memory does not leave room for a new request.

A new capture first runs WARM_UP_STEPS real decode steps eagerly on a side stream, then records, then
checks its first VERIFY_STEPS replays against eager steps on the same inputs (the cache position rewound
in between; eager's scores are kept). In transformers 5.23 the cache's write position is a device tensor
(`StaticLayer.cumulative_length`, read through `internals`), from which the model derives positions and
the causal mask, so a replay advances it with no host involvement. Sampling and the next embeddings stay
eager, outside the graph.

The fast path is skipped, silently and never as an error, on CPU, on ZeroGPU (`SPACES_ZERO_GPU`), when
turned off, for LLM.int8 (8-bit) language models, whose outlier handling has data-dependent shapes, and
for a model whose capture failed or whose graph disagreed with eager steps: that logs one line, releases
the model's captures and is remembered for the model. 4-bit (bitsandbytes NF4) models are tried and fall
back in the same way if their kernels cannot be captured.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from janus_demo.model import internals, memory, options

log = logging.getLogger("janus_demo")

ENV_SWITCH = "JANUS_CUDA_GRAPHS"  # "0", "false", "no" or "off" turns the fast path off
OFF_VALUES = frozenset({"0", "false", "no", "off"})
ZERO_GPU_ENV = options.ZERO_GPU_ENV  # on ZeroGPU a graph cannot outlive its GPU slice
WARM_UP_STEPS = 2  # eager decode steps on a side stream before a capture
VERIFY_STEPS = 3  # graph-vs-eager comparisons after each new capture
MAX_KEPT = 4  # captures kept per model
RTOL, ATOL = 1.6e-2, 1e-2  # bf16 tolerance (torch.testing's bf16 rtol)

VERIFIED, DISABLED = "verified", "disabled"

# (embeds (B, 1, H), attention mask (B, cache length)) -> float scores (B, codebook size)
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# step, static embeds, static mask -> (replay, static output); records, runs nothing
CaptureFn = Callable[[StepFn, torch.Tensor, torch.Tensor], tuple[Callable[[], None], torch.Tensor]]
Key = tuple[int, int]  # (batch rows, cache length)

_status: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_pools: weakref.WeakKeyDictionary[torch.nn.Module, GraphPool] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


# --- when to use it ----------------------------------------------------------------------------


def blocker(model: torch.nn.Module, device: torch.device | str) -> str | None:
    """Why the fast path cannot run for `model` on `device`, or None when it can."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in OFF_VALUES:
        return f"turned off by {ENV_SWITCH}"
    if torch.device(device).type != "cuda":
        return "not on CUDA"
    if options.on_zero_gpu():
        return "ZeroGPU"
    if status(model) == DISABLED:
        return "disabled for this model after an earlier failure"
    if internals.has_int8_layers(internals.language_model(model)):
        return "8-bit (LLM.int8) layers cannot be captured"
    return None


def status(model: torch.nn.Module) -> str | None:
    """ "verified" once a capture of the model passed its check, "disabled" after a failure, else None."""
    with _lock:
        return _status.get(model)


def disable(model: torch.nn.Module, reason: str) -> None:
    """Use eager steps for `model` from now on and release its captures; logs the reason once."""
    with _lock:
        first = _status.get(model) != DISABLED
        _status[model] = DISABLED
    release(model)
    if first:
        log.warning("CUDA graphs disabled for this model, image steps run eagerly from now on: %s", reason)


def _mark_verified(model: torch.nn.Module) -> None:
    with _lock:
        if _status.get(model) is None:
            _status[model] = VERIFIED


# --- captures kept across requests -------------------------------------------------------------


@dataclass(eq=False)
class Capture:
    """One decode step captured for a (rows, cache length) key: its cache, static buffers and graph."""

    key: Key
    cache: object  # the StaticCache the graph reads and writes
    mask: torch.Tensor  # (rows, cache length): 1 up to the current length
    embeds: torch.Tensor | None = None  # (rows, 1, hidden): made on the first decode step
    replay: Callable[[], None] | None = None
    out: torch.Tensor | None = None
    verify_left: int = VERIFY_STEPS
    uses: int = 0  # requests that used it

    def reset(self) -> None:
        """Ready for a new request: the cache emptied and the mask cleared, in place."""
        self.cache.reset()
        self.mask.zero_()

    def nbytes(self) -> int:
        """Bytes of its cache and buffers (the graph's own pool of activations is not counted)."""
        tensors = [self.mask, self.embeds, self.out, *internals.cache_tensors(self.cache)]
        return sum(t.nbytes for t in tensors if isinstance(t, torch.Tensor))


class GraphPool:
    """One model's captures, least recently used first."""

    def __init__(self) -> None:
        self.captures: OrderedDict[Key, Capture] = OrderedDict()
        self.made = 0  # captures created so far
        self.lock = threading.Lock()  # requests are serialised by the model lock; memory checks are not

    def acquire(
        self, key: Key, make_cache: Callable[[], object], device: torch.device, room: Callable[[], bool]
    ) -> Capture:
        """The capture for `key`, reset for a new request, or a new one; others are dropped to keep at most
        MAX_KEPT, and while `room()` says there is not enough free memory for a new request."""
        with self.lock:
            capture = self.captures.pop(key, None)
            if capture is not None:
                capture.reset()
            else:
                while self.captures and (len(self.captures) >= MAX_KEPT or not room()):
                    self.captures.popitem(last=False)
                capture = Capture(key, make_cache(), torch.zeros(key, dtype=torch.long, device=device))
                self.made += 1
            capture.uses += 1
            self.captures[key] = capture
            return capture

    def clear(self) -> None:
        with self.lock:
            self.captures.clear()

    def nbytes(self) -> int:
        with self.lock:
            return sum(capture.nbytes() for capture in self.captures.values())


def pool(model: torch.nn.Module) -> GraphPool:
    """The model's pool of captures (made on first use)."""
    with _lock:
        if model not in _pools:
            _pools[model] = GraphPool()
        return _pools[model]


def release(model: torch.nn.Module) -> None:
    """Drop every capture of `model` (their caches and graphs are freed once no request uses them)."""
    with _lock:
        found = _pools.get(model)
    if found is not None:
        found.clear()


def held_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's kept captures: memory a new request can have back."""
    with _lock:
        found = _pools.get(model)
    return found.nbytes() if found else 0


# --- capture -----------------------------------------------------------------------------------


def capture_cuda_graph(
    step: StepFn, embeds: torch.Tensor, mask: torch.Tensor
) -> tuple[Callable[[], None], torch.Tensor]:
    """Record `step(embeds, mask)` into a CUDA graph (nothing runs while recording); return (replay, output)."""
    graph = torch.cuda.CUDAGraph()
    previous = torch.cuda.current_stream(embeds.device)
    try:
        # A fresh capture stream: a failed capture can leave its stream current and routed to the graph's pool.
        with torch.cuda.graph(graph, stream=torch.cuda.Stream(embeds.device), capture_error_mode="thread_local"):
            out = step(embeds, mask)
    finally:
        torch.cuda.set_stream(previous)
    return graph.replay, out


def run_on_side_stream(fn: Callable[[], torch.Tensor], device: torch.device) -> torch.Tensor:
    """Run `fn` on a side stream ordered after and before the current one (graph warm-up); plain call off CUDA."""
    if device.type != "cuda":
        return fn()
    current = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(current)
    with torch.cuda.stream(side):
        out = fn()
    current.wait_stream(side)
    out.record_stream(current)  # allocated on `side`, read on `current`
    return out


# --- the graphed decode step of one request ------------------------------------------------------


class GraphedDecode:
    """One request's decode steps through a (possibly reused) Capture: warm-up and capture when it is new,
    verified replays until its check is done, then plain replays.

    `step` must read only its two arguments and the capture's cache, so a replay sees new inputs once they
    are copied into the static buffers. `scores()` falls back to the `eager` callable it is given, for good,
    after a failed capture or verification.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        step: StepFn,
        capture: Capture,
        device: torch.device,
        capture_fn: CaptureFn | None = None,
    ) -> None:
        self.model, self.step, self.captured, self.device = model, step, capture, device
        self.capture_fn = capture_fn or capture_cuda_graph
        self.warm_up_left = 0 if capture.replay is not None else WARM_UP_STEPS
        self.active = True

    @property
    def cache(self) -> object:
        return self.captured.cache

    def scores(self, embeds: torch.Tensor, length: int, eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Scores for the pending `embeds`; `length` counts cached tokens plus these; `eager` is the eager step.

        The returned tensor may be the graph's output buffer: use it before the next call.
        """
        if not self.active:
            return eager()
        self._stage(embeds, length)
        if self.captured.replay is None:
            return self._warm_up()
        if self.captured.verify_left:
            return self._verified_step(eager)
        self.captured.replay()
        return self.captured.out

    def _stage(self, embeds: torch.Tensor, length: int) -> None:
        capture = self.captured
        if capture.embeds is None:
            capture.embeds = torch.empty_like(embeds)
        capture.embeds.copy_(embeds)
        capture.mask[:, :length] = 1  # as eager's attention_mask[:, :length], zero-padded to the cache by the model

    def _warm_up(self) -> torch.Tensor:
        capture = self.captured
        scores = run_on_side_stream(lambda: self.step(capture.embeds, capture.mask), self.device)
        self.warm_up_left -= 1
        if self.warm_up_left <= 0:
            self._capture()
        return scores

    def _capture(self) -> None:
        capture = self.captured
        if internals.cache_write_positions(capture.cache) is None:
            self._fall_back("the KV cache keeps its write position where the check cannot rewind it")
            return
        try:
            capture.replay, capture.out = self.capture_fn(self.step, capture.embeds, capture.mask)
        except Exception as error:  # noqa: BLE001 - any capture failure means eager steps
            self._fall_back(f"capture failed: {type(error).__name__}: {_first_line(error)}")
            _settle(self.device)

    def _verified_step(self, eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Replay, rewind the cache position, redo the step eagerly; keep eager's result and compare."""
        capture = self.captured
        positions = [p.clone() for p in internals.cache_write_positions(capture.cache)]
        capture.replay()
        graphed = capture.out.clone()
        for position, saved in zip(internals.cache_write_positions(capture.cache), positions, strict=True):
            position.copy_(saved)
        reference = eager()  # rewrites the same cache slot with eager's keys and values
        capture.verify_left -= 1
        if not _close(graphed, reference):
            diff = (graphed - reference).abs().nan_to_num(float("inf")).max().item()
            self._fall_back(f"graph scores differ from eager ones (max abs difference {diff:.3g})")
        elif not capture.verify_left:
            _mark_verified(self.model)
        return reference

    def _fall_back(self, reason: str) -> None:
        self.active = False
        self.captured.replay = self.captured.out = None
        disable(self.model, reason)


def maybe_graphed_decode(
    model: torch.nn.Module,
    step: StepFn,
    key: Key,
    make_cache: Callable[[], object],
    device: torch.device,
    needed_bytes: int = 0,
) -> GraphedDecode | None:
    """A GraphedDecode over the model's capture for `key` (batch rows, cache length) when the fast path can
    run here, else None (the reason is logged at debug level). `needed_bytes`: what the request needs, so
    kept captures are dropped when the free memory does not cover it."""
    reason = blocker(model, device)
    if reason is not None:
        log.debug("Image steps run eagerly: %s", reason)
        return None
    device = torch.device(device)

    def room() -> bool:
        return device.type != "cuda" or memory.available_cuda_bytes(device) >= needed_bytes

    return GraphedDecode(model, step, pool(model).acquire(key, make_cache, device, room), device)


def _close(graphed: torch.Tensor, reference: torch.Tensor) -> bool:
    return bool(torch.isfinite(graphed).all()) and torch.allclose(graphed, reference, rtol=RTOL, atol=ATOL)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""


def _settle(device: torch.device) -> None:
    """After a failed capture, wait for the device so a late error surfaces here, not in a later kernel."""
    if device.type != "cuda":
        return
    try:
        torch.cuda.synchronize(device)
    except Exception as error:  # noqa: BLE001 - logged; eager steps will raise again if the device is broken
        log.warning("CUDA synchronize after a failed graph capture raised: %s", _first_line(error))
