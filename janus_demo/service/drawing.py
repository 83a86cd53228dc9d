"""The one drawing path every image endpoint shares: a prepared request's run as events.

    yield from drawing(draw_on_gpu, prepared, prepared.request, crop=prepared.crop)

`draw` runs the prepared request under the model lock (on ZeroGPU it borrows a GPU) and yields the model's
`ImageProgress` and the lock's `Heartbeat`s; `drawing` turns them into `Started`, `Progress`, `Preview`,
`Decoding` (every token drawn: each image's PNG as soon as it is decoded) and, last, a `Result` with the PNGs
(`janus-<seed>-<n>.png`, the settings in their metadata) and their zip. `guarded` ends any run with a `Problem`
instead of raising.

Once the last token is drawn the images are the user's: each decoded image is handed over at once, so a Stop
while the others are decoded keeps it (the browser shows it, offers it and zips it; janus_demo.web.images_tab).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.service.downloads import download_folder, png_name, save_png, zip_files
from janus_demo.service.events import Decoding, Event, Preview, Problem, Progress, Result, Started, Stopped
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.scheduler import Joined
from janus_demo.service.status_lines import (
    STARTING,
    EtaMeter,
    decoding_text,
    joined_text,
    progress_text,
    stopped_text,
    waiting_text,
    with_company,
)

STATUS_EVERY_S = 0.5  # progress-text updates without a new preview, at most this often
DrawFn = Callable[[Any], Iterator[ImageProgress | Heartbeat | Joined]]


def guarded(events: Iterator[Event]) -> Iterator[Event]:
    """`events`, ending with a `Problem` where they would raise; closing this closes `events`."""
    try:
        with contextlib.closing(events):
            yield from events
    except Exception as error:  # noqa: BLE001 - a refusal, busy, out of memory, anything: the front end says it
        yield Problem(error)


class DecodedPngs:
    """The PNGs of a batch's images, saved as each is decoded (`janus-<seed>-<n>.png` in `folder`), and its
    preview tiles' files."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder, self.seed = folder, seed
        self.images: list[Image.Image] = []
        self.files: list[Path] = []

    def add(self, images: Sequence[Image.Image]) -> None:
        for image in images:
            self.images.append(image)
            self.files.append(self._save(image, len(self.files)))

    def final(self, images: Sequence[Image.Image], order: Sequence[int] | None = None) -> list[Path]:
        """The final images' PNGs: one saved while decoding is reused where the same image has the same place.
        Each is named by its place in the batch as drawn: in `images`, or `order`'s (0-based; an edit's images
        come best fit first)."""
        places = range(len(images)) if order is None else order
        return [
            self.files[index] if index < len(self.images) and self.images[index] is image else self._save(image, index)
            for image, index in zip(images, places, strict=True)
        ]

    def archive(self, files: Sequence[Path]) -> Path:
        """The zip of `files` (`janus-<seed>.zip`)."""
        return zip_files(files, self.folder / f"janus-{self.seed}.zip")

    def previews(self, previews: Sequence[Image.Image], step: int) -> list[Path]:
        """Preview tiles as files (`janus-<seed>-<n>-step<step>.png`), each written once: the gallery is sent
        again with every image decoded, and gradio rewrites a PIL image's cache file in place each time it is
        sent, which a browser still fetching it from the last update reads broken."""
        return [
            save_png(preview, self.folder / f"janus-{self.seed}-{index}-step{step}.png")
            for index, preview in enumerate(previews, start=1)
        ]

    def _save(self, image: Image.Image, index: int) -> Path:
        return save_png(image, self.folder / png_name(self.seed, index + 1))


def drawing(
    draw: DrawFn,
    prepared: Any,
    request: ImageRequest,
    crop: Image.Image | None = None,
    prompt: str | None = None,
) -> Iterator[Event]:
    """`Started` at once, then a preview or a progress line as they come (a line alone at most every
    STATUS_EVERY_S), `Decoding` with each image decoded, the final files last. A drawing that ends without them
    ends with the images decoded by then as its `Result`, or with `Stopped` when there are none."""
    yield Started(STARTING, request.seed, crop, prompt)
    eta, last_status, step, total, others, count = EtaMeter(), 0.0, 0, 0, 0, request.num_images
    shots: Sequence[Path] = ()  # the last previews' files, one per image
    decoding = False
    with download_folder() as folder, contextlib.closing(draw(prepared)) as stream:
        decoded = DecodedPngs(folder, request.seed)
        for progress in stream:
            if isinstance(progress, Heartbeat):  # nothing new; yielding is what lets gradio stop us
                yield Progress(waiting_text(progress) if progress.waiting else None, step, total)
                continue
            if isinstance(progress, Joined):  # the scheduler drew it with other visitors' requests
                others = progress.others
                yield Progress(joined_text(others) if others else STARTING, step, total)
                continue
            step, total = progress.step, progress.total
            if progress.done:  # the service has put prompt, seed, ... into each image's PNG metadata
                files = decoded.final(progress.images, progress.order)
                text = with_company(progress_text(progress, count), others)
                yield Result(text, tuple(files), decoded.archive(files))
                return
            if progress.decoding:  # every token drawn: each image is kept as soon as it is decoded
                decoding = True
                decoded.add(progress.decoded or ())
                kept = tuple(decoded.files)
                text = with_company(decoding_text(progress, len(kept), count), others)
                yield Decoding(text, kept, tuple(shots[len(kept) :]), count, step, total)
                last_status = time.monotonic()
                continue
            text = with_company(progress_text(progress, count, eta.seconds_left(progress)), others)
            if progress.previews:
                shots = decoded.previews(progress.previews, step)
                yield Preview(shots, text, step, total)
            elif time.monotonic() - last_status > STATUS_EVERY_S:
                yield Progress(text, step, total)
            else:
                continue
            last_status = time.monotonic()
        if decoded.files:  # it ended while decoding (inside the model): what was decoded is the result
            files = decoded.files
            yield Result(stopped_text(step, total, len(files), count), tuple(files), decoded.archive(files))
            return
    yield Stopped(stopped_text(step, total, 0 if decoding else None, count))
