"""The Model panel: what `/model_info` reports, as a readable table.

    gr.Markdown(model_table(backend.info()))

Each known key of `backend.info()` has a label and a format in ROWS (one line each: add a line for a new
key to give it its own label and format); any other key is shown too, its name as the label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def gib(size: Any) -> str:
    return f"{size / 2**30:.2f} GiB"


def seconds(value: Any) -> str:
    return f"{value:.1f} s"


def code(value: Any) -> str:
    return f"`{value}`"


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


ROWS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "model_id": ("Model", code),
    "device": ("Device", str),
    "dtype": ("Data type", str),
    "quantization": ("Quantization", str),
    "quantized_layers": ("Quantized layers", str),
    "footprint_bytes": ("Memory (weights)", gib),
    "load_seconds": ("Load time", seconds),
    "random_weights": ("Random weights", yes_no),
}


def model_table(info: dict[str, Any]) -> str:
    """A two-column Markdown table: the known keys in ROWS order, then any others."""
    keys = [key for key in ROWS if key in info] + [key for key in info if key not in ROWS]
    lines = ["| | |", "|---|---|"]
    for key in keys:
        label, show = ROWS.get(key, (key.replace("_", " ").capitalize(), str))
        lines.append(f"| {label} | {cell(show(info[key]))} |")
    return "\n".join(lines)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
