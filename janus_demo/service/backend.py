"""The one object the web layer talks to: prepare a request (checks, intake, tokenizing; CPU), then run it
under the model lock.

    backend = Backend(load_janus("tiny"))
    prepared = backend.prepare_chat({"text": "What is this?", "files": ["cat.png"]}, history=[], seed=1)
    for chunk in backend.run_chat(prepared):      # ChatChunk (the answer so far) or Heartbeat
        print(chunk.text)

Preparing reads the request's schema (`janus_demo.service.schemas`) and checks every value once, loads
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
from janus_demo.model.zero_gpu import on_zero_gpu
from janus_demo.service import intake
from janus_demo.service.clients import ClientLedger, ClientLimits
from janus_demo.service.conversation import Conversation, parse_conversation, parse_message
from janus_demo.service.errors import BusyError, FieldError, InputError
from janus_demo.service.gpu_budget import GpuBudget
from janus_demo.service.model_lock import Heartbeat, ModelLock
from janus_demo.service.png_metadata import image_metadata, png_text
from janus_demo.service.preview_sheet import preview_sheet
from janus_demo.service.schemas import RANDOM_SEED, SEED_MAX, Limits, Schema, prompt_field, schemas_for
from janus_demo.service.session_histories import Histories

UNREADABLE_IMAGE = "[an image that is no longer available]"  # what the model reads instead of a lost image
HEARTBEAT_S = 0.2  # how long a stream stays silent at most, so a cancelled request is closed promptly
CONVERSATION_TOO_LONG = "This conversation is too long; clear it and start again."
NO_UPSCALER = "This server has no upscaler (start it with --upscaler to offer Upscale 2x)."
IMAGES_ONLY = "This server only draws images (it was started with --images-only): chat is off."
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
class PreparedEdit:
    """A checked edit of a photo, or a drawing from its description (`crop` None): the request to draw (for an
    edit its `forced_mask` marks the photo's tokens to keep; they are encoded from `crop` when it runs, on the
    model's device), the crop the user is shown, and what the PNGs record about it."""

    request: ImageRequest
    crop: Image.Image | None
    metadata: tuple[tuple[str, str], ...]  # mode, kept rows or mask summary, source image size


@dataclass(frozen=True)
class PreparedVariations:
    """A checked `/variations` request: the description to ask for first, then the images' settings."""

    describe: PreparedChat
    crop: Image.Image
    settings: dict[str, Any]  # num_images, seed (concrete), guidance_scale, temperature, preview_every
    source_size: tuple[int, int]


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
    """A loaded model, its lock, the request limits and the schemas they give (their image fields follow the
    model's `image_shape`: its token grid and image size).

    On ZeroGPU (or with `gpu_budget`) every request must fit the longest GPU loan: the caps on answer length
    and images are lowered to fit the loaded model (their fields say so), a request that still does not fit is
    refused naming its field, and `chat_duration` / `images_duration` say how long a request borrows a GPU.
    """

    def __init__(
        self,
        loaded: LoadedJanus,
        limits: Limits | None = None,
        image_limits: intake.ImageLimits | None = None,
        client_limits: ClientLimits | None = None,
        gpu_budget: GpuBudget | None = None,
        upscaler: Upscaler | None = None,
    ) -> None:
        self.loaded = loaded
        self.image_shape = loaded.image_shape
        self.upscaler = upscaler
        self.gpu_budget = gpu_budget or (GpuBudget() if on_zero_gpu() else None)
        self.billions = loaded.language_billions
        self.limits = self._fit_budget(limits or Limits())
        self.image_limits = image_limits or intake.ImageLimits()
        self.schemas = schemas_for(self.limits, gpu=loaded.device.type == "cuda", shape=self.image_shape)
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
        values, conversation = self._checked_turn(message, history, *settings, **named)
        images, stand_ins = self._load_images(conversation)
        inputs = self._encode(conversation, images, stand_ins)
        options = ChatOptions(values["max_new_tokens"], values["temperature"], values["top_p"], self._seed(values))
        return PreparedChat(inputs, options, len(images), self._notes(conversation, stand_ins))

    def check_chat(self, message: object, history: object = None, *settings: object, **named: object) -> None:
        """`prepare_chat`'s cheap checks (a browser validator's): the values, the conversation's images counted
        and the new ones sniffed (not decoded), its length in characters; nothing is tokenized."""
        _, conversation = self._checked_turn(message, history, *settings, **named)
        paths = conversation.image_paths
        new = paths[len(paths) - conversation.new_images :]
        intake.check_images(new, self.image_limits, max_images=self.limits.max_images_per_conversation)
        self._check_length(conversation)

    def _checked_turn(
        self, message: object, history: object, *settings: object, **named: object
    ) -> tuple[dict[str, Any], Conversation]:
        """A turn's values checked, its conversation parsed, its images counted."""
        if not self.can_chat:
            raise InputError(IMAGES_ONLY)
        raw_text, image_paths = parse_message(message)
        values = self.schemas.chat.check(self.schemas.chat.bind(raw_text, *settings, **named))
        conversation = parse_conversation(history, values["message"], image_paths, self.limits.max_history_turns)
        if conversation.new_images == 0 and not values["message"].strip():
            raise InputError("Type a message or attach an image.")
        self._check_image_count(len(conversation.image_paths))
        return values, conversation

    def run_chat(
        self, prepared: PreparedChat, stop: threading.Event | None = None, deadline_s: float | None = None
    ) -> Iterator[ChatChunk | Heartbeat]:
        """Answer a prepared turn under the model lock, streaming ChatChunks that carry its notes; the answer
        stops ("stopped at the time limit") after `deadline_s` seconds (default `limits.request_deadline_s`)."""
        stop = stop or threading.Event()
        limit_s = deadline_s or self.limits.request_deadline_s
        options = replace(prepared.options, deadline=time.monotonic() + limit_s)
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
        return self._image_request(self.schemas.images.check(self.schemas.images.bind(*settings, **named)))

    def check_images(self, *settings: object, **named: object) -> None:
        """`prepare_images`' cheap checks (a browser validator's): the values and the GPU time; nothing tokenized."""
        self._check_drawing(self.schemas.images.check(self.schemas.images.bind(*settings, **named)))

    def _check_drawing(self, values: Mapping[str, Any]) -> None:
        """Checked drawing `values` against the GPU budget (the number of images a loan can draw)."""
        mode = values.get("preview_mode", "auto")
        previews = self._preview_count(self._preview_every(values["preview_every"]), mode)
        self._check_gpu_time(values["num_images"], image_loop.is_guided(values["guidance_scale"]), previews)

    def _image_request(self, values: dict[str, Any], forced_mask: Any = None) -> ImageRequest:
        """The model's request for checked `values` (seed drawn, previews widened, prompt tokenized), refused
        when it would not fit in the GPU's free memory."""
        values["seed"] = self._seed(values)
        values["preview_every"] = self._preview_every(values["preview_every"])
        prompt_ids = image_loop.encode_prompt(self.loaded, values["prompt"])
        request = ImageRequest(prompt_ids=prompt_ids, forced_mask=forced_mask, **values)
        problem = memory.image_memory_problem(
            self.loaded,
            request.num_images,
            request.prompt_ids.shape[1] + self._forced_prefix(forced_mask),  # fed with the prompt
            request.guided,
            memory.DECODE_CHUNK,
            reclaimable=cuda_graphs.held_bytes(self.loaded.model),  # kept CUDA graphs make way for a new request
        )
        if problem:
            raise InputError(problem)
        self._check_gpu_time(request.num_images, request.guided, self._previews(request))
        return request

    def run_images(
        self, request: ImageRequest, stop: threading.Event | None = None, deadline_s: float | None = None
    ) -> Iterator[ImageProgress | Heartbeat]:
        """Draw a prepared request under the model lock: progress, previews, then the final images (their
        PNG metadata holds the settings that reproduce them). It stops with BusyError after `deadline_s`
        seconds (default `limits.request_deadline_s`)."""
        return self._run_drawing(lambda: request, {}, stop, deadline_s)

    def _run_drawing(
        self,
        make_request: Callable[[], ImageRequest],
        metadata: Mapping[str, str],
        stop: threading.Event | None,
        deadline_s: float | None = None,
    ) -> Iterator[ImageProgress | Heartbeat]:
        """Under the model lock: `make_request()`, then its drawing streamed, with `metadata` in the PNGs too."""
        stop = stop or threading.Event()
        limit_s = deadline_s or self.limits.request_deadline_s

        def work(emit: Callable[[ImageProgress], None]) -> None:
            deadline = time.monotonic() + limit_s
            request = make_request()
            spaced = _spaced_previews(self.limits.preview_interval_s)
            for progress in map(spaced, self._draw(request, stop)):
                if progress.previews and len(progress.previews) > 1:  # one file per update, not one per image
                    progress.previews = [preview_sheet(progress.previews)]
                if progress.done:  # gradio copies a PIL image's text info into the PNG it serves
                    for image in progress.images:
                        image.info.update(image_metadata(request, self.loaded.model_id) | dict(metadata))
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

    # --- GPU time (ZeroGPU)

    @property
    def budget(self) -> GpuBudget:
        """The GPU-time figures: the ZeroGPU budget, or the defaults off ZeroGPU (where durations are unused)."""
        return self.gpu_budget or GpuBudget()

    def chat_duration(self, prepared: PreparedChat) -> int:
        """Seconds a prepared chat turn borrows a ZeroGPU GPU for (its own estimate plus the margin)."""
        return self.budget.chat_duration(self.billions, prepared.options.max_new_tokens, prepared.images)

    def images_duration(self, request: ImageRequest) -> int:
        """Seconds a prepared text-to-image request borrows a ZeroGPU GPU for."""
        return self.budget.image_duration(
            self.billions, request.num_images, request.guided, self._previews(request), steps=self.image_shape.tokens
        )

    def edit_duration(self, prepared: PreparedEdit) -> int:
        """Seconds a prepared edit borrows a ZeroGPU GPU for: its photo encoded, then drawn as a batch."""
        request, encode = prepared.request, self.budget.encode_s if prepared.crop is not None else 0.0
        drawing = self.budget.image_seconds(
            self.billions, request.num_images, request.guided, self._previews(request), steps=self.image_shape.tokens
        )
        return self.budget.duration(encode + drawing)

    def upscale_duration(self, prepared: PreparedUpscale) -> int:
        """Seconds a prepared upscale borrows a ZeroGPU GPU for (its work grows with the image's area)."""
        return self.budget.duration(self.budget.upscale_seconds(prepared.image.width, prepared.image.height))

    def run_deadline(self, duration_s: float) -> float:
        """Seconds a run may take inside a loan of `duration_s`: it stops itself before the loan ends."""
        return self.budget.run_deadline(duration_s)

    def _fit_budget(self, limits: Limits) -> Limits:
        """`limits` with the answer-length and image caps lowered to what fits the GPU budget, if there is one."""
        budget = self.gpu_budget
        if budget is None:
            return limits
        tokens = min(limits.max_new_tokens, budget.max_new_tokens(self.billions, limits.max_images_per_conversation))
        fit = budget.max_images(self.billions, guided=False, steps=self.image_shape.tokens)
        images = min(limits.max_num_images, max(1, fit))
        capped = tuple(
            name
            for name, lowered in (
                ("max_new_tokens", tokens < limits.max_new_tokens),
                ("num_images", images < limits.max_num_images),
            )
            if lowered
        )
        return replace(
            limits,
            max_new_tokens=tokens,
            max_num_images=images,
            capped=capped,
            cap_reason=budget.limit_text(),
            preview_interval_s=budget.preview_interval_s,
        )

    def _check_gpu_time(self, num_images: int, guided: bool, previews: int) -> None:
        """Refuse, naming the number of images, a request whose estimate does not fit the GPU budget."""
        budget = self.gpu_budget
        if budget is None:
            return
        steps = self.image_shape.tokens
        estimate = budget.image_seconds(self.billions, num_images, guided, previews, steps=steps)
        if budget.fits(estimate):
            return
        fit = budget.max_images(self.billions, guided, steps=steps)
        how = "with guidance" if guided else "without guidance"
        fewer = f"at most {fit} fit {how}" if fit else f"not even one fits {how}"
        instead = " (or set Guidance scale to 1)" if guided else ""
        raise FieldError(
            "num_images",
            f"{num_images} images {how} need about {estimate:.0f} s of GPU time, and {budget.limit_text()}: "
            f"{fewer}. Ask for fewer images{instead}.",
        )

    # --- edits of a photo: completion, region redraw, variations

    def prepare_complete(self, *settings: object, **named: object) -> PreparedEdit:
        """Check a `/complete_image` request and crop its photo (CPU); the first `keep_rows` rows are kept."""
        values = self.schemas.complete.check(self.schemas.complete.bind(*settings, **named))
        image = self._load_field(values, "image")
        crop, _ = intake.square_crop(image, self.image_shape)
        keep = intake.kept_rows_mask(values["keep_rows"], self.image_shape)
        request = self._image_request(_drawing_values(values), forced_mask=keep)
        about = {"mode": "complete", "keep_rows": str(values["keep_rows"]), "source_size": _size(image)}
        return PreparedEdit(request, crop, tuple(about.items()))

    def prepare_redraw(self, *settings: object, **named: object) -> PreparedEdit:
        """Check a `/redraw_region` request (CPU): its photo cropped, its mask the photo's size and not empty,
        reduced to the token grid; the tokens it does not touch are kept."""
        values = self.schemas.redraw.check(self.schemas.redraw.bind(*settings, **named))
        image = self._load_field(values, "image")
        mask = self._load_field(values, "mask", background=intake.BLACK)
        intake.check_mask(mask, image.size)
        crop, box = intake.square_crop(image, self.image_shape)
        redraw = intake.mask_grid(mask, box, self.image_shape)
        intake.check_mask(mask, image.size, redraw)
        request = self._image_request(_drawing_values(values), forced_mask=~redraw)
        about = {"mode": "redraw", "mask": intake.mask_summary(redraw, self.image_shape), "source_size": _size(image)}
        return PreparedEdit(request, crop, tuple(about.items()))

    def check_complete(self, *settings: object, **named: object) -> None:
        """`prepare_complete`'s cheap checks (a browser validator's): the values, the photo sniffed, the GPU time."""
        values = self.schemas.complete.check(self.schemas.complete.bind(*settings, **named))
        self._check_field(values, "image")
        self._check_drawing(values)

    def check_redraw(self, *settings: object, **named: object) -> None:
        """`prepare_redraw`'s cheap checks: the values, the photo and the mask sniffed, the GPU time (the mask's
        size and paint are checked when it is read)."""
        values = self.schemas.redraw.check(self.schemas.redraw.bind(*settings, **named))
        self._check_field(values, "image")
        self._check_field(values, "mask")
        self._check_drawing(values)

    def check_variations(self, *settings: object, **named: object) -> None:
        """`prepare_variations`' cheap checks: the values and the photo sniffed."""
        if not self.can_chat:
            raise InputError(NO_DESCRIPTIONS)
        values = self.schemas.variations.check(self.schemas.variations.bind(*settings, **named))
        self._check_field(values, "image")
        self._check_drawing(values)

    def prepare_variations(self, *settings: object, **named: object) -> PreparedVariations:
        """Check a `/variations` request (CPU): the photo cropped, the question that asks for its description
        tokenized (run it as a chat turn: `run_chat(prepared.describe)`); the images are then prepared from the
        description (`prepare_described`)."""
        if not self.can_chat:
            raise InputError(NO_DESCRIPTIONS)
        values = self.schemas.variations.check(self.schemas.variations.bind(*settings, **named))
        image = self._load_field(values, "image")
        crop, _ = intake.square_crop(image, self.image_shape)
        values["seed"] = self._seed(values)
        question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DESCRIBE_INSTRUCTION}]}]
        inputs = chat.encode_conversation(self.loaded, question, [crop])
        options = ChatOptions(
            DESCRIBE_TOKENS, DESCRIBE_TEMPERATURE, 0.95, values["seed"], min_new_tokens=DESCRIBE_MIN_TOKENS
        )
        problem = memory.image_memory_problem(  # the images' request, with the longest description
            self.loaded,
            values["num_images"],
            DESCRIBE_TOKENS + TEMPLATE_TOKENS,
            image_loop.is_guided(values["guidance_scale"]),
            memory.DECODE_CHUNK,
        )
        if problem:
            raise InputError(problem)
        settings = {
            name: values[name] for name in ("num_images", "seed", "guidance_scale", "temperature", "preview_every")
        }
        return PreparedVariations(PreparedChat(inputs, options, 1), crop, settings, image.size)

    def prepare_described(
        self, description: object, *settings: object, source_size: tuple[int, int] | None = None, **named: object
    ) -> PreparedEdit:
        """Images drawn from a description (the user's edit of the model's): `settings` are `/variations`' after
        the image (num_images, seed, guidance_scale, temperature, preview_every), checked here."""
        return self.described(description, self._described_settings(*settings, **named), source_size)

    def check_described(self, description: object, *settings: object, **named: object) -> None:
        """`prepare_described`'s checks of the values (CPU, nothing tokenized): a browser validator's."""
        self._description(description)
        self._described_settings(*settings, **named)

    def described(
        self, description: object, settings: Mapping[str, Any], source_size: tuple[int, int] | None = None
    ) -> PreparedEdit:
        """Images drawn from a description with settings already checked (`PreparedVariations.settings`)."""
        values = dict(settings) | {"prompt": self._description(description)}
        about = {"mode": "variations"} | ({"source_size": _size_of(source_size)} if source_size else {})
        return PreparedEdit(self._image_request(_drawing_values(values)), None, tuple(about.items()))

    def _described_settings(self, *settings: object, **named: object) -> dict[str, Any]:
        schema = self.schemas.variations
        schema = Schema(schema.endpoint, tuple(field for field in schema if field.name != "image"))
        return schema.check(schema.bind(*settings, **named))

    def _description(self, description: object) -> str:
        """The description as a prompt (one line, within the prompt's length), or FieldError "description"."""
        field = prompt_field(self.limits)
        text = description if not isinstance(description, str) else clean_description(description, field.max_chars)
        try:
            return field.check(text)
        except FieldError as error:
            raise FieldError("description", f"The description is empty or not text: {error}") from None

    def run_edit(
        self, prepared: PreparedEdit, stop: threading.Event | None = None, deadline_s: float | None = None
    ) -> Iterator[ImageProgress | Heartbeat]:
        """Draw a prepared edit under the model lock: the crop's tokens are encoded first (on the model's device)
        and forced where the request keeps them; then as `run_images`."""

        def request() -> ImageRequest:
            if prepared.crop is None:
                return prepared.request
            return replace(prepared.request, forced_tokens=self._encode_source(prepared.crop))

        return self._run_drawing(request, dict(prepared.metadata), stop, deadline_s)

    def _check_field(self, values: Mapping[str, Any], name: str) -> None:
        """The image file of field `name` sniffed, not decoded; its problems are FieldErrors naming the field."""
        try:
            intake.check_image(values[name], self.image_limits)
        except InputError as error:
            raise FieldError(name, f"{self.schemas.redraw[name].label}: {error}") from None

    def _load_field(self, values: Mapping[str, Any], name: str, **options: Any) -> Image.Image:
        """The image file of field `name`, loaded safely; its problems are FieldErrors naming the field."""
        try:
            return intake.load_image(values[name], self.image_limits, **options)
        except InputError as error:
            label = self.schemas.redraw[name].label
            raise FieldError(name, f"{label}: {error}") from None

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

    def run_upscale(
        self, prepared: PreparedUpscale, stop: threading.Event | None = None, deadline_s: float | None = None
    ) -> Iterator[Any]:
        """Enlarge a prepared image under the model lock: Heartbeats while waiting (at most `deadline_s`, default
        `limits.request_deadline_s`), then one `Upscaled` (nothing if stopped)."""
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
            note = (  # the checkpoint by its file name only: a server path stays on the server
                f"{up.scale}x from {prepared.image.width}x{prepared.image.height} "
                f"with {Path(up.source.rpartition(':')[2]).name}"
            )
            image.info.update(prepared.metadata | {"upscaled": note})
            emit(Upscaled(image, time.perf_counter() - start))

        return self._stream(work, stop, "upscale", deadline_s)

    def upscale(self, *settings: object, **named: Any) -> Iterator[Any]:
        """`prepare_upscale` then `run_upscale` (`stop=` an Event to stop it from outside)."""
        stop = named.pop("stop", None)
        return self.run_upscale(self.prepare_upscale(*settings, **named), stop)

    # --- the model work (runs under the lock; tests replace these two with fakes)

    def _answer(self, inputs: dict[str, Any], options: ChatOptions, stop: threading.Event, emit: Callable) -> None:
        chat.generate_answer(self.loaded, inputs, options, stop, emit)

    def _draw(self, request: ImageRequest, stop: threading.Event) -> Iterator[ImageProgress]:
        return image_loop.iter_image_generation(self.loaded, request, stop)

    def _encode_source(self, crop: Image.Image) -> Any:
        return image_loop.encode_image(self.loaded, crop)

    # --- helpers

    def _stream(
        self,
        work: Callable[[Callable[[Any], None]], None],
        stop: threading.Event,
        kind: str,
        deadline_s: float | None = None,
    ) -> Iterator[Any]:
        """Run `work` under the model lock: wait at most the deadline for it, with heartbeats (place in line)."""
        limit = deadline_s or self.limits.request_deadline_s
        return self.lock.stream(work, stop, wait_timeout=limit, heartbeat=HEARTBEAT_S, kind=kind)

    @staticmethod
    def _seed(values: Mapping[str, Any]) -> int:
        """The checked seed, or a fresh random one for -1."""
        seed = values["seed"]
        return secrets.randbelow(SEED_MAX + 1) if seed == RANDOM_SEED else seed

    def _preview_every(self, every: int) -> int:
        """`every`, widened so that a request streams at most `limits.max_preview_updates` previews."""
        fewest = math.ceil(self.image_shape.tokens / self.limits.max_preview_updates)
        return every and max(every, fewest)

    def _previews(self, request: ImageRequest) -> int:
        """How many previews a prepared request streams."""
        return self._preview_count(request.preview_every, request.preview_mode)

    def _preview_count(self, every: int, mode: str) -> int:
        """How many previews a drawing streams with one every `every` tokens (widened) in `mode`."""
        return 0 if every < 1 or mode == "off" else (self.image_shape.tokens - 1) // every

    def _forced_prefix(self, forced_mask: Any) -> int:
        """How many leading tokens `forced_mask` forces (they go into the model with the prompt)."""
        return image_loop.forced_prefix(forced_mask, self.image_shape.tokens)

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
        self._check_length(conversation)
        inputs = chat.encode_conversation(self.loaded, conversation.janus_messages(stand_ins), images)
        if chat.prompt_length(inputs) > limit:
            raise InputError(
                f"{CONVERSATION_TOO_LONG} (It is {chat.prompt_length(inputs):,} tokens; the limit is {limit:,}.)"
            )
        return inputs

    def _check_length(self, conversation: Conversation) -> None:
        """Refuse a conversation too long to tokenize, by its characters (before any tokenizing)."""
        if conversation.text_length() > self.limits.max_context_tokens * MAX_CHARS_PER_TOKEN:
            raise InputError(f"{CONVERSATION_TOO_LONG} (It has {conversation.text_length():,} characters.)")

    def _notes(self, conversation: Conversation, stand_ins: dict[int, str]) -> tuple[str, ...]:
        notes = []
        if conversation.left_out_turns:
            notes.append(f"only the last {self.limits.max_history_turns} turns of this conversation were used")
        if stand_ins:
            notes.append(f"{len(stand_ins)} earlier image(s) could not be read and were left out")
        if conversation.unreadable_entries:
            notes.append(f"{conversation.unreadable_entries} unreadable earlier message(s) were left out")
        return tuple(notes)


def _spaced_previews(interval_s: float) -> Callable[[ImageProgress], ImageProgress]:
    """Drop the previews of a progress that comes sooner than `interval_s` after the last preview kept
    (`Limits.preview_interval_s`)."""
    last = -math.inf

    def spaced(progress: ImageProgress) -> ImageProgress:
        nonlocal last
        if progress.previews and interval_s:
            if time.monotonic() - last < interval_s:
                progress.previews = None
            else:
                last = time.monotonic()
        return progress

    return spaced


def clean_description(text: str, max_chars: int) -> str:
    """The model's description as a prompt: one line, no surrounding quotes, at most `max_chars`."""
    line = " ".join(text.split()).strip().strip('"').strip()
    return line[:max_chars].rstrip()


def _drawing_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """An edit's checked values as a text-to-image request's: full-distribution sampling, previews by device."""
    names = ("prompt", "seed", "guidance_scale", "temperature", "num_images", "preview_every")
    return {name: values[name] for name in names} | {"top_p": 1.0, "preview_mode": "auto"}


def _size(image: Image.Image) -> str:
    return _size_of(image.size)


def _size_of(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _with_note(stream: Iterator[ChatChunk | Heartbeat], note: str) -> Iterator[ChatChunk | Heartbeat]:
    """The chunks of `stream` carrying `note`; closing this closes `stream` (which stops the generation)."""
    with contextlib.closing(stream):
        for chunk in stream:
            yield chunk if isinstance(chunk, Heartbeat) else replace(chunk, note=note)
