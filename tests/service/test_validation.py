"""Tests for janus_demo.service.validation: bad numbers and oversized text never reach the model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from janus_demo.service.errors import InputError
from janus_demo.service.validation import (
    ChatParams,
    ImageParams,
    Limits,
    check_chat_params,
    check_conversation,
    check_image_params,
    check_message,
    check_number,
    check_text,
)

GOOD_CHAT = {"max_new_tokens": 512, "temperature": 0.1, "top_p": 0.95, "seed": 42}
GOOD_IMAGE = {"prompt": "a red fox in snow", "seed": 42, "guidance_scale": 5.0, "temperature": 1.0, "num_images": 4}

CHAT_LABELS = {"max_new_tokens": "Max new tokens", "temperature": "Temperature", "top_p": "Top-p", "seed": "Seed"}
IMAGE_LABELS = {
    "seed": "Seed",
    "guidance_scale": "Guidance scale",
    "temperature": "Temperature",
    "num_images": "Number of images",
}

# What a browser, an API client or an attacker can send instead of a sane number.
BAD_NUMBERS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "1e308": 1e308,
    "-1": -1,
    "abc": "abc",
    "numeric string": "0.5",
    "None": None,
    "2**64": 2**64,
    "list": [1],
    "True": True,
    "huge int": 10**400,
}


def _bad_cases(labels: dict[str, str]) -> list:
    cases = []
    for param, label in labels.items():
        for name, value in BAD_NUMBERS.items():
            if param == "seed" and value == -1:
                value = -2  # -1 is the documented "random seed"
            cases.append(pytest.param(param, label, value, id=f"{param}={name}"))
    return cases


@pytest.mark.parametrize(("param", "label", "value"), _bad_cases(CHAT_LABELS))
def test_every_chat_number_refuses_bad_values_naming_the_field(param, label, value):
    with pytest.raises(InputError) as caught:
        check_chat_params(**{**GOOD_CHAT, param: value})
    message = str(caught.value)
    assert message.startswith(f"{label} must be ")
    assert len(message) < 120


@pytest.mark.parametrize(("param", "label", "value"), _bad_cases(IMAGE_LABELS))
def test_every_image_number_refuses_bad_values_naming_the_field(param, label, value):
    with pytest.raises(InputError) as caught:
        check_image_params(**{**GOOD_IMAGE, param: value})
    message = str(caught.value)
    assert message.startswith(f"{label} must be ")
    assert len(message) < 120


def test_message_gives_the_range_and_what_was_sent():
    with pytest.raises(InputError, match=r"^Temperature must be a number between 0 and 2 \(got nan\)\.$"):
        check_chat_params(**{**GOOD_CHAT, "temperature": float("nan")})
    with pytest.raises(InputError, match=r"^Top-p must be a number greater than 0 and at most 1 \(got 0\)\.$"):
        check_chat_params(**{**GOOD_CHAT, "top_p": 0})
    with pytest.raises(InputError, match=r"^Seed must be a whole number between -1 and 4294967295 \(got 3\.5\)\.$"):
        check_chat_params(**{**GOOD_CHAT, "seed": 3.5})
    with pytest.raises(InputError, match=r"between 1 and 2048 \(got 4096\)"):
        check_chat_params(**{**GOOD_CHAT, "max_new_tokens": 4096})
    with pytest.raises(InputError, match=r"\(got 'xxxxxxxx.*\.\.\.\)\.$"):  # a huge string is not echoed whole
        check_chat_params(**{**GOOD_CHAT, "seed": "x" * 100_000})


def test_valid_chat_values_come_back_typed():
    params = check_chat_params(max_new_tokens=512.0, temperature=1, top_p=1, seed=-1)
    assert params == ChatParams(max_new_tokens=512, temperature=1.0, top_p=1.0, seed=-1)
    assert type(params.max_new_tokens) is int and type(params.seed) is int
    assert type(params.temperature) is float and type(params.top_p) is float
    assert params.do_sample
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 5.0  # type: ignore[misc]


def test_valid_image_values_come_back_typed():
    params = check_image_params(**{**GOOD_IMAGE, "num_images": 4.0, "seed": np.int64(7), "guidance_scale": 1})
    assert params == ImageParams(prompt="a red fox in snow", seed=7, guidance_scale=1.0, temperature=1.0, num_images=4)
    assert type(params.num_images) is int and type(params.seed) is int and type(params.guidance_scale) is float


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_new_tokens", 1),
        ("max_new_tokens", 2048),
        ("temperature", 0),
        ("temperature", 2),
        ("top_p", 1e-9),
        ("seed", 0),
        ("seed", 2**32 - 1),
        ("top_p", np.float32(0.5)),
    ],
)
def test_range_edges_are_accepted(param, value):
    check_chat_params(**{**GOOD_CHAT, param: value})


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", 2049),
        ("temperature", 2.0001),
        ("seed", 2**32),
        ("seed", -2),
    ],
)
def test_just_outside_the_range_is_refused(param, value):
    with pytest.raises(InputError):
        check_chat_params(**{**GOOD_CHAT, param: value})


@pytest.mark.parametrize(
    ("param", "low", "high"), [("guidance_scale", 1, 20), ("num_images", 1, 16), ("temperature", 0, 2)]
)
def test_image_ranges(param, low, high):
    check_image_params(**{**GOOD_IMAGE, param: low})
    check_image_params(**{**GOOD_IMAGE, param: high})
    for outside in (low - 0.5, high + 0.5):
        with pytest.raises(InputError):
            check_image_params(**{**GOOD_IMAGE, param: outside})


def test_tiny_temperature_means_greedy_instead_of_overflowing():
    """logits / 1e-40 is inf, then NaN probabilities: such temperatures are snapped to 0 (greedy)."""
    for value in (0, 1e-40, 0.009):
        chat = check_chat_params(**{**GOOD_CHAT, "temperature": value})
        image = check_image_params(**{**GOOD_IMAGE, "temperature": value})
        assert chat.temperature == image.temperature == 0.0
        assert not chat.do_sample and not image.do_sample
    assert check_chat_params(**{**GOOD_CHAT, "temperature": 0.01}).temperature == 0.01


def test_limits_change_the_caps():
    limits = Limits(max_new_tokens=64, max_num_images=2, max_prompt_chars=10)
    with pytest.raises(InputError, match="between 1 and 64"):
        check_chat_params(**{**GOOD_CHAT, "max_new_tokens": 65}, limits=limits)
    with pytest.raises(InputError, match="Number of images must be a whole number between 1 and 2"):
        check_image_params(**{**GOOD_IMAGE, "prompt": "short", "num_images": 3}, limits=limits)
    with pytest.raises(InputError, match="Prompt is too long: 17 characters; the limit is 10."):
        check_image_params(**GOOD_IMAGE, limits=limits)


# --- check_number on its own


def test_check_number_integer_fields_accept_whole_floats_only():
    assert check_number(3.0, "Steps", 1, 10, integer=True) == 3
    assert type(check_number(3.0, "Steps", 1, 10, integer=True)) is int
    with pytest.raises(InputError, match="Steps must be a whole number between 1 and 10 \\(got 3.5\\)"):
        check_number(3.5, "Steps", 1, 10, integer=True)


def test_check_number_returns_a_plain_float():
    value = check_number(np.float64(0.25), "Top-p", 0, 1)
    assert type(value) is float and value == 0.25
    assert math.isfinite(check_number(2, "Scale", 1, 20))


# --- text


def test_a_one_megabyte_prompt_is_refused_with_the_limit():
    with pytest.raises(InputError, match="Prompt is too long: 1,048,576 characters; the limit is 4,000."):
        check_image_params(**{**GOOD_IMAGE, "prompt": "a" * 1024 * 1024})
    with pytest.raises(InputError, match="Message is too long: 8,001 characters; the limit is 8,000."):
        check_message("b" * 8001)


def test_nul_characters_are_stripped():
    assert check_image_params(**{**GOOD_IMAGE, "prompt": "a\0 fox\0"}).prompt == "a fox"
    assert check_message("hi\0there") == "hithere"


def test_lone_surrogates_become_replacement_characters():
    """JSON may carry "\\ud800"; a tokenizer cannot encode it, so it is replaced before it gets there."""
    text = check_message("bad \ud800 text")
    assert text == "bad \ufffd text"
    text.encode("utf-8")


@pytest.mark.parametrize("value", [None, 42, ["a fox"], b"a fox", {"text": "a fox"}])
def test_text_must_be_a_string(value):
    with pytest.raises(InputError, match="^Prompt must be text \\(got "):
        check_image_params(**{**GOOD_IMAGE, "prompt": value})


@pytest.mark.parametrize("prompt", ["", "   ", "\0\0", "\n\t"])
def test_an_empty_prompt_is_refused(prompt):
    with pytest.raises(InputError, match="^Prompt is empty.$"):
        check_image_params(**{**GOOD_IMAGE, "prompt": prompt})


def test_an_empty_message_is_allowed_for_image_only_turns():
    assert check_message("") == ""
    assert check_text("x", "Note", 1) == "x"
    with pytest.raises(InputError, match="Note is empty."):
        check_text("", "Note", 1)


# --- conversation size


def test_conversation_caps():
    check_conversation(num_turns=20, num_images=4)
    with pytest.raises(InputError, match="21 messages; the limit is 20"):
        check_conversation(num_turns=21, num_images=0)
    with pytest.raises(InputError, match="5 images; the limit is 4"):
        check_conversation(num_turns=2, num_images=5)


def test_limits_defaults_are_documented_values():
    assert Limits() == Limits(
        max_prompt_chars=4000,
        max_message_chars=8000,
        max_images_per_conversation=4,
        max_history_turns=20,
        max_new_tokens=2048,
        max_num_images=16,
        request_deadline_s=300.0,
        max_context_tokens=8192,
    )
