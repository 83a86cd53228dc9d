"""The Chat tab: multimodal, multi-turn chat with streamed answers, Stop, Retry, Undo and Clear.

Public API endpoint and MCP tool: `/chat(message, max_new_tokens, temperature, top_p, seed)` with the
message `{"text": ..., "files": [...]}`; it streams `(answer so far, status line)`. Its history stays on
the server per session (`backend.histories`, forgotten when idle), so a gradio_client follow-up sees the
earlier turns. It is a `gr.api` endpoint typed from the schema: its message is plain JSON, so gradio_client
uploads the files in it, MCP clients send images as `data:` URLs (the schema has no `$ref` for gradio 6.31's
MCP server to lose), and a malformed message reaches the service, which names what is wrong. The browser
keeps its conversation in the Chatbot, and saves it across reloads (`janus_demo.web.saved_chats`). Both
paths prepare the turn on the CPU (checks, images, tokenizing) and only then borrow a GPU on a ZeroGPU
Space (`answer_on_gpu`).

In the browser a refused message is answered next to its input before it is queued (`refusals`), and
the composer keeps the text and images. While an answer runs the composer is locked and its button is
Stop; the status line under it says where the request stands (its place in line while it waits). A
stopped answer stays in the chat marked "Stopped", and the status line says so.

A message that starts with `/imagine ` (or the composer's text sent with "Draw") draws instead of answering
(`janus_demo.service.chat`): its previews build up in the assistant's message, the final PNG stays there
(downloadable, saved with the chat) and the next question is about it. Through `/chat` the answer names the
file and the seed, and the image joins the session's conversation.
"""

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypedDict

import gradio as gr
from gradio.processing_utils import save_file_to_cache
from gradio.utils import get_upload_folder

from janus_demo.service.backend import Backend
from janus_demo.service.chat import AnswerFn, chat_duration, chat_turn, check_chat, imagine_prompt, run_chat
from janus_demo.service.conversation import ImagePath, history_message, parse_message, readable_messages
from janus_demo.service.drawing import DrawFn
from janus_demo.service.events import Decoding, Event, Problem, Result, Started, Stopped, Text
from janus_demo.service.fields import clean_text
from janus_demo.service.status_lines import stopped_text
from janus_demo.web.adapters import api_function, api_outputs, browser_outputs
from janus_demo.web.assets import ASSETS
from janus_demo.web.images_tab import make_draw_fn
from janus_demo.web.messages import PROBLEM, problem_text
from janus_demo.web.refusals import validator
from janus_demo.web.saved_chats import build_saved_chats, starts_new, wire_saved_chats
from janus_demo.web.uploads import uploads_only
from janus_demo.web.watch import until_client_leaves
from janus_demo.web.widgets import widget
from janus_demo.web.zerogpu import gpu_function

EXAMPLES = [
    {"text": "Describe this picture in detail.", "files": [str(ASSETS / "chelsea.png")]},
    {"text": "What is happening in this photo?", "files": [str(ASSETS / "rocket.jpg")]},
    {
        "text": "What do these two pictures have in common?",
        "files": [str(ASSETS / "coffee.png"), str(ASSETS / "chelsea.png")],
    },
    {"text": "Write a haiku about autumn.", "files": []},
]
SETTINGS = "Generation settings"
STOPPED_MARK = {"role": "assistant", "content": "", "metadata": {"title": "Stopped", "status": "done"}}
IDLE: dict[str, Any] = {"running": False}  # the run state between answers


class Message(TypedDict, total=False):
    """`/chat`'s message: the question, and images as uploaded files (gradio_client's `handle_file`) or
    `data:image/...;base64,` URLs."""

    text: str
    files: list[str]


class ChatTab(NamedTuple):
    textbox: gr.MultimodalTextbox
    chatbot: gr.Chatbot
    status: gr.Markdown
    model_events: list[int]  # the events that run the model (each is a job in the line)
    on_load: Callable[[gr.Blocks], None]  # attaches the page-load event (the saved chats come back)


def make_answer_fn(backend: Backend) -> AnswerFn:
    """The one function that borrows a GPU for chat: it runs an already prepared turn under the model lock."""
    return gpu_function("answer_on_gpu", run_chat, chat_duration, backend)


def user_parts(message: Any) -> list[ImagePath | str]:
    text, paths = parse_message(message)
    text = clean_text(text)  # as the model reads it (no NULs or lone surrogates, which JSON cannot send back)
    return [ImagePath(path) for path in paths] + ([text] if text.strip() else [])


def is_mcp(request: gr.Request) -> bool:
    """A call from gradio's MCP server: all of them share one session, so none may keep a conversation.
    (gradio's own client names its caller in this header: "api", or "mcp" for the MCP server.)"""
    headers = getattr(request, "headers", None)
    return headers is not None and headers.get("x-gradio-user") == "mcp"


def user_messages(message: Any) -> list[dict[str, Any]]:
    """The new message as Chatbot messages: one per image, then the text (as gradio shows a chat)."""
    return [history_message("user", [part]) for part in user_parts(message)]


def assistant_message(text: str) -> dict[str, Any]:
    return history_message("assistant", [text])


def drawn_message(images: list[Any], text: str = "") -> dict[str, Any]:
    """The assistant's message of a drawing: its image (a preview's or the PNG's file), and the answer's text if
    any."""
    parts = [ImagePath(str(image)) for image in images]
    return history_message("assistant", [*parts, text] if text else parts)


def make_api_chat(backend: Backend, answer_on_gpu: AnswerFn, draw_on_gpu: DrawFn):
    """`/chat`: the session's history lives on the server; the answer and the status stream back. A drawing's
    answer names its file and seed; the PNG is kept in gradio's cache folder for the session's follow-ups."""

    def chat(request: gr.Request, message: Any, *settings: Any) -> Iterator[tuple[str, str]]:
        session = None if is_mcp(request) else request.session_hash  # MCP tool calls are each a new conversation
        message, history = uploads_only(message), backend.histories.get(session)
        said = ""

        def outputs(event: Event) -> tuple[str, str] | None:
            nonlocal said
            if isinstance(event, Result) and not event.files:  # an answer's end: its last Text said it all
                return None
            if isinstance(event, Result):  # a drawing's end: its PNG joins the conversation
                kept = [save_file_to_cache(file, get_upload_folder()) for file in event.files] if session else []
                reply = drawn_message(kept, event.text)
            elif isinstance(event, Started | Text):
                reply = assistant_message(getattr(event, "text", ""))
            else:  # a drawing's progress: the status line only
                return (said, event.status) if getattr(event, "status", None) is not None else None
            said = event.text if isinstance(event, Result | Text) else said
            asked = history + [history_message("user", user_parts(message))]  # a prepared (so readable) message
            backend.histories.put(session, asked + [reply])  # kept if the client stops
            return said, event.status

        run = chat_turn(backend, answer_on_gpu, draw_on_gpu, message, history, *settings)
        return until_client_leaves(api_outputs(run, outputs), request, backend.clients)

    return api_function(
        "chat",
        backend.schemas.chat,
        "Chat with Janus-Pro about images, or text only; the answer streams in token by token.",
        "The answer so far (streamed), and a status line with tokens/s.",
        chat,
        hints={"message": Message},
        return_hint=tuple[str, str],  # a generator; gr.api reads its outputs, (answer so far, status), from this
        required=("message",),
    )


class ChatOutputs(NamedTuple):
    chatbot: gr.Chatbot
    composer: gr.MultimodalTextbox
    status: gr.Markdown
    run_state: gr.State
    cleared: gr.State
    draw: gr.Button


def make_browser_chat(backend: Backend, answer_on_gpu: AnswerFn, draw_on_gpu: DrawFn, out: ChatOutputs):
    """The composer's submit: the chat, composer, status, run state and Clear's note, by name. It never raises:
    a problem is reported in the status line, so the chat shows no error badge and the composer is unlocked by
    `after_answer`."""

    def respond(request: gr.Request, message: dict[str, Any], chatbot: list[dict[str, Any]], *settings: Any):
        shown: list[dict[str, Any]] = []
        reply, run = assistant_message(""), dict(IDLE)

        def view(event: Event) -> dict[Any, Any] | None:
            nonlocal shown, reply, run
            if isinstance(event, Problem):  # the composer keeps the message
                return {out.status: PROBLEM + problem_text(event.error), out.run_state: IDLE}
            if isinstance(event, Started):  # the chat's readable messages, the newest only (each update re-sends all)
                shown = readable_messages(chatbot)[-backend.limits.max_shown_messages :] + user_messages(message)
            changed, run = reply_after(event), run_after(event, run)
            reply = changed or reply
            chat = shown + [reply]
            if isinstance(event, Result):  # it ended by itself: nothing to mark as stopped
                return {out.chatbot: chat, out.status: event.status, out.run_state: IDLE}
            if isinstance(event, Stopped):  # a drawing that ended by itself early: marked as Stop would mark it
                return {out.chatbot: chat + [STOPPED_MARK], out.status: event.status, out.run_state: IDLE}
            view = {out.run_state: run} | ({out.chatbot: chat} if changed is not None else {})
            if event.status is not None:
                view[out.status] = event.status
            if isinstance(event, Started):  # locked while it answers; no Clear yet during this run
                composer = gr.MultimodalTextbox(value=None, interactive=False, submit_btn=False, stop_btn=True)
                view |= {out.composer: composer, out.cleared: False, out.draw: gr.Button(interactive=False)}
            return view

        run_events = chat_turn(backend, answer_on_gpu, draw_on_gpu, message, chatbot, *settings)
        yield from until_client_leaves(browser_outputs(run_events, view), request, backend.clients)

    return respond


def reply_after(event: Event) -> dict[str, Any] | None:
    """The assistant's message after `event`: the answer so far, a drawing's preview or its PNG and answer;
    None when the event does not change it."""
    if isinstance(event, Started | Text):
        return assistant_message(getattr(event, "text", ""))
    if isinstance(event, Result) and event.files:
        return drawn_message(list(event.files), event.text)
    images = getattr(event, "images", None)  # a preview (or, decoding, the PNG so far)
    return drawn_message(images[:1]) if images else None


def run_after(event: Event, run: dict[str, Any]) -> dict[str, Any]:
    """The run state after `event` (read by `after_answer` when Stop ends the run): its status, whether the
    answer has begun, and for a drawing where a Stop leaves it."""
    run = {**run, "running": True}
    if event.status is not None:
        run["status"] = event.status
    if isinstance(event, Text):
        run["answering"] = event.answering
    elif isinstance(event, Decoding):  # every token drawn: a Stop keeps what was decoded (none of one image)
        run["stopped"] = stopped_text(event.step, event.total, len(event.files), event.count)
    elif (isinstance(event, Started) and event.seed is not None) or getattr(event, "total", 0):  # a drawing
        run["stopped"] = stopped_text(getattr(event, "step", 0), event.total)
    return run


def after_answer(chatbot: list[dict[str, Any]], run: dict[str, Any] | None, cleared: bool):
    """After every run, however it ended: unlock the composer; if Stop ended it (the generator was closed
    mid-run, so it could not say so itself), mark the answer and the status "Stopped". If Clear ended it,
    clear again: pieces of the answer that were on their way when Clear was pressed may have come back."""
    composer = gr.MultimodalTextbox(interactive=True, submit_btn=True, stop_btn=False)
    draw = gr.Button(interactive=True)
    if cleared:
        return [], composer, "", IDLE, False, draw
    if not (run or IDLE)["running"]:
        return gr.skip(), composer, gr.skip(), gr.skip(), gr.skip(), draw
    messages = list(chatbot or [])
    if messages and messages[-1].get("role") == "assistant" and is_empty(messages[-1]):
        messages.pop()  # stopped before the first token: no empty bubble
    answered = f"Stopped · {run['status']}" if run.get("answering") else "Stopped before the answer began."
    status = run.get("stopped") or answered  # a drawing says where it stopped
    return messages + [STOPPED_MARK], composer, status, IDLE, gr.skip(), draw


def is_empty(message: dict[str, Any]) -> bool:
    """True for a message with no text and no image (an answer stopped before its first token)."""
    content = message.get("content")
    if not isinstance(content, list):
        return not str(content or "").strip()
    has_file = any(isinstance(block, dict) and block.get("type") == "file" for block in content)
    return not has_file and not message_text(message).strip()


def clear_chat(run: dict[str, Any] | None) -> tuple[Any, ...]:
    """Clear: an empty chat and status; during an answer (which Clear stops) also a note for `after_answer`."""
    return [], "", IDLE, bool((run or IDLE)["running"])


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


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
    chatbot = gr.Chatbot(
        elem_id="chatbot",
        height=520,
        buttons=["copy"],
        label="Janus",
        show_label=False,  # a floating label would cover the messages as they scroll
        examples=[{"text": e["text"], "files": e["files"]} for e in EXAMPLES],
    )
    with gr.Row(elem_id="chat-composer", equal_height=True):
        textbox = gr.MultimodalTextbox(
            file_types=["image"],
            file_count="multiple",
            placeholder="Ask about an image, or /imagine a picture…",
            label=schema["message"].label,
            show_label=False,
            elem_id="chat-input",
            submit_btn=True,
            stop_btn=False,
            scale=20,
            min_width=200,
        )
        draw = gr.Button("Draw", elem_id="chat-draw", size="sm", scale=0, min_width=64)
    status = gr.Markdown("", label="Status", elem_id="chat-status")
    saved = build_saved_chats()
    with gr.Accordion(SETTINGS, open=False, elem_id="chat-settings"):
        settings = [widget(field) for field in schema if field.name != "message"]
    run_state, clear_requested = gr.State(IDLE), gr.State(False)

    answer_on_gpu, draw_on_gpu = make_answer_fn(backend), make_draw_fn(backend)
    outputs = ChatOutputs(chatbot, textbox, status, run_state, clear_requested, draw)
    respond = make_browser_chat(backend, answer_on_gpu, draw_on_gpu, outputs)
    names = [field.name for field in schema if field.name != "message"]
    groups = dict.fromkeys(names, SETTINGS)
    ui = {
        "preprocess": False,
        "api_visibility": "private",
        "concurrency_id": "chat",
        "show_progress": "minimal",  # gradio's own line while the request waits in its queue ...
        "show_progress_on": [status],  # ... next to ours, not over the chat
    }
    check = validator(functools.partial(check_chat, backend), ["message", "history", *names], "message", groups)
    submit = textbox.submit(respond, [textbox, chatbot, *settings], list(outputs), validator=check, **ui)
    drawn = draw.click(
        run_drawing(respond),
        [textbox, chatbot, *settings],
        list(outputs),
        validator=lambda message, *values: check(as_drawing(message), *values),
        **ui,
    )
    retry = chatbot.retry(
        run_retry(respond),
        [chatbot, *settings],
        list(outputs),
        validator=validator(check_retry(backend), ["history", *names], "history", groups),
        **ui,
    )
    example = chatbot.example_select(
        run_example(respond),
        [chatbot, *settings],
        list(outputs),
        validator=validate_example(backend, ["history", *names], groups),
        **ui,
    )
    runs = [submit, drawn, retry, example]
    ended = [
        run.then(
            after_answer,
            [chatbot, run_state, clear_requested],
            list(outputs),
            api_visibility="private",
            queue=False,
            preprocess=False,
        )
        for run in runs
    ]
    textbox.stop(None, None, None, cancels=runs, api_visibility="private")
    undo = chatbot.undo(
        lambda chat: (*last_turn(chat), ""), chatbot, [chatbot, textbox, status], api_visibility="private", queue=False
    )
    clear = {"cancels": runs, "api_visibility": "private", "queue": False}
    clear_io = (clear_chat, run_state, [chatbot, status, run_state, clear_requested])
    asks = [saved.delete, saved.confirm_delete, saved.delete_all, saved.confirm_delete_all]
    fresh = [chatbot, status, run_state, clear_requested, saved.current, saved.picker, *asks]
    chatbot.clear(starts_new, run_state, fresh, **clear)  # the bin: a new chat; the saved one stays
    on_load = wire_saved_chats(
        saved,
        backend.limits,
        chatbot,
        status,
        run_state,
        [*ended, undo],
        [saved.confirm_delete.click(*clear_io, **clear)],
        saved.confirm_delete_all.click(*clear_io, **clear),
    )

    api = gr.api(make_api_chat(backend, answer_on_gpu, draw_on_gpu), api_name="chat", concurrency_id="chat")
    return ChatTab(textbox, chatbot, status, [event["id"] for event in (*runs, api)], on_load)


def check_retry(backend: Backend) -> Callable[..., None]:
    """Retry's check: the last user turn, checked again after the turns before it."""

    def check(chatbot: list[dict[str, Any]], *settings: Any) -> None:
        earlier, message = last_turn(chatbot)
        check_chat(backend, message, earlier, *settings)

    return check


def validate_example(backend: Backend, names: list[str], groups: dict[str, str]):
    """An example's check: the example message after the chat, with the settings (shown on their fields)."""

    def validate(event: gr.SelectData, chatbot: list[dict[str, Any]], *settings: Any) -> list[dict]:
        check = lambda history, *values: check_chat(backend, event.value, history, *values)  # noqa: E731
        return validator(check, names, "history", groups)(chatbot, *settings)

    return validate


def run_retry(respond):
    """Retry: the last user turn, answered again."""

    def retry(request: gr.Request, chatbot: list[dict[str, Any]], *settings: Any):
        earlier, message = last_turn(chatbot)
        yield from respond(request, message, earlier, *settings)

    return retry


def as_drawing(message: Any) -> Any:
    """The composer's message as "Draw" sends it: its text after `/imagine ` (unless it starts so already)."""
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return message
    text = message["text"]
    return message if imagine_prompt(text) is not None else {**message, "text": f"/imagine {text}"}


def run_drawing(respond):
    """The "Draw" button: the composer's text drawn, as if sent after `/imagine `."""

    def draw(request: gr.Request, message: Any, chatbot: list[dict[str, Any]], *settings: Any):
        yield from respond(request, as_drawing(message), chatbot, *settings)

    return draw


def run_example(respond):
    """An example from the empty chat, sent as if typed (a refused setting is reported in the status line)."""

    def send_example(request: gr.Request, event: gr.SelectData, chatbot: list[dict[str, Any]], *settings: Any):
        yield from respond(request, event.value, chatbot, *settings)

    return send_example
