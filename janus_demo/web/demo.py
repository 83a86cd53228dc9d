"""The Gradio app, built from an already loaded backend (so tests can build it around a tiny model):

    demo = build_demo(Backend(load_janus("tiny")))
    demo.queue(...).launch(**launch_options())

The queue and launch options that keep it safe come from `janus_demo.launch.server`.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from janus_demo.service.backend import Backend
from janus_demo.service.schemas import RANDOM_WEIGHTS_TOKENS
from janus_demo.web.assets import ASSETS
from janus_demo.web.chat_tab import build_chat_tab
from janus_demo.web.edit_tab import build_edit_tab
from janus_demo.web.images_tab import build_images_tab
from janus_demo.web.model_panel import model_table
from janus_demo.web.upscale import add_upscale_api

TITLE = "Janus-Pro"
RANDOM_WEIGHTS_NOTICE = (
    "⚠️ **Random weights loaded** (`{model_id}`): answers and images are noise. This model tries the app "
    "without a download; for real results start it without `--model`, which loads Janus-Pro-1B, "
    "or with `--model deepseek-community/Janus-Pro-7B`."
)


def random_weights_notice(backend: Backend) -> str:
    """The notice over a random-weight model, with its short chat answers (`schemas.RANDOM_WEIGHTS_TOKENS`)."""
    notice = RANDOM_WEIGHTS_NOTICE.format(model_id=backend.info()["model_id"])
    tokens = backend.schemas.chat["max_new_tokens"].default
    if not backend.can_chat or tokens > RANDOM_WEIGHTS_TOKENS:
        return notice
    return f"{notice} Chat answers stop after {tokens} tokens by default (Max new tokens, in Generation settings)."


def describe_model(info: dict[str, Any]) -> str:
    """One Markdown line about the loaded model for the header."""
    size = info["footprint_bytes"] / 2**30
    quant = "" if info["quantization"] == "none" else f" · {info['quantization']} ({info['quantized_layers']} layers)"
    return f"`{info['model_id']}` · {info['device']} · {info['dtype']}{quant} · {size:.2f} GiB"


def build_demo(backend: Backend) -> gr.Blocks:
    """The tabs (Chat, Text to image, Edit), the model panel and the `/model_info` endpoint."""
    info = backend.info()
    # The example photographs are served from assets/ as they are: copies in gradio's cache would be swept
    # (`delete_cache`) an hour after start-up, leaving the chat's examples without their pictures.
    gr.set_static_paths([ASSETS])
    # Every streamed image lands in gradio's cache: sweep files older than an hour, hourly.
    with gr.Blocks(title=f"{TITLE} demo", fill_width=False, delete_cache=(3600, 3600)) as demo:
        about = "Chat about images, turn words into pictures, or complete and redraw a photo."
        gr.Markdown(f"# {TITLE}\n{about} {describe_model(info)}")
        if info["random_weights"]:
            gr.Markdown(random_weights_notice(backend), elem_id="random-weights-notice")
        with gr.Tabs(elem_id="tabs") as tabs:
            chat = None
            if backend.can_chat:  # not in images-only mode
                with gr.Tab("Chat", id="chat", elem_id="tab-chat"):
                    chat = build_chat_tab(backend)
            with gr.Tab("Text to image", id="images", elem_id="tab-images"):
                image_events = build_images_tab(backend, chat.textbox if chat else None, tabs)
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                edit_events = build_edit_tab(backend)
        with gr.Accordion("Model", open=False, elem_id="model-panel"):
            gr.Markdown(model_table(info), elem_id="model-info")
            model_json = gr.JSON(value=info, visible=False)  # /model_info's output
        demo.load(model_info_fn(backend), None, model_json, api_name="model_info", queue=False)
        if backend.can_upscale:  # /upscale exists only with an upscaler
            image_events.append(add_upscale_api(backend))
        if chat:
            chat.on_load(demo)  # the browser's saved chats come back
    # Only the model's work takes a place in a client's share of the line (not, say, a field's own check).
    backend.clients.job_events = frozenset(image_events + edit_events + (chat.model_events if chat else []))
    return demo


def model_info_fn(backend: Backend):
    def model_info() -> dict[str, Any]:
        """The loaded model: model_id, device, dtype, quantization, quantization_reason, quantized_layers,
        footprint_bytes, embed_tokens, lm_head, chat, random_weights."""
        return json.loads(json.dumps(backend.info()))

    return model_info


def launch_options() -> dict[str, Any]:
    """Arguments for `demo.launch` that style the page (gradio 6 takes css and theme there)."""
    css_file = ASSETS / "style.css"
    return {"css": css_file.read_text() if css_file.exists() else None, "theme": gr.themes.Soft()}
