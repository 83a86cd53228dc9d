"""Field declarations and their one check: a number, a text, a choice, an image file or on/off, each with its API
name and UI label.

    steps = NumberField("max_new_tokens", "Max new tokens", default=512, minimum=1, maximum=2048, step=1, integer=True)
    steps.check(64)          # -> 64
    steps.check(float("nan"))  # FieldError: "Max new tokens must be a whole number between 1 and 2048 (got nan)."

Nothing that reaches a server can be trusted: gradio's sliders let NaN through, request bodies carry strings,
null or 1e308, and a NaN temperature becomes NaN probabilities and, on CUDA, a device-side assert that breaks
the process for every user. Each check returns the value typed (int or float; text without NUL characters)
or raises `FieldError`, whose message names the field as the UI labels it. Numbers must arrive as numbers:
strings, booleans, None and lists are refused. Whole-number fields accept 3.0 but not 3.5.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

from janus_demo.service.errors import FieldError

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON can carry them; tokenizers cannot encode them


@dataclass(frozen=True)
class NumberField:
    """A number in [minimum, maximum]; the widget is a slider of `step`, or a number box when `box`.

    `zero_below`: values under it become 0 (a temperature of 1e-40 samples like greedy decoding but
    overflows logits / T; 0 means greedy). `over_max`: why the maximum is lower than usual (ZeroGPU's time
    budget), said when a larger value is refused.
    """

    name: str
    label: str
    default: float
    minimum: float
    maximum: float
    step: float
    integer: bool = False
    help: str = ""
    box: bool = False
    zero_below: float = 0.0
    over_max: str = ""  # why the maximum is what it is, added to the refusal of a larger value

    def check(self, value: object) -> int | float:
        """`value` as int (whole-number fields) or float if it is a finite number in range, else FieldError."""
        if (
            not _is_number(value)
            or not self.minimum <= value <= self.maximum
            or (self.integer and not _is_whole(value))
        ):
            kind = "a whole number" if self.integer else "a number"
            bounds = f"between {_show(self.minimum)} and {_show(self.maximum)}"
            why = f" {self.over_max}" if self.over_max and _is_number(value) and value > self.maximum else ""
            raise FieldError(self.name, f"{self.label} must be {kind} {bounds} (got {_show(value)}).{why}")
        if self.integer:
            return int(value)
        return 0.0 if float(value) < self.zero_below else float(value)


@dataclass(frozen=True)
class TextField:
    """Text of at most `max_chars` characters, not blank unless `allow_empty`."""

    name: str
    label: str
    max_chars: int
    default: str = ""
    allow_empty: bool = False
    help: str = ""

    def check(self, value: object) -> str:
        """`value` without NUL characters (lone surrogates become U+FFFD), else FieldError."""
        if not isinstance(value, str):
            got = "nothing" if value is None else f"a {type(value).__name__}"
            raise FieldError(self.name, f"{self.label} must be text (got {got}).")
        if len(value) > self.max_chars:
            raise FieldError(
                self.name, f"{self.label} is too long: {len(value):,} characters; the limit is {self.max_chars:,}."
            )
        text = clean_text(value)
        if not self.allow_empty and not text.strip():
            raise FieldError(self.name, f"{self.label} is empty.")
        return text


@dataclass(frozen=True)
class ChoiceField:
    """One of `choices`."""

    name: str
    label: str
    choices: tuple[str, ...]
    default: str
    help: str = ""

    def check(self, value: object) -> str:
        """`value` if it is one of the choices, else FieldError listing them."""
        if not isinstance(value, str) or value not in self.choices:
            raise FieldError(self.name, f"{self.label} must be one of {', '.join(self.choices)} (got {_show(value)}).")
        return value


@dataclass(frozen=True)
class ImageField:
    """An image file: a path, a `data:image/...` URL, or gradio's file data ({"path": ...} or {"url": ...}).

    The check only takes the reference; `janus_demo.service.intake` reads the file and judges the image.
    """

    name: str
    label: str
    help: str = ""
    default: None = None  # required: a missing image is refused by the check

    def check(self, value: object) -> str:
        """The path or data URL `value` refers to, else FieldError (the file itself is judged by intake)."""
        if isinstance(value, dict):
            value = value.get("path") or value.get("url")
        if not isinstance(value, str) or not value.strip():
            got = "" if value in (None, "") else f" (got a {type(value).__name__})"
            raise FieldError(self.name, f"{self.label} is missing: upload an image file{got}.")
        if "\0" in value:
            raise FieldError(self.name, f"{self.label} must be an image file (got an invalid file name).")
        return value


@dataclass(frozen=True)
class BooleanField:
    """On or off: a checkbox."""

    name: str
    label: str
    default: bool
    help: str = ""

    def check(self, value: object) -> bool:
        """`value` if it is true or false (not 1, "true" or None), else FieldError."""
        if not isinstance(value, bool):
            raise FieldError(self.name, f"{self.label} must be true or false (got {_show(value)}).")
        return value


Field = NumberField | TextField | ChoiceField | ImageField | BooleanField


def clean_text(text: str) -> str:
    """`text` without NUL characters, lone surrogates replaced by U+FFFD (tokenizers cannot encode them)."""
    return LONE_SURROGATE.sub("\ufffd", text.replace("\0", ""))


def _is_number(value: object) -> bool:
    """int or float (numpy scalars too), not bool, and finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or math.isfinite(value)


def _is_whole(value: numbers.Real) -> bool:
    return isinstance(value, numbers.Integral) or float(value).is_integer()


def _show(value: object) -> str:
    """A short rendering of a bound or of what was received (never the whole of a huge string)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value) if isinstance(value, str | list | tuple | dict) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
