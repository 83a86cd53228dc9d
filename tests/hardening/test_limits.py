"""Oversized requests are refused or capped, with a message, and a request cannot outstay its deadline.

Measured (printed with -s): a 100 KB message or prompt refused naming its size and the limit (a 1 MB one is
refused before it is parsed, HTTP 413, by the body cap: tests/hardening/test_bodies.py); a 1000-turn history
capped to the last 20 turns (with a note), or refused when too long to fit `max_context_tokens`; 20 images in one
message or a 5th image in a conversation refused; a forged history (1000 turns, a file never uploaded) sent
through gradio's chat-state route handled the same way; a generation past `request_deadline_s` stopped with a
message, close to the deadline.
"""

import os
import time
from pathlib import Path

import httpx
import pytest
from gradio_client.exceptions import AppError
from PIL import Image
from support.meters import lock_idle
from support.raw_api import raw_call
from support.service_calls import Backend
from support.serving import chat_args, chat_message, image_args

from janus_demo.service.errors import BusyError, InputError
from janus_demo.service.schemas import Limits
from janus_demo.service.status_lines import answer_status as status_line

ONE_MB = "a" * 2**20  # over the request body cap (--max-body-size, 1 MB) with the rest of the request
HUNDRED_KB = "a" * 100 * 2**10
TOO_LONG = "This conversation is too long; clear it and start again."


def turns(count, text="hi"):
    """`count` answered exchanges, in the browser's message format."""
    history = []
    for n in range(count):
        history.append({"role": "user", "content": [{"type": "text", "text": f"{text} {n}"}]})
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {n}"}]})
    return history


def small_pngs(folder, count):
    paths = []
    for n in range(count):
        path = folder / f"{n}.png"
        Image.new("RGB", (16, 16), (n * 10, 0, 0)).save(path)
        paths.append(str(path))
    return paths


def timed_refusal(call):
    start = time.monotonic()
    with pytest.raises(AppError) as refused:
        call()
    return str(refused.value), time.monotonic() - start


# --- size of text


def test_a_100_kb_message_is_refused_and_a_1_mb_one_never_parsed(client, tiny_backend):
    entered = tiny_backend.entered
    message, seconds = timed_refusal(lambda: client.predict(chat_message(HUNDRED_KB), *chat_args(), api_name="/chat"))
    assert message == "Message is too long: 102,400 characters; the limit is 8,000."
    status, detail = body_refusal(lambda: client.predict(chat_message(ONE_MB), *chat_args(), api_name="/chat"))
    assert status == 413 and detail.startswith("Request too large: 1.0 MB; the limit is 1.0 MB.")
    assert tiny_backend.entered == entered
    print(f"\n[hardening] 100 KB chat message refused in {seconds:.2f} s; 1 MB refused with HTTP 413")


def test_a_100_kb_prompt_is_refused_and_a_1_mb_one_never_parsed(client, tiny_backend):
    entered = tiny_backend.entered
    message, seconds = timed_refusal(lambda: client.predict(HUNDRED_KB, *image_args(), api_name="/generate_images"))
    assert message == "Prompt is too long: 102,400 characters; the limit is 4,000."
    status, _ = body_refusal(lambda: client.predict(ONE_MB, *image_args(), api_name="/generate_images"))
    assert status == 413
    assert tiny_backend.entered == entered
    print(f"\n[hardening] 100 KB image prompt refused in {seconds:.2f} s; 1 MB refused with HTTP 413")


def body_refusal(call):
    """(status, detail) of a request the server refused before reading it (gradio_client raises httpx's error)."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        call()
    return refused.value.response.status_code, refused.value.response.json()["detail"]


def test_the_model_layer_accepts_every_prompt_the_app_allows(tiny_backend):
    longest = "a fox " * (tiny_backend.limits.max_prompt_chars // 6)
    stream = tiny_backend.generate_images(longest, 1, guidance_scale=1.0, preview_every=0)
    first = next(progress for progress in stream if hasattr(progress, "step"))  # the model has read the prompt
    stream.close()
    assert first.step == 1


# --- length of the conversation


def test_a_1000_turn_history_is_capped_to_the_newest_turns_with_a_note(fake):
    chunks = list(fake.chat({"text": "and now?", "files": []}, turns(1000), 4, 0.0, 0.95, 3))
    capped = fake.prompt_lengths[-1]
    list(fake.chat({"text": "and now?", "files": []}, turns(1000)[-38:], 4, 0.0, 0.95, 3))  # 19 turns + this one
    assert capped == fake.prompt_lengths[-1], "the model reads the same 20 turns either way"
    assert chunks[-1].text == "seed=3 xxxx"
    assert chunks[-1].note == "only the last 20 turns of this conversation were used"
    assert "only the last 20 turns" in status_line(chunks[-1])


def test_a_conversation_too_long_for_the_context_is_refused_before_the_model(fake):
    long_turns = turns(1000, text="x" * 7000)  # the newest 20 turns alone are 140,000 characters
    start = time.monotonic()
    with pytest.raises(InputError, match=TOO_LONG):
        fake.chat({"text": "and now?", "files": []}, long_turns, 4, 0.0, 0.95, 1)
    seconds = time.monotonic() - start
    assert fake.lock.entered == 0
    print(f"\n[hardening] 1000 turns of 7000 characters refused in {seconds:.2f} s")


def test_max_context_tokens_counts_the_rendered_conversation_with_its_images(loaded_tiny, tmp_path):
    backend = Backend(loaded_tiny, limits=Limits(max_context_tokens=500))
    with pytest.raises(
        InputError, match=r"too long; clear it and start again. \(It is [\d,]+ tokens; the limit is 500"
    ):
        backend.chat({"text": "What is this?", "files": small_pngs(tmp_path, 1)}, [])  # one image: 576 tokens
    with pytest.raises(InputError, match=TOO_LONG):
        backend.chat({"text": "word " * 600, "files": []}, [])
    assert list(backend.chat({"text": "Hello", "files": []}, [], 2))[-1].done
    assert backend.lock.entered == 1


# --- images per conversation


def test_20_images_in_one_message_are_refused(client, tiny_backend, tmp_path):
    files = tuple(small_pngs(tmp_path, 20))
    entered = tiny_backend.entered
    message, seconds = timed_refusal(lambda: client.predict(chat_message("all", files), *chat_args(), api_name="/chat"))
    assert message == "This conversation has 20 images; the limit is 4. Please clear it and start a new one."
    assert tiny_backend.entered == entered
    print(f"\n[hardening] 20 images in one message refused in {seconds:.2f} s")


def test_a_fifth_image_in_a_conversation_is_refused_and_the_conversation_goes_on(client, tmp_path):
    pictures = small_pngs(tmp_path, 5)
    for picture in pictures[:4]:
        assert "tokens/s" in client.predict(chat_message("and this?", (picture,)), *chat_args(), api_name="/chat")[1]
    message, _ = timed_refusal(
        lambda: client.predict(chat_message("and this?", (pictures[4],)), *chat_args(), api_name="/chat")
    )
    assert message == "This conversation has 5 images; the limit is 4. Please clear it and start a new one."
    assert "tokens/s" in client.predict(chat_message("words only"), *chat_args(), api_name="/chat")[1]


# --- a forged history through the browser's chat event


def browser_chat_index(url):
    """The browser's (private) chat event: the composer and the Chatbot in, the Chatbot out."""
    config = httpx.get(url + "config", timeout=10).json()
    types = {component["id"]: component["type"] for component in config["components"]}
    for dependency in config["dependencies"]:
        if [types[i] for i in dependency["inputs"][:2]] == ["multimodaltextbox", "chatbot"]:
            return dependency["id"]
    raise AssertionError("the browser's chat event was not found")


def file_block(path):
    return {"type": "file", "file": {"path": str(path), "meta": {"_type": "gradio.FileData"}}}


def test_a_forged_history_is_capped_and_unreadable_files_left_out(fake):
    never_uploaded = Path(os.environ["GRADIO_TEMP_DIR"]) / "never-uploaded" / "cat.png"
    forged = turns(1000)
    forged[-2]["content"].insert(0, file_block(never_uploaded))
    completed, _ = raw_call(
        fake.url, browser_chat_index(fake.url), [{"text": "and?", "files": []}, forged, *chat_args()]
    )
    chatbot, status = completed["output"]["data"][0], completed["output"]["data"][2]
    assert chatbot[-1]["content"][0]["text"] == "seed=1 xxxx"
    assert "only the last 20 turns" in status and "1 earlier image(s) could not be read" in status

    outside = [{"role": "user", "content": [file_block("/etc/passwd")]}]
    try:  # refused when it joins the queue (the browser event's validator reads the files), else when it runs
        completed, _ = raw_call(
            fake.url, browser_chat_index(fake.url), [{"text": "and?", "files": []}, outside, *chat_args()]
        )
    except httpx.HTTPStatusError as refused:
        assert refused.response.status_code == 400, "gradio refuses files it did not receive"
    else:
        assert not completed["success"], "gradio refuses files it did not receive"
    assert fake.lock.entered == 1, "only the first request reached the model"


# --- the per-request deadline


@pytest.fixture
def hurried(loaded_tiny):
    return Backend(loaded_tiny, limits=Limits(request_deadline_s=0.5))


def test_a_chat_past_the_deadline_is_stopped_with_a_message(hurried):
    start = time.monotonic()
    chunks = [
        c for c in hurried.chat({"text": "Tell me everything.", "files": []}, [], 2048, 0.0) if hasattr(c, "done")
    ]
    seconds = time.monotonic() - start
    last = chunks[-1]
    assert last.done and last.stop_reason == "deadline" and last.new_tokens < 2048
    assert status_line(last).endswith("stopped at the time limit")
    assert lock_idle(hurried)
    print(f"\n[hardening] chat with a 0.5 s deadline stopped after {seconds:.2f} s ({last.new_tokens} tokens)")


def test_an_image_generation_past_the_deadline_is_stopped_with_a_message(hurried):
    start = time.monotonic()
    with pytest.raises(BusyError, match=r"ran past the 0.5 s limit and was stopped. Try fewer images."):
        list(hurried.generate_images("a red fox", 1, 1.0, 1.0, 1, 1.0, 0, "off"))
    seconds = time.monotonic() - start
    assert lock_idle(hurried)
    print(f"\n[hardening] image generation with a 0.5 s deadline stopped after {seconds:.2f} s")
