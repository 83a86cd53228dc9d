"""Chat answers stream token by token, never showing half a UTF-8 character, ending as the full decode."""

import threading
from types import SimpleNamespace

import pytest
import torch
from support.requests import chat_options

from janus_demo.model.chat import _EmittingStreamer, encode_conversation, generate_answer
from janus_demo.model.tiny import build_tokenizer


@pytest.mark.parametrize("text", ["plain words here", "Héllo wörld — 猫 🐱 ok", "👍🏽👍🏽 mixed émojis"])
def test_streamed_text_is_the_full_decode_and_never_half_a_character(text):
    tokenizer = build_tokenizer()
    chunks = []
    streamer = _EmittingStreamer(SimpleNamespace(processor=SimpleNamespace(tokenizer=tokenizer)), chunks.append)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt comes first and is skipped
    for token in ids:
        streamer.put(torch.tensor([token]))
    assert chunks[-1].text == text and chunks[-1].new_tokens == len(ids)
    assert all("\ufffd" not in chunk.text for chunk in chunks)
    assert all(b.text.startswith(a.text) for a, b in zip(chunks, chunks[1:], strict=False)), "each extends the last"
    # one update per token, also for a token that completes no character yet: the count never looks frozen
    assert [chunk.new_tokens for chunk in chunks] == list(range(1, len(ids) + 1))


def test_generate_answer_emits_per_token_and_a_final_chunk(loaded_tiny):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    inputs = encode_conversation(loaded_tiny, messages, [])
    chunks = []
    generate_answer(
        loaded_tiny, inputs, chat_options(max_new_tokens=12, temperature=1.0), threading.Event(), chunks.append
    )
    final = chunks[-1]
    assert final.done and final.stop_reason in ("eos", "length") and final.new_tokens <= 12
    assert all(not chunk.done for chunk in chunks[:-1]) and len(chunks) > 2


def test_a_set_stop_event_ends_generation_at_the_next_token(loaded_tiny):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    inputs = encode_conversation(loaded_tiny, messages, [])
    stop, chunks = threading.Event(), []

    def emit(chunk):
        chunks.append(chunk)
        if chunk.new_tokens >= 3:
            stop.set()

    generate_answer(loaded_tiny, inputs, chat_options(max_new_tokens=500, temperature=0.0), stop, emit)
    assert chunks[-1].stop_reason == "stopped"
    assert chunks[-1].new_tokens <= chunks[-2].new_tokens + 1, "at most one more token after the stop"


def test_min_new_tokens_holds_back_the_end_of_text(loaded_tiny, monkeypatch):
    """A variations description must not end at once: with the first greedy token made the end-of-text token,
    an answer ends right away, unless `min_new_tokens` holds the end back."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe it"}]}]
    inputs = encode_conversation(loaded_tiny, messages, [])
    tokenizer = loaded_tiny.processor.tokenizer
    first = []
    generate_answer(
        loaded_tiny, inputs, chat_options(max_new_tokens=1, temperature=0.0), threading.Event(), first.append
    )
    token = tokenizer(first[-1].text, add_special_tokens=False)["input_ids"][0]
    monkeypatch.setattr(tokenizer, "eos_token", tokenizer.convert_ids_to_tokens(token))
    for least, fewest in ((0, 0), (6, 6)):
        chunks = []
        options = chat_options(max_new_tokens=10, temperature=0.0)
        options = type(options)(**{**options.__dict__, "min_new_tokens": least})
        generate_answer(loaded_tiny, inputs, options, threading.Event(), chunks.append)
        assert chunks[-1].new_tokens >= fewest and (least or chunks[-1].new_tokens <= 1), (least, chunks[-1])
