"""Chats that survive a reload: the Chat tab's conversations kept in the browser (`gr.BrowserState`, i.e.
localStorage), a list of them to switch between, "New chat", "Delete chat" and "Delete all chats".

The conversation is saved after every answer (stopped ones included), Undo and Retry; a page that loads
reopens the newest one. What the browser sends back is untrusted: every event reads it again through
`janus_demo.service.saved_chats`, which keeps only readable messages, caps the list, and shows an image
only if its file is still in this process's gradio cache folder (or is one of the example pictures);
any other image becomes a note in its message. Switching chats and "New chat" wait for a running answer
to end or be stopped (a note under the list says so); deleting the open chat stops its answer, as Clear does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
from gradio.utils import get_upload_folder

from janus_demo.service import saved_chats as service_chats
from janus_demo.service.schemas import Limits
from janus_demo.web.assets import ASSETS

STORAGE_KEY = "janus-demo-saved-chats"
# gradio sends this "secret" to the browser with the page, so it hides nothing; a fixed one (instead of a
# new one per process) lets the saved text outlive a restart of the server (its images do not).
SECRET = "janus-demo-saved-chats"
BUSY = "An answer is running: stop it (or let it finish) before you switch chats or start a new one."
EVENT = {"api_visibility": "private", "queue": False, "preprocess": False}


class SavedChats(NamedTuple):
    store: gr.BrowserState  # the saved conversations, in the browser
    current: gr.State  # the id of the conversation in the Chatbot (None: not saved yet)
    picker: gr.Dropdown
    note: gr.Markdown  # why a switch was refused (the status line belongs to the running answer)
    new: gr.Button
    delete: gr.Button
    delete_all: gr.Button


def roots() -> list[Path]:
    """Where images of saved chats may be: gradio's cache folder (gradio's own rule: GRADIO_TEMP_DIR, else
    <tmp>/gradio; this process's folder when the app runs under `janus_demo.launch.cache`) and the examples."""
    return [Path(get_upload_folder()), ASSETS]


def picker_update(chats: Sequence[service_chats.SavedChat], current: str | None) -> gr.Dropdown:
    return gr.Dropdown(choices=[(chat.title, chat.id) for chat in chats], value=current)


def build_saved_chats() -> SavedChats:
    """Render the saved-chat controls (a row under the chat's status line) into the current Blocks context."""
    store = gr.BrowserState([], storage_key=STORAGE_KEY, secret=SECRET)
    current = gr.State(None)
    with gr.Row(elem_id="saved-chats", equal_height=False):
        picker = gr.Dropdown(
            choices=[], value=None, label="Saved chats", elem_id="saved-chats-picker", scale=3, min_width=180
        )
        new = gr.Button("New chat", elem_id="new-chat", size="md", scale=1, min_width=90)
        delete = gr.Button("Delete chat", elem_id="delete-chat", size="md", scale=1, min_width=90)
        delete_all = gr.Button("Delete all chats", elem_id="delete-all-chats", size="md", scale=1, min_width=90)
    note = gr.Markdown("", elem_id="saved-chats-note")
    return SavedChats(store, current, picker, note, new, delete, delete_all)


def make_handlers(limits: Limits):
    """The events' functions, for `limits` (raw values in: the stored list is read as untrusted every time)."""

    def restore(stored: Any) -> tuple[Any, ...]:
        """Page load: the saved list, checked and written back, and the newest chat opened."""
        chats = service_chats.restore(stored, roots(), limits)
        first = chats[0] if chats else None
        chat_id = first.id if first else None
        shown = service_chats.shown(first, roots(), limits)
        return service_chats.to_storage(chats), picker_update(chats, chat_id), chat_id, shown

    def save(chatbot: Any, current: Any, stored: Any) -> tuple[Any, ...]:
        """After an answer, Undo or Retry: the open chat saved (moved to the front of the list); a note about
        waiting for the answer is over."""
        chats = service_chats.restore(stored, roots(), limits)
        chat_id, chats = service_chats.remember(chats, current, chatbot, limits)
        return chat_id, service_chats.to_storage(chats), picker_update(chats, chat_id), ""

    def open_chat(chosen: Any, current: Any, run: Any, stored: Any) -> tuple[Any, ...]:
        """A chat picked from the list, shown and moved to the front (reopened after a reload); while an answer
        runs, the list goes back to the open chat and the note says why."""
        if chosen == current:  # the list was opened and closed again
            return (gr.skip(),) * 6
        chats = service_chats.restore(stored, roots(), limits)
        if (run or {}).get("running"):
            return gr.skip(), current, BUSY, gr.skip(), picker_update(chats, current), gr.skip()
        chat = service_chats.find(chats, chosen)
        if chat is None:  # gone meanwhile (deleted in another tab)
            return [], None, "", "", picker_update(chats, None), service_chats.to_storage(chats)
        chat_id, chats = service_chats.remember(chats, chat.id, chat.messages, limits)
        shown = service_chats.shown(chat, roots(), limits)
        return shown, chat_id, "", "", picker_update(chats, chat_id), service_chats.to_storage(chats)

    def new_chat(current: Any, run: Any, stored: Any) -> tuple[Any, ...]:
        """An empty chat (the open one stays saved); while an answer runs, the note says to wait."""
        chats = service_chats.restore(stored, roots(), limits)
        if (run or {}).get("running"):
            return gr.skip(), current, BUSY, gr.skip(), picker_update(chats, current)
        return [], None, "", "", picker_update(chats, None)

    def delete(current: Any, stored: Any) -> tuple[Any, ...]:
        """After the chat was cleared: the open chat forgotten."""
        chats = service_chats.forget(service_chats.restore(stored, roots(), limits), current)
        return None, service_chats.to_storage(chats), picker_update(chats, None)

    def delete_all() -> tuple[Any, ...]:
        return None, [], picker_update([], None)

    return restore, save, open_chat, new_chat, delete, delete_all


def wire_saved_chats(
    saved: SavedChats,
    limits: Limits,
    chatbot: gr.Chatbot,
    status: gr.Markdown,
    run_state: gr.State,
    saves: list[Any],
    deletes: list[Any],
    deletes_all: Any,
) -> Callable[[gr.Blocks], None]:
    """Wire the controls: save after each of `saves` (events that end with the chat changed), forget the open
    chat after each of `deletes` and every chat after `deletes_all` (events that have cleared the chat).
    Returns what attaches the page-load event (reopen the newest saved chat) to the app."""
    restore, save, open_chat, new_chat, delete, delete_all = make_handlers(limits)
    store, current, picker = saved.store, saved.current, saved.picker
    note = saved.note
    for event in saves:
        event.then(save, [chatbot, current, store], [current, store, picker, note], **EVENT)
    shown = [chatbot, current, note, status]
    picker.input(open_chat, [picker, current, run_state, store], [*shown, picker, store], **EVENT)
    saved.new.click(new_chat, [current, run_state, store], [*shown, picker], **EVENT)
    for event in deletes:
        event.then(delete, [current, store], [current, store, picker], **EVENT)
    deletes_all.then(delete_all, None, [current, store, picker], **EVENT)

    def on_load(demo: gr.Blocks) -> None:
        demo.load(restore, store, [store, picker, current, chatbot], **EVENT)

    return on_load
