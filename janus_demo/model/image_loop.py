"""Text-to-image with Janus-Pro, one image token at a time, with progress, previews and Stop.

    request = ImageRequest(prompt="A red fox in the snow", seed=42, num_images=2)
    for progress in iter_image_generation(loaded, request, stop=threading.Event()):
        if progress.previews: show(progress.previews)       # every `preview_every` steps
        if progress.done: save(progress.images)             # PIL RGB, 384x384

`loaded` comes from `janus_demo.model.loading.load_janus`. The loop is our own, written over the model's
public pieces, because `model.generate(generation_mode="image")` has no streamer, no Stop, uses the
global RNG and crashes without guidance. For the same seed it yields the same tokens as `generate`
(tested). Invalid requests raise `InputError` naming the field, and so does a CUDA request too large
for the free GPU memory (`janus_demo.model.memory`). On CUDA the decode step is replayed from a CUDA graph
(`janus_demo.model.cuda_graphs`; `JANUS_CUDA_GRAPHS=0` turns it off). No UI code lives here.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import StaticCache

from janus_demo.model import cuda_graphs, memory, previews
from janus_demo.model.loading import LoadedJanus
from janus_demo.service import validation
from janus_demo.service.errors import InputError

MAX_SEED = 2**32 - 1
MAX_PREVIEW_EVERY = 576  # one preview per image at most
MIN_GUIDANCE, MAX_GUIDANCE = 1.0, 20.0  # 1.0 switches classifier-free guidance off
MAX_TEMPERATURE = 2.0  # 0 picks the most likely token (greedy)
DECODE_CHUNK = 4  # images decoded at once by the VQ decoder (bounds its activation memory)


@dataclass
class ImageRequest:
    """What to draw and how to sample it (defaults are DeepSeek's: guidance 5, temperature 1, full distribution)."""

    prompt: str
    seed: int
    guidance_scale: float = 5.0
    temperature: float = 1.0
    top_p: float = 1.0
    num_images: int = 1
    preview_every: int = 48  # steps between previews; 0 = no previews
    preview_mode: str = "auto"  # "auto" | "decode" | "palette" | "off"


@dataclass
class ImageProgress:
    """Where a generation stands after `step` of `total` steps (one token of every image per step)."""

    step: int
    total: int
    elapsed: float  # seconds since the request started
    tokens_per_second: float  # steps per second: each image of the batch gains one token per step
    previews: list[Image.Image] | None = None
    images: list[Image.Image] | None = None

    @property
    def done(self) -> bool:
        """True on the last update, the one that carries the final images."""
        return self.images is not None

    @property
    def eta(self) -> float | None:
        """Seconds of token generation left at the current rate (None before the first step)."""
        if self.done:
            return 0.0
        if self.tokens_per_second <= 0:
            return None
        return (self.total - self.step) / self.tokens_per_second


# --- validation ----------------------------------------------------------------------------


FIELD_LABELS = {  # request field -> the name the UI shows, used in error messages
    "prompt": "Prompt",
    "seed": "Seed",
    "num_images": "Number of images",
    "guidance_scale": "Guidance scale",
    "temperature": "Temperature",
    "top_p": "Top-p",
    "preview_every": "Preview every",
    "preview_mode": "Preview mode",
}


def validate_request(request: ImageRequest, limits: validation.Limits | None = None) -> None:
    """Raise InputError, naming the field as the UI labels it, when a request is out of range."""
    limits = limits or validation.Limits()
    label = FIELD_LABELS
    validation.check_text(request.prompt, label["prompt"], limits.max_prompt_chars)
    validation.check_number(request.seed, label["seed"], 0, MAX_SEED, integer=True)
    validation.check_number(request.num_images, label["num_images"], 1, limits.max_num_images, integer=True)
    validation.check_number(request.guidance_scale, label["guidance_scale"], MIN_GUIDANCE, MAX_GUIDANCE)
    validation.check_number(request.temperature, label["temperature"], 0.0, MAX_TEMPERATURE)
    validation.check_number(request.top_p, label["top_p"], 0.0, 1.0, exclusive_lo=True)
    validation.check_number(request.preview_every, label["preview_every"], 0, MAX_PREVIEW_EVERY, integer=True)
    if request.preview_mode not in previews.PREVIEW_MODES:
        modes = ", ".join(previews.PREVIEW_MODES)
        raise InputError(f"{label['preview_mode']} must be one of {modes} (got {request.preview_mode!r}).")


def request_metadata(request: ImageRequest, model_id: str) -> dict[str, str]:
    """The settings that reproduce an image, for PNG text chunks."""
    return {
        "prompt": request.prompt,
        "seed": str(request.seed),
        "guidance_scale": str(request.guidance_scale),
        "temperature": str(request.temperature),
        "top_p": str(request.top_p),
        "model": model_id,
    }


# --- prompt and special tokens -------------------------------------------------------------


@dataclass(frozen=True)
class SpecialIds:
    """Token ids that classifier-free guidance keeps (BOS, <begin_of_image>) or pads with."""

    bos: int
    boi: int
    pad: int


def special_ids(loaded: LoadedJanus) -> SpecialIds:
    """Read the ids from the generation config as `generate` does, else from the tokenizer."""
    gen = loaded.model.generation_config
    tokenizer = loaded.processor.tokenizer
    boi = (gen.generation_kwargs or {}).get("boi_token_id")
    return SpecialIds(
        bos=gen.bos_token_id if gen.bos_token_id is not None else tokenizer.bos_token_id,
        boi=boi if boi is not None else tokenizer.convert_tokens_to_ids(tokenizer.boi_token),
        pad=gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id,
    )


def prompt_input_ids(loaded: LoadedJanus, prompt: str) -> torch.Tensor:
    """`<BOS><|User|>: prompt\\n\\n<|Assistant|>:<begin_of_image>` as a (1, L) tensor, as Janus builds it."""
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = loaded.processor(text=text, generation_mode="image", return_tensors="pt")
    return inputs["input_ids"]


def guidance_input_ids(input_ids: torch.Tensor, num_images: int, guided: bool, ids: SpecialIds) -> torch.Tensor:
    """Rows [conditional x n; unconditional x n]; unconditional rows keep only BOS and BOI, pad the rest."""
    cond = input_ids.repeat(num_images, 1)
    if not guided:
        return cond
    uncond = cond.clone()
    uncond.masked_fill_((uncond != ids.bos) & (uncond != ids.boi), ids.pad)
    return torch.cat([cond, uncond])


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


# --- the token loop ----------------------------------------------------------------------------


class ImageTokenLoop:
    """The state of one request's 576-step loop: KV cache, next input embeddings, sampled tokens.

    Each method runs under `torch.inference_mode()` on its own, so no grad-mode state leaks across
    the `yield`s of the generators built on it.
    """

    def __init__(self, loaded: LoadedJanus, request: ImageRequest) -> None:
        self.model = loaded.model
        self.request = request
        self.device = loaded.device
        self.guided = request.guidance_scale > 1.0
        self.total = self.model.model.vision_model.config.num_image_tokens
        self.step = 0
        self.generator = torch.Generator(device=self.device).manual_seed(int(request.seed))
        self._prefill_inputs(loaded)
        self.fast = cuda_graphs.maybe_graphed_decode(
            self.model, self._forward, self.cache, tuple(self.attention_mask.shape), self.device
        )

    @torch.inference_mode()
    def _prefill_inputs(self, loaded: LoadedJanus) -> None:
        ids = special_ids(loaded)
        prompt_ids = prompt_input_ids(loaded, self.request.prompt)
        memory.check_image_memory(
            self.model,
            self.device,
            loaded.dtype,
            self.request.num_images,
            prompt_ids.shape[1],
            self.guided,
            DECODE_CHUNK,
        )
        rows = guidance_input_ids(prompt_ids, self.request.num_images, self.guided, ids).to(self.device)
        batch, prompt_len = rows.shape
        self.inputs_embeds = self.model.get_input_embeddings()(rows)
        self.attention_mask = torch.ones((batch, prompt_len + self.total), dtype=torch.long, device=self.device)
        self.length = prompt_len
        text_config = self.model.config.get_text_config(decoder=True)
        self.cache = StaticCache(config=text_config, max_cache_len=prompt_len + self.total)  # sized to this prompt
        self.tokens = torch.zeros((self.request.num_images, self.total), dtype=torch.long, device=self.device)

    def _forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """language_model + generation_head for the pending embeddings: float scores (rows, codebook)."""
        outputs = self.model.model.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=self.cache,
            use_cache=True,
        )
        return self.model.model.generation_head(outputs.last_hidden_state[:, -1, :]).float()

    def _eager_scores(self) -> torch.Tensor:
        return self._forward(self.inputs_embeds, self.attention_mask[:, : self.length])

    @torch.inference_mode()
    def advance(self) -> torch.Tensor:
        """Run one step: forward the pending embeddings, pick one token per image, return the token grid."""
        if self.step == 0 or self.fast is None:  # the prompt's prefill is always eager
            scores = self._eager_scores()
        else:
            scores = self.fast.scores(self.inputs_embeds, self.length, self._eager_scores)
        logits = guided_logits(scores, self.request.num_images, self.request.guidance_scale)
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
    """Yield (steps_done, tokens) after every step; `tokens` is the (num_images, 576) grid, filled up to steps_done.

    The grid is the loop's own buffer: copy it to keep it. Returns early, between steps, once `stop` is set.
    """
    validate_request(request)
    loop = ImageTokenLoop(loaded, request)
    while loop.step < loop.total:
        if stop is not None and stop.is_set():
            return
        tokens = loop.advance()
        yield loop.step, tokens


def generate_image_tokens(
    loaded: LoadedJanus, request: ImageRequest, stop: threading.Event | None = None
) -> torch.Tensor | None:
    """All image tokens, (num_images, 576), or None when `stop` was set before the end."""
    last = deque(iter_image_tokens(loaded, request, stop), maxlen=1)
    if not last or last[0][0] < last[0][1].shape[1]:
        return None
    return last[0][1].clone()


# --- decoding --------------------------------------------------------------------------------


def pixels_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Channels-last (B, H, W, 3) values in [-1, 1] to PIL RGB images."""
    array = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(image, mode="RGB") for image in array]


@torch.inference_mode()
def decode_images(loaded: LoadedJanus, tokens: torch.Tensor) -> list[Image.Image]:
    """Decode (B, 576) codebook ids to PIL RGB 384x384 images with the VQ decoder."""
    images: list[Image.Image] = []
    for chunk in tokens.split(DECODE_CHUNK):
        images.extend(pixels_to_pil(loaded.model.decode_image_tokens(chunk)))
    return images


# --- the public generator --------------------------------------------------------------------


def iter_image_generation(
    loaded: LoadedJanus, request: ImageRequest, stop: threading.Event | None = None
) -> Iterator[ImageProgress]:
    """Yield an ImageProgress after every step, previews when due, and finally one with the images.

    When `stop` is set the generator returns before the next step, without images.
    """
    validate_request(request)
    start = time.perf_counter()
    mode = previews.resolve_mode(request.preview_mode, loaded.device)
    total = loaded.model.model.vision_model.config.num_image_tokens
    for step, tokens in iter_image_tokens(loaded, request, stop):
        elapsed = time.perf_counter() - start
        shots = None
        if _preview_due(step, total, request.preview_every, mode):
            shots = previews.render_previews(loaded.model, tokens, step, mode)
        yield ImageProgress(step, total, elapsed, step / max(elapsed, 1e-9), previews=shots)
    if stop is not None and stop.is_set():
        return
    images = decode_images(loaded, tokens)
    elapsed = time.perf_counter() - start
    yield ImageProgress(total, total, elapsed, total / max(elapsed, 1e-9), images=images)


def _preview_due(step: int, total: int, every: int, mode: str) -> bool:
    """Previews every `every` steps, never on the last step (the final images come then)."""
    return mode != "off" and every > 0 and step % every == 0 and step < total
