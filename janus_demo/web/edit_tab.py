"""The "Edit" tab: complete a photo, redraw a region of it, or draw variations of it, with Janus' own tokens.

Janus draws an image as a grid of tokens (`backend.image_shape`: 24x24 for Janus-Pro) in raster order from a
VQ codebook whose encoder it also has, so a photo's tokens can be forced into the image loop
(`janus_demo.model.image_loop`):
- Complete: the photo's top `keep_rows` token rows are kept, the rest is drawn.
- Redraw a region: the tokens under a painted mask (white) are drawn again, the others kept.
- Variations: the model describes the photo as a text-to-image prompt, then draws from its description
  (editable, with "Generate from this").

Public API endpoints and MCP tools, the fields of `backend.schemas.complete / redraw / variations` in order:
`/complete_image(image, prompt, keep_rows, seed, guidance_scale, temperature, num_images, preview_every,
keep_photo_pixels)` and `/redraw_region(image, mask, prompt, seed, guidance_scale, temperature, num_images,
preview_every, keep_photo_pixels)` stream `(gallery, seed used, status)` as `/generate_images` does (the photo's
own pixels where it is kept, several redrawn images best fit first: `janus_demo.service.edits`);
`/variations(image, num_images, seed, guidance_scale, temperature, preview_every)` streams `(gallery, seed used,
status, description)`. The photo is turned upright and its centre square resized to the model's image size
(384x384 for Janus-Pro; the crop is shown in the browser). Requests are checked on the CPU; only then is a GPU
borrowed on ZeroGPU (`edit_on_gpu`, and `answer_on_gpu` for the description). Previews, Stop, seed reuse,
downloads and PNG metadata (mode, kept rows or mask summary, source image size, pixels, fit score) work as in
the Text-to-image tab, whose pieces this tab reuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend
from janus_demo.service.drawing import DrawFn
from janus_demo.service.edits import (
    check_complete,
    check_redraw,
    edit,
    edit_duration,
    prepare_complete,
    prepare_redraw,
    run_edit,
)
from janus_demo.service.events import Event
from janus_demo.service.variations import check_described, check_variations, prepare_described, variations
from janus_demo.web.adapters import api_function, image_concurrency
from janus_demo.web.chat_tab import make_answer_fn
from janus_demo.web.images_tab import (
    ADVANCED,
    GALLERY_RETURNS,
    IDLE,
    Results,
    after_every_run,
    browser_run,
    drawing_api,
    drawn_images,
)
from janus_demo.web.refusals import validator
from janus_demo.web.uploads import uploaded
from janus_demo.web.upscale import add_upscale
from janus_demo.web.watch import until_client_leaves
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import gpu_function

MODES = ("Complete", "Redraw a region", "Variations")
BRUSH = gr.Brush(colors=["#ffffff"], default_color="#ffffff", color_mode="fixed", default_size=24)


def editor_files(value: Any) -> tuple[str | None, str | None]:
    """The photo and the painted layer (the mask: transparent where nothing was painted) of an ImageEditor."""
    if not isinstance(value, dict):
        return None, None
    layers = value.get("layers") if isinstance(value.get("layers"), list) else []
    return uploaded(value.get("background")), uploaded(layers[0]) if layers else None


def make_edit_fn(backend: Backend) -> DrawFn:
    """The one function that borrows a GPU for an edit: it runs an already prepared one under the model lock."""
    return gpu_function("edit_on_gpu", run_edit, edit_duration, backend)


# --- the API ---------------------------------------------------------------------------------------------


def make_api_fns(backend: Backend, edit_on_gpu: DrawFn, answer_on_gpu: DrawFn) -> dict[str, Any]:
    """The functions behind `/complete_image`, `/redraw_region` and `/variations`; refusals are gr.Error. The
    image files are the ones gradio received (`uploaded`)."""
    schemas, clients = backend.schemas, backend.clients

    def complete(request: gr.Request, image: Any, *settings: Any) -> Iterator[tuple[Any, ...]]:
        run = edit(partial(prepare_complete, backend), edit_on_gpu, uploaded(image), *settings)
        return until_client_leaves(drawing_api(run), request, clients)

    def redraw(request: gr.Request, image: Any, mask: Any, *settings: Any) -> Iterator[tuple[Any, ...]]:
        run = edit(partial(prepare_redraw, backend), edit_on_gpu, uploaded(image), uploaded(mask), *settings)
        return until_client_leaves(drawing_api(run), request, clients)

    def vary(request: gr.Request, image: Any, *settings: Any) -> Iterator[tuple[Any, ...]]:
        run = variations(backend, answer_on_gpu, edit_on_gpu, uploaded(image), *settings)
        return until_client_leaves(drawing_api(run, described=True), request, clients)

    return {
        "complete_image": api_function(
            "complete_image",
            schemas.complete,
            "Complete a photo with Janus-Pro: keep its top token rows and draw the rest; previews stream in.",
            GALLERY_RETURNS,
            complete,
        ),
        "redraw_region": api_function(
            "redraw_region",
            schemas.redraw,
            "Redraw the region of a photo under a mask (white = redraw) with Janus-Pro; the rest is kept.",
            GALLERY_RETURNS,
            redraw,
        ),
        "variations": api_function(
            "variations",
            schemas.variations,
            "Variations of a photo: Janus-Pro describes it as a prompt, then draws images from its description.",
            "The gallery (previews, then the final images), the seed used, a status line, and the description.",
            vary,
        ),
    }


# --- the browser -----------------------------------------------------------------------------------------


def clear_results() -> tuple[Any, ...]:
    """The results, status, seed used, crop and the buttons that act on a result, as before the first run."""
    hide = gr.update(value=None, visible=False)
    return None, "", hide, IDLE, hide, hide, gr.update(interactive=False), hide


def shown_modes(chosen: str, owner: str | None) -> list[Any]:
    """The mode groups with `chosen` shown, and the results column shown only if its results are `chosen`'s
    (`owner`: the mode of the run they come from; None before any run)."""
    return [gr.update(visible=chosen == name) for name in MODES] + [gr.update(visible=owner in (None, chosen))]


def owned_by(mode: str, owner: gr.State, column: gr.Column, run: Callable[..., Any]) -> Callable[..., Any]:
    """`run` (a browser run's event function) whose first update also marks the results as `mode`'s and shows
    them: a run starts (or is refused by the service) in the mode whose button was pressed."""

    def run_in_mode(request: gr.Request, *values: Any) -> Iterator[dict[Any, Any]]:
        mark = {owner: mode, column: gr.update(visible=True)}
        with contextlib.closing(run(request, *values)) as views:
            for view in views:
                yield view | mark
                mark = {}

    return run_in_mode


# --- the tab ---------------------------------------------------------------------------------------------


def build_edit_tab(backend: Backend) -> list[int]:
    """Render the tab into the current Blocks context; return the ids of the events that run the model."""
    schemas = backend.schemas
    complete, redraw, vary = schemas.complete, schemas.redraw, schemas.variations
    run_state, results_mode = gr.State(IDLE), gr.State(None)  # results_mode: the mode the results belong to
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
        with gr.Column(scale=3, min_width=300, elem_id="edit-results") as results_column:  # a mode's own
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
            gallery, archive, files = drawn_images("edit")
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
            keep_pixels = field("keep_photo_pixels")  # Complete and Redraw
            with gr.Accordion(ADVANCED, open=False, elem_id="edit-advanced"):
                preview_every = field("preview_every")
    groups_by_mode = [complete_group, redraw_group, vary_group]
    mode.change(
        shown_modes,
        [mode, results_mode],
        [*groups_by_mode, results_column],
        api_visibility="private",
        queue=False,
    )
    api_image, api_mask = gr.Image(type="filepath", visible=False), gr.Image(type="filepath", visible=False)
    api_button = gr.Button(visible=False)

    edit_on_gpu, answer_on_gpu = make_edit_fn(backend), make_answer_fn(backend)
    results = Results(gallery, seed_used, status, run_state, files, archive, reuse, clear, crop, description)
    groups = {"preview_every": ADVANCED}
    ui = {
        "api_visibility": "private",
        "show_progress": "minimal",
        "show_progress_on": [status],
        "preprocess": False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        "concurrency_id": "images",
        "concurrency_limit": image_concurrency(backend),
    }
    shared = {"seed": seed, "guidance_scale": guidance, "temperature": temperature, "num_images": num_images}
    shared |= {"preview_every": preview_every, "keep_photo_pixels": keep_pixels}

    def inputs(schema: Any, **first: Any) -> list[Any]:
        """The inputs of `schema`'s fields, in its order (the mask is painted in the editor: no input of its own)."""
        by_name = first | shared
        return [by_name[name] for name in schema.names if name in by_name]

    complete_inputs = inputs(complete, image=complete_image, prompt=complete_prompt, keep_rows=keep_rows)
    redraw_inputs, vary_inputs = inputs(redraw, image=editor, prompt=redraw_prompt), inputs(vary, image=vary_image)

    def completed(image: Any, *values: Any) -> Iterator[Event]:
        return edit(partial(prepare_complete, backend), edit_on_gpu, uploaded(image), *values)

    def redrawn(value: Any, *values: Any) -> Iterator[Event]:  # the editor holds the photo and the mask
        return edit(partial(prepare_redraw, backend), edit_on_gpu, *editor_files(value), *values)

    def varied(image: Any, *values: Any) -> Iterator[Event]:
        return variations(backend, answer_on_gpu, edit_on_gpu, uploaded(image), *values)

    def described(description: Any, *values: Any) -> Iterator[Event]:
        return edit(partial(prepare_described, backend), edit_on_gpu, description, *values)

    runs = [
        gr.on(
            [complete_button.click, complete_prompt.submit],
            owned_by(MODES[0], results_mode, results_column, browser_run(results, backend, completed)),
            complete_inputs,
            [*results.outputs(), results_mode, results_column],
            validator=validator(
                lambda image, *values: check_complete(backend, uploaded(image), *values),
                complete.names,
                "image",
                groups,
            ),
            **ui,
        ),
        gr.on(
            [redraw_button.click, redraw_prompt.submit],
            owned_by(MODES[1], results_mode, results_column, browser_run(results, backend, redrawn)),
            redraw_inputs,
            [*results.outputs(), results_mode, results_column],
            validator=validator(
                lambda value, *values: check_redraw(backend, *editor_files(value), *values),
                [name for name in redraw.names if name != "mask"],
                "image",
                groups,
            ),
            **ui,
        ),
        vary_button.click(
            owned_by(MODES[2], results_mode, results_column, browser_run(results, backend, varied)),
            vary_inputs,
            [*results.outputs(), results_mode, results_column],
            validator=validator(
                lambda image, *values: check_variations(backend, uploaded(image), *values), vary.names, "image", groups
            ),
            **ui,
        ),
        from_description.click(
            owned_by(MODES[2], results_mode, results_column, browser_run(results, backend, described)),
            [description, *vary_inputs[1:]],
            [*results.outputs(), results_mode, results_column],
            validator=validator(
                partial(check_described, backend), ["description", *vary.names[1:]], "description", groups
            ),
            **ui,
        ),
    ]
    for run in runs:
        after_every_run(run, results)
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
    api = {
        "show_progress": "hidden",
        "preprocess": False,
        "concurrency_id": "images",
        "concurrency_limit": image_concurrency(backend),
    }
    api_inputs = {"complete_image": complete_inputs, "variations": vary_inputs}
    api_inputs["redraw_region"] = [api_image, api_mask, *redraw_inputs[1:]]
    apis = [
        api_button.click(
            api_fns[name],
            api_inputs[name],
            [gallery, seed_used, status, description] if name == "variations" else [gallery, seed_used, status],
            api_name=name,
            **api,
        )
        for name in ("complete_image", "redraw_region", "variations")
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
