"""The request schemas: one declaration per request, and its one check. Bad numbers and oversized text never
reach the model, and every refusal names the field as the UI labels it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.fields import NumberField, TextField
from janus_demo.service.schemas import Limits, chat_schema, image_schema, schemas_for

CHAT = chat_schema(Limits())
IMAGES = image_schema(Limits(), gpu=False)
GOOD_CHAT = {"message": "hi", "max_new_tokens": 512, "temperature": 0.1, "top_p": 0.95, "seed": 42}
GOOD_IMAGE = {"prompt": "a red fox in snow", "seed": 42, "guidance_scale": 5.0, "temperature": 1.0, "num_images": 4}

# What a browser, an API client or an attacker can send instead of a sane number.
BAD_NUMBERS = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "1e308": 1e308,
    "-2": -2,
    "abc": "abc",
    "numeric string": "0.5",
    "None": None,
    "2**64": 2**64,
    "list": [1],
    "True": True,
    "huge int": 10**400,
}


def _bad_cases(schema) -> list:
    return [
        pytest.param(schema, field.name, field.label, value, id=f"{schema.endpoint}:{field.name}={name}")
        for field in schema
        if isinstance(field, NumberField)
        for name, value in BAD_NUMBERS.items()
    ]


@pytest.mark.parametrize(("schema", "name", "label", "value"), _bad_cases(CHAT) + _bad_cases(IMAGES))
def test_every_number_refuses_bad_values_naming_the_field(schema, name, label, value):
    good = GOOD_CHAT if schema is CHAT else GOOD_IMAGE
    with pytest.raises(FieldError) as caught:
        schema.check({**good, name: value})
    assert caught.value.field == name
    assert str(caught.value).startswith(f"{label} must be ")
    assert len(str(caught.value)) < 120


def test_message_gives_the_range_and_what_was_sent():
    with pytest.raises(InputError, match=r"^Temperature must be a number between 0 and 2 \(got nan\)\.$"):
        CHAT.check({**GOOD_CHAT, "temperature": float("nan")})
    with pytest.raises(InputError, match=r"^Top-p must be a number between 0\.05 and 1 \(got 0\)\.$"):
        CHAT.check({**GOOD_CHAT, "top_p": 0})
    with pytest.raises(InputError, match=r"^Seed must be a whole number between -1 and 4294967295 \(got 3\.5\)\.$"):
        CHAT.check({**GOOD_CHAT, "seed": 3.5})
    with pytest.raises(InputError, match=r"between 1 and 2048 \(got 4096\)"):
        CHAT.check({**GOOD_CHAT, "max_new_tokens": 4096})
    with pytest.raises(InputError, match=r"\(got 'xxxxxxxx.*\.\.\.\)\.$"):  # a huge string is not echoed whole
        CHAT.check({**GOOD_CHAT, "seed": "x" * 100_000})


def test_valid_values_come_back_typed_and_missing_ones_are_the_defaults():
    values = CHAT.check({"max_new_tokens": 512.0, "temperature": 1, "top_p": 1, "seed": -1})
    assert values == {"message": "", "max_new_tokens": 512, "temperature": 1.0, "top_p": 1.0, "seed": -1}
    assert type(values["max_new_tokens"]) is int and type(values["seed"]) is int
    assert type(values["temperature"]) is float and type(values["top_p"]) is float
    image = IMAGES.check({**GOOD_IMAGE, "num_images": 4.0, "seed": np.int64(7), "guidance_scale": 1})
    assert (image["num_images"], image["seed"], image["guidance_scale"]) == (4, 7, 1.0)
    assert type(image["num_images"]) is int and type(image["seed"]) is int and type(image["guidance_scale"]) is float
    assert (image["top_p"], image["preview_every"], image["preview_mode"]) == (1.0, 48, "auto")


@pytest.mark.parametrize("schema", [CHAT, IMAGES], ids=["chat", "images"])
def test_each_numbers_edges_are_accepted_and_one_step_beyond_refused(schema):
    good = GOOD_CHAT if schema is CHAT else GOOD_IMAGE
    for field in schema:
        if not isinstance(field, NumberField):
            continue
        for edge in (field.minimum, field.maximum):
            assert schema.check({**good, field.name: edge})[field.name] == edge
        for outside in (field.minimum - field.step, field.maximum + field.step):
            with pytest.raises(FieldError, match=f"^{field.label} must be"):
                schema.check({**good, field.name: outside})


def test_positional_values_follow_the_api_order():
    assert CHAT.bind("hi", 64) == {**CHAT.defaults(), "message": "hi", "max_new_tokens": 64}
    assert IMAGES.bind("a fox", 7, preview_mode="off")["preview_mode"] == "off"
    with pytest.raises(InputError, match="no parameter colour"):
        IMAGES.bind("a fox", colour="red")
    with pytest.raises(InputError, match="at most 8 values"):
        IMAGES.bind(*range(9))


def test_tiny_temperature_means_greedy_instead_of_overflowing():
    """logits / 1e-40 is inf, then NaN probabilities: such temperatures are snapped to 0 (greedy)."""
    for value in (0, 1e-40, 0.009):
        assert CHAT.check({**GOOD_CHAT, "temperature": value})["temperature"] == 0.0
        assert IMAGES.check({**GOOD_IMAGE, "temperature": value})["temperature"] == 0.0
    assert CHAT.check({**GOOD_CHAT, "temperature": 0.01})["temperature"] == 0.01


def test_limits_change_the_caps():
    limits = Limits(max_new_tokens=64, max_num_images=32, max_prompt_chars=10)
    chat, images, *_ = schemas_for(limits, gpu=False)
    assert chat["max_new_tokens"].maximum == 64 and images["num_images"].maximum == 32
    with pytest.raises(InputError, match="between 1 and 64"):
        chat.check({**GOOD_CHAT, "max_new_tokens": 65})
    assert images.check({**GOOD_IMAGE, "prompt": "short", "num_images": 32})["num_images"] == 32
    with pytest.raises(InputError, match="Prompt is too long: 17 characters; the limit is 10."):
        images.check(GOOD_IMAGE)


def test_the_image_fields_follow_the_models_grid(small_backend):
    """Janus-Pro's 24x24 grid by default (the README documents it); a loaded model's own grid in its backend."""
    default, small = schemas_for(Limits(), gpu=False), small_backend.schemas
    for schemas, tokens, rows in ((default, 576, 24), (small, 64, 8)):
        for schema in (schemas.images, schemas.complete, schemas.redraw, schemas.variations):
            every = schema["preview_every"]
            assert (every.maximum, every.default) == (tokens, 2 * rows) and f"({tokens} in all" in every.help
            with pytest.raises(FieldError, match=f"between 0 and {tokens}"):
                every.check(tokens + 1)
        keep = schemas.complete["keep_rows"]
        assert (keep.minimum, keep.maximum, keep.default) == (1, rows - 1, rows // 2)
        assert f"of {rows}, 16 px" in keep.help


def test_a_gpu_draws_four_images_by_default():
    assert image_schema(Limits(), gpu=True)["num_images"].default == 4 and IMAGES["num_images"].default == 1


def test_integer_fields_accept_whole_floats_only():
    steps = NumberField("steps", "Steps", 1, 1, 10, 1, integer=True)
    assert steps.check(3.0) == 3 and type(steps.check(3.0)) is int
    with pytest.raises(InputError, match="Steps must be a whole number between 1 and 10 \\(got 3.5\\)"):
        steps.check(3.5)
    value = NumberField("top_p", "Top-p", 1.0, 0, 1, 0.05).check(np.float64(0.25))
    assert type(value) is float and value == 0.25 and math.isfinite(value)


# --- text


def test_a_one_megabyte_prompt_is_refused_with_the_limit():
    with pytest.raises(InputError, match="Prompt is too long: 1,048,576 characters; the limit is 4,000."):
        IMAGES.check({**GOOD_IMAGE, "prompt": "a" * 1024 * 1024})
    with pytest.raises(InputError, match="Message is too long: 8,001 characters; the limit is 8,000."):
        CHAT.check({"message": "b" * 8001})


def test_nul_characters_are_stripped_and_lone_surrogates_replaced():
    assert IMAGES.check({**GOOD_IMAGE, "prompt": "a\0 fox\0"})["prompt"] == "a fox"
    text = CHAT.check({"message": "bad \ud800 text\0"})["message"]
    assert text == "bad \ufffd text"
    text.encode("utf-8")


@pytest.mark.parametrize("value", [None, 42, ["a fox"], b"a fox", {"text": "a fox"}])
def test_text_must_be_a_string(value):
    with pytest.raises(InputError, match="^Prompt must be text \\(got "):
        IMAGES.check({**GOOD_IMAGE, "prompt": value})


@pytest.mark.parametrize("prompt", ["", "   ", "\0\0", "\n\t"])
def test_an_empty_prompt_is_refused(prompt):
    with pytest.raises(InputError, match="^Prompt is empty.$"):
        IMAGES.check({**GOOD_IMAGE, "prompt": prompt})


def test_an_empty_message_is_allowed_for_image_only_turns():
    assert CHAT.check({"message": ""})["message"] == ""
    with pytest.raises(InputError, match="Note is empty."):
        TextField("note", "Note", 1).check("")


def test_choices_are_checked():
    with pytest.raises(FieldError, match=r"^Preview mode must be one of auto, decode, palette, off \(got 'fast'\)\.$"):
        IMAGES.check({**GOOD_IMAGE, "preview_mode": "fast"})


def test_docstrings_describe_every_parameter_with_its_range_and_default():
    doc = IMAGES.docstring("Draw.", "Images.")
    for field in IMAGES:
        assert f"    {field.name}: " in doc
    assert "num_images: Images drawn in one batch. 1 to 16; default 1." in doc
    assert "preview_mode: " in doc and "one of auto, decode, palette, off; default auto." in doc


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
