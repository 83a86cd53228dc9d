"""A tiny random-weight Janus checkpoint, built offline in about a second.

It keeps the real structure where that stays cheap on a CPU (384 px images, a 24x24 token
grid, the 16384-entry VQ codebook, Janus' chat template and special tokens) and shrinks
the widths, so the whole app and its tests run without downloading weights:

    python -m janus_demo.model.tiny OUT_DIR        # write a checkpoint
    python app.py --model OUT_DIR            # load it through from_pretrained
    python app.py --model tiny               # build once into a cache folder and use it

The grid is a parameter (`build_tiny_janus(out, grid=8)`, `--grid 8`): an 8x8 grid draws 128 px
images in 64 steps instead of 576, with the same x16 decoder, vision tower patches and codebook; the
tests that do not need Janus-Pro's own 24x24 use it.

Its answers and pictures are noise: it exercises the pipeline, not the model's quality.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    JanusConfig,
    JanusForConditionalGeneration,
    JanusImageProcessorPil,
    JanusProcessor,
    JanusVisionConfig,
    JanusVQVAEConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from janus_demo.model import chat_template as fmt
from janus_demo.model import internals

TINY_MARKER = "janus_demo_tiny"  # written into config.json so loaders can say "random weights"
DEFAULT_SEED = 0
# Bumped whenever the recipe changes, so `--model tiny` rebuilds a stale cache.
RECIPE_VERSION = 1

SPECIAL_TOKENS = [
    fmt.BOS_TOKEN,
    fmt.EOS_TOKEN,
    fmt.PAD_TOKEN,
    fmt.USER_TOKEN,
    fmt.ASSISTANT_TOKEN,
    fmt.IMAGE_TOKEN,
    fmt.BOI_TOKEN,
    fmt.EOI_TOKEN,
]

# Text widths are multiples of 64 so bitsandbytes' CPU 4-bit kernels accept every
# language-model linear; image structure is Janus-Pro's own.
TEXT_HIDDEN = 128
TEXT_LAYERS = 2
TEXT_HEADS = 4
TEXT_INTERMEDIATE = 256
GRID = 24  # Janus-Pro's token grid a side (`--model tiny` keeps it)
PATCH_SIZE = 16  # pixels per token side: the vision tower's patches and the VQ decoder's x16 upsampling
CODEBOOK_SIZE = 16384


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with no merges: every text round-trips, the vocabulary stays ~270 entries."""
    byte_vocab = {token: i for i, token in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    backend = Tokenizer(models.BPE(vocab=byte_vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    bos_id = backend.token_to_id(fmt.BOS_TOKEN)
    # Janus' tokenizer adds BOS; classifier-free guidance keeps it in the unconditional rows.
    backend.post_processor = processors.TemplateProcessing(
        single=f"{fmt.BOS_TOKEN} $A", pair=f"{fmt.BOS_TOKEN} $A $B", special_tokens=[(fmt.BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=fmt.BOS_TOKEN,
        eos_token=fmt.EOS_TOKEN,
        pad_token=fmt.PAD_TOKEN,
        additional_special_tokens=[fmt.USER_TOKEN, fmt.ASSISTANT_TOKEN],
        extra_special_tokens={
            "image_token": fmt.IMAGE_TOKEN,
            "boi_token": fmt.BOI_TOKEN,
            "eoi_token": fmt.EOI_TOKEN,
        },
        model_max_length=16384,
        padding_side="left",
    )


def build_config(tokenizer: PreTrainedTokenizerFast, grid: int = GRID) -> JanusConfig:
    """Janus-Pro's structure with small widths and a `grid` x `grid` token grid (see the module docstring)."""
    image_size = grid * PATCH_SIZE
    vocab_size = -(-len(tokenizer) // 64) * 64
    text_config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=TEXT_INTERMEDIATE,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=TEXT_HEADS,
        num_key_value_heads=TEXT_HEADS,
        max_position_embeddings=16384,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision_config = JanusVisionConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,  # transformers gives the VQ model this grid: image_size // patch_size a side
        patch_size=PATCH_SIZE,
        projection_dim=TEXT_HIDDEN,
        num_image_tokens=grid**2,
    )
    vq_config = JanusVQVAEConfig(
        embed_dim=8,
        num_embeddings=CODEBOOK_SIZE,
        latent_channels=64,
        base_channels=32,
        channel_multiplier=[1, 1, 2, 2, 4],  # x16 upsampling: 24x24 tokens -> 384x384 pixels (8x8 -> 128x128)
        num_res_blocks=1,
        projection_dim=TEXT_HIDDEN,
        image_token_embed_dim=TEXT_HIDDEN,
    )
    config = JanusConfig(
        text_config=text_config,
        vision_config=vision_config,
        vq_config=vq_config,
        image_token_id=tokenizer.convert_tokens_to_ids(fmt.IMAGE_TOKEN),
    )
    setattr(config, TINY_MARKER, RECIPE_VERSION)
    return config


def build_processor(tokenizer: PreTrainedTokenizerFast, grid: int = GRID) -> JanusProcessor:
    """The processor as the hub checkpoints configure it (mean = std = 0.5, default system prompt), for images
    of `grid` x `grid` tokens."""
    image_size = grid * PATCH_SIZE
    image_processor = JanusImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        min_size=14,
    )
    return JanusProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=fmt.CHAT_TEMPLATE,
        use_default_system_prompt=True,
        num_image_tokens=grid**2,
    )


def set_generation_defaults(model: JanusForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
    """Generation config fields the hub checkpoints carry (image mode needs `boi_token_id`)."""
    gen = model.generation_config
    internals.keep_generation_config(model)
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.temperature = 1.0
    gen.guidance_scale = 5.0
    gen.generation_kwargs = {"boi_token_id": tokenizer.convert_tokens_to_ids(fmt.BOI_TOKEN)}


def build_tiny_janus(out_dir: str | os.PathLike, seed: int = DEFAULT_SEED, grid: int = GRID) -> Path:
    """Write a random-weight Janus checkpoint (model, tokenizer, processor) drawing `grid` x `grid` tokens
    (`grid` * 16 pixels a side) to `out_dir`."""
    if grid < 2:
        raise ValueError(f"grid must be at least 2 tokens a side, got {grid}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = build_config(tokenizer, grid)
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config).eval()
    set_generation_defaults(model, tokenizer)
    model.save_pretrained(out)
    build_processor(tokenizer, grid).save_pretrained(out)
    return out


def is_tiny_checkpoint(config: JanusConfig) -> bool:
    """True when `config` came from this module (its weights are random)."""
    return bool(getattr(config, TINY_MARKER, False))


def default_cache_dir() -> Path:
    """Where `--model tiny` keeps its build (JANUS_TINY_DIR, else the user's cache folder)."""
    if os.environ.get("JANUS_TINY_DIR"):
        return Path(os.environ["JANUS_TINY_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "janus-demo" / f"tiny-v{RECIPE_VERSION}"


def ensure_tiny_janus(cache_dir: str | os.PathLike | None = None) -> Path:
    """Build the tiny checkpoint once into `cache_dir` and return its folder."""
    out = Path(cache_dir) if cache_dir else default_cache_dir()
    config_file = out / "config.json"
    if config_file.exists() and json.loads(config_file.read_text()).get(TINY_MARKER) == RECIPE_VERSION:
        if (out / "processor_config.json").exists() or (out / "preprocessor_config.json").exists():
            return out
    # Build beside the target and rename, so a crash never leaves half a checkpoint behind.
    staging = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    build_tiny_janus(staging)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write the checkpoint to")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for the random weights")
    parser.add_argument("--grid", type=int, default=GRID, help="image tokens a side (16 pixels each)")
    args = parser.parse_args(argv)
    out = build_tiny_janus(args.out_dir, seed=args.seed, grid=args.grid)
    print(f"Wrote a tiny random-weight Janus to {out}")


if __name__ == "__main__":
    main()
