"""What one request's run tells its front ends: typed events, in order.

    for event in text_to_image(backend, draw_on_gpu, "A fox", 7):
        match event:
            case Started(seed=seed): ...           # at once: the request was prepared (or refused: Problem)
            case Progress(status=line): ...        # a step, or waiting for the model (None: no news)
            case Preview(images=previews): ...     # unfinished images, one small tile each
            case Decoding(files=kept): ...         # every token drawn: the images decoded so far, as PNGs
            case Text(text=answer): ...            # an answer, or a description, so far
            case Result(files=files): ...          # the end: files to keep, the last status
            case Stopped(status=line): ...         # it ended early by itself (nothing more comes)
            case Problem(error=error): ...         # refused or failed; the last event

Each endpoint's run (`janus_demo.service.chat`, `.images`, `.edits`, `.upscale`) yields these; the API and
the browser (`janus_demo.web`) map them to their outputs and know nothing of how the model works. A run
yields at once (gradio can stop a generator only after its first item) and then at least every heartbeat,
so closing it (Stop, a client gone) stops the model within one token or step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class Started:
    """The request was prepared; nothing computed yet. `seed` is the one used, `crop` the photo an edit starts
    from, `prompt` what is drawn when it was not typed (the description of `/variations`), `total` its steps."""

    status: str
    seed: int | None = None
    crop: Image.Image | None = None
    prompt: str | None = None
    total: int = 0


@dataclass(frozen=True)
class Progress:
    """A line about the run (None: nothing new, a heartbeat), at `step` of `total`."""

    status: str | None
    step: int = 0
    total: int = 0


@dataclass(frozen=True)
class Preview:
    """Unfinished images as PNG files, one tile per image of the batch (each smaller for a larger batch: together
    they cost about one image), with the progress line."""

    images: list[Path]
    status: str
    step: int
    total: int


@dataclass(frozen=True)
class Decoding:
    """Every token is drawn and the images are being decoded ("Decoding 5/16"): `files` are the PNGs of those
    decoded so far (the first of the batch, named and described as the final ones: they are the user's from
    now on), `previews` the last previews of the others (none without previews), `count` the batch's images."""

    status: str
    files: tuple[Path, ...]
    previews: tuple[Path, ...]
    count: int
    step: int
    total: int

    @property
    def images(self) -> list[Path]:
        """The batch as it stands: the decoded images' files, then the other images' last previews."""
        return [*self.files, *self.previews]


@dataclass(frozen=True)
class Text:
    """An answer or a description so far; `answering` once its first token has come."""

    text: str
    status: str
    answering: bool = True


@dataclass(frozen=True)
class Result:
    """The end of a run: its files (PNGs, named to keep), the zip of several, and the last status line. A
    drawing that ended inside the model while its images were decoded ends with those decoded by then."""

    status: str
    files: tuple[Path, ...] = ()
    archive: Path | None = None
    text: str = ""


@dataclass(frozen=True)
class Stopped:
    """The run ended before its result, by itself (Stop inside the model, a deadline)."""

    status: str


@dataclass(frozen=True)
class Problem:
    """The request was refused, or its run failed: the last event. The front end says why."""

    error: Exception


Event = Started | Progress | Preview | Decoding | Text | Result | Stopped | Problem
