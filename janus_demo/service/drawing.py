"""The one drawing path every image endpoint shares: a prepared request's run as events.

    yield from drawing(draw_on_gpu, prepared, prepared.request, crop=prepared.crop)

`draw` runs the prepared request under the model lock (on ZeroGPU it borrows a GPU) and yields the model's
`ImageProgress` and the lock's `Heartbeat`s; `drawing` turns them into `Started`, `Progress`, `Preview` and,
last, a `Result` with the PNGs (`janus-<seed>-<n>.png`, the settings in their metadata) and their zip.
`guarded` ends any run with a `Problem` instead of raising.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.service.downloads import download_folder, save_pngs, zip_files
from janus_demo.service.events import Event, Preview, Problem, Progress, Result, Started, Stopped
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.scheduler import Joined
from janus_demo.service.status_lines import STARTING, EtaMeter, joined_text, progress_text, waiting_text, with_company

STATUS_EVERY_S = 0.5  # progress-text updates without a new preview, at most this often
DrawFn = Callable[[Any], Iterator[ImageProgress | Heartbeat | Joined]]


def guarded(events: Iterator[Event]) -> Iterator[Event]:
    """`events`, ending with a `Problem` where they would raise; closing this closes `events`."""
    try:
        with contextlib.closing(events):
            yield from events
    except Exception as error:  # noqa: BLE001 - a refusal, busy, out of memory, anything: the front end says it
        yield Problem(error)


def drawing(
    draw: DrawFn,
    prepared: Any,
    request: ImageRequest,
    crop: Image.Image | None = None,
    prompt: str | None = None,
) -> Iterator[Event]:
    """`Started` at once, then a preview or a progress line as they come (a line alone at most every
    STATUS_EVERY_S), the final files last; `Stopped` if the drawing ended without them."""
    yield Started(STARTING, request.seed, crop, prompt)
    eta, last_status, step, total, others = EtaMeter(), 0.0, 0, 0, 0
    with download_folder() as folder, contextlib.closing(draw(prepared)) as stream:
        for progress in stream:
            if isinstance(progress, Heartbeat):  # nothing new; yielding is what lets gradio stop us
                yield Progress(waiting_text(progress) if progress.waiting else None, step, total)
                continue
            if isinstance(progress, Joined):  # the scheduler drew it with other visitors' requests
                others = progress.others
                yield Progress(joined_text(others) if others else STARTING, step, total)
                continue
            step, total = progress.step, progress.total
            text = with_company(progress_text(progress, request.num_images, eta.seconds_left(progress)), others)
            if progress.done:  # the service has put prompt, seed, ... into each image's PNG metadata
                files = save_pngs(progress.images, request.seed, folder)
                yield Result(text, tuple(files), zip_files(files, folder / f"janus-{request.seed}.zip"))
                return
            if progress.previews:
                yield Preview(progress.previews, text, step, total)
            elif time.monotonic() - last_status > STATUS_EVERY_S:
                yield Progress(text, step, total)
            else:
                continue
            last_status = time.monotonic()
    yield Stopped(f"Stopped at step {step}/{total}." if step else "Stopped before the first step.")
