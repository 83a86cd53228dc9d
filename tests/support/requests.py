"""Model-layer requests as the service builds them (the schema's defaults), for tests of the model layer."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import torch

from janus_demo.model.chat import ChatOptions
from janus_demo.model.image_loop import ImageRequest, encode_prompt, iter_image_tokens
from janus_demo.model.loading import LoadedJanus
from janus_demo.service.schemas import Limits, chat_schema, image_schema

PROMPT = "A red fox in the snow"


def image_request(loaded: LoadedJanus, prompt: str = PROMPT, **overrides: Any) -> ImageRequest:
    """The schema's defaults (one image, seed 1) with `overrides`, the prompt encoded."""
    values = image_schema(Limits(), gpu=False).defaults() | {"prompt": prompt, "seed": 1} | overrides
    return ImageRequest(prompt_ids=encode_prompt(loaded, values["prompt"]), **values)


def chat_options(**overrides: Any) -> ChatOptions:
    values = chat_schema(Limits()).defaults() | overrides
    return ChatOptions(values["max_new_tokens"], values["temperature"], values["top_p"], values["seed"])


def generate_image_tokens(
    loaded: LoadedJanus, request: ImageRequest, stop: threading.Event | None = None
) -> torch.Tensor | None:
    """All image tokens, (num_images, 576), or None when `stop` was set before the end."""
    last = deque(iter_image_tokens(loaded, request, stop), maxlen=1)
    if not last or last[0][0] < last[0][1].shape[1]:
        return None
    return last[0][1].clone()
