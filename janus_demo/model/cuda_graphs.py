"""CUDA graphs for the image loop's decode step: one graph launch per step instead of hundreds of kernels.

Used automatically by `janus_demo.model.image_loop.ImageTokenLoop` on CUDA; nothing to call by hand:

    JANUS_CUDA_GRAPHS=0 python app.py     # turn it off: eager steps, as on CPU

How: the prompt's prefill runs eagerly. The first decode steps run eagerly too, on a side stream
(the warm-up; they are real steps), reading static buffers: the next input embeddings and a 2-D
attention mask as wide as the KV cache. Then `language_model` + `generation_head` for one token of
the whole batch is captured into a `torch.cuda.CUDAGraph` over those buffers and the request's
`StaticCache`. In transformers 5.23 the cache's write position is a device tensor
(`StaticLayer.cumulative_length`, read through `internals`), from which the model derives positions and
the causal mask, so a replay advances it with no host involvement. Sampling (guidance, temperature, top-p, the request's
`torch.Generator`) and the next embeddings stay eager, outside the graph.

The fast path is skipped, silently and never as an error, on CPU, on ZeroGPU (`SPACES_ZERO_GPU`),
when turned off, and for a model whose capture failed or whose graph disagreed with eager: the first
request of each model compares the graph's scores with eager scores on the same inputs for
`VERIFY_STEPS` steps. Either failure logs one line and is remembered for that model.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

import torch

from janus_demo.model import internals, loading

log = logging.getLogger("janus_demo")

ENV_SWITCH = "JANUS_CUDA_GRAPHS"  # "0", "false", "no" or "off" turns the fast path off
OFF_VALUES = frozenset({"0", "false", "no", "off"})
ZERO_GPU_ENV = loading.ZERO_GPU_ENV  # on ZeroGPU a graph cannot outlive its GPU slice
WARM_UP_STEPS = 2  # eager decode steps on a side stream before the capture
VERIFY_STEPS = 3  # graph-vs-eager comparisons on a model's first request
RTOL, ATOL = 1.6e-2, 1e-2  # bf16 tolerance (torch.testing's bf16 rtol)

VERIFIED, DISABLED = "verified", "disabled"

# (embeds (B, 1, H), attention mask (B, cache length)) -> float scores (B, codebook size)
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# step, static embeds, static mask -> (replay, static output); records, runs nothing
CaptureFn = Callable[[StepFn, torch.Tensor, torch.Tensor], tuple[Callable[[], None], torch.Tensor]]

_status: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_status_lock = threading.Lock()


# --- when to use it ----------------------------------------------------------------------------


def blocker(model: torch.nn.Module, device: torch.device | str) -> str | None:
    """Why the fast path cannot run for `model` on `device`, or None when it can."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in OFF_VALUES:
        return f"turned off by {ENV_SWITCH}"
    if torch.device(device).type != "cuda":
        return "not on CUDA"
    if loading.on_zero_gpu():
        return "ZeroGPU"
    if status(model) == DISABLED:
        return "disabled for this model after an earlier failure"
    return None


def status(model: torch.nn.Module) -> str | None:
    """ "verified", "disabled", or None before the model's first fast request."""
    with _status_lock:
        return _status.get(model)


def disable(model: torch.nn.Module, reason: str) -> None:
    """Use eager steps for `model` from now on; logs the reason once."""
    with _status_lock:
        first = _status.get(model) != DISABLED
        _status[model] = DISABLED
    if first:
        log.warning("CUDA graphs disabled for this model, image steps run eagerly from now on: %s", reason)


def _mark_verified(model: torch.nn.Module) -> None:
    with _status_lock:
        if _status.get(model) is None:
            _status[model] = VERIFIED


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


# --- the graphed decode step -------------------------------------------------------------------


class GraphedDecode:
    """One request's decode step: eager warm-up steps, a capture, then a graph replay per step.

    `step` must read only its two arguments and the cache, so a replay sees new inputs once they are
    copied into the static buffers. `scores()` falls back to the `eager` callable it is given, for
    good, after a failed capture or verification.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        step: StepFn,
        cache: object,
        mask_shape: tuple[int, int],
        device: torch.device,
        capture: CaptureFn | None = None,
    ) -> None:
        self.model, self.step, self.cache, self.device = model, step, cache, device
        self.capture = capture or capture_cuda_graph
        self.mask = torch.zeros(mask_shape, dtype=torch.long, device=device)  # 1 up to the current length
        self.embeds: torch.Tensor | None = None  # static input, shaped on the first decode step
        self.replay: Callable[[], None] | None = None
        self.out: torch.Tensor | None = None
        self.warm_up_left = WARM_UP_STEPS
        self.verify_left = VERIFY_STEPS if status(model) is None else 0
        self.active = True

    def scores(self, embeds: torch.Tensor, length: int, eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Scores for the pending `embeds`; `length` counts cached tokens plus these; `eager` is the eager step.

        The returned tensor may be the graph's output buffer: use it before the next call.
        """
        if not self.active:
            return eager()
        self._stage(embeds, length)
        if self.warm_up_left:
            return self._warm_up()
        if self.verify_left:
            return self._verified_step(eager)
        self.replay()
        return self.out

    def _stage(self, embeds: torch.Tensor, length: int) -> None:
        if self.embeds is None:
            self.embeds = torch.empty_like(embeds)
        self.embeds.copy_(embeds)
        self.mask[:, :length] = 1  # as eager's attention_mask[:, :length], zero-padded to the cache by the model

    def _warm_up(self) -> torch.Tensor:
        scores = run_on_side_stream(lambda: self.step(self.embeds, self.mask), self.device)
        self.warm_up_left -= 1
        if not self.warm_up_left:
            self._capture()
        return scores

    def _capture(self) -> None:
        if self.verify_left and internals.cache_write_positions(self.cache) is None:
            self._fall_back("the KV cache keeps its write position where the check cannot rewind it")
            return
        try:
            self.replay, self.out = self.capture(self.step, self.embeds, self.mask)
        except Exception as error:  # noqa: BLE001 - any capture failure means eager steps
            self._fall_back(f"capture failed: {type(error).__name__}: {_first_line(error)}")
            _settle(self.device)

    def _verified_step(self, eager: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Replay, rewind the cache position, redo the step eagerly; keep eager's result and compare."""
        positions = [p.clone() for p in internals.cache_write_positions(self.cache)]
        self.replay()
        graphed = self.out.clone()
        for position, saved in zip(internals.cache_write_positions(self.cache), positions, strict=True):
            position.copy_(saved)
        reference = eager()  # rewrites the same cache slot with eager's keys and values
        self.verify_left -= 1
        if not _close(graphed, reference):
            diff = (graphed - reference).abs().nan_to_num(float("inf")).max().item()
            self._fall_back(f"graph scores differ from eager ones (max abs difference {diff:.3g})")
        elif not self.verify_left:
            _mark_verified(self.model)
        return reference

    def _fall_back(self, reason: str) -> None:
        self.active = False
        self.replay = self.out = None
        disable(self.model, reason)


def maybe_graphed_decode(
    model: torch.nn.Module, step: StepFn, cache: object, mask_shape: tuple[int, int], device: torch.device
) -> GraphedDecode | None:
    """A GraphedDecode when the fast path can run here, else None (the reason is logged at debug level)."""
    reason = blocker(model, device)
    if reason is not None:
        log.debug("Image steps run eagerly: %s", reason)
        return None
    return GraphedDecode(model, step, cache, mask_shape, torch.device(device))


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
