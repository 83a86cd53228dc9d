"""Previews of a half-generated Janus image, as PIL RGB images the size of the final ones.

    shots = render_previews(model, tokens, steps_done, mode=resolve_mode("auto", device))

Two ways to draw the rows generated so far, the rest greyed out:
- "decode": the finished token rows go through the VQ decoder (a non-square latent: rows x 24).
  Faithful, and milliseconds on a GPU, but a large share of a CPU's generation time.
- "palette": one RGB colour per codebook entry, painted as a mosaic of 16x16 blocks: the mean colour of
  the code's patch when the code is decoded on its own (a 1x1 latent). Codes are decoded the first time
  they appear, in batches, and remembered per model (`palette_colours`): decoding the whole codebook up
  front takes about 100 s on a 2-core CPU for the real VQ decoder, while a request meets at most 576
  new codes per image (about 3.5 s there, spread over its previews, less as the palette fills).
  Shows the layout and colours, not the detail.
"auto" is decode on CUDA and palette elsewhere.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import JanusForConditionalGeneration

from janus_demo.model import internals
from janus_demo.model.image_shape import read_image_shape

PREVIEW_MODES = ("auto", "decode", "palette", "off")
GREY = 128  # colour of the positions not generated yet
PALETTE_BATCH = 64  # codes decoded at once for the palette: 16x16 patches, about 25 MB of activations (real VQ)

_palettes: weakref.WeakKeyDictionary[torch.nn.Module, Palette] = weakref.WeakKeyDictionary()
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
    shape = read_image_shape(model.config)
    return shape.rows, shape.columns, shape.patch


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


@dataclass
class Palette:
    """Each code's colour (uint8 RGB, CPU) and whether it has been decoded yet."""

    colours: torch.Tensor  # (codebook size, 3)
    known: torch.Tensor  # (codebook size,) bool


def palette_colours(model: JanusForConditionalGeneration, codes: torch.Tensor) -> torch.Tensor:
    """Colours (..., 3) uint8 on the CPU for `codes` (...); codes met for the first time are decoded first."""
    codes = codes.cpu()
    with _palette_lock:
        palette = _palettes.get(model)
        if palette is None:
            size = internals.codebook(model).shape[0]
            palette = Palette(torch.full((size, 3), GREY, dtype=torch.uint8), torch.zeros(size, dtype=torch.bool))
            _palettes[model] = palette
        wanted = codes.unique()
        missing = wanted[~palette.known[wanted]]
        for batch in missing.split(PALETTE_BATCH) if missing.numel() else ():
            palette.colours[batch] = code_colours(model, batch)
            palette.known[batch] = True
        return palette.colours[codes]


def clear_palette(model: JanusForConditionalGeneration) -> None:
    """Forget the colours decoded so far for `model` (benchmarks time a cold palette)."""
    with _palette_lock:
        _palettes.pop(model, None)


@torch.inference_mode()
def code_colours(model: JanusForConditionalGeneration, codes: torch.Tensor) -> torch.Tensor:
    """The mean colour of each code's patch, each code decoded on its own: (N,) -> (N, 3) uint8, converted as
    the final images are (`to_uint8`)."""
    device = internals.codebook(model).device
    patches = internals.decode_codes_alone(model, codes.to(device))
    return to_uint8(patches.float().mean(dim=(1, 2))).cpu()


def palette_previews(model: JanusForConditionalGeneration, tokens: torch.Tensor, steps_done: int) -> list[Image.Image]:
    """A mosaic of palette colours for the generated tokens, grey for the rest, upscaled to image size."""
    rows, columns, scale = grid_shape(model)
    mosaic = torch.full((tokens.shape[0], rows * columns, 3), GREY, dtype=torch.uint8)
    mosaic[:, :steps_done] = palette_colours(model, tokens[:, :steps_done])
    mosaic = mosaic.view(-1, rows, columns, 3).numpy()
    size = (columns * scale, rows * scale)
    return [Image.fromarray(image, mode="RGB").resize(size, Image.Resampling.NEAREST) for image in mosaic]
