"""The one object the UI talks to: checks requests, then runs them in the GPU section.

    backend = Backend(load_janus("tiny"))
    for chunk in backend.chat({"text": "What is this?", "files": ["cat.png"]}, history=[]):
        print(chunk.text)

Every request is validated (numbers finite and in range, text and history capped, images
read safely) before it waits for the model; bad input raises `InputError` with a message for
the user. Closing the returned generator stops the generation within one token or step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from janus_demo import chat, history, image_intake, validation
from janus_demo.gpu_section import GpuSection
from janus_demo.loading import LoadedJanus


class Backend:
    """A loaded model, its GPU section and the request limits."""

    def __init__(
        self,
        loaded: LoadedJanus,
        limits: validation.Limits | None = None,
        image_limits: image_intake.ImageLimits | None = None,
    ) -> None:
        self.loaded = loaded
        self.limits = limits or validation.Limits()
        self.image_limits = image_limits or image_intake.ImageLimits()
        self.section = GpuSection()

    def info(self) -> dict[str, Any]:
        """Model id, device, dtype, quantization, quantized layer count, footprint, random weights."""
        return self.loaded.info()

    def chat(
        self,
        message: Mapping[str, Any] | str,
        chat_history: list[Any] | None = None,
        max_new_tokens: int = chat.DEFAULT_MAX_NEW_TOKENS,
        temperature: float = chat.DEFAULT_TEMPERATURE,
        top_p: float = chat.DEFAULT_TOP_P,
        seed: int = chat.DEFAULT_SEED,
        stop: threading.Event | None = None,
    ) -> Iterator[chat.ChatChunk]:
        """Answer `message` given `chat_history`, streaming ChatChunks (the answer so far)."""
        params = validation.check_chat_params(max_new_tokens, temperature, top_p, seed, self.limits)
        messages, image_paths = self._conversation(message, chat_history)
        images = image_intake.load_images(
            image_paths, self.image_limits, max_images=self.limits.max_images_per_conversation
        )
        options = chat.ChatOptions(
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            deadline=time.monotonic() + self.limits.request_deadline_s,
        )
        stop = stop or threading.Event()

        def work(emit):
            chat.generate_answer(self.loaded, messages, images, options, stop, emit)

        yield from self.section.stream(work, stop, wait_timeout=self.limits.request_deadline_s)

    def _conversation(self, message: Mapping[str, Any] | str, chat_history: list[Any] | None):
        """Validate the message text and convert history + message to Janus messages."""
        text = message if isinstance(message, str) else (message or {}).get("text") or ""
        validation.check_text(text, "Message", self.limits.max_message_chars, allow_empty=True)
        messages, image_paths = history.to_janus_conversation(
            chat_history, message, max_turns=self.limits.max_history_turns
        )
        if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"]:
            raise validation.InputError("Type a message or attach an image.")
        return messages, image_paths
