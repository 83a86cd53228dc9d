"""The "Edit" tab: complete a photo, redraw a region of it, or draw variations of it, with Janus' own tokens.

Janus draws an image as a grid of tokens (`backend.image_shape`: 24x24 for Janus-Pro) in raster order from a
VQ codebook whose encoder it also has, so a photo's tokens can be forced into the image loop
(`janus_demo.model.image_loop`):
- Complete: the photo's top `keep_rows` token rows are kept, the rest is drawn.
- Redraw a region: the tokens under a painted mask (white) are drawn again, the others kept.
- Variations: the model describes the photo as a text-to-image prompt, then draws from its description
  (editable, with "Generate from this").

Public API endpoints and MCP tools, the fields of `backend.schemas.complete / redraw / variations` in order:
`/complete_image(image, prompt, keep_rows, seed, guidance_scale, temperature, num_images, preview_every)` and
`/redraw_region(image, mask, prompt, seed, guidance_scale, temperature, num_images, preview_every)` stream
`(gallery, seed used, status)` as `/generate_images` does; `/variations(image, num_images, seed,
guidance_scale, temperature, preview_every)` streams `(gallery, seed used, status, description)`. The photo
is turned upright and its centre square resized to the model's image size (384x384 for Janus-Pro; the crop is
shown in the browser). Requests are checked on the CPU; only then is a GPU borrowed on ZeroGPU
(`edit_on_gpu`, and `answer_on_gpu` for the description). Previews, Stop, seed reuse, downloads and PNG
metadata (mode, kept rows or mask summary, source image size) work as in the Text-to-image tab, whose pieces
this tab reuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend, ImageProgress, PreparedEdit, PreparedVariations
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.chat_tab import AnswerFn, answer_updates, make_answer_fn
from janus_demo.web.images_tab import (
    ADVANCED,
    IDLE,
    Frame,
    after_images,
    browser_frame,
    either,
    frames,
    problem_frame,
)
from janus_demo.web.messages import STARTING, user_facing_errors
from janus_demo.web.refusals import validator
from janus_demo.web.upscale import add_upscale
from janus_demo.web.watch import watched
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import gpu_function

EditFn = Callable[[PreparedEdit], Iterator[ImageProgress | Heartbeat]]
SETTINGS = ("seed", "guidance_scale", "temperature", "num_images", "preview_every")  # shared by the three modes
DESCRIBING = "Describing the photo"
MODES = ("Complete", "Redraw a region", "Variations")
BRUSH = gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed", default_size=24)


# --- the values gradio hands over ------------------------------------------------------------------------


def uploaded(value: Any) -> str | None:
    """The path of a file gradio received and checked (a file dict carrying gradio's FileData meta), or a
    `data:` URL. Anything else (a plain path could name any file on the server) becomes None, which the
    service refuses, naming the field."""
    if isinstance(value, str):
        return value if value.startswith("data:") else None
    meta = value.get("meta") if isinstance(value, dict) else None
    if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData" and isinstance(value.get("path"), str):
        return value["path"]
    return None


def editor_files(value: Any) -> tuple[str | None, str | None]:
    """The photo and the painted layer (the mask: transparent where nothing was painted) of an ImageEditor."""
    if not isinstance(value, dict):
        return None, None
    layers = value.get("layers") if isinstance(value.get("layers"), list) else []
    return uploaded(value.get("background")), uploaded(layers[0]) if layers else None


# --- one run ---------------------------------------------------------------------------------------------


def make_edit_fn(backend: Backend) -> EditFn:
    """The one function that borrows a GPU for an edit: it runs an already prepared one under the model lock."""
    deadline = backend.run_deadline if backend.gpu_budget else None
    return gpu_function("edit_on_gpu", backend.run_edit, backend.edit_duration, deadline)


def edit_frames(edit_on_gpu: EditFn, prepared: PreparedEdit) -> Iterator[Frame]:
    """The run's updates, as the Text-to-image tab's (`images_tab.frames`)."""
    return frames(lambda _request: edit_on_gpu(prepared), prepared.request)


def described_settings(prepared: PreparedVariations) -> list[Any]:
    """The settings of the images drawn from the description, in `/variations`' order after the image."""
    names = ("num_images", "seed", "guidance_scale", "temperature", "preview_every")
    return [prepared.settings[name] for name in names]


def description_updates(answer_on_gpu: AnswerFn, prepared: PreparedVariations) -> Iterator[tuple[str, str]]:
    """(description so far, status) while the model describes the photo."""
    for update in answer_updates(answer_on_gpu, prepared.describe):
        yield update.answer, f"{DESCRIBING} · {update.status}"


# --- the API ---------------------------------------------------------------------------------------------


def make_api_fns(backend: Backend, edit_on_gpu: EditFn, answer_on_gpu: AnswerFn) -> dict[str, Callable]:
    """The functions behind `/complete_image`, `/redraw_region` and `/variations`; refusals are gr.Error."""

    def edited(prepare: Callable[..., PreparedEdit], *values: Any) -> Iterator[tuple[Any, int, str]]:
        with user_facing_errors():
            prepared = prepare(*values)
        with user_facing_errors():
            for frame in edit_frames(edit_on_gpu, prepared):
                yield either(frame.gallery), prepared.request.seed, either(frame.status)

    def complete_image(
        request: gr.Request,
        image: Any,
        prompt: str,
        keep_rows: float,
        seed: float,
        guidance_scale: float,
        temperature: float,
        num_images: float,
        preview_every: float,
    ) -> Iterator[tuple[Any, int, str]]:
        settings = (prompt, keep_rows, seed, guidance_scale, temperature, num_images, preview_every)
        yield from watched(edited(backend.prepare_complete, uploaded(image), *settings), request, backend.clients)

    def redraw_region(
        request: gr.Request,
        image: Any,
        mask: Any,
        prompt: str,
        seed: float,
        guidance_scale: float,
        temperature: float,
        num_images: float,
        preview_every: float,
    ) -> Iterator[tuple[Any, int, str]]:
        settings = (prompt, seed, guidance_scale, temperature, num_images, preview_every)
        run = edited(backend.prepare_redraw, uploaded(image), uploaded(mask), *settings)
        yield from watched(run, request, backend.clients)

    def variations(
        request: gr.Request,
        image: Any,
        num_images: float,
        seed: float,
        guidance_scale: float,
        temperature: float,
        preview_every: float,
    ) -> Iterator[tuple[Any, int, str, str]]:
        settings = (num_images, seed, guidance_scale, temperature, preview_every)
        yield from watched(vary(uploaded(image), *settings), request, backend.clients)

    def vary(*values: Any) -> Iterator[tuple[Any, int, str, str]]:
        with user_facing_errors():
            prepared = backend.prepare_variations(*values)
        seed, description = prepared.settings["seed"], ""
        with user_facing_errors():
            for description, status in description_updates(answer_on_gpu, prepared):
                yield gr.skip(), seed, status, description
            drawing = backend.prepare_described(
                description, *described_settings(prepared), source_size=prepared.source_size
            )
            for frame in edit_frames(edit_on_gpu, drawing):
                yield either(frame.gallery), seed, either(frame.status), drawing.request.prompt

    schemas = backend.schemas
    complete_image.__doc__ = schemas.complete.docstring(
        "Complete a photo with Janus-Pro: keep its top token rows and draw the rest; previews stream in.",
        "The gallery (previews while drawing, then the final images), the seed used, and a status line.",
    )
    redraw_region.__doc__ = schemas.redraw.docstring(
        "Redraw the region of a photo under a mask (white = redraw) with Janus-Pro; the rest is kept.",
        "The gallery (previews while drawing, then the final images), the seed used, and a status line.",
    )
    variations.__doc__ = schemas.variations.docstring(
        "Variations of a photo: Janus-Pro describes it as a prompt, then draws images from its description.",
        "The gallery (previews, then the final images), the seed used, a status line, and the description.",
    )
    return {"complete_image": complete_image, "redraw_region": redraw_region, "variations": variations}


# --- the browser -----------------------------------------------------------------------------------------


def crop_shown(prepared: PreparedEdit | PreparedVariations) -> Any:
    """The crop the model starts from, shown beside the results (nothing to show for a description)."""
    return gr.skip() if prepared.crop is None else gr.update(value=prepared.crop, visible=True)


def problem_outputs(error: Exception) -> tuple[Any, ...]:
    return (*problem_frame(error), gr.skip(), gr.skip())


def make_browser_edit(backend: Backend, prepare: Callable[..., PreparedEdit], edit_on_gpu: EditFn):
    """An edit in the browser: the Text-to-image tab's outputs, then the crop and the description (untouched).
    It never raises: a problem is reported in the status line."""

    def run(request: gr.Request, *values: Any):
        yield from watched(edit(*values), request, backend.clients)

    def edit(*values: Any):
        try:  # the validator has passed these values
            prepared = prepare(*values)
        except Exception as error:  # noqa: BLE001 - said in the status line; the inputs keep their values
            yield problem_outputs(error)
            return
        try:
            for frame in edit_frames(edit_on_gpu, prepared):
                crop = crop_shown(prepared) if frame.status == STARTING else gr.skip()
                yield (*browser_frame(frame, prepared.request), crop, gr.skip())
        except Exception as error:  # noqa: BLE001 - busy, out of memory, anything else
            yield problem_outputs(error)

    return run


def make_browser_variations(backend: Backend, edit_on_gpu: EditFn, answer_on_gpu: AnswerFn):
    """Variations in the browser: the description streams into its box, then the images come as in an edit."""

    def run(request: gr.Request, *values: Any):
        yield from watched(vary(*values), request, backend.clients)

    def vary(image: Any, *settings: Any):
        try:
            prepared = backend.prepare_variations(uploaded(image), *settings)
        except Exception as error:  # noqa: BLE001
            yield problem_outputs(error)
            return
        skip, hide, locked = gr.skip(), gr.update(value=None, visible=False), gr.update(interactive=False)
        run_state = {"running": True, "step": 0, "total": backend.image_shape.tokens}
        seed_used = gr.update(value=prepared.settings["seed"], visible=True)
        yield [], seed_used, STARTING, run_state, hide, hide, skip, locked, crop_shown(prepared), ""
        description = ""
        try:
            for description, status in description_updates(answer_on_gpu, prepared):
                yield skip, skip, status, run_state, skip, skip, skip, skip, skip, description
            drawing = backend.prepare_described(
                description, *described_settings(prepared), source_size=prepared.source_size
            )
            for frame in edit_frames(edit_on_gpu, drawing):  # the description as the prompt it became
                prompt = drawing.request.prompt if frame.status == STARTING else skip
                yield (*browser_frame(frame, drawing.request), skip, prompt)
        except Exception as error:  # noqa: BLE001
            yield problem_outputs(error)

    return run


def clear_results() -> tuple[Any, ...]:
    """The results, status, seed used, crop and the buttons that act on a result, as before the first run."""
    hide = gr.update(value=None, visible=False)
    return None, "", hide, IDLE, hide, hide, gr.update(interactive=False), hide


# --- the tab ---------------------------------------------------------------------------------------------


def build_edit_tab(backend: Backend) -> list[int]:
    """Render the tab into the current Blocks context; return the ids of the events that run the model."""
    schemas = backend.schemas
    complete, redraw, vary = schemas.complete, schemas.redraw, schemas.variations
    run_state = gr.State(IDLE)
    with gr.Row(equal_height=False, elem_id="edit-layout"):
        with gr.Column(scale=2, min_width=300, elem_id="edit-compose"):
            offered = MODES if backend.can_chat else MODES[:2]  # variations need the model's description
            mode = gr.Radio(list(offered), value=MODES[0], label="Mode", elem_id="edit-mode")
            with gr.Group(elem_id="edit-complete-group") as complete_group:
                complete_image = photo_input("edit-complete-image")
                complete_prompt = prompt_box(complete, "What the whole picture shows…", "edit-complete-prompt")
                keep_rows = widget(complete["keep_rows"], elem_id="edit-field-keep_rows")
                complete_button = gr.Button("Complete", variant="primary", elem_id="edit-complete")
            with gr.Group(visible=False, elem_id="edit-redraw-group") as redraw_group:
                editor = gr.ImageEditor(
                    label="Photo: paint over what to redraw",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    brush=BRUSH,
                    eraser=gr.Eraser(default_size=24),
                    layers=False,
                    transforms=(),
                    format="png",  # a mask must stay exact
                    height=420,
                    elem_id="edit-redraw-image",
                )
                redraw_prompt = prompt_box(
                    redraw, "What the picture shows, the new part included…", "edit-redraw-prompt"
                )
                redraw_button = gr.Button("Redraw", variant="primary", elem_id="edit-redraw")
            with gr.Group(visible=False, elem_id="edit-variations-group") as vary_group:
                vary_image = photo_input("edit-variations-image")
                vary_button = gr.Button("Describe and draw", variant="primary", elem_id="edit-variations")
                description = gr.Textbox(
                    label="Description (edit it, then generate from it)",
                    lines=3,
                    max_lines=8,
                    max_length=backend.limits.max_prompt_chars,
                    elem_id="edit-description",
                )
                from_description = gr.Button("Generate from this", elem_id="edit-from-description")
            with gr.Row(elem_id="edit-buttons"):
                stop = gr.Button("Stop", variant="stop", elem_id="edit-stop", min_width=70)
                clear = gr.Button("Clear", variant="secondary", elem_id="edit-clear", min_width=70)
        with gr.Column(scale=3, min_width=300, elem_id="edit-results"):
            status = gr.Markdown("", elem_id="edit-status")
            crop = gr.Image(
                label="The crop used ({}×{})".format(*backend.image_shape.size),
                type="pil",
                interactive=False,
                visible=False,
                height=160,
                elem_id="edit-crop",
                buttons=[],
            )
            gallery = gr.Gallery(
                label="Images",
                show_label=False,
                columns=2,
                height="auto",
                format="png",
                object_fit="contain",
                elem_id="edit-gallery",
                buttons=["download", "fullscreen"],
                interactive=False,
            )
            archive = gr.DownloadButton("Download all (.zip)", visible=False, elem_id="edit-zip", size="sm")
            files = gr.File(
                label="Download one by one",
                file_count="multiple",
                interactive=False,
                visible=False,
                height=150,
                elem_id="edit-files",
            )
            with gr.Row(elem_id="edit-after"):
                seed_used = gr.Number(
                    None, label="Seed used", precision=0, interactive=False, visible=False, elem_id="edit-seed-used"
                )
                reuse = gr.Button("Reuse this seed", size="sm", interactive=False, elem_id="edit-reuse")
            upscale_events = add_upscale(backend, gallery, run_state, stop) if backend.can_upscale else []
        with gr.Column(scale=2, min_width=300, elem_id="edit-settings"):
            field = lambda name: widget(complete[name], elem_id=f"edit-field-{name}")  # noqa: E731
            with gr.Row():
                seed, num_images = field("seed"), field("num_images")
            with gr.Row():
                guidance, temperature = field("guidance_scale"), field("temperature")
            with gr.Accordion(ADVANCED, open=False, elem_id="edit-advanced"):
                preview_every = field("preview_every")
    groups_by_mode = [complete_group, redraw_group, vary_group]
    mode.change(
        lambda chosen: [gr.update(visible=chosen == name) for name in MODES],
        mode,
        groups_by_mode,
        api_visibility="private",
        queue=False,
    )
    api_image, api_mask = gr.Image(type="filepath", visible=False), gr.Image(type="filepath", visible=False)
    api_button = gr.Button(visible=False)

    edit_on_gpu, answer_on_gpu = make_edit_fn(backend), make_answer_fn(backend)
    outputs = [gallery, seed_used, status, run_state, files, archive, reuse, clear, crop, description]
    groups = {"preview_every": ADVANCED}
    ui = {
        "api_visibility": "private",
        "show_progress": "minimal",
        "show_progress_on": [status],
        "preprocess": False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        "concurrency_id": "images",
    }

    def prepare_complete(image: Any, *values: Any) -> PreparedEdit:
        return backend.prepare_complete(uploaded(image), *values)

    def prepare_redraw(value: Any, *values: Any) -> PreparedEdit:
        return backend.prepare_redraw(*editor_files(value), *values)

    def prepare_variations(image: Any, *values: Any) -> PreparedVariations:
        return backend.prepare_variations(uploaded(image), *values)

    settings = [seed, guidance, temperature, num_images, preview_every]
    vary_settings = [num_images, seed, guidance, temperature, preview_every]
    runs = [
        gr.on(
            [complete_button.click, complete_prompt.submit],
            make_browser_edit(backend, prepare_complete, edit_on_gpu),
            [complete_image, complete_prompt, keep_rows, *settings],
            outputs,
            validator=validator(prepare_complete, complete.names, "image", groups),
            **ui,
        ),
        gr.on(
            [redraw_button.click, redraw_prompt.submit],
            make_browser_edit(backend, prepare_redraw, edit_on_gpu),
            [editor, redraw_prompt, *settings],
            outputs,
            validator=validator(prepare_redraw, [n for n in redraw.names if n != "mask"], "image", groups),
            **ui,
        ),
        vary_button.click(
            make_browser_variations(backend, edit_on_gpu, answer_on_gpu),
            [vary_image, *vary_settings],
            outputs,
            validator=validator(prepare_variations, vary.names, "image", groups),
            **ui,
        ),
        from_description.click(
            make_browser_edit(backend, backend.prepare_described, edit_on_gpu),
            [description, *vary_settings],
            outputs,
            validator=validator(backend.prepare_described, ["description", *vary.names[1:]], "description", groups),
            **ui,
        ),
    ]
    for run in runs:
        run.then(
            after_images,
            [gallery, run_state],
            [gallery, status, run_state, clear],
            api_visibility="private",
            queue=False,
            preprocess=False,
        )
    stop.click(None, None, None, cancels=runs, api_visibility="private")
    clear.click(
        clear_results,
        None,
        [gallery, status, seed_used, run_state, files, archive, reuse, crop],
        api_visibility="private",
        queue=False,
    )
    reuse.click(lambda used: used, seed_used, seed, api_visibility="private", queue=False)

    api_fns = make_api_fns(backend, edit_on_gpu, answer_on_gpu)
    api = {"show_progress": "hidden", "preprocess": False, "concurrency_id": "images"}
    apis = [
        api_button.click(
            api_fns["complete_image"],
            [complete_image, complete_prompt, keep_rows, *settings],
            [gallery, seed_used, status],
            api_name="complete_image",
            **api,
        ),
        api_button.click(
            api_fns["redraw_region"],
            [api_image, api_mask, redraw_prompt, *settings],
            [gallery, seed_used, status],
            api_name="redraw_region",
            **api,
        ),
        api_button.click(
            api_fns["variations"],
            [vary_image, *vary_settings],
            [gallery, seed_used, status, description],
            api_name="variations",
            **api,
        ),
    ]
    return [event["id"] for event in (*runs, *apis)] + upscale_events


def photo_input(elem_id: str) -> gr.Image:
    return gr.Image(
        label="Photo",
        type="filepath",
        sources=["upload", "clipboard"],
        height=300,
        elem_id=elem_id,
    )


def prompt_box(schema: Any, placeholder: str, elem_id: str) -> gr.Textbox:
    field = schema["prompt"]
    return gr.Textbox(
        label=field.label,
        placeholder=f"{placeholder} (Enter starts)",
        lines=1,
        max_lines=6,
        max_length=field.max_chars,
        elem_id=elem_id,
    )
