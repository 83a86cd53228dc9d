"""The "Text to image" tab: previews that build up while tokens are generated, then a gallery.

Public API endpoint and MCP tool: `/generate_images(prompt, seed, guidance_scale, temperature, num_images,
top_p, preview_every, preview_mode)`, the fields of `backend.schemas.images` in order. It streams
`(gallery, seed used, status)`: previews first, the final PNGs (`janus-<seed>-<n>.png`, with prompt, seed,
guidance, temperature and model in their metadata) last. The request is checked and its prompt tokenized
on the CPU; only then does `draw_on_gpu` borrow a GPU on a ZeroGPU Space.

In the browser the same run also fills the downloads (each PNG, and all of them as one zip) and the
buttons that act on a result; a refusal appears next to its input before the request is queued; Stop
leaves the previews marked "Stopped at step N/576". On a phone the results come right after the prompt
and the buttons, the settings after them (assets/style.css).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend, ImageProgress, ImageRequest
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.downloads import download_folder, save_pngs, zip_files
from janus_demo.web.messages import PROBLEM, STARTING, problem_text, user_facing_errors, waiting_text
from janus_demo.web.refusals import validator
from janus_demo.web.upscale import UNFINISHED, add_upscale
from janus_demo.web.watch import watched
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import gpu_function, raised

STATUS_EVERY_S = 0.5  # progress-text updates without a new preview, at most this often
ADVANCED = "Advanced"
IDLE: dict[str, Any] = {"running": False}  # the run state between requests

EXAMPLE_PROMPTS = [
    "A close-up photo of a tabby cat with green eyes, soft window light",
    "A steaming cup of coffee on a wooden table, morning sunlight, shallow depth of field",
    "A rocket lifting off at dawn, dramatic clouds of smoke, wide angle",
    "An astronaut riding a horse on the moon, digital art",
    "A watercolor painting of a lighthouse on a cliff at sunset",
]

DrawFn = Callable[[ImageRequest], Iterator[ImageProgress | Heartbeat]]


# --- progress text ---------------------------------------------------------------------------------------


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
    (46.8 steps/s).'."""
    if progress.done:
        return (
            f"Done: {counts(progress, num_images)} in {progress.elapsed:.1f} s "
            f"({progress.steps_per_second:.1f} steps/s)."
        )
    left = "" if eta is None else f" · about {max(1, round(eta))} s left"
    rate = f"{progress.steps_per_second:.1f} steps/s"
    return f"Step {progress.step}/{progress.total} · {progress.elapsed:.1f} s · {rate}{left}"


def stopped_text(run: dict[str, Any]) -> str:
    if run.get("step"):
        return f"Stopped at step {run['step']}/{run['total']}."
    return "Stopped before the first step."


# --- one run, as the API and the browser see it ----------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One update of a run. None: unchanged."""

    gallery: list[Any] | None = None  # previews (PIL images), or the final PNG files
    status: str | None = None
    step: int = 0
    total: int = 0
    archive: Path | None = None  # the final images as one zip

    @property
    def done(self) -> bool:
        return self.archive is not None


def frames(draw_on_gpu: DrawFn, request: ImageRequest) -> Iterator[Frame]:
    """The run's updates: one at once (gradio can cancel a generator only after its first yield), a
    preview or a progress line as they come (progress alone at most every STATUS_EVERY_S), the final
    files last."""
    yield Frame(status=STARTING)
    eta, last_status, step, total = EtaMeter(), 0.0, 0, 0
    with download_folder() as folder, contextlib.closing(raised(draw_on_gpu(request))) as stream:
        for progress in stream:
            if isinstance(progress, Heartbeat):  # nothing new; yielding is what lets gradio stop us
                yield Frame(status=waiting_text(progress) if progress.waiting else None, step=step, total=total)
                continue
            step, total = progress.step, progress.total
            text = progress_text(progress, request.num_images, eta.seconds_left(progress))
            if progress.done:  # the backend has put prompt, seed, ... into each image's PNG metadata
                files = save_pngs(progress.images, request.seed, folder)
                yield Frame(files, text, step, total, zip_files(files, folder / f"janus-{request.seed}.zip"))
            elif progress.previews:
                yield Frame(progress.previews, text, step, total)
            elif time.monotonic() - last_status > STATUS_EVERY_S:
                yield Frame(None, text, step, total)
            else:
                continue
            last_status = time.monotonic()


def make_draw_fn(backend: Backend) -> DrawFn:
    """The one function that borrows a GPU for images: it runs an already prepared request under the model lock."""
    deadline = backend.run_deadline if backend.gpu_budget else None
    return gpu_function("draw_on_gpu", backend.run_images, backend.images_duration, deadline)


def make_generate_fn(backend: Backend, draw_on_gpu: DrawFn | None = None):
    """The event function behind `/generate_images`: (gallery, seed used, status); refusals are gr.Error."""
    draw_on_gpu = draw_on_gpu or make_draw_fn(backend)

    def generate_images(
        request: gr.Request,
        prompt: str,
        seed: float,
        guidance_scale: float,
        temperature: float,
        num_images: float,
        top_p: float,
        preview_every: float,
        preview_mode: str,
    ) -> Iterator[tuple[Any, int, str]]:
        settings = (prompt, seed, guidance_scale, temperature, num_images, top_p, preview_every, preview_mode)
        yield from watched(draw(*settings), request, backend.clients)

    def draw(*settings: Any) -> Iterator[tuple[Any, int, str]]:
        with user_facing_errors():
            request = backend.prepare_images(*settings)
        with user_facing_errors():
            for frame in frames(draw_on_gpu, request):
                yield either(frame.gallery), request.seed, either(frame.status)

    generate_images.__doc__ = backend.schemas.images.docstring(
        "Generate images from a text prompt with Janus-Pro; previews stream in while it draws.",
        "The gallery (previews while generating, then the final images), the seed used, and a status line.",
    )
    return generate_images


def either(value: Any) -> Any:
    return gr.skip() if value is None else value


def make_browser_generate(backend: Backend, draw_on_gpu: DrawFn):
    """Generate in the browser: (gallery, seed used, status, run state, downloads, zip, Reuse, Clear).
    It never raises: a problem is reported in the status line (no error badge)."""

    def generate(request: gr.Request, *settings: Any):
        yield from watched(draw(*settings), request, backend.clients)

    def draw(*settings: Any):
        try:  # the validator has passed these values
            request = backend.prepare_images(*settings)
        except Exception as error:  # noqa: BLE001 - said in the status line; the inputs keep their values
            yield problem_frame(error)
            return
        try:
            for frame in frames(draw_on_gpu, request):
                yield browser_frame(frame, request)
        except Exception as error:  # noqa: BLE001 - busy, out of memory, anything else
            yield problem_frame(error)

    return generate


def problem_frame(error: Exception) -> tuple[Any, ...]:
    skip = gr.skip()
    return skip, skip, PROBLEM + problem_text(error), IDLE, skip, skip, skip, gr.update(interactive=True)


def browser_frame(frame: Frame, request: ImageRequest) -> tuple[Any, ...]:
    """One frame for the browser's outputs: the first clears the last result (and locks Clear while the run
    lasts), the final one offers the new result. Every frame shows the seed (a lost update cannot hide it)."""
    skip, on = gr.skip(), gr.update(interactive=True)
    run = IDLE if frame.done else {"running": True, "step": frame.step, "total": frame.total}
    seed_used = gr.update(value=request.seed, visible=True)
    if frame.status == STARTING:
        hide = gr.update(value=None, visible=False)
        return [], seed_used, STARTING, run, hide, hide, on, gr.update(interactive=False)
    if frame.done:
        paths = [str(path) for path in frame.gallery]
        files, archive = gr.update(value=paths, visible=True), gr.update(value=str(frame.archive), visible=True)
        return paths, seed_used, frame.status, run, files, archive, on, on
    return either(frame.gallery), seed_used, either(frame.status), run, skip, skip, on, skip


def after_images(gallery: list[dict[str, Any]] | None, run: dict[str, Any] | None):
    """After every run, however it ended: unlock Clear; if Stop ended it (the generator was closed mid-run
    and could not say so), say where it stopped, and caption the previews "Unfinished"."""
    if not (run or IDLE)["running"]:
        return gr.skip(), gr.skip(), gr.skip(), gr.update(interactive=True)
    text = stopped_text(run)
    previews = [(item["image"]["path"], UNFINISHED) for item in gallery or []]
    return (previews or gr.skip()), text, IDLE, gr.update(interactive=True)


# --- the tab ---------------------------------------------------------------------------------------------


def build_images_tab(backend: Backend, chat_input: gr.MultimodalTextbox | None, tabs: gr.Tabs) -> list[int]:
    """Render the tab into the current Blocks context; "Ask about this image" fills `chat_input` (no such
    button without a chat). Returns the ids of the events that run the model."""
    schema = backend.schemas.images
    selected, run_state = gr.State(None), gr.State(IDLE)
    with gr.Row(equal_height=False, elem_id="t2i-layout"):
        with gr.Column(scale=2, min_width=300, elem_id="t2i-compose"):
            prompt_field = schema["prompt"]
            prompt = gr.Textbox(
                label=prompt_field.label,
                placeholder="Describe the picture you want… (Enter generates, Shift+Enter adds a line)",
                lines=1,  # one line: Enter generates, as in the chat box
                max_lines=8,
                max_length=prompt_field.max_chars,
                elem_id="t2i-prompt",
            )
            with gr.Row(elem_id="t2i-buttons"):
                generate = gr.Button("Generate", variant="primary", elem_id="t2i-generate", scale=2, min_width=100)
                stop = gr.Button("Stop", variant="stop", elem_id="t2i-stop", scale=1, min_width=70)
                clear = gr.Button("Clear", variant="secondary", elem_id="t2i-clear", scale=1, min_width=70)
        with gr.Column(scale=3, min_width=300, elem_id="t2i-results"):
            status = gr.Markdown("", elem_id="t2i-status")
            gallery = gr.Gallery(
                label="Images",
                show_label=False,
                columns=2,  # assets/style.css picks the columns from the number of images, so each is whole
                height="auto",
                format="png",
                object_fit="contain",
                elem_id="t2i-gallery",
                buttons=["download", "fullscreen"],
                interactive=False,  # an output; without this, being an input of "Ask" makes it an upload area
            )
            archive = gr.DownloadButton("Download all (.zip)", visible=False, elem_id="t2i-zip", size="sm")
            files = gr.File(  # one click per image, named janus-<seed>-<n>.png
                label="Download one by one",
                file_count="multiple",
                interactive=False,
                visible=False,
                height=150,
                elem_id="t2i-files",
            )
            with gr.Row(elem_id="t2i-after"):
                seed_used = gr.Number(  # hidden until a run has a seed to show
                    None,
                    label="Seed used",
                    precision=0,
                    interactive=False,
                    visible=False,
                    elem_id="t2i-seed-used",
                    min_width=120,
                )
                reuse = gr.Button("Reuse this seed", size="sm", interactive=False, elem_id="t2i-reuse")
                ask = gr.Button("Ask about this image", size="sm", elem_id="t2i-ask", visible=chat_input is not None)
            upscale_events = add_upscale(backend, gallery, run_state, stop) if backend.can_upscale else []
        with gr.Column(scale=2, min_width=300, elem_id="t2i-settings"):
            with gr.Row():
                seed, num_images = widget(schema["seed"]), widget(schema["num_images"])
            with gr.Row():
                guidance, temperature = widget(schema["guidance_scale"]), widget(schema["temperature"])
            with gr.Accordion(ADVANCED, open=False, elem_id="t2i-advanced"):
                top_p, preview_every = widget(schema["top_p"]), widget(schema["preview_every"])
                preview_mode = widget(schema["preview_mode"])
            # Only fill the prompt: nothing runs or is cached at start-up (on ZeroGPU that would spend GPU time).
            gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt], label="Example prompts", cache_examples=False)
    api_button = gr.Button(visible=False)

    inputs = [prompt, seed, guidance, temperature, num_images, top_p, preview_every, preview_mode]
    draw_on_gpu = make_draw_fn(backend)
    groups = {"top_p": ADVANCED, "preview_every": ADVANCED, "preview_mode": ADVANCED}
    run = gr.on(
        [generate.click, prompt.submit],
        make_browser_generate(backend, draw_on_gpu),
        inputs,
        [gallery, seed_used, status, run_state, files, archive, reuse, clear],
        validator=validator(backend.prepare_images, schema.names, "prompt", groups),
        api_visibility="private",
        show_progress="minimal",  # gradio's own line while the request waits in its queue, by the status
        show_progress_on=[status],
        preprocess=False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        concurrency_id="images",
    )
    run.then(
        after_images,
        [gallery, run_state],
        [gallery, status, run_state, clear],
        api_visibility="private",
        queue=False,
        preprocess=False,
    )
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    clear.click(
        clear_images,
        None,
        [prompt, gallery, status, seed_used, run_state, files, archive, reuse],
        api_visibility="private",
        queue=False,
    )
    reuse.click(lambda used: used, seed_used, seed, api_visibility="private", queue=False)
    gallery.select(pick_selected, None, selected, api_visibility="private", queue=False)
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
    api = api_button.click(
        make_generate_fn(backend, draw_on_gpu),
        inputs,
        [gallery, seed_used, status],
        api_name="generate_images",
        show_progress="hidden",
        preprocess=False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        concurrency_id="images",
    )
    model_events = [run["id"], api["id"], *upscale_events]
    if chat_input is None:
        return model_events
    ask.click(
        ask_about, [gallery, selected, run_state], [chat_input, tabs, status], api_visibility="private", queue=False
    ).then(None, None, None, js="() => setTimeout(() => document.querySelector('#chat-input textarea')?.focus(), 100)")
    return model_events


def clear_images() -> tuple[Any, ...]:
    """Prompt, result, status, seed used and the buttons that act on a result, as before the first run."""
    hide = gr.update(value=None, visible=False)
    return "", None, "", hide, IDLE, hide, hide, gr.update(interactive=False)


def pick_selected(event: gr.SelectData) -> int:
    return event.index


def ask_about(gallery: list[Any] | None, selected: int | None, run: dict[str, Any] | None):
    """Put the selected (else first) finished image into the chat box and switch to the Chat tab; without a
    finished image, say so in the status line."""
    finished = [item for item in gallery or [] if item[1] != UNFINISHED]
    if (run or IDLE)["running"] or not finished:
        return gr.skip(), gr.skip(), "Generate an image first, then ask about it."
    path = finished[selected if selected is not None and selected < len(finished) else 0][0]
    message = {"text": "Describe this image.", "files": [path]}
    return message, gr.Tabs(selected="chat"), gr.skip()
