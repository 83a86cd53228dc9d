"""Where each weight lives: the lean layout of a loaded model.

    layout = make_lean(model, "4bit", images_only=False, device=torch.device("cuda"))
    layout.info()   # {"embed_tokens": "cpu (rows gathered per lookup)", "lm_head": "int8", "chat": True}

In quantized modes, `embed_tokens` stays in CPU memory behind a gather (`CpuEmbedding`: only the looked-up
rows move, with exactly the same values); in 4-bit, `lm_head` is LLM.int8; images-only drops the vision tower,
its aligner and `lm_head`. docs/benchmarks.md has what each costs in logit error and saves in memory;
`janus_demo.model.precision.weight_bytes` prices it from the shape alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import JanusForConditionalGeneration

from janus_demo.model import internals
from janus_demo.model.precision import quantization_config


class CpuEmbedding(torch.nn.Module):
    """An embedding table kept in CPU memory: rows are looked up on the CPU and only they move to the ids'
    device. The table is a plain attribute, neither parameter nor buffer, so `model.to(device)` leaves it."""

    def __init__(self, embedding: torch.nn.Embedding) -> None:
        super().__init__()
        self.table = embedding.weight.detach().to("cpu")
        self.num_embeddings, self.embedding_dim = self.table.shape

    @property
    def weight(self) -> torch.Tensor:
        return self.table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids.to("cpu"), self.table).to(ids.device)


@dataclass(frozen=True)
class Layout:
    """Where the parts the lean layout moves ended up (for the Model panel)."""

    embed_tokens: str = "as loaded"  # "cpu (rows gathered per lookup)", or the device it was loaded on
    lm_head: str = "as loaded"  # "int8", "not loaded", or the dtype it was loaded in
    chat: bool = True  # False in images-only mode

    def info(self) -> dict[str, object]:
        return {"embed_tokens": self.embed_tokens, "lm_head": self.lm_head, "chat": self.chat}


def make_lean(
    model: JanusForConditionalGeneration, quantization: str, images_only: bool, device: torch.device
) -> Layout:
    """Apply the lean layout to a loaded model (see the module docstring); return where things ended up."""
    if images_only:
        internals.drop_understanding(model)
    head = model.get_output_embeddings()
    lm_head = "not loaded" if head is None else str(head.weight.dtype).removeprefix("torch.")
    if quantization == "4bit" and head is not None:
        lm_head_to_int8(model)
        lm_head = "int8"
    embed_tokens = str(device)
    if quantization != "none":  # on a CPU too: one code path, and the same bytes counted everywhere
        keep_embeddings_on_cpu(model)
        embed_tokens = "cpu (rows gathered per lookup)"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return Layout(embed_tokens, lm_head, chat=not images_only)


def lm_head_to_int8(model: JanusForConditionalGeneration) -> None:
    """`lm_head` as an LLM.int8 layer on its device (bitsandbytes' defaults: outlier columns in 16-bit)."""
    model.set_output_embeddings(
        internals.bitsandbytes_linear(model.get_output_embeddings(), quantization_config("8bit"))
    )


def keep_embeddings_on_cpu(model: JanusForConditionalGeneration) -> None:
    """`embed_tokens` as a CpuEmbedding: its table in CPU memory, the device copy freed."""
    model.set_input_embeddings(CpuEmbedding(model.get_input_embeddings()))
