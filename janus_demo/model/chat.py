"""Streaming chat with Janus: text and images in, the answer out token by token.

    inputs = encode_conversation(loaded, messages, images)   # CPU tensors; prompt_length(inputs) tokens
    generate_answer(loaded, inputs, ChatOptions(max_new_tokens=512, temperature=0.1, top_p=0.95, seed=1), stop, emit)
    # emit(ChatChunk) is called with the whole answer so far after each token

Runs `model.generate` (text mode) in the calling thread; the service layer encodes the
conversation first (so an over-long one is refused before it waits for the model), then runs
the generation under its model lock and turns the emitted chunks into a generator.
A stopping criterion checks `stop` and the deadline after every token, so Stop ends the
generation itself, not only the UI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from PIL import Image
from transformers import StoppingCriteria, StoppingCriteriaList

from janus_demo.model import internals
from janus_demo.model.chat_template import literal_text
from janus_demo.model.loading import LoadedJanus


@dataclass(frozen=True)
class ChatOptions:
    """Sampling settings of one answer; temperature 0 means greedy."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    deadline: float | None = None  # time.monotonic() after which generation stops
    min_new_tokens: int = 0  # the end-of-text token is held back until this many tokens are out


@dataclass(frozen=True)
class ChatChunk:
    """The answer so far, with its speed."""

    text: str
    new_tokens: int
    elapsed: float
    done: bool = False
    stop_reason: str | None = None  # "stopped", "deadline", "length", "eos"
    note: str | None = None  # something the user should know about this answer (e.g. older turns left out)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.elapsed if self.elapsed > 0 else 0.0


def encode_conversation(
    loaded: LoadedJanus, messages: list[dict], images: list[Image.Image]
) -> dict[str, torch.Tensor]:
    """Render the chat template and tokenize text and images, on the CPU (no model involved).

    Every text block is taken literally: special tokens typed in it are not interpreted (`literal_text`).
    """
    messages = [
        {**message, "content": [_literal(block, loaded) for block in message["content"]]} for message in messages
    ]
    prompt = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    return dict(loaded.processor(text=prompt, images=images or None, return_tensors="pt"))


def _literal(block: dict, loaded: LoadedJanus) -> dict:
    if block.get("type") != "text":
        return block
    return {**block, "text": literal_text(block["text"], loaded.processor.tokenizer)}


def prompt_length(inputs: dict[str, torch.Tensor]) -> int:
    """Tokens the model reads before answering (each image counts as its placeholder tokens)."""
    return int(inputs["input_ids"].shape[-1])


def to_model(loaded: LoadedJanus, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Encoded inputs on the model's device, images in its dtype."""
    moved = {name: value.to(loaded.device) if torch.is_tensor(value) else value for name, value in inputs.items()}
    if "pixel_values" in moved:
        moved["pixel_values"] = moved["pixel_values"].to(loaded.model.dtype)
    return moved


class _StopCriterion(StoppingCriteria):
    """Ends generation when `stop` is set or the deadline passes (checked every token)."""

    def __init__(self, stop: threading.Event, deadline: float | None) -> None:
        self.stop, self.deadline, self.reason = stop, deadline, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        if self.stop.is_set():
            self.reason = "stopped"
        elif self.deadline is not None and time.monotonic() > self.deadline:
            self.reason = "deadline"
        return torch.full((input_ids.shape[0],), self.reason is not None, dtype=torch.bool, device=input_ids.device)


class _EmittingStreamer(internals.Streamer):
    """Hands out a ChatChunk after every generated token (transformers' TextStreamer waits for
    whole words, which is not token by token); its text holds back only an incomplete UTF-8 character.

    Decodes incrementally: only the tokens since the last complete piece (plus a few before, so
    tokenizers that merge across token boundaries decode the same), not the whole answer each token.
    """

    CONTEXT = 4  # tokens before the pending ones that are decoded again for context

    def __init__(self, loaded: LoadedJanus, emit: Callable[[ChatChunk], None]) -> None:
        self.tokenizer, self.emit = loaded.processor.tokenizer, emit
        self.token_ids: list[int] = []
        self.text, self.saw_eos, self.prompt_seen = "", False, False
        self.done_upto = 0  # token_ids[:done_upto] are in self.text
        self.start = time.perf_counter()

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        self.saw_eos = self.saw_eos or self.tokenizer.eos_token_id in ids
        self.token_ids.extend(ids)
        piece = self._pending_text()
        if piece and not piece.endswith("\ufffd"):
            self.text += piece
            self.done_upto = len(self.token_ids)
        # every token, even one that adds no text yet: the count and the speed move on
        self.emit(ChatChunk(self.text, self.new_tokens, time.perf_counter() - self.start))

    def _pending_text(self) -> str:
        """Text of the tokens not yet in self.text (decoded with a little context before them)."""
        context_start = max(0, self.done_upto - self.CONTEXT)
        before = self._decode(self.token_ids[context_start : self.done_upto])
        both = self._decode(self.token_ids[context_start:])
        if both.startswith(before):
            return both[len(before) :]
        return self._decode(self.token_ids)[len(self.text) :]  # context changed earlier text: decode it all

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def end(self) -> None:
        self.text = self._decode(self.token_ids)


def generate_answer(
    loaded: LoadedJanus,
    inputs: dict[str, torch.Tensor],
    options: ChatOptions,
    stop: threading.Event,
    emit: Callable[[ChatChunk], None],
) -> None:
    """Answer the encoded conversation, emitting a ChatChunk per token and a final one with `done`."""
    inputs = to_model(loaded, inputs)
    streamer = _EmittingStreamer(loaded, emit)
    criterion = _StopCriterion(stop, options.deadline)
    sample = options.temperature > 0
    torch.manual_seed(options.seed)  # text-mode generate samples from the global RNG; the model lock serialises us
    tokenizer = loaded.processor.tokenizer
    with torch.inference_mode():
        loaded.model.generate(
            **inputs,
            max_new_tokens=options.max_new_tokens,
            min_new_tokens=options.min_new_tokens or None,
            do_sample=sample,
            temperature=options.temperature if sample else None,
            top_p=options.top_p if sample else None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([criterion]),
        )
    reason = criterion.reason or ("eos" if streamer.saw_eos else "length")
    final = ChatChunk(streamer.text, streamer.new_tokens, time.perf_counter() - streamer.start)
    emit(replace(final, done=True, stop_reason=reason))
