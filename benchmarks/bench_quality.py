"""What each memory saving costs in quality: scores of the changed model next to the bf16 reference, 1B shape.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_quality            # Janus-Pro-1B shape, 24 layers, CPU: ~3 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_quality --quick    # a small shape: runs in seconds, figures say nothing

A Janus-Pro-1B-shaped model with independent N(0, 0.02) weights (every matrix drawn, not tiled, so no two
vocabulary rows tie), in bf16 as on a GPU, reads `--positions` random token ids. For each change, the same
positions go through the changed model and the scores are compared with the bf16 model's: text logits
(`lm_head`, 102,400 per position) and, where the language model itself changes, image-token scores
(`generation_head`, 16,384 per position). Columns: the largest absolute error, the error's RMS relative
to the reference's RMS, and how often the top-1 token is the same. "saves" is what the change takes off
the GPU for 1B and 7B (`precision.weight_bytes`).

Random weights have no outlier features, which LLM.int8 keeps in 16-bit: real checkpoints can only do
better on that count. The figures are a CPU run (bitsandbytes' CPU kernels), on the shape that matters.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch

from benchmarks import common
from janus_demo.model import internals, placement, precision

Scores = tuple[torch.Tensor, torch.Tensor | None]  # text logits, image scores (when the LM changed)


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> None:
    """Every matrix drawn from N(0, 0.02) independently (benchmarks/common tiles one block, which makes rows tie)."""
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        if param.dim() >= 2:
            param.copy_(torch.randn(param.shape, generator=generator) * common.FILL_STD)


@torch.inference_mode()
def hidden_states(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The language model's last hidden states for `ids` (positions, hidden), embeddings looked up as the
    model's own forward does (`get_input_embeddings`)."""
    embeds = model.get_input_embeddings()(ids)
    return internals.language_model(model)(inputs_embeds=embeds, use_cache=False).last_hidden_state[0]


@torch.inference_mode()
def scores(model: torch.nn.Module, hidden: torch.Tensor, head: torch.nn.Module | None = None) -> Scores:
    text = (head or model.get_output_embeddings())(hidden).float()
    return text, internals.generation_head(model)(hidden).float()


def compare(reference: torch.Tensor, changed: torch.Tensor) -> list[str]:
    error = changed - reference
    rel_rms = error.pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()
    top1 = (changed.argmax(-1) == reference.argmax(-1)).float().mean()
    return [f"{error.abs().max().item():.4f}", f"{100 * rel_rms.item():.2f}%", f"{100 * top1.item():.1f}%"]


def mode_saving(model: torch.nn.Module, mode: str) -> float:
    """GB a quantization mode (with its lean layout) takes off the GPU against bf16, from the shape."""
    return (precision.weight_bytes(model, "none") - precision.weight_bytes(model, mode)) / 1e9


def shape_models() -> dict[str, torch.nn.Module]:
    models = {}
    for name in ("1b", "7b"):
        shape = common.SHAPES[name]
        config = common.janus_config(shape, common.filler_tokenizer(1), shape.layers, small_vision=False)
        models[name] = precision.meta_model(config)
    return models


def embedding_bytes(model: torch.nn.Module) -> float:
    return model.get_input_embeddings().weight.numel() * 2 / 1e9


def head_saving(model: torch.nn.Module, mode: str) -> float:
    head = model.get_output_embeddings()
    fan_out, fan_in = head.weight.shape
    kept = internals.int8_bytes(fan_out, fan_in) if mode == "8bit" else internals.nf4_bytes(fan_out * fan_in)
    return (head.weight.numel() * 2 - kept) / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=24, help="language-model layers (Janus-Pro-1B has 24)")
    parser.add_argument("--positions", type=int, default=128, help="token positions compared")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a small shape: checks that it runs")
    args = parser.parse_args(argv)
    shape = common.SHAPES["1b"]
    if args.quick:  # the 1B shape takes minutes to draw and quantize on a CPU
        shape = common.Shape("small", hidden=256, layers=2, heads=4, intermediate=512, vocab=4096)
        args.layers, args.positions = 2, 32
    common.quiet()
    torch.set_num_threads(args.threads)

    def fresh() -> torch.nn.Module:
        print(f"[{shape.name}, {args.layers} layers] building and drawing weights...", flush=True)
        built = common.build_random(shape, args.layers, small_vision=True, dtype=torch.bfloat16).model
        randomize_(built)
        return built

    model = fresh()
    ids = torch.randint(0, shape.vocab, (1, args.positions), generator=torch.Generator().manual_seed(1))
    hidden = hidden_states(model, ids)
    text_ref, image_ref = scores(model, hidden)
    sizes = shape_models()
    rows = []

    def add(change: str, text: torch.Tensor, image: torch.Tensor | None, saves: Callable[[torch.nn.Module], float]):
        row = [change, "text logits", *compare(text_ref, text), *(f"{saves(m):.2f}" for m in sizes.values())]
        rows.append(row)
        if image is not None:
            rows.append([change, "image-token scores", *compare(image_ref, image), "", ""])

    print(f"[{shape.name}] embed_tokens on the CPU behind a gather...", flush=True)
    table = model.get_input_embeddings()
    placement.keep_embeddings_on_cpu(model)
    add("embed_tokens on the CPU (gather)", scores(model, hidden_states(model, ids))[0], None, embedding_bytes)
    model.set_input_embeddings(table)
    for mode, label in (("8bit", "lm_head in LLM.int8 (chosen for 4-bit)"), ("4bit", "lm_head in NF4 (not chosen)")):
        print(f"[{shape.name}] {label}...", flush=True)
        head = internals.bitsandbytes_linear(
            copy.deepcopy(model.get_output_embeddings()), precision.quantization_config(mode, torch.bfloat16)
        )
        add(label, scores(model, hidden, head)[0], None, lambda m, mode=mode: head_saving(m, mode))
    for mode, label in (
        ("8bit", "8-bit mode (for scale)"),
        ("4bit", "4-bit mode: NF4 model, int8 lm_head (for scale)"),
    ):
        del model
        model = fresh()  # the same weights again (same seeds), then quantized in place
        print(f"[{shape.name}] {label}: quantizing...", flush=True)
        common.quantize_in_memory(model, mode)
        placement.make_lean(model, mode, images_only=False, device=torch.device("cpu"))
        text, image = scores(model, hidden_states(model, ids))
        add(label, text, image, lambda m, mode=mode: mode_saving(m, mode))

    print(
        f"\n{common.describe_machine(torch.device('cpu'), args.threads)}. {shape.name} shape, {args.layers} "
        f"layer(s), bf16, {args.positions} positions; errors against the bf16 model's scores.\n"
    )
    headers = ["change", "scores", "max abs error", "relative RMS error", "top-1 agreement"]
    common.print_table([*headers, "saves on 1B GB", "saves on 7B GB"], rows)


if __name__ == "__main__":
    main()
