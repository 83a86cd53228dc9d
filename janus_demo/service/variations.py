"""Variations of a photo (`/variations`): the model describes the photo, then images are drawn from the
description (which the browser lets the user edit and draw again).

    for event in variations(backend, answer_on_gpu, edit_on_gpu, photo, 4): ...   # Text (the description) first
    prepared = prepare_described(backend, "A cat on a sofa", 4, 7)               # draw from an edited one

`prepare_variations` crops the photo and tokenizes the question that asks for its description, and checks
the images' settings against the GPU's free memory for the longest description, all on the CPU; the
description is answered as a chat turn (`janus_demo.service.chat.run_chat`) and drawn with the settings
checked with the photo (`described`), as an edit without a photo (`janus_demo.service.edits.run_edit`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from janus_demo.model import chat, image_loop, memory
from janus_demo.model.chat import ChatOptions
from janus_demo.service import intake
from janus_demo.service.chat import AnswerFn, PreparedChat, answering
from janus_demo.service.drawing import DrawFn, drawing, guarded
from janus_demo.service.edits import PreparedEdit, checked_file, loaded_file, size_text
from janus_demo.service.errors import FieldError, InputError
from janus_demo.service.events import Event, Started, Text
from janus_demo.service.image_requests import check_drawing, drawing_values, image_request
from janus_demo.service.schemas import Schema, concrete_seed, prompt_field
from janus_demo.service.status_lines import DESCRIBING, STARTING

if TYPE_CHECKING:
    from janus_demo.service.backend import Backend

NO_DESCRIPTIONS = (
    "This server only draws images (it was started with --images-only): variations need the model to describe "
    "the photo, which is off."
)
# What the model is asked before it draws variations: a prompt in the style text-to-image models read.
DESCRIBE_INSTRUCTION = (
    "Write a prompt for a text-to-image model that would recreate this image. In one paragraph, describe the "
    "subject, the setting, the composition, the colours, the lighting and the style. Answer with the prompt only."
)
DESCRIBE_TOKENS = 160  # the longest description asked for
DESCRIBE_MIN_TOKENS = 8  # a description that ends at once would leave nothing to draw from
TEMPLATE_TOKENS = 32  # the chat template around a prompt, more than enough
DESCRIBE_TEMPERATURE = 0.1  # DeepSeek's chat default: faithful descriptions
EMPTY_DESCRIPTION = (  # random weights can answer with nothing but blanks and quotes
    "The model's description of the photo was empty, so nothing was drawn: try another seed, or write a "
    'description in the box and press "Generate from this".'
)
SETTINGS = ("num_images", "seed", "guidance_scale", "temperature", "preview_every")  # the images', after the photo


@dataclass(frozen=True)
class PreparedVariations:
    """A checked `/variations` request: the description to ask for first, then the images' settings."""

    describe: PreparedChat
    crop: Image.Image
    settings: dict[str, Any]  # num_images, seed (concrete), guidance_scale, temperature, preview_every
    source_size: tuple[int, int]


def prepare_variations(backend: Backend, *settings: object, **named: object) -> PreparedVariations:
    """Check a `/variations` request (CPU): the photo cropped, the question that asks for its description
    tokenized (run it as a chat turn: `run_chat(backend, prepared.describe)`); the images are then prepared
    from the description (`described`)."""
    values = _checked(backend, *settings, **named)
    image = loaded_file(backend, backend.schemas.variations, values, "image")
    crop, _ = intake.square_crop(image, backend.image_shape)
    values["seed"] = concrete_seed(values["seed"])
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DESCRIBE_INSTRUCTION}]}]
    inputs = chat.encode_conversation(backend.loaded, question, [crop])
    options = ChatOptions(
        DESCRIBE_TOKENS, DESCRIBE_TEMPERATURE, 0.95, values["seed"], min_new_tokens=DESCRIBE_MIN_TOKENS
    )
    problem = memory.image_memory_problem(  # the images' request, with the longest description
        backend.loaded,
        values["num_images"],
        DESCRIBE_TOKENS + TEMPLATE_TOKENS,
        image_loop.is_guided(values["guidance_scale"]),
        memory.DECODE_CHUNK,
    )
    if problem:
        raise InputError(problem)
    kept = {name: values[name] for name in SETTINGS}
    return PreparedVariations(PreparedChat(inputs, options, 1), crop, kept, image.size)


def check_variations(backend: Backend, *settings: object, **named: object) -> None:
    """`prepare_variations`' cheap checks: the values and the photo sniffed, the GPU time."""
    values = _checked(backend, *settings, **named)
    checked_file(backend, backend.schemas.variations, values, "image")
    check_drawing(backend, values)


def prepare_described(
    backend: Backend,
    description: object,
    *settings: object,
    source_size: tuple[int, int] | None = None,
    **named: object,
) -> PreparedEdit:
    """Images drawn from a description (the user's edit of the model's): `settings` are `/variations`' after
    the image (num_images, seed, guidance_scale, temperature, preview_every), checked here."""
    return described(backend, description, _described_settings(backend, *settings, **named), source_size)


def check_described(backend: Backend, description: object, *settings: object, **named: object) -> None:
    """`prepare_described`'s checks of the values (CPU, nothing tokenized): a browser validator's."""
    _description(backend, description)
    _described_settings(backend, *settings, **named)


def described(
    backend: Backend,
    description: object,
    settings: Mapping[str, Any],
    source_size: tuple[int, int] | None = None,
    by_model: bool = False,
) -> PreparedEdit:
    """Images drawn from a description with settings already checked (`PreparedVariations.settings`); the
    model's own description (`by_model`) is refused with EMPTY_DESCRIPTION when nothing is left of it."""
    values = dict(settings) | {"prompt": _description(backend, description, by_model)}
    about = {"mode": "variations"} | ({"source_size": size_text(source_size)} if source_size else {})
    return PreparedEdit(image_request(backend, drawing_values(values)), None, tuple(about.items()))


def clean_description(text: str, max_chars: int) -> str:
    """The model's description as a prompt: one line, no surrounding quotes, at most `max_chars`."""
    line = " ".join(text.split()).strip().strip('"').strip()
    return line[:max_chars].rstrip()


def variations(backend: Backend, answer: AnswerFn, draw: DrawFn, *values: object) -> Iterator[Event]:
    """The run of one `/variations` request: `Started` (the seed, the crop), the description as `Text` while the
    model writes it, then the drawing from it (its `Started` carries the description as the prompt)."""
    return guarded(_variations(backend, answer, draw, *values))


def _variations(backend: Backend, answer: AnswerFn, draw: DrawFn, *values: object) -> Iterator[Event]:
    prepared = prepare_variations(backend, *values)
    yield Started(STARTING, prepared.settings["seed"], prepared.crop, total=backend.image_shape.tokens)
    description = ""
    for event in answering(answer, prepared.describe):
        description = event.text if isinstance(event, Text) else description
        yield Text(description, f"{DESCRIBING} · {event.status}", getattr(event, "answering", False))
    drawn = described(backend, description, prepared.settings, prepared.source_size, by_model=True)
    yield from drawing(draw, drawn, drawn.request, prompt=drawn.request.prompt)


def _checked(backend: Backend, *settings: object, **named: object) -> dict[str, Any]:
    """A `/variations` request's values, checked; refused at once when the model cannot describe photos."""
    if not backend.can_chat:
        raise InputError(NO_DESCRIPTIONS)
    schema = backend.schemas.variations
    return schema.check(schema.bind(*settings, **named))


def _described_settings(backend: Backend, *settings: object, **named: object) -> dict[str, Any]:
    schema = backend.schemas.variations
    schema = Schema(schema.endpoint, tuple(field for field in schema if field.name != "image"))
    return schema.check(schema.bind(*settings, **named))


def _description(backend: Backend, description: object, by_model: bool = False) -> str:
    """The description as a prompt (one line, within the prompt's length), or FieldError "description": the
    prompt's own checks in the description's name ("Description is empty."), or EMPTY_DESCRIPTION for the
    model's."""
    field = replace(prompt_field(backend.limits), name="description", label="Description")
    text = description if not isinstance(description, str) else clean_description(description, field.max_chars)
    try:
        return field.check(text)
    except FieldError:
        if by_model:  # a string of at most the prompt's length: nothing was left of it
            raise FieldError("description", EMPTY_DESCRIPTION) from None
        raise
