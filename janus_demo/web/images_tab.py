"""The "Text to image" tab: previews that build up while tokens are generated, then a gallery.

Public API endpoint and MCP tool: `/generate_images(prompt, seed, guidance_scale, temperature,
num_images, top_p, preview_every, preview_mode)`. It streams `(gallery, seed used, status)`:
previews first, the final PNGs (prompt, seed, guidance, temperature and model in their metadata)
last. On a ZeroGPU Space the function borrows a GPU per call (janus_demo/zerogpu.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from janus_demo.model import image_loop as imagegen
from janus_demo.service.backend import Backend
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.messages import user_facing_errors
from janus_demo.web.widgets import CheckedDropdown, CheckedNumber, CheckedSlider
from janus_demo.web.zerogpu import images_duration, on_gpu

STATUS_EVERY_S = 0.5  # progress-text updates without a new preview, at most this often

EXAMPLE_PROMPTS = [
    "A close-up photo of a tabby cat with green eyes, soft window light",
    "A steaming cup of coffee on a wooden table, morning sunlight, shallow depth of field",
    "A rocket lifting off at dawn, dramatic clouds of smoke, wide angle",
    "An astronaut riding a horse on the moon, digital art",
    "A watercolor painting of a lighthouse on a cliff at sunset",
]


def progress_text(progress: imagegen.ImageProgress) -> str:
    """'Step 96/576 · 4.1 s · 23.4 tokens/s · about 20 s left'."""
    if progress.done:
        return f"Done: {progress.total} tokens in {progress.elapsed:.1f} s ({progress.tokens_per_second:.1f} tokens/s)."
    eta = "" if progress.eta is None else f" · about {progress.eta:.0f} s left"
    return (
        f"Step {progress.step}/{progress.total} · {progress.elapsed:.1f} s · "
        f"{progress.tokens_per_second:.1f} tokens/s{eta}"
    )


def make_generate_fn(backend: Backend):
    """The event function behind the Generate button and `/generate_images`."""

    @on_gpu(duration=images_duration)
    def generate_images(
        prompt: str,
        seed: float = -1,
        guidance_scale: float = 5.0,
        temperature: float = 1.0,
        num_images: float = 1,
        top_p: float = 1.0,
        preview_every: float = 48,
        preview_mode: str = "auto",
    ) -> Iterator[tuple[Any, int, str]]:
        """Generate images from a text prompt with Janus-Pro; previews stream in while it draws.

        Args:
            prompt: what to draw.
            seed: random seed; -1 picks a random one (the seed used is returned).
            guidance_scale: classifier-free guidance; 1 turns it off, DeepSeek uses 5.
            temperature: sampling temperature of image tokens; 0 is greedy.
            num_images: how many images to generate in one batch (1-16).
            top_p: nucleus sampling threshold; 1 samples the full distribution.
            preview_every: tokens between previews; 0 turns previews off.
            preview_mode: "auto", "decode" (VQ decoder), "palette" (near-free mosaic) or "off".

        Returns:
            The gallery (previews while generating, then the final images), the seed used, and a status line.
        """
        with user_facing_errors():
            seed = backend.resolve_seed(seed)
            stream = backend.generate_images(
                prompt, seed, guidance_scale, temperature, num_images, top_p, preview_every, preview_mode
            )
        yield gr.skip(), seed, "Waiting for the model…"  # lets gradio cancel us before the first step
        last_status = 0.0
        with user_facing_errors(), contextlib.closing(stream):
            for progress in stream:
                if isinstance(progress, Heartbeat):  # nothing new; yielding is what lets gradio stop us
                    yield gr.skip(), seed, "Waiting for the model…" if progress.waiting else gr.skip()
                elif progress.done:  # the backend has put prompt, seed, ... into each image's PNG metadata
                    yield progress.images, seed, progress_text(progress)
                elif progress.previews:
                    yield progress.previews, seed, progress_text(progress)
                elif time.monotonic() - last_status > STATUS_EVERY_S:
                    yield gr.skip(), seed, progress_text(progress)
                else:
                    continue
                last_status = time.monotonic()

    return generate_images


def build_images_tab(backend: Backend, chat_input: gr.MultimodalTextbox, tabs: gr.Tabs) -> None:
    """Render the tab into the current Blocks context; "Ask about this image" fills `chat_input`."""
    gpu = backend.loaded.device.type == "cuda"
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = gr.Textbox(
                label="Prompt",
                placeholder="Describe the picture you want…",
                lines=3,
                max_length=backend.limits.max_prompt_chars,
                elem_id="t2i-prompt",
            )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
                stop = gr.Button("Stop", variant="stop", elem_id="t2i-stop")
            with gr.Row():
                seed = CheckedNumber(value=-1, precision=0, minimum=-1, label="Seed (-1 = random)", elem_id="t2i-seed")
                num_images = CheckedSlider(
                    1, backend.limits.max_num_images, value=4 if gpu else 1, step=1, label="Number of images"
                )
            with gr.Row():
                guidance = CheckedSlider(1.0, 10.0, value=5.0, step=0.5, label="Guidance scale (1 = off)")
                temperature = CheckedSlider(0.0, 2.0, value=1.0, step=0.05, label="Temperature (0 = greedy)")
            with gr.Accordion("Advanced", open=False):
                top_p = CheckedSlider(0.05, 1.0, value=1.0, step=0.05, label="Top p (1 = full distribution)")
                preview_every = CheckedSlider(0, 144, value=48, step=1, label="Preview every N tokens (0 = off)")
                preview_mode = CheckedDropdown(
                    ["auto", "decode", "palette", "off"],
                    value="auto",
                    label="Preview mode",
                    info="decode: VQ decoder (GPU); palette: instant colour mosaic (CPU); auto picks",
                )
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
                ask = gr.Button("Ask about this image", size="sm", elem_id="t2i-ask")
    selected = gr.State(None)

    inputs = [prompt, seed, guidance, temperature, num_images, top_p, preview_every, preview_mode]
    outputs = [gallery, seed_used, status]
    run = gr.on(
        [generate.click, prompt.submit],
        make_generate_fn(backend),
        inputs,
        outputs,
        api_name="generate_images",
        show_progress="hidden",
    )
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    reuse.click(lambda used: used, seed_used, seed, api_visibility="private", queue=False)
    gallery.select(pick_selected, None, selected, api_visibility="private", queue=False)
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
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
