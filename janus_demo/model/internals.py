"""The one place that touches transformers internals (5.23.0): everything else uses public APIs.

    rows, columns = token_grid(model)                  # (24, 24) for Janus-Pro
    pixels = decode_token_rows(model, tokens, rows=3)  # the VQ decoder on the first 3 token rows
    tokens = encode_image_tokens(model, pixel_values)  # the VQ encoder: (B, 3, 384, 384) -> (B, 576) ids
    positions = cache_write_positions(cache)           # per-layer device tensors of a StaticCache
    scores = generation_head(model)(language_model(model)(inputs_embeds=...).last_hidden_state)
    layer = bitsandbytes_linear(linear, config)        # a Linear quantized as from_pretrained would

Each function names the internal it reads. `tests/model/test_internals.py` exercises every one of them
on the tiny model and fails loudly when the installed transformers is not the one they were checked
against: re-check this file, then bump `CHECKED_TRANSFORMERS`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from types import ModuleType

import torch
import torch.nn.functional as F
from transformers import BitsAndBytesConfig, JanusForConditionalGeneration
from transformers.generation.streamers import BaseStreamer

CHECKED_TRANSFORMERS = "5.23.0"

# `generate(streamer=...)` takes any object with put(ids) and end(); transformers' base class for one lives in
# a module it does not export at the top level.
Streamer = BaseStreamer


# --- the parts of Janus (attributes of JanusModel, under JanusForConditionalGeneration.model) ---------------

# Module names, as `named_modules` and bitsandbytes' `llm_int8_skip_modules` spell them.
TEXT_EMBEDDINGS = "model.language_model.embed_tokens"
# Only the language model is quantized. bitsandbytes matches these from the start of the full module name (or
# as a suffix), and a custom list replaces its default, hence `lm_head`. Skipping `model.generation_aligner`
# also keeps its 8-input fc1 away from the CPU 4-bit kernel, which needs in_features % 64 == 0.
NOT_QUANTIZED = [
    "lm_head",
    "model.vision_model",
    "model.aligner",
    "model.vqmodel",
    "model.generation_embeddings",
    "model.generation_aligner",
    "model.generation_head",
]


def language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder-only language model (`model.model.language_model`, a LlamaModel): hidden states from
    embeddings. A module that is not a Janus model (a test's stand-in) is returned as it is."""
    janus = getattr(model, "model", None)
    return getattr(janus, "language_model", model)


def generation_head(model: JanusForConditionalGeneration) -> torch.nn.Module:
    """Image-token scores from the language model's hidden states (`model.model.generation_head`)."""
    return model.model.generation_head


def generation_aligner(model: JanusForConditionalGeneration) -> torch.nn.Module:
    """Maps an image token's embedding into the language model's width (`model.model.generation_aligner`)."""
    return model.model.generation_aligner


def cache_tensors(cache: object) -> list[torch.Tensor]:
    """A StaticCache's key and value tensors, every layer's (`StaticLayer.keys` and `.values`)."""
    tensors = []
    for layer in getattr(cache, "layers", []):
        tensors += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    return [t for t in tensors if isinstance(t, torch.Tensor)]


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
    _, columns = token_grid(model)
    return _decode_grid(model, tokens[:, : rows * columns], rows, columns)


def encode_image_tokens(model: JanusForConditionalGeneration, pixel_values: torch.Tensor) -> torch.Tensor:
    """The VQ encoder: (B, 3, H, W) pixels in [-1, 1] (`image_loop.vq_pixels`) -> (B, rows*columns) codebook ids.

    `vqmodel.encoder` and `vqmodel.quant_conv`, then the nearest code by cosine similarity. Janus' VQ model
    (LlamaGen's, `codebook_l2_norm=True`) compares l2-normalised latents with l2-normalised codes, as its
    decoder (`get_codebook_entry`) normalises the codes it reads; `vqmodel.encode` in transformers 5.23
    compares them unnormalised, which picks other codes, so it is not used.
    """
    vq = model.model.vqmodel
    codes = F.normalize(vq.quantize.embedding.weight.float(), p=2, dim=-1)
    pixels = pixel_values.to(device=codes.device, dtype=vq.quant_conv.weight.dtype)
    latent = vq.quant_conv(vq.encoder(pixels)).permute(0, 2, 3, 1).float()  # (B, rows, columns, embed dim)
    similarity = F.normalize(latent, p=2, dim=-1) @ codes.T
    return similarity.argmax(dim=-1).flatten(1)


def decode_codes_alone(model: JanusForConditionalGeneration, codes: torch.Tensor) -> torch.Tensor:
    """Decode each of `codes` (N,) on its own, as a 1x1 latent: (N, 16, 16, 3), the same steps as above."""
    return _decode_grid(model, codes.view(-1, 1), 1, 1)


def _decode_grid(model: JanusForConditionalGeneration, tokens: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    vq = model.model.vqmodel
    latent = F.normalize(vq.quantize.embedding(tokens), p=2, dim=-1)
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


# --- bitsandbytes (0.50) ----------------------------------------------------------------------------

NF4_BLOCK = 64  # weights per absmax of 4-bit quantization (`Params4bit.blocksize`)
NESTED_BLOCK = 256  # absmax values per second-level absmax under double quantization (`QuantState.state2`)
NF4_CONSTANT_BYTES = (256 + 16 + 1) * 4  # per layer: the nested code, the NF4 code and the offset, fp32


def nf4_bytes(numel: int) -> int:
    """Bytes of one Linear4bit weight of `numel` values, NF4 with double quantization: packed 4-bit data, the
    uint8 absmax per 64 values, the fp32 absmax per 256 of those, and the codes (`Params4bit.quant_state`)."""
    blocks = math.ceil(numel / NF4_BLOCK)
    return math.ceil(numel / 2) + blocks + 4 * math.ceil(blocks / NESTED_BLOCK) + NF4_CONSTANT_BYTES


def int8_bytes(out_features: int, in_features: int) -> int:
    """Bytes of one Linear8bitLt weight: int8 values and one fp32 scale per output row (`Int8Params.SCB`)."""
    return out_features * in_features + 4 * out_features


def quantization_state_bytes(param: torch.Tensor) -> int:
    """Bytes bitsandbytes keeps beside a quantized weight (not in `get_memory_footprint`): 4-bit's
    `quant_state` (absmax, nested absmax and codes), 8-bit's `SCB` row scales; 0 for other tensors."""
    state = getattr(param, "quant_state", None)
    if state is not None:
        tensors = [state.absmax, state.code, getattr(state, "offset", None)]
        if getattr(state, "nested", False):
            tensors += [state.state2.absmax, state.state2.code]
        return sum(t.nbytes for t in tensors if isinstance(t, torch.Tensor))
    scales = getattr(param, "SCB", None)
    return scales.nbytes if isinstance(scales, torch.Tensor) else 0


def bitsandbytes_linear(module: torch.nn.Linear, config: BitsAndBytesConfig) -> torch.nn.Module:
    """`module` as a bitsandbytes Linear4bit / Linear8bitLt on its own device, quantized exactly as
    transformers' integration does at load time (`replace_with_bnb_linear`, then `Params4bit` /
    `Int8Params` moved to the device, which quantizes them)."""
    import bitsandbytes as bnb

    device, weight = module.weight.device, module.weight.data
    with torch.device("meta"):
        if config.load_in_4bit:
            new = bnb.nn.Linear4bit(
                module.in_features,
                module.out_features,
                module.bias is not None,
                config.bnb_4bit_compute_dtype,
                compress_statistics=config.bnb_4bit_use_double_quant,
                quant_type=config.bnb_4bit_quant_type,
                quant_storage=config.bnb_4bit_quant_storage,
            )
        else:
            new = bnb.nn.Linear8bitLt(
                module.in_features,
                module.out_features,
                module.bias is not None,
                has_fp16_weights=config.llm_int8_has_fp16_weight,
                threshold=config.llm_int8_threshold,
            )
    kwargs = dict(new.weight.__dict__)
    if config.load_in_4bit:
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, **kwargs).to(device)
    else:
        kwargs.pop("SCB", None)
        new.weight = bnb.nn.Int8Params(weight.to("cpu"), requires_grad=False, **kwargs).to(device)
    if module.bias is not None:
        new.bias = module.bias
    new.requires_grad_(False)
    return new


def loaded_bitsandbytes() -> ModuleType | None:
    """bitsandbytes if this process has imported it, else None: a model can only hold its layers once it has
    been imported, so asking never imports it (importing it costs time and, on ZeroGPU, patches CUDA)."""
    return sys.modules.get("bitsandbytes")


def has_int8_layers(module: torch.nn.Module) -> bool:
    """Whether `module` holds bitsandbytes Linear8bitLt layers (LLM.int8: outlier columns are found per call,
    with data-dependent shapes, which a CUDA graph cannot capture)."""
    bnb = loaded_bitsandbytes()
    if bnb is None:
        return False
    return any(isinstance(m, bnb.nn.Linear8bitLt) for m in module.modules())


# --- the parts of Janus that understand images and write text ------------------------------------------

UNDERSTANDING_PARTS = ("model.vision_model", "model.aligner", "lm_head")  # unused by text-to-image


def drop_understanding(model: JanusForConditionalGeneration) -> int:
    """Delete the SigLIP vision tower, its aligner and `lm_head` (attributes of JanusModel /
    JanusForConditionalGeneration); return the bytes of parameters freed. Chat cannot run afterwards."""
    before = _parameter_bytes(model)
    for name in UNDERSTANDING_PARTS:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, None)
    return before - _parameter_bytes(model)


def _parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())  # a tied weight counts once
