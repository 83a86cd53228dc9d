"""The one object the UI talks to: checks requests, then runs them in the GPU section.

    backend = Backend(load_janus("tiny"))
    for chunk in backend.chat({"text": "What is this?", "files": ["cat.png"]}, history=[]):
        print(chunk.text)

Every request is validated (numbers finite and in range, text and history capped, images
read safely) before it waits for the model; bad input raises `InputError` with a message for
the user. Closing the returned generator stops the generation within one token or step. The
streams also yield a `Heartbeat` every HEARTBEAT_S seconds without news (waiting for the model):
pass it on as an update, so gradio gets the chance to close the generator when the user leaves.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from PIL import Image

from janus_demo.model import chat, previews
from janus_demo.model import image_loop as imagegen
from janus_demo.model.loading import LoadedJanus
from janus_demo.service import conversation as history
from janus_demo.service import intake as image_intake
from janus_demo.service import validation
from janus_demo.service.errors import BusyError, InputError
from janus_demo.service.model_lock import GpuSection, Heartbeat

UNREADABLE_IMAGE = "[an image that is no longer available]"  # what the model reads instead of a lost image
HEARTBEAT_S = 0.2  # how long a stream stays silent at most, so a cancelled request is closed promptly


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
    ) -> Iterator[chat.ChatChunk | Heartbeat]:
        """Answer `message` given `chat_history`, streaming ChatChunks (the answer so far).

        Checks everything first (raising InputError at once), then returns the stream. Seed -1 draws a
        random seed. Only the newest `limits.max_history_turns` turns are used, and earlier images that can no
        longer be read are left out; the chunks then carry a note saying so.
        """
        params = validation.check_chat_params(max_new_tokens, temperature, top_p, seed, self.limits)
        messages, image_paths, notes = self._conversation(message, chat_history)
        validation.check_image_count(len(image_paths), self.limits)
        messages, images = self._images(messages, image_paths, message, notes)
        inputs = self._encode(messages, images)
        options = chat.ChatOptions(
            max_new_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=self.resolve_seed(params.seed),
            deadline=time.monotonic() + self.limits.request_deadline_s,
        )
        stop = stop or threading.Event()

        def work(emit: Callable[[chat.ChatChunk], None]) -> None:
            self._answer(inputs, options, stop, emit)

        stream = self._stream(work, stop)
        return _with_note(stream, "; ".join(notes)) if notes else stream

    def generate_images(
        self,
        prompt: str,
        seed: int,
        guidance_scale: float = 5.0,
        temperature: float = 1.0,
        num_images: int = 1,
        top_p: float = 1.0,
        preview_every: int = 48,
        preview_mode: str = "auto",
        stop: threading.Event | None = None,
    ) -> Iterator[imagegen.ImageProgress | Heartbeat]:
        """Draw `num_images` pictures of `prompt`, streaming progress, previews and the final images.

        `seed` must be concrete (see `resolve_seed`). Checks everything first, then returns the stream.
        """
        params = validation.check_image_params(prompt, seed, guidance_scale, temperature, num_images, self.limits)
        if params.seed < 0:
            raise InputError("Seed must be a whole number from 0 (use resolve_seed for a random one).")
        every, mode = validation.check_preview_settings(preview_every, preview_mode, previews.PREVIEW_MODES)
        request = imagegen.ImageRequest(
            prompt=params.prompt,
            seed=params.seed,
            guidance_scale=params.guidance_scale,
            temperature=params.temperature,
            top_p=validation.check_top_p(top_p),
            num_images=params.num_images,
            preview_every=every,
            preview_mode=mode,
        )
        imagegen.validate_request(request, self.limits)
        stop = stop or threading.Event()
        deadline = time.monotonic() + self.limits.request_deadline_s

        def work(emit: Callable[[imagegen.ImageProgress], None]) -> None:
            for progress in self._draw(request, stop):
                if progress.done:  # gradio copies a PIL image's text info into the PNG it serves
                    for image in progress.images:
                        image.info.update(imagegen.request_metadata(request, self.loaded.model_id))
                emit(progress)
                if time.monotonic() > deadline and not progress.done:
                    stop.set()
                    raise BusyError(
                        f"Image generation ran past the {self.limits.request_deadline_s:g} s limit and was stopped. "
                        "Try fewer images."
                    )

        return self._stream(work, stop)

    def _stream(self, work: Callable[[Callable[[Any], None]], None], stop: threading.Event) -> Iterator[Any]:
        """Run `work` in the GPU section: wait at most the deadline for it, with heartbeats."""
        return self.section.stream(work, stop, wait_timeout=self.limits.request_deadline_s, heartbeat=HEARTBEAT_S)

    @staticmethod
    def resolve_seed(seed: object) -> int:
        """-1 (or any negative number) means "random": draw a fresh seed; other values are checked."""
        value = validation.check_seed(seed)
        return secrets.randbelow(validation.SEED_MAX + 1) if value < 0 else value

    # --- the model work (runs inside the GPU section; tests replace these two with fakes)

    def _answer(
        self,
        inputs: dict[str, Any],
        options: chat.ChatOptions,
        stop: threading.Event,
        emit: Callable[[chat.ChatChunk], None],
    ) -> None:
        chat.generate_answer(self.loaded, inputs, options, stop, emit)

    def _draw(self, request: imagegen.ImageRequest, stop: threading.Event) -> Iterator[imagegen.ImageProgress]:
        return imagegen.iter_image_generation(self.loaded, request, stop)

    # --- request checks

    def _conversation(
        self, message: Mapping[str, Any] | str, chat_history: list[Any] | None
    ) -> tuple[list[history.Message], list[str], list[str]]:
        """Validate the message text and convert history + message to Janus messages, newest turns only.

        Returns the messages, their image paths and notes for the user (older turns left out).
        """
        text = message if isinstance(message, str) else (message or {}).get("text") or ""
        validation.check_text(text, "Message", self.limits.max_message_chars, allow_empty=True)
        max_turns = self.limits.max_history_turns
        messages, image_paths = history.to_janus_conversation(chat_history, message, max_turns=max_turns)
        if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"]:
            raise InputError("Type a message or attach an image.")
        notes = []
        if chat_history and history.count_user_turns(chat_history, message) > max_turns:
            notes.append(f"only the last {max_turns} turns of this conversation were used")
        return messages, image_paths, notes

    def _images(
        self,
        messages: list[history.Message],
        image_paths: list[str],
        message: Mapping[str, Any] | str,
        notes: list[str],
    ) -> tuple[list[history.Message], list[Image.Image]]:
        """Load the conversation's images: the new message's must all be readable (else InputError); an earlier
        one that no longer is (a refused upload the browser kept, a file swept from gradio's cache) is left out."""
        _, new_paths = history.to_janus_conversation(None, message)
        earlier = image_paths[: len(image_paths) - len(new_paths)]
        images, unreadable = [], []
        for index, path in enumerate(earlier):
            try:
                images.append(image_intake.load_image(path, self.image_limits))
            except InputError:
                unreadable.append(index)
        limit = self.limits.max_images_per_conversation
        images += image_intake.load_images(new_paths, self.image_limits, max_images=limit)
        if unreadable:
            messages = history.replace_images(messages, unreadable, UNREADABLE_IMAGE)
            notes.append(f"{len(unreadable)} earlier image(s) could not be read and were left out")
        return messages, images

    def _encode(self, messages: list[history.Message], images: list[Any]) -> dict[str, Any]:
        """Tokenize the conversation (CPU, outside the GPU section); refuse one over `max_context_tokens`."""
        chars = sum(len(block.get("text", "")) for message in messages for block in message["content"])
        validation.check_context_chars(chars, self.limits)
        inputs = chat.encode_conversation(self.loaded, messages, images)
        validation.check_context_tokens(chat.prompt_length(inputs), self.limits)
        return inputs


def _with_note(stream: Iterator[chat.ChatChunk | Heartbeat], note: str) -> Iterator[chat.ChatChunk | Heartbeat]:
    """The chunks of `stream` carrying `note`; closing this closes `stream` (which stops the generation)."""
    with contextlib.closing(stream):
        for chunk in stream:
            yield chunk if isinstance(chunk, Heartbeat) else replace(chunk, note=note)
