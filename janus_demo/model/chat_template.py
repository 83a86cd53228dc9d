"""Janus-Pro's conversation format: the chat template and its special tokens.

The hub checkpoints ship this template in their processor; the tiny model built by
`janus_demo.model.tiny` writes the same one so that tests render exactly what the real model sees:

    <|User|>: <image_placeholder>
    What is this?

    <|Assistant|>: A cat.<｜end▁of▁sentence｜><|User|>: ...

Images inside a message become `<image_placeholder>` on a line of their own; text blocks
next to each other are joined by a space; user turns end in a blank line, assistant turns
in the end-of-sentence token.

Text a person typed is text: `literal_text` breaks the spelling of every special token in it (a
zero-width space after its first character), so a typed `<image_placeholder>` or
`<｜end▁of▁sentence｜><|User|>:` reaches the model as those characters, never as the tokens that would
ask for an image or start a turn.
"""

import functools
import re

BOS_TOKEN = "<｜begin▁of▁sentence｜>"
EOS_TOKEN = "<｜end▁of▁sentence｜>"
PAD_TOKEN = "<｜▁pad▁｜>"
USER_TOKEN = "<|User|>"
ASSISTANT_TOKEN = "<|Assistant|>"
IMAGE_TOKEN = "<image_placeholder>"
BOI_TOKEN = "<begin_of_image>"
EOI_TOKEN = "<end_of_image>"

# Written for this project (jinja, as transformers' processors expect); renders the same
# text as the template DeepSeek's checkpoints carry.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- set role = message['role'] | lower -%}"
    "{%- set items = message['content'] -%}"
    "{%- if role == 'user' -%}{{ '<|User|>: ' }}"
    "{%- elif role == 'assistant' -%}"
    "{{ '<|Assistant|>:' }}"
    "{%- set empty_tail = loop.last and not add_generation_prompt"
    " and items[0]['type'] == 'text' and items[0]['text'] == '' -%}"
    "{%- if not empty_tail -%}{{ ' ' }}{%- endif -%}"
    "{%- else -%}{{ message['role'] | capitalize ~ ': ' }}"
    "{%- endif -%}"
    "{%- for item in items -%}"
    "{%- if item['type'] == 'image' -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{{ '<image_placeholder>' }}"
    "{%- if not loop.last -%}{{ '\\n' }}{%- endif -%}"
    "{%- elif item['type'] == 'text' -%}"
    "{%- set text = item['text'] -%}"
    "{%- if loop.first -%}{%- set text = text.lstrip() -%}{%- endif -%}"
    "{%- if loop.last -%}{%- set text = text.rstrip() -%}{%- endif -%}"
    "{%- if not loop.first and items[loop.index0 - 1]['type'] == 'text' -%}{{ ' ' ~ text }}"
    "{%- else -%}{{ text }}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if not loop.last or add_generation_prompt -%}"
    "{%- if role == 'user' -%}{{ '\\n\\n' }}{%- else -%}{{ '<｜end▁of▁sentence｜>' }}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|Assistant|>:' }}{%- endif -%}"
)


ZERO_WIDTH_SPACE = "\u200b"


def literal_text(text: str, tokenizer) -> str:
    """`text` with each special (added) token's spelling broken, so the tokenizer reads it as plain text."""
    pattern = _special_spellings(tuple(token.content for token in tokenizer.added_tokens_decoder.values()))
    if pattern is None or not text:
        return text
    return pattern.sub(lambda found: found[0][0] + ZERO_WIDTH_SPACE + found[0][1:], text)


@functools.lru_cache(maxsize=8)
def _special_spellings(spellings: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for every added token of two characters or more, longest first."""
    tokens = sorted({spelling for spelling in spellings if len(spelling) > 1}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, tokens))) if tokens else None
