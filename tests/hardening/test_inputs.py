"""Hostile numbers for every numeric parameter of /chat and /generate_images are refused before the model.

Sent as raw queue requests (Python's json writes NaN and Infinity, which gradio_client refuses to send).
Measured: each of NaN, inf, -inf, 1e308, -1, a string, null and 2**64 in each field ends in an error naming
the field, and `section.entered` does not move. -1 is the one legal value among them for the two seed fields:
it means "draw a random seed".
"""

import math

import pytest
from support.raw_api import fn_index, raw_call
from support.serving import chat_args, image_args

HOSTILE = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "1e308": 1e308,
    "-1": -1,
    "string": "12",
    "null": None,
    "2**64": 2**64,
}
# endpoint -> field -> (position in the request's data, the name the error must use)
FIELDS = {
    "chat": {
        "max_new_tokens": (1, "Max new tokens"),
        "temperature": (2, "Temperature"),
        "top_p": (3, "Top-p"),
        "seed": (4, "Seed"),
    },
    "generate_images": {
        "seed": (1, "Seed"),
        "guidance_scale": (2, "Guidance scale"),
        "temperature": (3, "Temperature"),
        "num_images": (4, "Number of images"),
        "top_p": (5, "Top-p"),
        "preview_every": (6, "Preview every"),
    },
}
CASES = [
    (endpoint, field, value_name)
    for endpoint, fields in FIELDS.items()
    for field in fields
    for value_name in HOSTILE
    if not (field == "seed" and value_name == "-1")  # -1 = random seed, tested below
]


def good_data(endpoint):
    if endpoint == "chat":
        return [{"text": "hello", "files": []}, *chat_args()]
    return ["a red fox", *image_args()]


def refusal(url, endpoint, position, value):
    data = good_data(endpoint)
    data[position] = value
    completed, _ = raw_call(url, fn_index(url, endpoint), data)
    assert completed["success"] is False
    return completed["output"]["error"]


@pytest.mark.parametrize(("endpoint", "field", "value_name"), CASES)
def test_hostile_numbers_are_refused_before_the_model_naming_the_field(
    app_url, tiny_backend, endpoint, field, value_name
):
    position, label = FIELDS[endpoint][field]
    entered = tiny_backend.entered
    message = refusal(app_url, endpoint, position, HOSTILE[value_name])
    assert message and message.startswith(label), message
    assert tiny_backend.entered == entered


@pytest.mark.parametrize("value", ["bogus", None, 3, math.nan, ["off"]])
def test_a_bad_preview_mode_is_refused_naming_the_field(app_url, tiny_backend, value):
    entered = tiny_backend.entered
    assert refusal(app_url, "generate_images", 7, value).startswith("Preview mode must be one of auto, decode")
    assert tiny_backend.entered == entered


def test_a_missing_prompt_is_refused(app_url):
    """(gradio's Textbox turns a number into its text, so 42 is a legal prompt; null is not.)"""
    assert refusal(app_url, "generate_images", 0, None).startswith("Prompt must be text")


@pytest.mark.parametrize("endpoint", ["chat", "generate_images"])
def test_seed_minus_one_draws_a_random_seed(fake, endpoint):
    data = good_data(endpoint)
    data[FIELDS[endpoint]["seed"][0]] = -1
    completed, _ = raw_call(fake.url, fn_index(fake.url, endpoint), data)
    assert completed["success"] is True
    output = completed["output"]["data"]
    seed_used = int(output[0].split()[0].removeprefix("seed=")) if endpoint == "chat" else output[1]
    assert 0 <= seed_used < 2**32
