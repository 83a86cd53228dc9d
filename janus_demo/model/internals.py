"""The one place that touches transformers internals (5.23.0): everything else uses public APIs.

    rows, columns = token_grid(model)                  # (24, 24) for Janus-Pro
    pixels = decode_token_rows(model, tokens, rows=3)  # the VQ decoder on the first 3 token rows
    positions = cache_write_positions(cache)           # per-layer device tensors of a StaticCache

Each function names the internal it reads. `tests/model/test_internals.py` exercises every one of them
on the tiny model and fails loudly when the installed transformers is not the one they were checked
against: re-check this file, then bump `CHECKED_TRANSFORMERS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from transformers import JanusForConditionalGeneration

CHECKED_TRANSFORMERS = "5.23.0"


def codebook(model: JanusForConditionalGeneration) -> torch.Tensor:
    """The VQ codebook, (codes, embed dim): `vqmodel.quantize.embedding.weight`."""
    return model.model.vqmodel.quantize.embedding.weight


def token_grid(model: JanusForConditionalGeneration) -> tuple[int, int]:
    """(rows, columns) of the image token grid: `vqmodel.quantize.quant_state_dims`."""
    rows, columns = model.model.vqmodel.quantize.quant_state_dims
    return int(rows), int(columns)


def decode_token_rows(model: JanusForConditionalGeneration, tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """Decode the first `rows` token rows: (B, >= rows*columns) ids -> (B, rows*16, columns*16, 3) in [-1, 1].

    `decode_image_tokens` only takes whole grids; this repeats its steps (`quantize.get_codebook_entry`'s
    lookup and normalisation, `post_quant_conv`, `decoder`) on a grid of `rows` rows, which the
    convolutional decoder accepts.
    """
    vq = model.model.vqmodel
    _, columns = token_grid(model)
    latent = F.normalize(vq.quantize.embedding(tokens[:, : rows * columns]), p=2, dim=-1)
    latent = latent.view(tokens.shape[0], rows, columns, -1).permute(0, 3, 1, 2).contiguous()
    return vq.decoder(vq.post_quant_conv(latent)).permute(0, 2, 3, 1)


def cache_write_positions(cache: object) -> list[torch.Tensor] | None:
    """A StaticCache's per-layer write positions (`StaticLayer.cumulative_length`, device tensors), or None
    when the cache keeps them elsewhere. A CUDA graph replay advances them on the device."""
    layers = getattr(cache, "layers", None)
    if not layers:
        return None
    positions = [getattr(layer, "cumulative_length", None) for layer in layers]
    return positions if all(isinstance(p, torch.Tensor) for p in positions) else None


def keep_generation_config(model: JanusForConditionalGeneration) -> None:
    """Make `save_pretrained` keep the generation config as set (the private `_from_model_config` flag;
    without this `from_pretrained` rebuilds it from config.json and drops `boi_token_id`)."""
    model.generation_config._from_model_config = False


def quantizes(module_name: str, skip_modules: list[str]) -> bool:
    """Whether bitsandbytes quantizes the Linear called `module_name` given `llm_int8_skip_modules`
    (`transformers.quantizers.quantizers_utils.should_convert_module`)."""
    from transformers.quantizers.quantizers_utils import should_convert_module

    return should_convert_module(module_name, skip_modules)


@contextlib.contextmanager
def skip_weight_init() -> Iterator[None]:
    """Build a model without initialising its weights (`transformers.initialization.no_init_weights`)."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        yield
