"""The "Text to image" tab: previews that build up while tokens are generated, then a gallery.

Public API endpoint and MCP tool: `/generate_images(prompt, seed, guidance_scale, temperature, num_images,
top_p, preview_every, preview_mode)`, the fields of `backend.schemas.images` in order. It streams
`(gallery, seed used, status)`: previews first, the final PNGs (`janus-<seed>-<n>.png`, with prompt, seed,
guidance, temperature and model in their metadata) last. The request is checked and its prompt tokenized
on the CPU; only then does `draw_on_gpu` borrow a GPU on a ZeroGPU Space.

In the browser the same run also fills the downloads (each PNG, and all of them as one zip) and the
buttons that act on a result; a refusal appears next to its input before the request is queued. A batch's
previews are one tile per image, laid out as the final gallery. Once every token is drawn each image is shown
and offered for download as soon as it is decoded ("Decoding 5/16"). Stop says where it stopped and captions
each preview "Image 3 · unfinished"; a Stop while decoding keeps every image decoded by then, zipped too
("Stopped while decoding: 5 of 16 images kept."). On a phone the results come right after the prompt and the
buttons, the settings after them (assets/style.css).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
from gradio.utils import get_upload_folder

from janus_demo.service.backend import Backend
from janus_demo.service.downloads import zip_files
from janus_demo.service.drawing import DrawFn
from janus_demo.service.events import Decoding, Event, Preview, Problem, Result, Started, Stopped, Text
from janus_demo.service.images import check_images, images_duration, run_images, text_to_image
from janus_demo.service.status_lines import stopped_text
from janus_demo.web.adapters import api_function, api_outputs, browser_outputs, image_concurrency, shown
from janus_demo.web.messages import PROBLEM, problem_text
from janus_demo.web.refusals import validator
from janus_demo.web.upscale import UNFINISHED, add_upscale, is_finished, pick_selected, upscale_button
from janus_demo.web.watch import until_client_leaves
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import gpu_function

ADVANCED = "Advanced"
IDLE: dict[str, Any] = {"running": False}  # the run state between requests

EXAMPLE_PROMPTS = [
    "A close-up photo of a tabby cat with green eyes, soft window light",
    "A steaming cup of coffee on a wooden table, morning sunlight, shallow depth of field",
    "A rocket lifting off at dawn, dramatic clouds of smoke, wide angle",
    "An astronaut riding a horse on the moon, digital art",
    "A watercolor painting of a lighthouse on a cliff at sunset",
]
GALLERY_RETURNS = (
    "The gallery (previews while drawing, each image as soon as it is decoded, then the final images), the seed "
    "used, and a status line."
)
MAX_PATH_CHARS = 4096  # a gallery path the browser sends back that is longer is not looked at


# --- a drawing's events, as the API and the browser show them ---------------------------------------------


def drawn_images(prefix: str, render_downloads: bool = True) -> tuple[gr.Gallery, gr.DownloadButton, gr.File]:
    """A drawing's results, as the Images and Edit tabs show them: the gallery, the zip of all and the files
    one by one (element ids `<prefix>-gallery`, `<prefix>-zip`, `<prefix>-files`). With `render_downloads`
    False the caller places the zip and the files (`.render()`), e.g. after the buttons that act on a result."""
    gallery = gr.Gallery(
        label="Images",
        show_label=False,
        columns=2,  # assets/style.css picks the columns from the number of images, so each is whole
        height="auto",
        format="png",
        object_fit="contain",
        elem_id=f"{prefix}-gallery",
        buttons=["download", "fullscreen"],
        interactive=False,  # an output; without this, being an input of "Ask" makes it an upload area
    )
    archive = gr.DownloadButton(
        "Download all (.zip)", visible=False, elem_id=f"{prefix}-zip", size="sm", render=render_downloads
    )
    files = gr.File(  # one click per image, named janus-<seed>-<n>.png
        label="Download one by one",
        file_count="multiple",
        interactive=False,
        visible=False,
        height=150,
        elem_id=f"{prefix}-files",
        render=render_downloads,
    )
    return gallery, archive, files


def make_draw_fn(backend: Backend) -> DrawFn:
    """The one function that borrows a GPU for images: it runs an already prepared request under the model lock."""
    return gpu_function("draw_on_gpu", run_images, images_duration, backend)


def drawing_api(events: Iterator[Event], described: bool = False) -> Iterator[tuple[Any, ...]]:
    """A drawing's API outputs: (gallery, seed used, status), and the description if `described` (variations)."""
    seed, description = None, ""

    def outputs(event: Event) -> tuple[Any, ...]:
        nonlocal seed, description
        gallery, status = None, getattr(event, "status", None)
        if isinstance(event, Started):
            seed, description = (event.seed if event.seed is not None else seed), event.prompt or description
        elif isinstance(event, Text):
            description = event.text
        elif isinstance(event, Preview) or (isinstance(event, Decoding) and event.files):
            gallery = [str(path) for path in event.images]
        elif isinstance(event, Result):
            gallery = list(event.files)
        return shown(gallery), seed, shown(status), *((description,) if described else ())

    return api_outputs(events, outputs)


class Results(NamedTuple):
    """A tab's outputs of a drawing (the Edit tab adds the crop and the description)."""

    gallery: gr.Gallery
    seed_used: gr.Number
    status: gr.Markdown
    run_state: gr.State
    files: gr.File
    archive: gr.DownloadButton
    reuse: gr.Button
    clear: gr.Button
    crop: gr.Image | None = None
    description: gr.Textbox | None = None

    def outputs(self) -> list[Any]:
        return [part for part in self if part is not None]


def browser_view(results: Results, event: Event, run: dict[str, Any]) -> dict[Any, Any]:
    """One event as the browser's outputs: Started clears the last result (and locks Clear while the run lasts),
    each image decoded is shown and offered at once, the Result offers the new one; a Problem is said in the
    status line. Unnamed outputs keep their value. `run` is what this run has told so far (`browser_run`): every
    update shows its seed (a lost update cannot hide it) and keeps it in the run state for `after_images`."""
    on, hide = gr.update(interactive=True), gr.update(value=None, visible=False)
    if isinstance(event, Problem):
        return {results.status: PROBLEM + problem_text(event.error), results.run_state: IDLE, results.clear: on}
    if isinstance(event, Stopped):  # the run state stays: `after_images` marks the previews unfinished
        return {results.status: event.status}
    seed = run.get("seed")
    shown_seed = {} if seed is None else {results.seed_used: gr.update(value=seed, visible=True)}
    if isinstance(event, Result):
        paths = [str(path) for path in event.files]
        return shown_seed | {
            results.gallery: paths,
            results.status: event.status,
            results.run_state: IDLE,
            results.files: gr.update(value=paths, visible=True),
            results.archive: gr.update(value=str(event.archive), visible=True),
            results.reuse: on,
            results.clear: on,
        }
    view = shown_seed | {results.run_state: run, results.reuse: on}
    if event.status is not None:
        view[results.status] = event.status
    if isinstance(event, Started):
        view |= {results.gallery: [], results.files: hide, results.archive: hide}
        view[results.clear] = gr.update(interactive=False)
        if results.crop is not None and event.crop is not None:
            view[results.crop] = gr.update(value=event.crop, visible=True)
        if results.description is not None and (event.prompt is not None or event.total):
            view[results.description] = event.prompt or ""
    elif isinstance(event, Preview):
        view[results.gallery] = [str(path) for path in event.images]
    elif isinstance(event, Decoding) and event.files:  # each image the user's as soon as it is decoded
        view[results.gallery] = [str(path) for path in event.images]
        view[results.files] = gr.update(value=[str(path) for path in event.files], visible=True)
    elif isinstance(event, Text) and results.description is not None:
        view[results.description] = event.text
    return view


def run_told(run: dict[str, Any], event: Event) -> dict[str, Any]:
    """The run state after `event`: running, its step, its seed and, once decoding, the images' count and the
    names of the PNGs decoded so far (what `after_images` may keep after a Stop). Kept on the server (gr.State)."""
    told = dict(run)
    if isinstance(event, Started) and event.seed is not None:
        told["seed"] = event.seed
    if hasattr(event, "step"):
        told["step"], told["total"] = event.step, event.total
    if isinstance(event, Decoding):
        told |= {"decoding": True, "count": event.count, "kept": [path.name for path in event.files]}
    return told


def browser_run(results: Results, backend: Backend, run: Any) -> Any:
    """The browser's event function over `run(*values)` (a run's events): it never raises."""

    def drawn(request: gr.Request, *values: Any) -> Iterator[dict[Any, Any]]:
        told: dict[str, Any] = {"running": True, "step": 0, "total": 0}

        def view(event: Event) -> dict[Any, Any]:
            nonlocal told
            told = run_told(told, event)
            return browser_view(results, event, told)

        yield from until_client_leaves(browser_outputs(run(*values), view), request, backend.clients)

    return drawn


def after_images(gallery: list[dict[str, Any]] | None, run: dict[str, Any] | None):
    """After every run, however it ended: unlock Clear; if Stop ended it (the generator was closed mid-run
    and could not say so), say where it stopped and caption each preview "Image 3 · unfinished" ("Unfinished"
    alone); a Stop while decoding keeps the images decoded by then, uncaptioned, and offers their zip.

    Keeping them, rather than waiting for the rest: Stop must free the model at once (on a CPU one image of
    Janus-Pro takes seconds to decode, 16 take minutes), and the images already decoded cost nothing more.
    The gallery comes back from the browser: only its files in gradio's cache folder are shown again, and
    only those the run state (server-side) names are zipped."""
    run = run or IDLE
    if not run["running"]:
        return gr.skip(), gr.skip(), gr.skip(), gr.update(interactive=True), gr.skip()
    paths = cached_paths(gallery)
    kept_names = set(run.get("kept", ()))
    kept = [path for path in paths if Path(path).name in kept_names]
    items = [
        (path, None) if path in kept else (path, unfinished_caption(number, len(paths)))
        for number, path in enumerate(paths, start=1)
    ]
    decoding = run.get("decoding", False)
    text = stopped_text(run.get("step", 0), run.get("total", 0), len(kept) if decoding else None, run.get("count", 0))
    archive = kept_archive(kept, run.get("seed"))
    offered = gr.update(value=str(archive), visible=True) if archive else gr.skip()
    return (items or gr.skip()), text, IDLE, gr.update(interactive=True), offered


def unfinished_caption(number: int, count: int) -> str:
    """'Image 3 · unfinished' for a preview of a batch, 'Unfinished' for a single image's."""
    return f"Image {number} · {UNFINISHED.lower()}" if count > 1 else UNFINISHED


def cached_paths(gallery: Any) -> list[str]:
    """The image paths of a gallery as the browser sends it back (untrusted), each a file in gradio's cache
    folder: anything else (a path a client made up, a folder, a link out of it) is left out."""
    items = gallery if isinstance(gallery, list) else []
    images = (item.get("image") if isinstance(item, dict) else None for item in items[:64])
    paths = [image["path"] for image in images if isinstance(image, dict) and isinstance(image.get("path"), str)]
    cache = Path(get_upload_folder()).resolve()
    return [path for path in paths if in_folder(path, cache)]


def in_folder(path: str, folder: Path) -> bool:
    """Whether `path` is short enough to look at and, resolved, a file inside `folder`."""
    if len(path) > MAX_PATH_CHARS or path.count("/") > 64:
        return False
    resolved = Path(path).resolve()
    return resolved.is_relative_to(folder) and resolved.is_file()


def kept_archive(paths: list[str], seed: Any) -> Path | None:
    """The zip of the kept images' files (in gradio's cache), written into that folder (served and swept from
    there); None without any."""
    if not paths:
        return None
    folder = Path(tempfile.mkdtemp(prefix="kept-", dir=Path(get_upload_folder()).resolve()))
    name = f"janus-{seed if isinstance(seed, int) else 'images'}.zip"
    return zip_files([Path(path) for path in paths], folder / name)


def after_every_run(event: Any, results: Results) -> None:
    """Run `after_images` after `event` (a run of `results`' tab), however it ended."""
    event.then(
        after_images,
        [results.gallery, results.run_state],
        [results.gallery, results.status, results.run_state, results.clear, results.archive],
        api_visibility="private",
        queue=False,
        preprocess=False,
    )


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
            gallery, archive, files = drawn_images("t2i", render_downloads=False)
            with gr.Row(elem_id="t2i-after"):  # right under the images: on the first screen of a desktop
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
                upscale = upscale_button() if backend.can_upscale else None
            upscale_events = add_upscale(backend, gallery, run_state, stop, upscale) if upscale is not None else []
            archive.render()
            files.render()
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

    by_name = {"prompt": prompt, "seed": seed, "guidance_scale": guidance, "temperature": temperature}
    by_name |= {"num_images": num_images, "top_p": top_p, "preview_every": preview_every, "preview_mode": preview_mode}
    inputs = [by_name[name] for name in schema.names]
    draw_on_gpu = make_draw_fn(backend)
    groups = {"top_p": ADVANCED, "preview_every": ADVANCED, "preview_mode": ADVANCED}
    results = Results(gallery, seed_used, status, run_state, files, archive, reuse, clear)

    def draw_images(*values: Any) -> Iterator[Event]:
        return text_to_image(backend, draw_on_gpu, *values)

    run = gr.on(
        [generate.click, prompt.submit],
        browser_run(results, backend, draw_images),
        inputs,
        results.outputs(),
        validator=validator(functools.partial(check_images, backend), schema.names, "prompt", groups),
        api_visibility="private",
        show_progress="minimal",  # gradio's own line while the request waits in its queue, by the status
        show_progress_on=[status],
        preprocess=False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        concurrency_id="images",
        concurrency_limit=image_concurrency(backend),
    )
    after_every_run(run, results)
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
        concurrency_limit=image_concurrency(backend),
    )
    model_events = [run["id"], api["id"], *upscale_events]
    if chat_input is None:
        return model_events
    ask.click(
        ask_about, [gallery, selected, run_state], [chat_input, tabs, status], api_visibility="private", queue=False
    ).then(None, None, None, js="() => setTimeout(() => document.querySelector('#chat-input textarea')?.focus(), 100)")
    return model_events


def make_generate_fn(backend: Backend, draw_on_gpu: DrawFn | None = None):
    """The event function behind `/generate_images`: (gallery, seed used, status); refusals are gr.Error."""
    draw_on_gpu = draw_on_gpu or make_draw_fn(backend)
    return api_function(
        "generate_images",
        backend.schemas.images,
        "Generate images from a text prompt with Janus-Pro; previews stream in while it draws.",
        GALLERY_RETURNS,
        lambda request, *values: until_client_leaves(
            drawing_api(text_to_image(backend, draw_on_gpu, *values)), request, backend.clients
        ),
    )


def clear_images() -> tuple[Any, ...]:
    """Prompt, result, status, seed used and the buttons that act on a result, as before the first run."""
    hide = gr.update(value=None, visible=False)
    return "", None, "", hide, IDLE, hide, hide, gr.update(interactive=False)


def ask_about(gallery: list[Any] | None, selected: int | None, run: dict[str, Any] | None):
    """Put the selected (else first) finished image into the chat box and switch to the Chat tab; without a
    finished image, say so in the status line."""
    finished = [item for item in gallery or [] if is_finished(item)]
    if (run or IDLE)["running"] or not finished:
        return gr.skip(), gr.skip(), "Generate an image first, then ask about it."
    path = finished[selected if selected is not None and selected < len(finished) else 0][0]
    message = {"text": "Describe this image.", "files": [path]}
    return message, gr.Tabs(selected="chat"), gr.skip()
