"""Upscale 2x, offered only when the server has an upscaler (`--upscaler`): a button by a gallery of
results, and the API endpoint `/upscale(image)` -> (image, status).

    if backend.can_upscale:
        add_upscale_api(backend)                                    # once per app: /upscale
        button = upscale_button()                                   # where the tab wants it (by the gallery)
        events = add_upscale(backend, gallery, run_state, stop, button)  # the status and the result below

The button enlarges the gallery's selected image (else its first) and shows the result with a download,
`<name>-2x.png`, whose PNG text keeps the original's (prompt, seed, ...) plus an "upscaled" note. The
request is checked and its image read on the CPU (`Backend.prepare_upscale`); only then does
`upscale_on_gpu` borrow a GPU on ZeroGPU. It runs under the model lock like every generation; the status
under the button says how far it is ("Upscaling 42% · 5.1 s · about 7 s left"), and the tab's Stop stops it
(between two of the network's blocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend
from janus_demo.service.events import Event, Problem, Result, Stopped
from janus_demo.service.upscale import UpscaleFn, run_upscale, upscale_duration, upscale_image
from janus_demo.web.adapters import api_function, api_outputs, browser_outputs, shown
from janus_demo.web.messages import PROBLEM, problem_text
from janus_demo.web.watch import until_client_leaves
from janus_demo.web.zerogpu import gpu_function

NOTHING_TO_UPSCALE = "Generate an image first, then upscale it."
UNFINISHED = "Unfinished"  # a preview's caption after Stop; in a batch "Image 3 · unfinished"


def is_finished(item: Any) -> bool:
    """Whether a gallery item (path, caption) is a finished image, not a preview captioned after Stop."""
    return not str(item[1] or "").lower().endswith(UNFINISHED.lower())


def make_upscale_on_gpu(backend: Backend) -> UpscaleFn:
    """The one function that borrows a GPU to upscale: it runs an already prepared request under the model lock."""
    return gpu_function("upscale_on_gpu", run_upscale, upscale_duration, backend)


def upscale_api(event: Event) -> tuple[Any, Any]:
    """An upscale's API outputs: (image, status)."""
    path = str(event.files[0]) if isinstance(event, Result) else None
    return shown(path), shown(getattr(event, "status", None))


def add_upscale_api(backend: Backend) -> int:
    """The `/upscale(image)` endpoint -> (image, status); returns its event id."""
    upscale_on_gpu = make_upscale_on_gpu(backend)

    def run(request: gr.Request, image: Any) -> Iterator[tuple[Any, Any]]:
        events = api_outputs(upscale_image(backend, upscale_on_gpu, image), upscale_api)
        return until_client_leaves(events, request, backend.clients)

    upscale = api_function(
        "upscale",
        backend.schemas.upscale,
        "Enlarge an image 2x with the server's Real-ESRGAN upscaler; the PNG keeps the original's text "
        "metadata plus an 'upscaled' note.",
        "The upscaled PNG and a status line.",
        run,
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


def upscale_button() -> gr.Button:
    """The "Upscale 2x" button, rendered where it is made (a tab puts it beside its gallery's other buttons)."""
    return gr.Button("Upscale 2x", size="sm", elem_classes=["upscale-button"])


def add_upscale(
    backend: Backend,
    gallery: gr.Gallery,
    run_state: gr.State | None = None,
    stop: gr.Button | None = None,
    button: gr.Button | None = None,
) -> list[int]:
    """Render Upscale 2x for `gallery`'s results into the current Blocks context: its status line (progress
    while it runs), the result and its download, below `button` (`upscale_button()`, made here when None).
    `run_state` ({"running": bool}) keeps it off a run's previews; `stop` stops it too. Returns the ids of the
    events that run the model."""
    upscale_on_gpu = make_upscale_on_gpu(backend)
    selected, busy = gr.State(None), gr.State(False)
    button = upscale_button() if button is None else button
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
        """The result, its download, the status and `busy`, by name; `busy` stays True only if the run is cut off
        (Stop). It never raises."""
        path = chosen_image(items, index, run)
        if path is None:
            yield {status: NOTHING_TO_UPSCALE, busy: False}
            return
        events = browser_outputs(upscale_image(backend, upscale_on_gpu, path), browser_view)
        yield from until_client_leaves(events, request, backend.clients)

    def browser_view(event: Event) -> dict[Any, Any]:
        if isinstance(event, Problem):
            return {status: PROBLEM + problem_text(event.error), busy: False}
        if isinstance(event, Result):
            path = str(event.files[0])  # one update each: gradio consumes an update's value as it applies it
            shown = {result: gr.update(value=path, visible=True), download: gr.update(value=path, visible=True)}
            return shown | {status: event.status, busy: False}
        view = {busy: not isinstance(event, Stopped)}
        return view | ({status: event.status} if event.status is not None else {})

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
    gallery.select(pick_selected, None, selected, api_visibility="private", queue=False)
    gallery.change(
        lambda: (None, gr.update(value=None, visible=False), gr.update(value=None, visible=False), ""),
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
    finished = [item for item in items or [] if is_finished(item)]
    if not finished:
        return None
    return finished[index if index is not None and index < len(finished) else 0][0]


def pick_selected(event: gr.SelectData) -> int:
    return event.index
