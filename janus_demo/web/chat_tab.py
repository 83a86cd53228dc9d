"""The Chat tab: multimodal, multi-turn chat with streamed answers, Stop, Retry, Undo and Clear.

Public API endpoint and MCP tool: `/chat(message, max_new_tokens, temperature, top_p, seed)` with the
message `{"text": ..., "files": [...]}`; it streams `(answer so far, status line)`. Its history stays on
the server per session (a `gr.State`), so a gradio_client follow-up sees the earlier turns. The browser
keeps its conversation in the Chatbot. Both paths prepare the turn on the CPU (checks, images,
tokenizing) and only then borrow a GPU on a ZeroGPU Space (`answer_on_gpu`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from janus_demo.service.backend import Backend, ChatChunk, PreparedChat
from janus_demo.service.conversation import Image, history_message, parse_message, readable_messages
from janus_demo.service.fields import clean_text
from janus_demo.service.model_lock import Heartbeat
from janus_demo.web.components import MessageBox, history_box
from janus_demo.web.messages import WAITING, user_facing_errors
from janus_demo.web.watch import watched
from janus_demo.web.widgets import widget
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

AnswerFn = Callable[[PreparedChat], Iterator[ChatChunk | Heartbeat]]


class ChatTab(NamedTuple):
    textbox: gr.MultimodalTextbox
    chatbot: gr.Chatbot
    status: gr.Markdown


def status_line(chunk: ChatChunk) -> str:
    """'123 tokens · 4.5 s · 27.3 tokens/s', plus why it ended and any note from the backend."""
    line = f"{chunk.new_tokens} tokens · {chunk.elapsed:.1f} s · {chunk.tokens_per_second:.1f} tokens/s"
    endings = {"stopped": " · stopped", "deadline": " · stopped at the time limit", "length": " · max tokens reached"}
    return line + endings.get(chunk.stop_reason or "", "") + (f" · {chunk.note}" if chunk.note else "")


def make_answer_fn(backend: Backend) -> AnswerFn:
    """The one function that borrows a GPU for chat: it runs an already prepared turn."""

    @on_gpu(duration=chat_duration)
    def answer_on_gpu(prepared: PreparedChat) -> Iterator[ChatChunk | Heartbeat]:
        """Run a prepared turn under the model lock (borrows a GPU on ZeroGPU)."""
        with contextlib.closing(backend.run_chat(prepared)) as stream:
            yield from stream

    return answer_on_gpu


def stream_answer(answer_on_gpu: AnswerFn, prepared: PreparedChat) -> Iterator[tuple[str, str]]:
    """(answer so far, status): first a waiting status, which lets gradio cancel before the first heavy step."""
    answer, status = "", WAITING
    yield answer, status
    with user_facing_errors(), contextlib.closing(answer_on_gpu(prepared)) as chunks:
        for chunk in chunks:
            if not isinstance(chunk, Heartbeat):  # a heartbeat repeats the last update: we can only stop at a yield
                answer, status = chunk.text, status_line(chunk)
            yield answer, status


def user_parts(message: Any) -> list[Image | str]:
    text, paths = parse_message(message)
    text = clean_text(text)  # as the model reads it (no NULs or lone surrogates, which JSON cannot send back)
    return [Image(path) for path in paths] + ([text] if text.strip() else [])


def user_messages(message: Any) -> list[dict[str, Any]]:
    """The new message as Chatbot messages: one per image, then the text (as gradio shows a chat)."""
    return [history_message("user", [part]) for part in user_parts(message)]


def assistant_message(text: str) -> dict[str, Any]:
    return history_message("assistant", [text])


def make_api_chat(backend: Backend, answer_on_gpu: AnswerFn):
    """`/chat`: the history lives in the session's state; the answer and the status stream back."""

    def chat(
        request: gr.Request,
        message: dict[str, Any],
        history: list[dict[str, Any]],
        max_new_tokens: float,
        temperature: float,
        top_p: float,
        seed: float,
    ) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
        yield from watched(answer(message, history, max_new_tokens, temperature, top_p, seed), request, backend.clients)

    def answer(message: Any, history: Any, *settings: Any) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
        with user_facing_errors():
            prepared = backend.prepare_chat(message, history, *settings)
        asked = list(history or []) + [history_message("user", user_parts(message))]
        for answer, status in stream_answer(answer_on_gpu, prepared):
            yield answer, asked + [assistant_message(answer)], status

    chat.__doc__ = backend.schemas.chat.docstring(
        "Chat with Janus-Pro about images, or text only; the answer streams in token by token.",
        "The answer so far (streamed), and a status line with tokens/s.",
    )
    return chat


def make_browser_chat(backend: Backend, answer_on_gpu: AnswerFn):
    """The composer's submit: the Chatbot holds the conversation; the composer locks until the answer ends."""

    def respond(request: gr.Request, message: dict[str, Any], chatbot: list[dict[str, Any]], *settings: Any):
        yield from watched(reply(message, chatbot, *settings), request, backend.clients)

    def reply(message: Any, chatbot: Any, *settings: Any):
        with user_facing_errors():
            prepared = backend.prepare_chat(message, chatbot, *settings)
        shown = readable_messages(chatbot) + user_messages(message)  # what the chat can show again
        composer = gr.MultimodalTextbox(value=None, interactive=False, submit_btn=False, stop_btn=True)
        for answer, status in stream_answer(answer_on_gpu, prepared):
            yield shown + [assistant_message(answer)], composer, status
            composer = gr.skip()

    return respond


def last_turn(chatbot: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The chat before its last user turn, and that turn as a composer value."""
    messages = [message for message in chatbot if isinstance(message, dict)] if isinstance(chatbot, list) else []
    while messages and messages[-1].get("role") != "user":
        messages.pop()
    text, files = "", []
    while messages and messages[-1].get("role") == "user":
        content = messages.pop().get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "file":
                files.insert(0, block.get("file"))
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                text = block["text"] + (" " + text if text else "")
    return messages, {"text": text, "files": files}


def build_chat_tab(backend: Backend) -> ChatTab:
    """Render the chat into the current Blocks context."""
    schema = backend.schemas.chat
    chatbot = history_box(
        backend.limits.max_shown_messages,
        elem_id="chatbot",
        height=520,
        buttons=["copy"],
        label="Janus",
        examples=[{"text": e["text"], "files": e["files"]} for e in EXAMPLES],
    )
    textbox = MessageBox(
        file_types=["image"],
        file_count="multiple",
        placeholder="Ask about an image, or just chat. Drop or paste images here.",
        label=schema["message"].label,
        show_label=False,
        elem_id="chat-input",
        submit_btn=True,
        stop_btn=False,
    )
    with gr.Accordion("Generation settings", open=False):
        settings = [widget(field) for field in schema if field.name != "message"]
    status = gr.Markdown("", label="Status", elem_id="chat-status")
    # The API's own inputs and outputs: hidden; the history is per session.
    api_message = MessageBox(label="Message", visible=False, file_types=["image"], file_count="multiple")
    api_answer = gr.Textbox(label="Answer", visible=False)
    api_history = gr.State([], time_to_live=backend.clients.limits.session_ttl_s)  # forgotten when idle
    api_button = gr.Button(visible=False)

    answer_on_gpu = make_answer_fn(backend)
    respond = make_browser_chat(backend, answer_on_gpu)
    ui = {"preprocess": False, "api_visibility": "private", "concurrency_id": "chat", "show_progress": "minimal"}
    outputs = [chatbot, textbox, status]
    submit = textbox.submit(respond, [textbox, chatbot, *settings], outputs, **ui)
    retry = chatbot.retry(run_retry(respond), [chatbot, *settings], outputs, **ui)
    example = chatbot.example_select(run_example(respond), [chatbot, *settings], outputs, **ui)
    runs = [submit, retry, example]
    for run in runs:
        run.then(
            lambda: gr.MultimodalTextbox(interactive=True, submit_btn=True, stop_btn=False),
            None,
            textbox,
            api_visibility="private",
            queue=False,
        )
    textbox.stop(None, None, None, cancels=runs, api_visibility="private")
    chatbot.undo(lambda chat: last_turn(chat), chatbot, [chatbot, textbox], api_visibility="private", queue=False)
    chatbot.clear(lambda: "", None, status, api_visibility="private", queue=False)

    api_button.click(
        make_api_chat(backend, answer_on_gpu),
        [api_message, api_history, *settings],
        [api_answer, api_history, status],
        api_name="chat",
        preprocess=False,  # every value reaches the schema's checks as sent (janus_demo/web/widgets.py)
        concurrency_id="chat",
    )
    return ChatTab(textbox, chatbot, status)


def run_retry(respond):
    """Retry: the last user turn, answered again."""

    def retry(
        request: gr.Request,
        chatbot: list[dict[str, Any]],
        max_new_tokens: Any,
        temperature: Any,
        top_p: Any,
        seed: Any,
    ):
        earlier, message = last_turn(chatbot)
        yield from respond(request, message, earlier, max_new_tokens, temperature, top_p, seed)

    return retry


def run_example(respond):
    """An example from the empty chat, sent as if typed."""

    def send_example(
        request: gr.Request,
        event: gr.SelectData,
        chatbot: list[dict[str, Any]],
        max_new_tokens: Any,
        temperature: Any,
        top_p: Any,
        seed: Any,
    ):
        yield from respond(request, event.value, chatbot, max_new_tokens, temperature, top_p, seed)

    return send_example
