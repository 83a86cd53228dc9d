"""The chat's inputs, as gr.MultimodalTextbox and gr.Chatbot, but with every value reaching our checks.

    textbox = MessageBox(file_types=["image"], ...)   # looks and works exactly like gr.MultimodalTextbox
    chatbot = HistoryBox(...)                          # ... and like gr.Chatbot

gradio 6.31 validates each input against its component's data model before any event function runs,
`preprocess=False` or not, and a value of the wrong shape (a message that is a string, files that are a
string, a history entry that is not a message) then ends in `error: null`: the user sees no message at all.
These components accept any value there, so `janus_demo.service.conversation` judges it: a bad message is
refused with a message naming the field, an unreadable history entry is left out with a note. Only the
file references are judged here, as gradio's own data model would: a file must be one gradio received
and checked (a dict with its FileData meta, refused by gradio when it points outside its cache) or a
`data:` URL; any other reference (a plain path string, a dict without the meta) becomes None, which the
service refuses or leaves out.

In the browser they are the same front-end components, and the API docs and MCP tools describe the same
shape. The message's schema is written out without `$ref`s: gradio 6.31's MCP server keeps the `$ref` of
a file but drops the `$defs` it points to, and every MCP call with a file then failed ("PointerToNowhere").
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import gradio as gr
from gradio.components.chatbot import ChatbotDataMessages
from gradio.components.multimodal_textbox import MultimodalData
from gradio.data_classes import GradioRootModel
from pydantic import model_validator

FILE_DATA = "gradio.FileData"  # the `meta._type` of a file gradio received and checked


def file_ref(value: Any) -> Any:
    """A file gradio checked (in its cache), or a `data:` URL (decoded in memory later); anything else None.

    gradio refuses a file dict with its FileData meta that points outside its cache, but lets a dict
    without the meta, or a plain string path, through: those could name any file on the server.
    """
    if isinstance(value, dict):
        meta = value.get("meta")
        return value if isinstance(meta, dict) and meta.get("_type") == FILE_DATA else None
    return value if isinstance(value, str) and value.startswith("data:") else None


class MessageValue(GradioRootModel):
    """A chat message as sent; only its file references are checked (`file_ref`)."""

    root: Any = None

    @model_validator(mode="before")
    @classmethod
    def _uploads_only(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("files"), list):
            return {**value, "files": [file_ref(item) for item in value["files"]]}
        return value


class HistoryValue(GradioRootModel):
    """A chat history as sent, its newest `max_messages` only; the file references of its messages checked."""

    root: Any = None
    max_messages: ClassVar[int] = 200

    @model_validator(mode="before")
    @classmethod
    def _uploads_only(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_message_uploads_only(entry) for entry in value[-cls.max_messages :]]


def history_value(max_messages: int) -> type[HistoryValue]:
    """HistoryValue keeping the newest `max_messages` messages."""
    return type("HistoryValue", (HistoryValue,), {"max_messages": max_messages, "__module__": __name__})


def _message_uploads_only(entry: Any) -> Any:
    if not isinstance(entry, dict) or not isinstance(entry.get("content"), list):
        return entry
    content = [
        {**block, "file": file_ref(block.get("file"))}
        if isinstance(block, dict) and block.get("type") == "file"
        else block
        for block in entry["content"]
    ]
    return {**entry, "content": content}


def api_schema(data_model: type) -> dict[str, Any]:
    """A data model's JSON schema as gradio's API info gives it."""
    schema = data_model.model_json_schema()
    schema["additional_description"] = schema.pop("description", None)
    return schema


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without `$defs`: each `{"$ref": "#/$defs/X", ...}` replaced by X's definition (its own keys win)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            target = copy.deepcopy(definitions[ref.removeprefix("#/$defs/")])
            node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
        return {key: resolve(value) for key, value in node.items() if key != "$defs"}

    return resolve(schema)


class MessageBox(gr.MultimodalTextbox):
    """gr.MultimodalTextbox whose value reaches the event as sent (the service checks its shape)."""

    data_model = MessageValue

    def get_block_name(self) -> str:
        return "multimodaltextbox"

    @classmethod
    def get_component_class_id(cls) -> str:
        return gr.MultimodalTextbox.get_component_class_id()

    def api_info(self) -> dict[str, Any]:
        return inline_refs(api_schema(MultimodalData))


class HistoryBox(gr.Chatbot):
    """gr.Chatbot whose value reaches the event as sent (unreadable entries are left out with a note).

    Make it with `history_box` (gradio builds a component's props from its class's __init__ signature,
    so this class keeps gr.Chatbot's)."""

    data_model = HistoryValue

    def get_block_name(self) -> str:
        return "chatbot"

    @classmethod
    def get_component_class_id(cls) -> str:
        return gr.Chatbot.get_component_class_id()

    def api_info(self) -> dict[str, Any]:
        return api_schema(ChatbotDataMessages)


def history_box(max_messages: int, **kwargs: Any) -> HistoryBox:
    """A HistoryBox that keeps the newest `max_messages` messages of what the browser sends: older ones leave
    the chat. Each answer streams the whole chat back token by token, and gradio's per-update work
    (postprocessing, diffs, file checks, partly on its event loop) grows with it: 6,000 messages held the
    event loop 0.75 s per update; 200 take milliseconds."""
    box = HistoryBox(**kwargs)
    box.data_model = history_value(max_messages)
    return box
