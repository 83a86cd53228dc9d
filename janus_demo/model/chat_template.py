"""Janus-Pro's conversation format: the chat template and its special tokens.

The hub checkpoints ship this template in their processor; the tiny model built by
`janus_demo.model.tiny` writes the same one so that tests render exactly what the real model sees:

    <|User|>: <image_placeholder>
    What is this?

    <|Assistant|>: A cat.<｜end▁of▁sentence｜><|User|>: ...

Images inside a message become `<image_placeholder>` on a line of their own; text blocks
next to each other are joined by a space; user turns end in a blank line, assistant turns
in the end-of-sentence token.
"""

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
