"""The "Text to image" tab: previews that build up while tokens are generated, then a gallery.

Public API endpoint and MCP tool: `/generate_images(prompt, seed, guidance_scale, temperature, num_images,
top_p, preview_every, preview_mode)`, the fields of `backend.schemas.images` in order. It streams
`(gallery, seed used, status)`: previews first, the final PNGs (prompt, seed, guidance, temperature and
model in their metadata) last. The request is checked and its prompt tokenized on the CPU; only then
does `draw_on_gpu` borrow a GPU on a ZeroGPU Space.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend, ImageProgress, ImageRequest
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.messages import WAITING, user_facing_errors
from janus_demo.web.watch import watched
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import images_duration, on_gpu

STATUS_EVERY_S = 0.5  # progress-text updates without a new preview, at most this often

EXAMPLE_PROMPTS = [
    "A close-up photo of a tabby cat with green eyes, soft window light",
    "A steaming cup of coffee on a wooden table, morning sunlight, shallow depth of field",
    "A rocket lifting off at dawn, dramatic clouds of smoke, wide angle",
    "An astronaut riding a horse on the moon, digital art",
    "A watercolor painting of a lighthouse on a cliff at sunset",
]


def progress_text(progress: ImageProgress) -> str:
    """'Step 96/576 · 4.1 s · 23.4 steps/s · about 20 s left'."""
    if progress.done:
        return f"Done: {progress.total} tokens in {progress.elapsed:.1f} s ({progress.steps_per_second:.1f} steps/s)."
    eta = "" if progress.eta is None else f" · about {progress.eta:.0f} s left"
    return (
        f"Step {progress.step}/{progress.total} · {progress.elapsed:.1f} s · "
        f"{progress.steps_per_second:.1f} steps/s{eta}"
    )


def make_generate_fn(backend: Backend):
    """The event function behind the Generate button and `/generate_images`."""

    @on_gpu(duration=images_duration)
    def draw_on_gpu(request: ImageRequest) -> Iterator[ImageProgress | Heartbeat]:
        """Run a prepared request under the model lock (borrows a GPU on ZeroGPU)."""
        with contextlib.closing(backend.run_images(request)) as stream:
            yield from stream

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
        yield gr.skip(), request.seed, WAITING  # lets gradio cancel us before the first step
        last_status = 0.0
        with user_facing_errors(), contextlib.closing(draw_on_gpu(request)) as stream:
            for progress in stream:
                if isinstance(progress, Heartbeat):  # nothing new; yielding is what lets gradio stop us
                    yield gr.skip(), request.seed, WAITING if progress.waiting else gr.skip()
                elif progress.done:  # the backend has put prompt, seed, ... into each image's PNG metadata
                    yield progress.images, request.seed, progress_text(progress)
                elif progress.previews:
                    yield progress.previews, request.seed, progress_text(progress)
                elif time.monotonic() - last_status > STATUS_EVERY_S:
                    yield gr.skip(), request.seed, progress_text(progress)
                else:
                    continue
                last_status = time.monotonic()

    generate_images.__doc__ = backend.schemas.images.docstring(
        "Generate images from a text prompt with Janus-Pro; previews stream in while it draws.",
        "The gallery (previews while generating, then the final images), the seed used, and a status line.",
    )
    return generate_images


def build_images_tab(backend: Backend, chat_input: gr.MultimodalTextbox | None, tabs: gr.Tabs) -> None:
    """Render the tab into the current Blocks context; "Ask about this image" fills `chat_input` (no such
    button without a chat)."""
    schema = backend.schemas.images
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt_field = schema["prompt"]
            prompt = gr.Textbox(
                label=prompt_field.label,
                placeholder="Describe the picture you want…",
                lines=3,
                max_length=prompt_field.max_chars,
                elem_id="t2i-prompt",
            )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
                stop = gr.Button("Stop", variant="stop", elem_id="t2i-stop")
            with gr.Row():
                seed, num_images = widget(schema["seed"]), widget(schema["num_images"])
            with gr.Row():
                guidance, temperature = widget(schema["guidance_scale"]), widget(schema["temperature"])
            with gr.Accordion("Advanced", open=False):
                top_p, preview_every = widget(schema["top_p"]), widget(schema["preview_every"])
                preview_mode = widget(schema["preview_mode"])
            # Only fill the prompt: nothing runs or is cached at start-up (on ZeroGPU that would spend GPU time).
            gr.Examples(EXAMPLE_PROMPTS, inputs=[prompt], label="Example prompts", cache_examples=False)
        with gr.Column(scale=3, min_width=320):
            gallery = gr.Gallery(
                label="Images",
                columns=2,
                height=560,
                format="png",
                object_fit="contain",
                elem_id="t2i-gallery",
                buttons=["download", "fullscreen"],
                interactive=False,  # an output; without this, being an input of "Ask" makes it an upload area
            )
            status = gr.Markdown("", elem_id="t2i-status")
            with gr.Row():
                seed_used = gr.Number(label="Seed used", precision=0, interactive=False, elem_id="t2i-seed-used")
                reuse = gr.Button("Reuse this seed", size="sm")
                ask = gr.Button("Ask about this image", size="sm", elem_id="t2i-ask", visible=chat_input is not None)
    selected = gr.State(None)

    inputs = [prompt, seed, guidance, temperature, num_images, top_p, preview_every, preview_mode]
    run = gr.on(
        [generate.click, prompt.submit],
        make_generate_fn(backend),
        inputs,
        [gallery, seed_used, status],
        api_name="generate_images",
        show_progress="hidden",
        preprocess=False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
    )
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    reuse.click(lambda used: used, seed_used, seed, api_visibility="private", queue=False)
    gallery.select(pick_selected, None, selected, api_visibility="private", queue=False)
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
    if chat_input is None:
        return
    ask.click(ask_about, [gallery, selected], [chat_input, tabs], api_visibility="private", queue=False).then(
        None, None, None, js="() => setTimeout(() => document.querySelector('#chat-input textarea')?.focus(), 100)"
    )


def pick_selected(event: gr.SelectData) -> int:
    return event.index


def ask_about(gallery: list[Any] | None, selected: int | None):
    """Put the selected (else first) image into the chat box and switch to the Chat tab."""
    if not gallery:
        raise gr.Error("Generate an image first.")
    item = gallery[selected if selected is not None and selected < len(gallery) else 0]
    path = item[0] if isinstance(item, list | tuple) else getattr(item, "path", item)
    message = {"text": "Describe this image.", "files": [path]}
    return message, gr.Tabs(selected="chat")
