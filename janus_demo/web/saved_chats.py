"""Chats that survive a reload: the Chat tab's conversations kept in the browser (`gr.BrowserState`, i.e.
localStorage), a list of them to switch between, "New chat", "Delete chat" and "Delete all chats".

The conversation is saved after every answer (stopped ones included, with their "Stopped" mark), Undo and
Retry; a page that loads reopens the newest one. What the browser sends back is untrusted: every event reads
it again through `janus_demo.service.saved_chats`, which keeps only readable messages, caps the list, and
shows an image only if its file is still in this process's gradio cache folder (or is one of the example
pictures); any other image becomes a note in its message. Switching chats and "New chat" wait for a running
answer to end or be stopped (a note under the list says so). The chat's bin icon starts a new empty chat
and keeps the saved one (`starts_new`). Deleting asks once: "Delete chat" and "Delete all chats" turn into
"Click again to delete" (and "... all") in their place, and only that second click deletes (and stops the
open chat's answer, as Clear does); any other action of the list takes the question back.
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
CONFIRM_DELETE = "Click again to delete"
CONFIRM_DELETE_ALL = "Click again to delete all"
EVENT = {"api_visibility": "private", "queue": False, "preprocess": False}


class SavedChats(NamedTuple):
    store: gr.BrowserState  # the saved conversations, in the browser
    current: gr.State  # the id of the conversation in the Chatbot (None: not saved yet)
    picker: gr.Dropdown
    note: gr.Markdown  # why a switch was refused (the status line belongs to the running answer)
    new: gr.Button
    delete: gr.Button
    delete_all: gr.Button
    confirm_delete: gr.Button  # in Delete chat's place after its first click: the second click deletes
    confirm_delete_all: gr.Button


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
        button = {"size": "md", "scale": 1, "min_width": 90}
        asks = {**button, "variant": "stop", "visible": False}
        new = gr.Button("New chat", elem_id="new-chat", **button)
        delete = gr.Button("Delete chat", elem_id="delete-chat", **button)
        confirm = gr.Button(CONFIRM_DELETE, elem_id="delete-chat-confirm", **asks)
        delete_all = gr.Button("Delete all chats", elem_id="delete-all-chats", **button)
        confirm_all = gr.Button(CONFIRM_DELETE_ALL, elem_id="delete-all-chats-confirm", **asks)
    note = gr.Markdown("", elem_id="saved-chats-note")
    return SavedChats(store, current, picker, note, new, delete, delete_all, confirm, confirm_all)


def asking(which: str | None) -> tuple[gr.Button, ...]:
    """The delete buttons with `which` ("one", "all" or None) asking to be clicked again: (Delete chat, its
    confirmation, Delete all chats, its confirmation)."""
    return (
        gr.Button(visible=which != "one"),
        gr.Button(visible=which == "one"),
        gr.Button(visible=which != "all"),
        gr.Button(visible=which == "all"),
    )


def starts_new(run: Any) -> tuple[Any, ...]:
    """The chat's bin icon: an empty chat (a running answer stops, as with Clear) that is not the saved one,
    which stays in the list: (chat, status, run state, Clear's note, open chat id, list, delete buttons)."""
    running = bool((run or {}).get("running"))
    return [], "", {"running": False}, running, None, gr.Dropdown(value=None), *asking(None)


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
        return chat_id, service_chats.to_storage(chats), picker_update(chats, chat_id), "", *asking(None)

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
        return None, service_chats.to_storage(chats), picker_update(chats, None), *asking(None)

    def delete_all() -> tuple[Any, ...]:
        return None, [], picker_update([], None), *asking(None)

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
    chat after each of `deletes` and every chat after `deletes_all` (events that have cleared the chat: the
    confirmations' clicks). "Delete chat" and "Delete all chats" only ask (`asking`). Returns what attaches
    the page-load event (reopen the newest saved chat) to the app."""
    restore, save, open_chat, new_chat, delete, delete_all = make_handlers(limits)
    store, current, picker = saved.store, saved.current, saved.picker
    note = saved.note
    buttons = [saved.delete, saved.confirm_delete, saved.delete_all, saved.confirm_delete_all]
    for event in saves:
        event.then(save, [chatbot, current, store], [current, store, picker, note, *buttons], **EVENT)
    shown = [chatbot, current, note, status]
    picker.input(open_chat, [picker, current, run_state, store], [*shown, picker, store], **EVENT)
    saved.new.click(new_chat, [current, run_state, store], [*shown, picker], **EVENT)
    for trigger in (picker.input, saved.new.click):  # another action of the list: the question is taken back
        trigger(lambda: asking(None), None, buttons, **EVENT)
    saved.delete.click(lambda: asking("one"), None, buttons, **EVENT)
    saved.delete_all.click(lambda: asking("all"), None, buttons, **EVENT)
    for event in deletes:
        event.then(delete, [current, store], [current, store, picker, *buttons], **EVENT)
    deletes_all.then(delete_all, None, [current, store, picker, *buttons], **EVENT)

    def on_load(demo: gr.Blocks) -> None:
        demo.load(restore, store, [store, picker, current, chatbot], **EVENT)

    return on_load
