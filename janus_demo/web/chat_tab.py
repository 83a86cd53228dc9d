"""The Chat tab: multimodal, multi-turn chat with streamed answers (gradio only, no model logic).

Public API endpoint and MCP tool: `/chat` with the message `{"text": ..., "files": [...]}` plus
the generation settings; it streams `(answer so far, status line)`. The history stays on the
server per session, so a gradio_client follow-up sees the earlier turns. On a ZeroGPU Space the
function borrows a GPU per call (janus_demo/zerogpu.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from janus_demo.model import chat
from janus_demo.service.backend import Backend
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.messages import user_facing_errors
from janus_demo.web.widgets import CheckedNumber, CheckedSlider
from janus_demo.web.zerogpu import chat_duration, on_gpu

ASSETS = Path(__file__).resolve().parents[2] / "assets"

EXAMPLES = [
    {"text": "Describe this picture in detail.", "files": [str(ASSETS / "chelsea.png")]},
    {"text": "What is happening in this photo?", "files": [str(ASSETS / "rocket.jpg")]},
    {
        "text": "What do these two pictures have in common?",
        "files": [str(ASSETS / "coffee.png"), str(ASSETS / "chelsea.png")],
    },
    {"text": "Write a haiku about autumn.", "files": []},
]

WAITING = "Waiting for the model…"


def status_line(chunk: chat.ChatChunk) -> str:
    """'123 tokens · 4.5 s · 27.3 tokens/s', plus why it ended and any note from the backend."""
    line = f"{chunk.new_tokens} tokens · {chunk.elapsed:.1f} s · {chunk.tokens_per_second:.1f} tokens/s"
    endings = {"stopped": " · stopped", "deadline": " · stopped at the time limit", "length": " · max tokens reached"}
    return line + endings.get(chunk.stop_reason or "", "") + (f" · {chunk.note}" if chunk.note else "")


def make_chat_fn(backend: Backend):
    """The ChatInterface function: validates via the backend and streams (answer, status).

    Named `chat` (shadowing the module here only) because gradio names the MCP tool after the function.
    """

    @on_gpu(duration=chat_duration)
    def chat(
        message: dict[str, Any],
        history: list[dict[str, Any]],
        max_new_tokens: float,
        temperature: float,
        top_p: float,
        seed: float,
    ) -> Iterator[tuple[str, str]]:
        """Chat with Janus-Pro about images, or text only; the answer streams in token by token.

        Args:
            message: {"text": the question, "files": images to ask about (png, jpg, webp, ...)}.
            history: earlier turns; kept on the server per session, so leave it out through the API.
            max_new_tokens: longest answer, in tokens.
            temperature: randomness of sampling; 0 means greedy.
            top_p: nucleus sampling threshold.
            seed: random seed, for repeatable answers; -1 picks a random one.

        Returns:
            The answer so far (streamed), and a status line with tokens/s.
        """
        with user_facing_errors():  # refused before the first yield: gradio then keeps the message out of history
            chunks = backend.chat(message, history, max_new_tokens, temperature, top_p, seed)
        answer, status = "", WAITING
        yield answer, status  # lets gradio cancel us before the first heavy step
        with user_facing_errors(), contextlib.closing(chunks):
            for chunk in chunks:
                if not isinstance(chunk, Heartbeat):  # a heartbeat repeats the last update: we can only stop at a yield
                    answer, status = chunk.text, status_line(chunk)
                yield answer, status

    return chat


def build_chat_tab(backend: Backend) -> gr.ChatInterface:
    """Render the chat interface into the current Blocks context."""
    status = gr.Markdown("", label="Status", elem_id="chat-status", render=False)
    settings = [
        CheckedSlider(
            1,
            backend.limits.max_new_tokens,
            value=chat.DEFAULT_MAX_NEW_TOKENS,
            step=1,
            label="Max new tokens",
            render=False,
        ),
        CheckedSlider(
            0.0, 2.0, value=chat.DEFAULT_TEMPERATURE, step=0.05, label="Temperature (0 = greedy)", render=False
        ),
        CheckedSlider(0.05, 1.0, value=chat.DEFAULT_TOP_P, step=0.05, label="Top p", render=False),
        CheckedNumber(value=chat.DEFAULT_SEED, precision=0, minimum=-1, label="Seed (-1 = random)", render=False),
    ]
    interface = gr.ChatInterface(
        make_chat_fn(backend),
        multimodal=True,
        textbox=gr.MultimodalTextbox(
            file_types=["image"],
            file_count="multiple",
            placeholder="Ask about an image, or just chat. Drop or paste images here.",
            label="Message",
            show_label=False,
            elem_id="chat-input",
            stop_btn=True,
        ),
        chatbot=gr.Chatbot(elem_id="chatbot", height=520, buttons=["copy"], label="Janus"),
        additional_inputs=settings,
        additional_inputs_accordion=gr.Accordion("Generation settings", open=False, render=False),
        additional_outputs=[status],
        examples=[[example] for example in EXAMPLES],
        run_examples_on_click=True,
        cache_examples=False,
        api_name="chat",
        fill_height=False,
    )
    status.render()
    return interface
