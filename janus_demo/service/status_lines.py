"""The status lines a person reads while a request runs: waiting, steps, tokens.

waiting_text(heartbeat)       # "Waiting for the model · 2nd in line · about 40 s"
progress_text(progress, 4)    # "Step 96/576 · 4.1 s · 23.4 steps/s · about 20 s left"
decoding_text(progress, 5, 16)   # "Decoding 5/16 · 12.0 s"
stopped_text(48, 576)         # "Stopped at step 48/576."; stopped_text(576, 576, kept=5, count=16) when decoding
answer_status(chunk)          # "123 tokens · 4.5 s · 27.3 tokens/s · max tokens reached"
joined_text(2)                # "Drawing with 2 other requests"
"""

from __future__ import annotations

from janus_demo.model.chat import ChatChunk
from janus_demo.model.image_loop import ImageProgress
from janus_demo.service.model_lock import Heartbeat

WAITING = "Waiting for the model…"
STARTING = "Starting…"
READING = "Reading the conversation…"  # the model has it, no token yet (prefill)
DESCRIBING = "Describing the photo"


def joined_text(others: int) -> str:
    """'Drawing with 2 other requests': the request's batch started with `others` other visitors' requests."""
    return f"Drawing with {others} other request{'' if others == 1 else 's'}"


def with_company(text: str, others: int) -> str:
    """`text`, saying how many other requests are drawn with this one (nothing when none)."""
    return f"{text} · with {others} other request{'' if others == 1 else 's'}" if others else text


def waiting_text(beat: Heartbeat) -> str:
    """'Waiting for the model · 2nd in line · about 40 s' (the estimate once runs have been timed)."""
    if not beat.place:
        return WAITING
    text = f"{WAITING.rstrip('…')} · {ordinal(beat.place)} in line"
    return text + (f" · {about(beat.wait_s)}" if beat.wait_s is not None else "")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def about(seconds: float) -> str:
    """'about 40 s', 'about 3 min'; never 'about 0 s'."""
    if seconds >= 90:
        return f"about {round(seconds / 60)} min"
    return f"about {max(1, round(seconds))} s"


# --- images


class EtaMeter:
    """Seconds left, from the rate measured after the first steps (the prompt's prefill and the first
    steps' warm-up make an estimate taken at step 1 several times too long)."""

    WARMUP_STEPS = 8  # steps before the rate is measured, and steps it is measured over at least
    MIN_SPAN_S = 0.3

    def __init__(self) -> None:
        self.origin: tuple[int, float] | None = None

    def seconds_left(self, progress: ImageProgress) -> float | None:
        if self.origin is None:
            if progress.step >= self.WARMUP_STEPS:
                self.origin = (progress.step, progress.elapsed)
            return None
        step0, time0 = self.origin
        steps, span = progress.step - step0, progress.elapsed - time0
        if steps < self.WARMUP_STEPS or span < self.MIN_SPAN_S:
            return None
        return (progress.total - progress.step) * span / steps


def counts(progress: ImageProgress, num_images: int) -> str:
    """'576 tokens × 4 images': each step adds one token to every image."""
    return f"{progress.total} tokens × {num_images} image{'s' if num_images != 1 else ''}"


def progress_text(progress: ImageProgress, num_images: int = 1, eta: float | None = None) -> str:
    """'Step 96/576 · 4.1 s · 23.4 steps/s · about 20 s left', or 'Done: 576 tokens × 4 images in 12.3 s
    (46.8 steps/s).' (', ordered by fit to the rest of the photo' before the stop when an edit's images were
    reordered)."""
    if progress.done:
        ordered = ", ordered by fit to the rest of the photo" if progress.order is not None else ""
        return (
            f"Done: {counts(progress, num_images)} in {progress.elapsed:.1f} s "
            f"({progress.steps_per_second:.1f} steps/s){ordered}."
        )
    left = "" if eta is None else f" · about {max(1, round(eta))} s left"
    rate = f"{progress.steps_per_second:.1f} steps/s"
    return f"Step {progress.step}/{progress.total} · {progress.elapsed:.1f} s · {rate}{left}"


def decoding_text(progress: ImageProgress, decoded: int, num_images: int) -> str:
    """'Decoding 5/16 · 12.0 s': every token is drawn, `decoded` of the images are decoded."""
    return f"Decoding {decoded}/{num_images} · {progress.elapsed:.1f} s"


def stopped_text(step: int, total: int, kept: int | None = None, count: int = 0) -> str:
    """Where a drawing stopped: 'Stopped at step 48/576.', 'Stopped before the first step.', or, once every
    token was drawn (`kept` not None), 'Stopped while decoding: 5 of 16 images kept.'."""
    if kept is not None:
        return f"Stopped while decoding: {kept} of {count} image{'s' if count != 1 else ''} kept."
    return f"Stopped at step {step}/{total}." if step else "Stopped before the first step."


# --- chat


def answer_status(chunk: ChatChunk) -> str:
    """'123 tokens · 4.5 s · 27.3 tokens/s', plus why it ended and any note from the service."""
    line = f"{chunk.new_tokens} tokens · {chunk.elapsed:.1f} s · {chunk.tokens_per_second:.1f} tokens/s"
    endings = {"stopped": " · stopped", "deadline": " · stopped at the time limit", "length": " · max tokens reached"}
    return line + endings.get(chunk.stop_reason or "", "") + (f" · {chunk.note}" if chunk.note else "")
