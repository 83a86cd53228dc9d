"""GPU time on ZeroGPU: how long a request borrows a GPU, the deadline inside that loan, and the caps that keep
every request within the longest loan a Space may ask for.

    budget = GpuBudget()
    budget.chat_duration(billions=6.9, max_new_tokens=512, images=1)      # seconds to ask spaces.GPU for
    budget.run_deadline(duration)                                          # when the run stops itself
    budget.max_new_tokens(billions=6.9, images=4)                          # the cap the schema offers
    budget.image_seconds(billions=6.9, num_images=4, guided=True, steps=loaded.image_shape.tokens)

A request asks for `estimate + margin_s` seconds (at least `min_duration_s`, at most `max_duration_s`) and
stops itself `margin_s` seconds before its loan ends, so the app's own "stopped at the time limit" always
comes before ZeroGPU's "GPU task aborted" (which also discards the warm worker). The margin covers what
the loan pays for besides the model's steps: a cold worker's start (CUDA init, weights moved to the GPU),
the prompt's prefill and the final decode.

The per-step figures are ESTIMATES for bf16 eager steps (ZeroGPU has no CUDA graphs) on half an
H200, written as a fixed cost plus a cost per billion language-model parameters, so 1B and 7B get their
own durations. They have not been measured on ZeroGPU. `python -m benchmarks.gpu_check` measures them on
any GPU: its "chat" step gives seconds per token (1 / decode tokens/s) and its "image-bf16" step's
"eager steps" rows give seconds per image step at 4 images, for 1B and 7B; put those figures here (the
two points of each line), scaled by the GPU's speed relative to a ZeroGPU slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from janus_demo.service.schemas import Limits


@dataclass(frozen=True)
class GpuBudget:
    """The one place for the figures behind ZeroGPU durations (seconds; see the module docstring)."""

    max_duration_s: int = 120  # the longest loan asked for (ZeroGPU refuses longer ones as an "illegal duration")
    min_duration_s: int = 15
    margin_s: float = 12.0  # kept back for a cold worker's start, prefill and the last decode
    token_s: float = 0.015  # one chat token: fixed cost (Python, kernel launches) ...
    token_s_per_b: float = 0.004  # ... plus this much per billion language-model parameters
    chat_image_s: float = 0.5  # each image in the conversation goes through the vision encoder
    step_s: float = 0.015  # one image step of a single row (same shape of costs as a token)
    step_s_per_b: float = 0.004
    row_growth: float = 0.06  # each extra row of the batch (images x 2 with guidance) adds this share of a step
    preview_s: float = 0.02  # one image decoded by the VQ decoder for a preview
    encode_s: float = 1.0  # an edit's photo through the VQ encoder (one 384x384 image, like a preview's decode)
    # A source megapixel enlarged 2x: a 384x384 image (0.15 MP, ~0.7 TMAC; well under a second on a GPU) in 1 s.
    upscale_s_per_mp: float = 6.8
    preview_interval_s: float = 0.5  # previews closer together than this are dropped (Stop stays fast)

    # --- estimates of the model's work (no margin)

    def token_seconds(self, billions: float) -> float:
        return self.token_s + self.token_s_per_b * billions

    def chat_seconds(self, billions: float, max_new_tokens: int, images: int) -> float:
        return max_new_tokens * self.token_seconds(billions) + images * self.chat_image_s

    def image_seconds(self, billions: float, num_images: int, guided: bool, previews: int = 0, *, steps: int) -> float:
        """The batch's `steps` (one per token of an image: `loaded.image_shape.tokens`), and the previews it
        streams (at most one per `preview_interval_s`)."""
        rows = num_images * (2 if guided else 1)  # guidance runs an unconditioned row beside each image
        steps_s = steps * (self.step_s + self.step_s_per_b * billions) * (1 + self.row_growth * (rows - 1))
        previews = min(previews, 1 + math.ceil(steps_s / self.preview_interval_s))
        return steps_s + previews * num_images * self.preview_s

    # --- what spaces.GPU is asked for, and the deadline inside the loan

    def duration(self, estimate_s: float) -> int:
        """Whole seconds to ask for: the estimate plus the margin, within [min_duration_s, max_duration_s]."""
        return int(max(self.min_duration_s, min(self.max_duration_s, math.ceil(estimate_s + self.margin_s))))

    def fits(self, estimate_s: float) -> bool:
        return estimate_s + self.margin_s <= self.max_duration_s

    def run_deadline(self, duration_s: float) -> float:
        """Seconds a run may take inside a loan of `duration_s`: it stops itself `margin_s` before the loan ends."""
        return max(1.0, duration_s - self.margin_s)

    def chat_duration(self, billions: float, max_new_tokens: int, images: int) -> int:
        return self.duration(self.chat_seconds(billions, max_new_tokens, images))

    def image_duration(self, billions: float, num_images: int, guided: bool, previews: int, *, steps: int) -> int:
        return self.duration(self.image_seconds(billions, num_images, guided, previews, steps=steps))

    def upscale_seconds(self, width: int, height: int) -> float:
        """An image of `width` x `height` pixels enlarged 2x: the work grows with its area."""
        return self.upscale_s_per_mp * width * height / 1e6

    # --- the caps that keep every request within max_duration_s

    def max_new_tokens(self, billions: float, images: int) -> int:
        """The most tokens an answer may ask for with `images` in the conversation."""
        room = self.max_duration_s - self.margin_s - images * self.chat_image_s
        return max(1, math.floor(room / self.token_seconds(billions)))

    def max_images(self, billions: float, guided: bool, *, steps: int) -> int:
        """The most images of `steps` tokens one request may draw (previews not counted), 0 if not even one fits."""
        count = 0
        while self.fits(self.image_seconds(billions, count + 1, guided, steps=steps)) and count < 64:
            count += 1
        return count

    def limit_text(self) -> str:
        return f"a request may borrow a ZeroGPU GPU for at most {self.max_duration_s} s"

    def fitted(self, limits: Limits, billions: float, *, steps: int) -> Limits:
        """`limits` with the answer-length and image caps lowered to what fits the longest loan (for a model of
        `billions` drawing `steps` tokens per image); `capped` names the fields lowered."""
        tokens = min(limits.max_new_tokens, self.max_new_tokens(billions, limits.max_images_per_conversation))
        images = min(limits.max_num_images, max(1, self.max_images(billions, guided=False, steps=steps)))
        lowered = {"max_new_tokens": tokens < limits.max_new_tokens, "num_images": images < limits.max_num_images}
        return replace(
            limits,
            max_new_tokens=tokens,
            max_num_images=images,
            capped=tuple(name for name, low in lowered.items() if low),
            cap_reason=self.limit_text(),
            preview_interval_s=self.preview_interval_s,
        )
