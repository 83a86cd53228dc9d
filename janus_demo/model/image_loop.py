"""Text-to-image with Janus-Pro, one image token at a time, with progress, previews and Stop.

    ids = encode_prompt(loaded, "A red fox in the snow")
    request = ImageRequest("A red fox in the snow", ids, seed=42, guidance_scale=5.0, temperature=1.0,
                           top_p=1.0, num_images=2, preview_every=48, preview_mode="auto")
    for progress in iter_image_generation(loaded, request, stop=threading.Event()):
        if progress.previews: show(progress.previews)       # every `preview_every` steps
        if progress.done: save(progress.images)             # PIL RGB, loaded.image_shape.size

Completion and region redraw force tokens: `ImageRequest(..., forced_tokens=encode_image(loaded, crop),
forced_mask=mask)` takes the source image's token wherever `mask` (one boolean per token of the grid,
`loaded.image_shape`, in raster order: 576 for Janus-Pro) is True, in the guided and unguided rows alike, and
samples the rest; forced tokens fill the grid (and the previews) as the loop reaches them. The leading forced
tokens (a completion's kept rows) go in with the prompt, in one forward, so the first update already shows them.
The forced tokens after the first sampled one are scored as they are fed (`FitScores`): the final update's `fit`
says, per image, how likely the model finds the kept tokens that follow what it drew.

`loaded` comes from `janus_demo.model.loading.load_janus`. The loop is our own, written over the model's
public pieces, because `model.generate(generation_mode="image")` has no streamer, no Stop, uses the
global RNG and crashes without guidance. For the same seed it yields the same tokens as `generate`
(tested in fp32: guidance and softmax run in fp32 here, in the model's dtype there). Requests arrive
checked (`janus_demo.service` builds them); nothing here checks user input. On CUDA the decode step is
replayed from a CUDA graph (`janus_demo.model.cuda_graphs`; `JANUS_CUDA_GRAPHS=0` turns it off).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import StaticCache

from janus_demo.model import cuda_graphs, internals, memory, previews
from janus_demo.model.chat_template import literal_text
from janus_demo.model.image_shape import ImageShape
from janus_demo.model.loading import LoadedJanus
from janus_demo.model.memory import DECODE_CHUNK


@dataclass(frozen=True, eq=False)
class ImageRequest:
    """What to draw and how to sample it; the service layer builds it from checked input.

    guidance_scale 1 switches classifier-free guidance off; temperature 0 is greedy; top_p 1 samples the
    full distribution; preview_every 0 means no previews; preview_mode is one of previews.PREVIEW_MODES.
    """

    prompt: str
    prompt_ids: torch.Tensor  # (1, L): `encode_prompt(loaded, prompt)`
    seed: int
    guidance_scale: float
    temperature: float
    top_p: float
    num_images: int
    preview_every: int
    preview_mode: str
    forced_tokens: torch.Tensor | None = None  # (tokens,) codebook ids: `encode_image(loaded, crop)`
    forced_mask: torch.Tensor | None = None  # (tokens,) bool: the positions that take `forced_tokens`

    @property
    def guided(self) -> bool:
        return is_guided(self.guidance_scale)


def is_guided(guidance_scale: float) -> bool:
    """Classifier-free guidance runs (an unconditioned row beside each image) when its scale is above 1."""
    return guidance_scale > 1.0


@dataclass
class ImageProgress:
    """Where a generation stands after `step` of `total` steps (one token of every image per step)."""

    step: int
    total: int
    elapsed: float  # seconds since the request started
    steps_per_second: float  # each step adds one token to every image of the batch
    previews: list[Image.Image] | None = None
    images: list[Image.Image] | None = None
    fit: list[float] | None = None  # per final image: `FitScores.scores()` (None when no forced token follows)
    order: list[int] | None = None  # each final image's place in the batch as drawn (0-based), once reordered
    decoded: list[Image.Image] | None = None  # while decoding: the images decoded since the last update, in order

    @property
    def done(self) -> bool:
        """True on the last update, the one that carries the final images."""
        return self.images is not None

    @property
    def decoding(self) -> bool:
        """True after the last step until the final update: every token is drawn, the images are being decoded."""
        return self.step >= self.total and not self.done

    @property
    def eta(self) -> float | None:
        """Seconds of token generation left at the current rate (None before the first step)."""
        if self.done:
            return 0.0
        if self.steps_per_second <= 0:
            return None
        return (self.total - self.step) / self.steps_per_second


# --- prompt and special tokens -------------------------------------------------------------


def pad_id(loaded: LoadedJanus) -> int:
    """The id unconditional rows are padded with: the generation config's, as `generate` reads it, else the
    tokenizer's."""
    pad = loaded.model.generation_config.pad_token_id
    return pad if pad is not None else loaded.processor.tokenizer.pad_token_id


def encode_prompt(loaded: LoadedJanus, prompt: str) -> torch.Tensor:
    """`<BOS><|User|>: prompt\\n\\n<|Assistant|>:<begin_of_image>` as a (1, L) tensor, as Janus builds it."""
    literal = literal_text(prompt, loaded.processor.tokenizer)  # typed special tokens stay text
    messages = [{"role": "user", "content": [{"type": "text", "text": literal}]}]
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = loaded.processor(text=text, generation_mode="image", return_tensors="pt")
    return inputs["input_ids"]


def guidance_input_ids(input_ids: torch.Tensor, num_images: int, guided: bool, pad: int) -> torch.Tensor:
    """Rows [conditional x n; unconditional x n]. An unconditional row is the prompt with positions 1 to L-2
    padded, keeping the first token (BOS) and the last (<begin_of_image>), as DeepSeek's
    `generation_inference.py` builds it (`tokens[i, 1:-1] = pad_id`)."""
    cond = input_ids.repeat(num_images, 1)
    if not guided:
        return cond
    uncond = cond.clone()
    uncond[:, 1:-1] = pad
    return torch.cat([cond, uncond])


@torch.inference_mode()
def encode_image(loaded: LoadedJanus, image: Image.Image) -> torch.Tensor:
    """An RGB image of `loaded.image_shape.size` as its codebook ids (raster order; 576 for Janus-Pro's 384x384).

    The VQ encoder's input is built here (`vq_pixels`), not by the processor: the hub checkpoints' processor
    config (mean = std = 0.5) happens to give the same range, but one without those values would normalise with
    CLIP's defaults and feed the encoder the wrong range silently.
    """
    return internals.encode_image_tokens(loaded.model, vq_pixels(image, loaded.image_shape))[0].cpu()


def vq_pixels(image: Image.Image, shape: ImageShape) -> torch.Tensor:
    """The VQ encoder's input: `image` in RGB at the model's size (`shape.size`, resized bicubic if it is not),
    as (1, 3, height, width) floats x / 127.5 - 1, in [-1, 1]."""
    image = image.convert("RGB")
    if image.size != shape.size:
        image = image.resize(shape.size, Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1)
    return pixels.permute(2, 0, 1).unsqueeze(0)


def forced_prefix(forced_mask: torch.Tensor | None, total: int) -> int:
    """How many of the first tokens `forced_mask` forces (fed with the prompt in one forward), at most
    `total - 1`."""
    if forced_mask is None:
        return 0
    mask = forced_mask.bool()
    unforced = (~mask).nonzero()
    leading = int(unforced[0]) if unforced.numel() else mask.numel()
    return min(leading, total - 1)


# --- sampling --------------------------------------------------------------------------------


def guided_logits(scores: torch.Tensor, num_images: int, guidance_scale: float) -> torch.Tensor:
    """uncond + scale * (cond - uncond); the scores are the whole batch when guidance is off."""
    if scores.shape[0] == num_images:
        return scores
    cond, uncond = scores.split(num_images)
    return uncond + (cond - uncond) * guidance_scale


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches `top_p` (as transformers' TopPLogitsWarper)."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def pick_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Greedy at temperature 0, else sample softmax(logits / T), optionally within top_p."""
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    logits = logits / temperature
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


class FitScores:
    """Per image, the log-probabilities of the forced tokens that come after the first sampled one, summed as
    the loop feeds them: how well the drawn tokens fit the kept ones that follow them. (In raster order a drawn
    region cannot see the kept tokens below and to its right; their scores, which the loop computes anyway, can.)

    The distribution is the guided one the loop samples from (`guided_logits`), at temperature 1 and without
    top-p: the model's own belief, defined for greedy requests too (temperature 0 has no distribution), and
    never minus infinity (top-p would give a kept token outside the nucleus no probability at all).
    """

    def __init__(self, forced_at: list[bool], num_images: int, device: torch.device) -> None:
        self.first_drawn = forced_at.index(False) if False in forced_at else len(forced_at)
        self.total = torch.zeros(num_images, dtype=torch.float32, device=device)
        self.count = 0

    def add(self, step: int, logits: torch.Tensor, token: torch.Tensor) -> None:
        """Score the forced `token` at `step` under the guided `logits` (images, codebook), if a drawn token
        came before it."""
        if step > self.first_drawn:
            self.total += torch.log_softmax(logits.float(), dim=-1)[:, token]
            self.count += 1

    def scores(self) -> list[float] | None:
        """Per image, the mean log-probability of the forced tokens scored; None when none were."""
        return (self.total / self.count).tolist() if self.count else None


# --- the token loop ----------------------------------------------------------------------------


class ImageTokenLoop:
    """The state of one request's loop, one step per token of the grid: KV cache, next input embeddings, sampled
    tokens.

    Each method runs under `torch.inference_mode()` on its own, so no grad-mode state leaks across
    the `yield`s of the generators built on it.
    """

    def __init__(self, loaded: LoadedJanus, request: ImageRequest) -> None:
        self.model = loaded.model
        self.request = request
        self.device = loaded.device
        self.guided = request.guided
        self.total = loaded.image_shape.tokens
        self.step = 0
        self.generator = torch.Generator(device=self.device).manual_seed(int(request.seed))
        self.forced = None if request.forced_tokens is None else request.forced_tokens.to(self.device)
        mask = request.forced_mask
        self.forced_at = [False] * self.total if mask is None or self.forced is None else mask.bool().tolist()
        self.prefix = 0 if self.forced is None else forced_prefix(mask, self.total)
        self.fit = FitScores(self.forced_at, request.num_images, self.device)
        self._prefill_inputs(loaded)

    @torch.inference_mode()
    def _prefill_inputs(self, loaded: LoadedJanus) -> None:
        rows = guidance_input_ids(self.request.prompt_ids, self.request.num_images, self.guided, pad_id(loaded))
        rows = rows.to(self.device)
        batch, prompt_len = rows.shape
        cache_len = memory.cache_length(prompt_len, self.total)  # bucketed, so requests can share a CUDA graph
        self.fast = cuda_graphs.maybe_graphed_decode(
            self.model, self._forward, (batch, cache_len), lambda: self._new_cache(cache_len), self.device,
            needed_bytes=self._needed_bytes(loaded, prompt_len + self.prefix),
        )  # fmt: skip
        self.cache = self.fast.cache if self.fast else self._new_cache(cache_len)
        self.inputs_embeds = self.model.get_input_embeddings()(rows)
        if self.prefix:  # the leading forced tokens go in with the prompt, in one forward
            kept = self.forced[: self.prefix].expand(batch, self.prefix)
            kept = self.model.prepare_embeddings_for_image_generation(kept).to(self.inputs_embeds.dtype)
            self.inputs_embeds = torch.cat([self.inputs_embeds, kept], dim=1)
        self.attention_mask = torch.ones((batch, cache_len), dtype=torch.long, device=self.device)
        self.length = prompt_len + self.prefix
        self.tokens = torch.zeros((self.request.num_images, self.total), dtype=torch.long, device=self.device)

    def _new_cache(self, cache_len: int) -> StaticCache:
        return StaticCache(config=self.model.config.get_text_config(decoder=True), max_cache_len=cache_len)

    def _needed_bytes(self, loaded: LoadedJanus, prompt_len: int) -> int:
        shape = memory.memory_shape(self.model, loaded.dtype)
        estimate = memory.estimate_image_memory(shape, prompt_len, self.guided, DECODE_CHUNK)
        return estimate.total(self.request.num_images)

    def _forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """language_model + generation_head for the pending embeddings: float scores (rows, codebook)."""
        outputs = internals.language_model(self.model)(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=self.cache,
            use_cache=True,
        )
        return internals.generation_head(self.model)(outputs.last_hidden_state[:, -1, :]).float()

    def _eager_scores(self) -> torch.Tensor:
        return self._forward(self.inputs_embeds, self.attention_mask[:, : self.length])

    @torch.inference_mode()
    def advance(self) -> torch.Tensor:
        """Run one step: forward the pending embeddings, pick one token per image, return the token grid."""
        if self.step == 0 or self.fast is None:  # the prompt's prefill is always eager
            scores = self._eager_scores()
        else:
            scores = self.fast.scores(self.inputs_embeds, self.length, self._eager_scores)
        if self.step == 0 and self.prefix:  # the prefill took the forced first tokens too
            self.tokens[:, : self.prefix] = self.forced[: self.prefix]
            self.step = self.prefix
        logits = guided_logits(scores, self.request.num_images, self.request.guidance_scale)
        if self.forced_at[self.step]:  # the source image's token, for every image, scored
            next_tokens = self.forced[self.step].expand(self.request.num_images)
            self.fit.add(self.step, logits, self.forced[self.step])
        else:
            next_tokens = pick_tokens(logits, self.request.temperature, self.request.top_p, self.generator)
        self.tokens[:, self.step] = next_tokens
        feed = torch.cat([next_tokens, next_tokens]) if self.guided else next_tokens
        self.inputs_embeds = self.model.prepare_embeddings_for_image_generation(feed.unsqueeze(-1))
        self.length += 1
        self.step += 1
        return self.tokens


def iter_image_tokens(
    loaded: LoadedJanus, request: ImageRequest, stop: threading.Event | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (steps_done, tokens) after every step; `tokens` is the (num_images, grid tokens) grid, filled up to
    steps_done.

    The grid is the loop's own buffer: copy it to keep it. Returns early, between steps, once `stop` is set.
    """
    yield from _steps(ImageTokenLoop(loaded, request), stop)


def _steps(loop: ImageTokenLoop, stop: threading.Event | None) -> Iterator[tuple[int, torch.Tensor]]:
    while loop.step < loop.total:
        if stop is not None and stop.is_set():
            return
        tokens = loop.advance()
        yield loop.step, tokens


# --- decoding --------------------------------------------------------------------------------


def pixels_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Channels-last (B, H, W, 3) decoder output to PIL RGB images, as transformers' postprocess converts it."""
    array = previews.to_uint8(pixels).cpu().numpy()
    return [Image.fromarray(image, mode="RGB") for image in array]


@torch.inference_mode()
def decode_images(loaded: LoadedJanus, tokens: torch.Tensor) -> list[Image.Image]:
    """Decode (B, grid tokens) codebook ids to PIL RGB images (`loaded.image_shape.size`) with the VQ decoder."""
    images: list[Image.Image] = []
    for chunk in tokens.split(DECODE_CHUNK):
        images.extend(pixels_to_pil(loaded.model.decode_image_tokens(chunk)))
    return images


def decoding_updates(
    loaded: LoadedJanus, tokens: torch.Tensor, stop: threading.Event | None, start: float, **final: object
) -> Iterator[ImageProgress]:
    """After the last step: the images of `tokens` (B, grid tokens) decoded DECODE_CHUNK at a time (as
    `decode_images` does, so the pixels are the same), an update with each group (`decoded`) but the last, then
    the final update with all of them (and `final`'s fields). Returns between two groups once `stop` is set: the
    caller has the images decoded so far. `start`: the request's perf_counter."""
    total, images = tokens.shape[1], []
    for group in tokens.split(DECODE_CHUNK):  # each group reported, and Stop heard between them
        if stop is not None and stop.is_set():
            return
        images.extend(decode_images(loaded, group))
        elapsed = time.perf_counter() - start
        rate = total / max(elapsed, 1e-9)
        if len(images) < tokens.shape[0]:
            yield ImageProgress(total, total, elapsed, rate, decoded=images[-group.shape[0] :])
    yield ImageProgress(total, total, elapsed, rate, images=images, **final)


# --- the public generator --------------------------------------------------------------------


def iter_image_generation(
    loaded: LoadedJanus, request: ImageRequest, stop: threading.Event | None = None
) -> Iterator[ImageProgress]:
    """Yield an ImageProgress after every step, previews when due, then one per group of images decoded
    (`decoded`), and finally one with the images.

    When `stop` is set the generator returns before the next step or group, without the final images.
    """
    start = time.perf_counter()
    mode = previews.resolve_mode(request.preview_mode, loaded.device)
    total = loaded.image_shape.tokens
    loop = ImageTokenLoop(loaded, request)
    for step, tokens in _steps(loop, stop):
        elapsed = time.perf_counter() - start
        shots = None
        if _preview_due(step, total, request.preview_every, mode):
            shots = previews.render_previews(loaded.model, tokens, step, mode)
        yield ImageProgress(step, total, elapsed, step / max(elapsed, 1e-9), previews=shots)
    if stop is not None and stop.is_set():
        return
    yield from decoding_updates(loaded, tokens, stop, start, fit=loop.fit.scores())


def _preview_due(step: int, total: int, every: int, mode: str) -> bool:
    """Previews every `every` steps, never on the last step (the final images come then)."""
    return mode != "off" and every > 0 and step % every == 0 and step < total
