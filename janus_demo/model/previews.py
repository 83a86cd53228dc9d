"""Previews of a half-generated Janus image, as PIL RGB images the size of the final ones.

    shots = render_previews(model, tokens, steps_done, mode=resolve_mode("auto", device))

Two ways to draw the rows generated so far, the rest greyed out:
- "decode": the finished token rows go through the VQ decoder (a non-square latent: rows x 24).
  Faithful, and milliseconds on a GPU, but a large share of a CPU's generation time.
- "palette": one RGB colour per codebook entry, fitted once per model (`code_palette`), painted as a
  mosaic of 16x16 blocks. Near free; shows the layout and colours, not the detail.
"auto" is decode on CUDA and palette elsewhere.
"""

from __future__ import annotations

import threading
import weakref

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import JanusForConditionalGeneration

from janus_demo.model import internals

PREVIEW_MODES = ("auto", "decode", "palette", "off")
GREY = 128  # colour of the positions not generated yet
PALETTE_FIT_IMAGES = 1  # random token grids decoded to fit the palette (576 codes each)
PALETTE_SEED = 0

_palettes: weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()
_palette_lock = threading.Lock()


def resolve_mode(mode: str, device: torch.device) -> str:
    """Turn `auto` into `decode` on CUDA and `palette` elsewhere; other modes pass through."""
    if mode not in PREVIEW_MODES:
        raise ValueError(f"Unknown preview mode {mode!r}: choose one of {', '.join(PREVIEW_MODES)}.")
    if mode == "auto":
        return "decode" if torch.device(device).type == "cuda" else "palette"
    return mode


def grid_shape(model: JanusForConditionalGeneration) -> tuple[int, int, int]:
    """(rows, columns, pixels per token side) of the image token grid: (24, 24, 16) for Janus-Pro."""
    rows, columns = internals.token_grid(model)
    return rows, columns, 2 ** (len(model.config.vq_config.channel_multiplier) - 1)


def render_previews(
    model: JanusForConditionalGeneration, tokens: torch.Tensor, steps_done: int, mode: str
) -> list[Image.Image]:
    """One preview per image of `tokens` (B, rows*columns), of which `steps_done` are generated."""
    if mode == "decode":
        return decode_previews(model, tokens, steps_done)
    if mode == "palette":
        return palette_previews(model, tokens, steps_done)
    raise ValueError(f"render_previews needs mode 'decode' or 'palette', got {mode!r}.")


# --- decode ------------------------------------------------------------------------------------


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """VQ decoder output (about [-1, 1]) to uint8 exactly as transformers' `JanusImageProcessor.postprocess`
    does it: unnormalise (mean = std = 0.5), rescale by 255, clip to [0, 255], truncate. The processor itself
    gives the same bytes when handed channels-first arrays (`processor.postprocess(list(pixels.permute(0, 3, 1,
    2).float().numpy()), return_tensors="PIL.Image.Image")`; the PIL backend refuses channels-last ones), which
    tests/model/test_image_loop.py checks. DeepSeek's own demo truncates the same way."""
    return ((pixels.float() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)


@torch.inference_mode()
def decode_rows(model: JanusForConditionalGeneration, tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """Decode the first `rows` token rows: (B, rows*columns) ids -> (B, rows*scale, columns*scale, 3) in [-1, 1]."""
    return internals.decode_token_rows(model, tokens, rows)


def decode_previews(model: JanusForConditionalGeneration, tokens: torch.Tensor, steps_done: int) -> list[Image.Image]:
    """Finished rows decoded by the VQ decoder, the rest grey."""
    rows, columns, scale = grid_shape(model)
    canvas = torch.full((tokens.shape[0], rows * scale, columns * scale, 3), GREY, dtype=torch.uint8)
    finished = min(steps_done // columns, rows)
    if finished:
        pixels = decode_rows(model, tokens, finished)
        canvas[:, : finished * scale] = to_uint8(pixels).cpu()
    return [Image.fromarray(image, mode="RGB") for image in canvas.numpy()]


# --- palette -----------------------------------------------------------------------------------


def code_palette(model: JanusForConditionalGeneration) -> torch.Tensor:
    """(codebook size, 3) uint8 colours on the model's device, fitted on first use and cached per model."""
    with _palette_lock:
        palette = _palettes.get(model)
        if palette is None:
            palette = fit_palette(model)
            _palettes[model] = palette
    return palette


@torch.inference_mode()
def fit_palette(model: JanusForConditionalGeneration, images: int = PALETTE_FIT_IMAGES) -> torch.Tensor:
    """Fit an affine map from a code's (normalised) embedding to the mean colour of its decoded block.

    Decodes `images` grids of random codes (a fixed private seed, not the global RNG), averages each
    token's block of pixels and solves least squares over all codes. Exact colours would need one
    decode per code (16384), tens of seconds on a CPU; this costs `images` decodes.
    """
    vectors = internals.codebook(model)
    rows, columns, scale = grid_shape(model)
    generator = torch.Generator(device="cpu").manual_seed(PALETTE_SEED)
    codes = torch.randint(0, vectors.shape[0], (images, rows * columns), generator=generator)
    pixels = decode_rows(model, codes.to(vectors.device), rows)  # (N, H, W, 3)
    block_colours = F.avg_pool2d(pixels.permute(0, 3, 1, 2).float(), scale).permute(0, 2, 3, 1).reshape(-1, 3)
    features = _palette_features(vectors)
    weights = torch.linalg.lstsq(features[codes.reshape(-1)], block_colours.cpu()).solution
    colours = features @ weights
    return ((colours.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).to(vectors.device)


def _palette_features(embedding: torch.Tensor) -> torch.Tensor:
    """[normalised embedding, 1] per code, float32 on the CPU."""
    normalised = F.normalize(embedding.detach().float().cpu(), p=2, dim=-1)
    return torch.cat([normalised, torch.ones(normalised.shape[0], 1)], dim=1)


def palette_previews(model: JanusForConditionalGeneration, tokens: torch.Tensor, steps_done: int) -> list[Image.Image]:
    """A mosaic of palette colours for the generated tokens, grey for the rest, upscaled to image size."""
    rows, columns, scale = grid_shape(model)
    palette = code_palette(model)
    mosaic = torch.full((tokens.shape[0], rows * columns, 3), GREY, dtype=torch.uint8)
    mosaic[:, :steps_done] = palette[tokens[:, :steps_done]].cpu()
    mosaic = mosaic.view(-1, rows, columns, 3).numpy()
    size = (columns * scale, rows * scale)
    return [Image.fromarray(image, mode="RGB").resize(size, Image.Resampling.NEAREST) for image in mosaic]
