"""Upscale 2x, offered only when the server has an upscaler (`--upscaler`): a button under a gallery of
results, and the API endpoint `/upscale(image)` -> (image, status).

    if backend.can_upscale:
        add_upscale_api(backend)                                    # once per app: /upscale
        events = add_upscale(backend, gallery, run_state, stop)     # under each gallery of results

The button enlarges the gallery's selected image (else its first) and shows the result with a download,
`<name>-2x.png`, whose PNG text keeps the original's (prompt, seed, ...) plus an "upscaled" note. The
request is checked and its image read on the CPU (`Backend.prepare_upscale`); only then does
`upscale_on_gpu` borrow a GPU on ZeroGPU. It runs under the model lock like every generation, and the
tab's Stop stops it (between two of the network's blocks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend, PreparedUpscale, Upscaled
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.downloads import download_folder, save_png
from janus_demo.web.messages import PROBLEM, STARTING, problem_text, user_facing_errors, waiting_text
from janus_demo.web.watch import watched
from janus_demo.web.zerogpu import gpu_function, raised

UpscaleFn = Callable[[PreparedUpscale], Iterator[Upscaled | Heartbeat]]
NOTHING_TO_UPSCALE = "Generate an image first, then upscale it."
UNFINISHED = "Unfinished"  # each preview's caption after Stop (the status line says where it stopped)


def make_upscale_on_gpu(backend: Backend) -> UpscaleFn:
    """The one function that borrows a GPU to upscale: it runs an already prepared request under the model lock."""
    deadline = backend.run_deadline if backend.gpu_budget else None
    return gpu_function("upscale_on_gpu", backend.run_upscale, backend.upscale_duration, deadline)


def upscale_frames(upscale_on_gpu: UpscaleFn, prepared: PreparedUpscale) -> Iterator[tuple[Path | None, str | None]]:
    """(PNG file or None, status or None): 'Starting…' at once, waiting notes, then the file and a summary."""
    yield None, STARTING
    with download_folder() as folder, contextlib.closing(raised(upscale_on_gpu(prepared))) as stream:
        for item in stream:
            if isinstance(item, Heartbeat):
                yield None, waiting_text(item) if item.waiting else None
                continue
            source, image = prepared.image, item.image
            path = save_png(image, folder / f"{prepared.name}-2x.png")
            yield (
                path,
                (f"Upscaled {source.width}×{source.height} → {image.width}×{image.height} in {item.seconds:.1f} s."),
            )


def add_upscale_api(backend: Backend) -> int:
    """The `/upscale(image)` endpoint -> (image, status); returns its event id."""
    upscale_on_gpu = make_upscale_on_gpu(backend)

    def upscale(request: gr.Request, image: Any) -> Iterator[tuple[Any, Any]]:
        yield from watched(run(image), request, backend.clients)

    def run(image: Any) -> Iterator[tuple[Any, Any]]:
        with user_facing_errors():
            prepared = backend.prepare_upscale(image)
        with user_facing_errors():
            for path, status in upscale_frames(upscale_on_gpu, prepared):
                yield _either(path and str(path)), _either(status)

    upscale.__doc__ = backend.schemas.upscale.docstring(
        "Enlarge an image 2x with the server's Real-ESRGAN upscaler; the PNG keeps the original's text "
        "metadata plus an 'upscaled' note.",
        "The upscaled PNG and a status line.",
    )
    image_in = gr.Image(type="filepath", visible=False)
    image_out = gr.Image(type="filepath", format="png", visible=False)
    status_out = gr.Textbox(visible=False)
    api = gr.Button(visible=False).click(
        upscale,
        image_in,
        [image_out, status_out],
        api_name="upscale",
        show_progress="hidden",
        preprocess=False,  # the value reaches the schema's check as sent
        concurrency_id="upscale",  # its own line: a waiting upscale hears its place at the model lock
    )
    return api["id"]


def add_upscale(
    backend: Backend, gallery: gr.Gallery, run_state: gr.State | None = None, stop: gr.Button | None = None
) -> list[int]:
    """Render "Upscale 2x" for `gallery`'s results into the current Blocks context, with the result and its
    download below it. `run_state` ({"running": bool}) keeps it off a run's previews; `stop` stops it too.
    Returns the ids of the events that run the model."""
    upscale_on_gpu = make_upscale_on_gpu(backend)
    selected = gr.State(None)
    button = gr.Button("Upscale 2x", size="sm", elem_classes=["upscale-button"])
    status = gr.Markdown("", elem_classes=["upscale-status"])
    result = gr.Image(
        label="Upscaled 2x",
        type="filepath",
        height=420,  # the 768x768 result whole, not a page of its own (fullscreen shows it large)
        format="png",
        interactive=False,
        visible=False,
        buttons=["download", "fullscreen"],
        elem_classes=["upscale-result"],
    )
    download = gr.DownloadButton("Download 2x PNG", visible=False, size="sm", elem_classes=["upscale-download"])

    def upscale_selected(request: gr.Request, items: list[Any] | None, index: int | None, run: dict[str, Any] | None):
        yield from watched(browser_run(items, index, run), request, backend.clients)

    def browser_run(items: list[Any] | None, index: int | None, run: dict[str, Any] | None):
        """(result, download, status, busy) updates; `busy` stays True only if the run is cut off (Stop)."""
        skip = gr.skip()
        path = chosen_image(items, index, run)
        if path is None:
            yield skip, skip, NOTHING_TO_UPSCALE, False
            return
        try:
            prepared = backend.prepare_upscale(path)
            for file, text in upscale_frames(upscale_on_gpu, prepared):
                if file is None:
                    yield skip, skip, _either(text), True
                else:
                    yield (
                        gr.update(value=str(file), visible=True),
                        gr.update(value=str(file), visible=True),
                        text,
                        False,
                    )
        except Exception as error:  # noqa: BLE001 - said in the status line, as the images tab does
            yield skip, skip, PROBLEM + problem_text(error), False

    busy = gr.State(False)
    event = button.click(
        upscale_selected,  # not "upscale": gradio names events after their function, and /upscale is the API's
        [gallery, selected, run_state] if run_state is not None else [gallery, selected, gr.State(None)],
        [result, download, status, busy],
        api_visibility="private",
        show_progress="minimal",
        show_progress_on=[status],
        concurrency_id="upscale",  # its own line: a waiting upscale hears its place at the model lock
    )
    event.then(after_upscale, busy, [status, busy], api_visibility="private", queue=False)
    gallery.select(_pick, None, selected, api_visibility="private", queue=False)
    hide = gr.update(value=None, visible=False)
    gallery.change(
        lambda: (None, hide, hide, ""),
        None,
        [selected, result, download, status],
        api_visibility="private",
        queue=False,
    )
    if stop is not None:
        stop.click(None, None, None, cancels=[event], api_visibility="private")
    return [event["id"]]


def after_upscale(busy: bool) -> tuple[Any, bool]:
    """After every upscale however it ended: one cut off mid-run (Stop) says so."""
    return ("Stopped." if busy else gr.skip()), False


def chosen_image(items: list[Any] | None, index: int | None, run: dict[str, Any] | None) -> str | None:
    """The selected (else first) finished image's path; None during a run or without a finished image."""
    if (run or {}).get("running"):
        return None
    finished = [item for item in items or [] if item[1] != UNFINISHED]
    if not finished:
        return None
    return finished[index if index is not None and index < len(finished) else 0][0]


def _pick(event: gr.SelectData) -> int:
    return event.index


def _either(value: Any) -> Any:
    return gr.skip() if value is None else value
