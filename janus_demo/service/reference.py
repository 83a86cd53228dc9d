"""The README's reference tables, written from the schemas and the caps (a test keeps the README equal).

python -m janus_demo.service.reference      # print the tables to paste into README.md
"""

from __future__ import annotations

from janus_demo.model.image_shape import JANUS_PRO
from janus_demo.service.clients import ClientLimits, cap_fields
from janus_demo.service.fields import BooleanField, ChoiceField, ImageField, NumberField
from janus_demo.service.intake import FORMAT_NAMES, ImageLimits
from janus_demo.service.schemas import Limits, Schema, schemas_for


def parameters_table(schema: Schema) -> str:
    """One row per API parameter: name, UI label, what it accepts, default."""
    rows = ["| parameter | label | accepts | default |", "|---|---|---|---|"]
    for field in schema:
        if isinstance(field, NumberField):
            kind = "whole number" if field.integer else "number"
            accepts, default = f"{kind}, {_n(field.minimum)} to {_n(field.maximum)}", _n(field.default)
        elif isinstance(field, ChoiceField):
            accepts, default = ", ".join(f"`{choice}`" for choice in field.choices), f"`{field.default}`"
        elif isinstance(field, ImageField):
            accepts, default = f"image file ({FORMAT_NAMES})", "(required)"
        elif isinstance(field, BooleanField):
            accepts, default = "`true` or `false`", f"`{str(field.default).lower()}`"
        else:
            accepts, default = f"text, at most {field.max_chars:,} characters", "(required)"
        if field.help:
            accepts += f" ({field.help.rstrip('.')})"
        rows.append(f"| `{field.name}` | {field.label} | {accepts} | {default} |")
    return "\n".join(rows)


def caps_table(limits: Limits, images: ImageLimits) -> str:
    """The per-request caps (`Limits`, `ImageLimits`) with what happens beyond them."""
    mb = images.max_file_bytes / 2**20
    rows = [
        "| cap | default | when exceeded |",
        "|---|---|---|",
        f"| `max_message_chars` / `max_prompt_chars` | {limits.max_message_chars:,} / {limits.max_prompt_chars:,} "
        "characters | refused |",
        f"| `max_history_turns` | {limits.max_history_turns} user turns | older turns left out, with a note in the "
        "status line |",
        f"| `max_images_per_conversation` | {limits.max_images_per_conversation} | refused: clear the conversation |",
        f"| `max_context_tokens` | {limits.max_context_tokens:,} tokens (an image counts {JANUS_PRO.tokens}) | "
        'refused: "This conversation is too long; clear it and start again" |',
        f"| `max_new_tokens` / `max_num_images` | {limits.max_new_tokens:,} / {limits.max_num_images} (on ZeroGPU "
        "lower if a request could not fit the longest GPU loan; the field says so) | refused |",
        f"| `request_deadline_s` | {limits.request_deadline_s:g} s | the generation stops with a message; also the "
        "longest wait for the model |",
        f"| image file / pixels / side | {mb:g} MB / {images.max_pixels / 1e6:g} MP / {images.max_side:,} px (JPEGs up "
        f"to {images.max_jpeg_pixels / 1e6:g} MP are decoded at reduced scale) | refused |",
        f"| `max_preview_updates` | {limits.max_preview_updates} previews per request, fewer for a batch (6 for 16 "
        'images), each a small tile per image | a smaller "Preview every" is widened to fit |',
        f"| `max_shown_messages` | {limits.max_shown_messages} messages of the browser's chat | older messages leave "
        "the chat |",
        f"| `max_saved_chats` / `max_saved_messages` / `max_saved_chars` | {limits.max_saved_chats} conversations / "
        f"{limits.max_saved_messages} messages each / {limits.max_saved_chars:,} characters of text in all, kept in "
        "the browser | the oldest conversations (or messages) are forgotten |",
        f"| `max_saved_size` | {limits.max_saved_size:,} characters of the saved list as the browser sends it back "
        "(texts, image paths, ids and keys) | the oldest conversations past it are left out unread |",
        f"| `max_path_chars` / `max_path_parts` | {limits.max_path_chars:,} characters / {limits.max_path_parts} parts "
        "of a saved image's path | the path is never looked at: the image becomes a note in its message |",
    ]
    return "\n".join(rows)


def client_caps_table(clients: ClientLimits, limits: Limits, images: ImageLimits) -> str:
    """The per-client caps (`ClientLimits`, with the flags that tune them) and the upload request size."""
    rows = ["| cap | what it bounds | flag / environment | default | when exceeded |", "|---|---|---|---|---|"]
    for cap in cap_fields():
        meta = cap.metadata
        tuned = f"`{meta['flag']}` / `{meta['env']}`" if meta["flag"] else "-"
        amount = _amount(getattr(clients, cap.name), meta["unit"])
        rows.append(f"| `{cap.name}` | {meta['meaning']} | {tuned} | {amount} | {meta['exceeded']} |")
    files, mb = limits.max_images_per_conversation, images.max_file_bytes / 2**20
    rows.append(
        f"| upload request | one upload (as many files as a message may carry; at most 16 files) | `--max-file-size` / "
        f"`JANUS_MAX_FILE_SIZE` | {files} files of {mb:g} MB | refused with HTTP 413 |"
    )
    return "\n".join(rows)


def _amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 2**20:g} MB"
    if unit == "s":
        return f"{value / 3600:g} h" if value >= 3600 else f"{value / 60:g} min" if value >= 60 else f"{value:g} s"
    return f"{value:,}"


def _n(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value:,}" if abs(value) < 10**6 else f"{value}"


def main() -> None:
    for schema in schemas_for(Limits(), gpu=False):
        print(f"{schema.endpoint}:\n\n{parameters_table(schema)}\n")
    print(f"Caps:\n\n{caps_table(Limits(), ImageLimits())}\n")
    print(f"Per client:\n\n{client_caps_table(ClientLimits(), Limits(), ImageLimits())}")


if __name__ == "__main__":
    main()
