"""The chat template renders exactly Janus' conversation format."""

import pytest
from transformers import AutoProcessor

from janus_demo.model import chat_template as fmt

EOS = fmt.EOS_TOKEN


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir)


def render(processor, messages, add_generation_prompt=True):
    return processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)


def user(*content):
    return {"role": "user", "content": list(content)}


def assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


IMAGE = {"type": "image"}


def text(value):
    return {"type": "text", "text": value}


def test_one_image(processor):
    prompt = render(processor, [user(IMAGE, text("What is this?"))])
    assert prompt == "<|User|>: <image_placeholder>\nWhat is this?\n\n<|Assistant|>:"


def test_two_images(processor):
    prompt = render(processor, [user(IMAGE, IMAGE, text("Compare them."))])
    assert prompt == "<|User|>: <image_placeholder>\n\n<image_placeholder>\nCompare them.\n\n<|Assistant|>:"


def test_text_then_image(processor):
    prompt = render(processor, [user(text("Look: "), IMAGE)])
    assert prompt == "<|User|>: Look: \n<image_placeholder>\n\n<|Assistant|>:"


def test_text_only(processor):
    assert render(processor, [user(text("  Hello there  "))]) == "<|User|>: Hello there\n\n<|Assistant|>:"


def test_adjacent_text_blocks_join_with_a_space(processor):
    assert render(processor, [user(text("one"), text("two"))]) == "<|User|>: one two\n\n<|Assistant|>:"


def test_multi_turn(processor):
    messages = [user(IMAGE, text("What is it?")), assistant("A cat."), user(text("What colour?"))]
    expected = (
        "<|User|>: <image_placeholder>\nWhat is it?\n\n"
        f"<|Assistant|>: A cat.{EOS}"
        "<|User|>: What colour?\n\n<|Assistant|>:"
    )
    assert render(processor, messages) == expected


def test_conversation_ending_with_an_answer(processor):
    messages = [user(text("Hi")), assistant("Hello!")]
    assert render(processor, messages, add_generation_prompt=False) == "<|User|>: Hi\n\n<|Assistant|>: Hello!"


def test_processor_prepends_system_prompt_and_expands_images(processor, loaded_tiny):
    from PIL import Image

    prompt = render(processor, [user(IMAGE, text("Hi"))])
    inputs = processor(text=prompt, images=[Image.new("RGB", (64, 48), "red")], return_tensors="pt")
    decoded = processor.tokenizer.decode(inputs["input_ids"][0])
    assert decoded.startswith(fmt.BOS_TOKEN + "You are a helpful language and vision assistant.")
    assert decoded.count(fmt.IMAGE_TOKEN) == 576
    assert f"{fmt.BOI_TOKEN}{fmt.IMAGE_TOKEN}" in decoded and f"{fmt.IMAGE_TOKEN}{fmt.EOI_TOKEN}" in decoded
    assert decoded.endswith("\nHi\n\n<|Assistant|>:")
