"""The one object the web layer talks to: prepare a request (checks, intake, tokenizing; CPU), then run it
under the model lock.

    backend = Backend(load_janus("tiny"))
    prepared = backend.prepare_chat({"text": "What is this?", "files": ["cat.png"]}, history=[], seed=1)
    for chunk in backend.run_chat(prepared):      # ChatChunk (the answer so far) or Heartbeat
        print(chunk.text)

Preparing reads the request's schema (`janus_demo.service.requests`) and checks every value once, loads
the images safely, parses the conversation once and tokenizes it: everything that can refuse a request
happens there, before the request waits for the model, and on ZeroGPU before a GPU is borrowed. The
prepared request is plain data (it crosses into ZeroGPU's worker process). Running it takes the model
lock; closing the returned generator stops the generation within one token or step. The streams yield
a `Heartbeat` every HEARTBEAT_S seconds without news: pass it on, so gradio can close the generator
when the user leaves.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from janus_demo.model import chat, cuda_graphs, image_loop, memory
from janus_demo.model.chat import ChatChunk, ChatOptions
from janus_demo.model.image_loop import ImageProgress, ImageRequest
from janus_demo.model.loading import LoadedJanus
from janus_demo.model.upscaler import Stopped, Upscaler, memory_problem
from janus_demo.service import intake
from janus_demo.service.clients import ClientLedger, ClientLimits
from janus_demo.service.conversation import Conversation, parse_conversation, parse_message
from janus_demo.service.errors import BusyError, FieldError, InputError
from janus_demo.service.histories import Histories
from janus_demo.service.model_lock import Heartbeat, ModelLock
from janus_demo.service.preview_sheet import preview_sheet
from janus_demo.service.requests import IMAGE_TOKENS, RANDOM_SEED, SEED_MAX, Limits, schemas_for

UNREADABLE_IMAGE = "[an image that is no longer available]"  # what the model reads instead of a lost image
HEARTBEAT_S = 0.2  # how long a stream stays silent at most, so a cancelled request is closed promptly
CONVERSATION_TOO_LONG = "This conversation is too long; clear it and start again."
NO_UPSCALER = "This server has no upscaler (start it with --upscaler to offer Upscale 2x)."
IMAGES_ONLY = "This server only draws images (it was started with --images-only): chat is off."
# Tokenizing costs time in proportion to the text: a conversation with more characters than this many per
# allowed token is refused before it is tokenized (real text averages about 4 characters per token).
MAX_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class PreparedChat:
    """A checked chat turn, tokenized: what the model runs, and what to tell the user about it."""

    inputs: dict[str, Any]  # CPU tensors from the processor
    options: ChatOptions  # the seed is concrete; the deadline is set when the run starts
    images: int  # images in the conversation
    notes: tuple[str, ...] = ()  # e.g. older turns left out


@dataclass(frozen=True)
class PreparedUpscale:
    """A checked image to enlarge, with the PNG text it came with (kept in the result)."""

    image: Image.Image
    metadata: dict[str, str]
    name: str  # the source file's name without its extension ("image" for a data URL)


@dataclass(frozen=True)
class Upscaled:
    """An upscale's result: the larger image (its `info` holds the source's PNG text and an "upscaled" note)."""

    image: Image.Image
    seconds: float


class Backend:
    """A loaded model, its lock, the request limits and the schemas they give."""

    def __init__(
        self,
        loaded: LoadedJanus,
        limits: Limits | None = None,
        image_limits: intake.ImageLimits | None = None,
        client_limits: ClientLimits | None = None,
        upscaler: Upscaler | None = None,
    ) -> None:
        self.loaded = loaded
        self.upscaler = upscaler
        self.limits = limits or Limits()
        self.image_limits = image_limits or intake.ImageLimits()
        self.schemas = schemas_for(self.limits, gpu=loaded.device.type == "cuda")
        self.lock = ModelLock()
        self.clients = ClientLedger(client_limits)  # per-client counts, fed by the server's middleware
        self.histories = Histories(self.clients.limits.max_sessions, self.clients.limits.session_ttl_s)

    def info(self) -> dict[str, Any]:
        """Model id, device, dtype, quantization and why, quantized layer count, footprint, layout, random weights."""
        return self.loaded.info()

    @property
    def can_chat(self) -> bool:
        """False when the model was loaded for images only (no vision tower, no lm_head)."""
        return self.loaded.can_chat

    # --- chat

    def prepare_chat(self, message: object, history: object = None, *settings: object, **named: object) -> PreparedChat:
        """Check a chat turn and tokenize its conversation (CPU); InputError says what is wrong.

        `settings` are the `/chat` parameters after the message, positional in API order or by name.
        Only the newest `limits.max_history_turns` user turns are used, and earlier images that can no
        longer be read are left out; the notes say so.
        """
        if not self.can_chat:
            raise InputError(IMAGES_ONLY)
        raw_text, image_paths = parse_message(message)
        values = self.schemas.chat.check(self.schemas.chat.bind(raw_text, *settings, **named))
        conversation = parse_conversation(history, values["message"], image_paths, self.limits.max_history_turns)
        if conversation.new_images == 0 and not values["message"].strip():
            raise InputError("Type a message or attach an image.")
        self._check_image_count(len(conversation.image_paths))
        images, stand_ins = self._load_images(conversation)
        inputs = self._encode(conversation, images, stand_ins)
        options = ChatOptions(values["max_new_tokens"], values["temperature"], values["top_p"], self._seed(values))
        return PreparedChat(inputs, options, len(images), self._notes(conversation, stand_ins))

    def run_chat(self, prepared: PreparedChat, stop: threading.Event | None = None) -> Iterator[ChatChunk | Heartbeat]:
        """Answer a prepared turn under the model lock, streaming ChatChunks that carry its notes."""
        stop = stop or threading.Event()
        options = replace(prepared.options, deadline=time.monotonic() + self.limits.request_deadline_s)
        stream = self._stream(lambda emit: self._answer(prepared.inputs, options, stop, emit), stop, "chat")
        return _with_note(stream, "; ".join(prepared.notes)) if prepared.notes else stream

    def chat(self, message: object, history: object = None, *settings: object, **named: Any) -> Iterator[Any]:
        """`prepare_chat` then `run_chat` (`stop=` an Event to stop it from outside)."""
        stop = named.pop("stop", None)
        return self.run_chat(self.prepare_chat(message, history, *settings, **named), stop)

    # --- images

    def prepare_images(self, *settings: object, **named: object) -> ImageRequest:
        """Check a text-to-image request and tokenize its prompt (CPU); InputError says what is wrong.

        `settings` are the `/generate_images` parameters, positional in API order or by name; seed -1
        becomes a random seed (the request carries the one used).
        """
        values = self.schemas.images.check(self.schemas.images.bind(*settings, **named))
        values["seed"] = self._seed(values)
        values["preview_every"] = self._preview_every(values["preview_every"])
        request = ImageRequest(prompt_ids=image_loop.encode_prompt(self.loaded, values["prompt"]), **values)
        problem = memory.image_memory_problem(
            self.loaded,
            request.num_images,
            request.prompt_ids.shape[1],
            request.guided,
            memory.DECODE_CHUNK,
            reclaimable=cuda_graphs.held_bytes(self.loaded.model),  # kept CUDA graphs make way for a new request
        )
        if problem:
            raise InputError(problem)
        return request

    def run_images(
        self, request: ImageRequest, stop: threading.Event | None = None
    ) -> Iterator[ImageProgress | Heartbeat]:
        """Draw a prepared request under the model lock: progress, previews, then the final images (their
        PNG metadata holds the settings that reproduce them)."""
        stop = stop or threading.Event()
        limit_s = self.limits.request_deadline_s

        def work(emit: Callable[[ImageProgress], None]) -> None:
            deadline = time.monotonic() + limit_s
            for progress in self._draw(request, stop):
                if progress.previews and len(progress.previews) > 1:  # one file per update, not one per image
                    progress.previews = [preview_sheet(progress.previews)]
                if progress.done:  # gradio copies a PIL image's text info into the PNG it serves
                    for image in progress.images:
                        image.info.update(image_metadata(request, self.loaded.model_id))
                emit(progress)
                self.lock.expect_done_in(progress.eta)  # what those waiting behind this request are told
                if time.monotonic() > deadline and not progress.done:
                    stop.set()
                    raise BusyError(
                        f"Image generation ran past the {limit_s:g} s limit and was stopped. Try fewer images."
                    )

        return self._stream(work, stop, "images")

    def generate_images(self, *settings: object, **named: Any) -> Iterator[Any]:
        """`prepare_images` then `run_images` (`stop=` an Event to stop it from outside)."""
        stop = named.pop("stop", None)
        return self.run_images(self.prepare_images(*settings, **named), stop)

    # --- 2x upscale

    @property
    def can_upscale(self) -> bool:
        """True when the server was started with an upscaler (--upscaler)."""
        return self.upscaler is not None

    def prepare_upscale(self, *settings: object, **named: object) -> PreparedUpscale:
        """Check an `/upscale` request and read its image (CPU); InputError (FieldError "image") says why not."""
        if self.upscaler is None:
            raise InputError(NO_UPSCALER)
        values = self.schemas.upscale.check(self.schemas.upscale.bind(*settings, **named))
        source = values["image"]
        try:
            image = intake.load_image(source, self.image_limits)
        except InputError as error:
            raise FieldError("image", f"Image: {error}") from None
        side = self.limits.max_upscale_side
        if max(image.size) > side:
            raise FieldError(
                "image", f"Image is {image.width}x{image.height} pixels; upscaling takes at most {side} a side."
            )
        if problem := memory_problem(self.upscaler, image.width, image.height):
            raise InputError(problem)
        name = "image" if source.startswith("data:") else Path(source).stem
        return PreparedUpscale(image, png_text(image), name)

    def run_upscale(self, prepared: PreparedUpscale, stop: threading.Event | None = None) -> Iterator[Any]:
        """Enlarge a prepared image under the model lock: Heartbeats while waiting, then one `Upscaled`
        (nothing if stopped)."""
        stop = stop or threading.Event()
        up = self.upscaler
        if up is None:
            raise InputError(NO_UPSCALER)

        def work(emit: Callable[[Upscaled], None]) -> None:
            start = time.perf_counter()
            try:
                image = up.upscale(prepared.image, stop)
            except Stopped:
                return
            note = f"{up.scale}x from {prepared.image.width}x{prepared.image.height} with {up.source}"
            image.info.update(prepared.metadata | {"upscaled": note})
            emit(Upscaled(image, time.perf_counter() - start))

        return self._stream(work, stop, "upscale")

    def upscale(self, *settings: object, **named: Any) -> Iterator[Any]:
        """`prepare_upscale` then `run_upscale` (`stop=` an Event to stop it from outside)."""
        stop = named.pop("stop", None)
        return self.run_upscale(self.prepare_upscale(*settings, **named), stop)

    # --- the model work (runs under the lock; tests replace these two with fakes)

    def _answer(self, inputs: dict[str, Any], options: ChatOptions, stop: threading.Event, emit: Callable) -> None:
        chat.generate_answer(self.loaded, inputs, options, stop, emit)

    def _draw(self, request: ImageRequest, stop: threading.Event) -> Iterator[ImageProgress]:
        return image_loop.iter_image_generation(self.loaded, request, stop)

    # --- helpers

    def _stream(self, work: Callable[[Callable[[Any], None]], None], stop: threading.Event, kind: str) -> Iterator[Any]:
        """Run `work` under the model lock: wait at most the deadline for it, with heartbeats (place in line)."""
        limit = self.limits.request_deadline_s
        return self.lock.stream(work, stop, wait_timeout=limit, heartbeat=HEARTBEAT_S, kind=kind)

    @staticmethod
    def _seed(values: Mapping[str, Any]) -> int:
        """The checked seed, or a fresh random one for -1."""
        seed = values["seed"]
        return secrets.randbelow(SEED_MAX + 1) if seed == RANDOM_SEED else seed

    def _preview_every(self, every: int) -> int:
        """`every`, widened so that a request streams at most `limits.max_preview_updates` previews."""
        fewest = math.ceil(IMAGE_TOKENS / self.limits.max_preview_updates)
        return every and max(every, fewest)

    def _check_image_count(self, count: int) -> None:
        limit = self.limits.max_images_per_conversation
        if count > limit:
            raise InputError(
                f"This conversation has {count} images; the limit is {limit}. Please clear it and start a new one."
            )

    def _load_images(self, conversation: Conversation) -> tuple[list[Image.Image], dict[int, str]]:
        """The conversation's images: the new message's must all be readable (else InputError); an earlier one
        that no longer is (a refused upload the browser kept, a file swept from gradio's cache) is left out."""
        paths = conversation.image_paths
        earlier, new = paths[: len(paths) - conversation.new_images], paths[len(paths) - conversation.new_images :]
        images, stand_ins = [], {}
        for index, path in enumerate(earlier):
            try:
                images.append(intake.load_image(path, self.image_limits))
            except InputError:
                stand_ins[index] = UNREADABLE_IMAGE
        images += intake.load_images(new, self.image_limits, max_images=self.limits.max_images_per_conversation)
        return images, stand_ins

    def _encode(
        self, conversation: Conversation, images: list[Image.Image], stand_ins: dict[int, str]
    ) -> dict[str, Any]:
        """Tokenize the conversation (CPU); refuse one over `max_context_tokens`, by its length first."""
        limit = self.limits.max_context_tokens
        if conversation.text_length() > limit * MAX_CHARS_PER_TOKEN:
            raise InputError(f"{CONVERSATION_TOO_LONG} (It has {conversation.text_length():,} characters.)")
        inputs = chat.encode_conversation(self.loaded, conversation.janus_messages(stand_ins), images)
        if chat.prompt_length(inputs) > limit:
            raise InputError(
                f"{CONVERSATION_TOO_LONG} (It is {chat.prompt_length(inputs):,} tokens; the limit is {limit:,}.)"
            )
        return inputs

    def _notes(self, conversation: Conversation, stand_ins: dict[int, str]) -> tuple[str, ...]:
        notes = []
        if conversation.left_out_turns:
            notes.append(f"only the last {self.limits.max_history_turns} turns of this conversation were used")
        if stand_ins:
            notes.append(f"{len(stand_ins)} earlier image(s) could not be read and were left out")
        if conversation.unreadable_entries:
            notes.append(f"{conversation.unreadable_entries} unreadable earlier message(s) were left out")
        return tuple(notes)


def image_metadata(request: ImageRequest, model_id: str) -> dict[str, str]:
    """The settings that reproduce an image, for PNG text chunks."""
    return {
        "prompt": request.prompt,
        "seed": str(request.seed),
        "guidance_scale": str(request.guidance_scale),
        "temperature": str(request.temperature),
        "top_p": str(request.top_p),
        "model": model_id,
    }


def png_text(image: Image.Image, max_chars: int = 20_000) -> dict[str, str]:
    """The text chunks an uploaded PNG came with (intake keeps them), at most `max_chars` in all."""
    kept, total = {}, 0
    for key, value in image.info.get("text", {}).items():
        if isinstance(key, str) and isinstance(value, str) and total + len(key) + len(value) <= max_chars:
            kept[key], total = value, total + len(key) + len(value)
    return kept


def _with_note(stream: Iterator[ChatChunk | Heartbeat], note: str) -> Iterator[ChatChunk | Heartbeat]:
    """The chunks of `stream` carrying `note`; closing this closes `stream` (which stops the generation)."""
    with contextlib.closing(stream):
        for chunk in stream:
            yield chunk if isinstance(chunk, Heartbeat) else replace(chunk, note=note)
