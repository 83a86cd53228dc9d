"""Upscale 2x (`/upscale`, with `--upscaler`): one request's run, from the image to the larger PNG.

    for event in upscale_image(backend, upscale_on_gpu, path):
        ...                                  # Started, Progress while waiting, then Result (or Stopped)

The image is checked and read on the CPU (`Backend.prepare_upscale`); only then does `upscale_on_gpu` run it
under the model lock (borrowing a GPU on ZeroGPU). The PNG, `<name>-2x.png`, keeps the source's text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from janus_demo.service.downloads import download_folder, save_png
from janus_demo.service.drawing import guarded
from janus_demo.service.events import Event, Progress, Result, Started, Stopped
from janus_demo.service.model_lock import Heartbeat
from janus_demo.service.status_lines import STARTING, waiting_text

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend

UpscaleFn = Callable[[Any], Iterator[Any]]


def upscale_image(backend: Backend, upscale: UpscaleFn, image: object) -> Iterator[Event]:
    """The run of one upscale; a refusal or a failure is its last event, a `Problem`."""
    return guarded(_upscale_image(backend, upscale, image))


def _upscale_image(backend: Backend, upscale: UpscaleFn, image: object) -> Iterator[Event]:
    prepared = backend.prepare_upscale(image)
    yield Started(STARTING)
    with download_folder() as folder, contextlib.closing(upscale(prepared)) as stream:
        for item in stream:
            if isinstance(item, Heartbeat):
                yield Progress(waiting_text(item) if item.waiting else None)
                continue
            source, larger = prepared.image, item.image
            path = save_png(larger, folder / f"{prepared.name}-2x.png")
            size = f"{source.width}×{source.height} → {larger.width}×{larger.height}"
            yield Result(f"Upscaled {size} in {item.seconds:.1f} s.", (path,))
            return
    yield Stopped("Stopped.")
