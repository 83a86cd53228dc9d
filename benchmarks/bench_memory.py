"""Memory of Janus-Pro-1B and 7B shapes in bf16, 8-bit and 4-bit: weights, and peak GPU memory per request.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory          # CPU: 1B built and quantized, 7B estimated, ~2 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory --shapes 7b          # 7B from its shape: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory --quick --shapes tiny   # the tiny model: ~10 s
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory          # on a GPU: every row measured (1B and 7B)
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory --auto-only   # only what `--quantization auto` picks

Random weights of the real shapes (see benchmarks/common.py), built directly on the device in bf16,
quantized in memory and laid out exactly as `load_janus` does (`janus_demo.model.placement`: language
model quantized; in 8-bit and 4-bit `embed_tokens` kept on the CPU, in 4-bit `lm_head` in int8; images
only without the vision tower, aligner and `lm_head`). Columns:
- weights GB: what stays on the device, bitsandbytes' quantization state included (`precision.placed_bytes`).
  "est." = `precision.weight_bytes` from the shape on the meta device, for models too large to build here
  (a built model shows both; tests keep them equal to the byte).
- peak GB, 1 / 4 images: `torch.cuda.max_memory_allocated` over a whole request (576 steps, previews on
  as in the app, the final decode), weights included. "needs CUDA" without a GPU.
- predicted: weights + `janus_demo.model.memory`'s estimate, the number the app checks before a request.
- while loading GB: the weights' peak while `from_pretrained` runs (embed_tokens, lm_head and the parts images
  only leaves out arrive in bf16 before they move, shrink or go), from the shape.
A second table shows what `--quantization auto` picks for each shape on common GPUs (and on this one).
"""

from __future__ import annotations

import argparse
import threading

import torch

from benchmarks import common
from janus_demo.model import cuda_graphs, loading, memory, precision
from janus_demo.model.image_loop import iter_image_generation
from janus_demo.model.loading import LoadedJanus

MODES = ("none", "8bit", "4bit")
IMAGE_COUNTS = [1, 4]  # requests measured and predicted (`--image-counts`)
CPU_BUILD_LIMIT = 5e9  # bf16 bytes above which a CPU run estimates instead of building
GPUS = [  # (name, free GB after the CUDA context, compute capability): typical cards for the auto table
    ("8 GB card (RTX 4060)", 7.5, (8, 9)),
    ("T4 16 GB", 14.5, (7, 5)),
    ("L4 / A10G 24 GB", 22.0, (8, 9)),
    ("A100 / H100 80 GB", 79.0, (9, 0)),
]


def mode_label(quantization: str, images_only: bool = False) -> str:
    label = "bf16" if quantization == "none" else quantization
    return f"{label}, images only" if images_only else label


def peak_for_request(loaded: LoadedJanus, num_images: int) -> int:
    """Absolute peak allocated bytes over one whole request, as the app runs it (CUDA only); CUDA graphs kept
    from an earlier request are released first, so each peak includes its own capture."""
    cuda_graphs.release(loaded.model)
    common.free_device_memory(loaded.device)
    request = common.image_request(loaded, num_images=num_images)
    with common.PeakMemory(loaded.device) as meter:
        for _ in iter_image_generation(loaded, request, threading.Event()):
            pass
    return meter.peak


def working_bytes(model: torch.nn.Module, num_images: int, prompt_len: int) -> int:
    """The app's estimate of one request of `num_images` with guidance (bf16 activations)."""
    shape = memory.memory_shape(model, torch.bfloat16)
    return memory.estimate_image_memory(shape, prompt_len, True, memory.DECODE_CHUNK).total(num_images)


# --- rows ----------------------------------------------------------------------------------------


def built_rows(name: str, device: torch.device, quantization: str, images_only: bool) -> list[object]:
    """Build the model on `device`, measure its weights and, on CUDA, the peak of 1 and 4 image requests."""
    if name == "tiny":
        loaded = common.load_tiny(device.type, "bfloat16", quantization, images_only)
    else:
        shape = common.SHAPES[name]
        loaded = common.build_random(
            shape, dtype=torch.bfloat16, device=device, quantization=quantization, images_only=images_only
        )
    weights = precision.placed_bytes(loaded.model)
    shown = common.gb(weights)
    if name != "tiny":  # the estimate used for shapes too large to build, checked against the real thing
        estimate = precision.weight_bytes(meta_model(name), quantization, images_only)
        shown += f" (est. {common.gb(estimate)})"
    peaks = [peak_for_request(loaded, n) if device.type == "cuda" else None for n in IMAGE_COUNTS]
    prompt_len = common.prompt_length(loaded.processor)
    predicted = [weights + working_bytes(loaded.model, n, prompt_len) for n in IMAGE_COUNTS]
    label = name if name == "tiny" else common.SHAPES[name].name
    loading_peak = None if name == "tiny" else precision.weight_bytes(meta_model(name), quantization, images_only, True)
    cuda_graphs.release(loaded.model)
    del loaded
    common.free_device_memory(device)
    return row(label, mode_label(quantization, images_only), shown, peaks, predicted, loading_peak)


def estimated_rows(name: str, variants: list[tuple[str, bool]]) -> list[list[object]]:
    model = meta_model(name)
    rows = []
    for quantization, images_only in variants:
        weights = precision.weight_bytes(model, quantization, images_only)
        loading_peak = precision.weight_bytes(model, quantization, images_only, loading=True)
        predicted = [weights + working_bytes(model, n, common.prompt_length()) for n in IMAGE_COUNTS]
        label = mode_label(quantization, images_only)
        shown = f"{common.gb(weights)} est."
        rows.append(row(common.SHAPES[name].name, label, shown, [None] * len(IMAGE_COUNTS), predicted, loading_peak))
    return rows


def meta_model(name: str) -> torch.nn.Module:
    shape = common.SHAPES[name]
    return precision.meta_model(common.janus_config(shape, common.filler_tokenizer(shape.vocab), shape.layers, False))


def row(
    label: str, mode: str, weights: str, peaks: list[int | None], predicted: list[int], loading: int | None
) -> list[object]:
    measured = [common.gb(p) if p is not None else "needs CUDA" for p in peaks]
    return [label, mode, weights, *measured, *(common.gb(p) for p in predicted), common.gb(loading) if loading else "-"]


def too_large_for_cpu(name: str) -> bool:
    if name == "tiny":
        return False
    return sum(t.numel() for t in meta_model(name).parameters()) * 2 > CPU_BUILD_LIMIT


# --- what auto picks -------------------------------------------------------------------------------


def auto_rows(shapes: list[str], device: torch.device) -> list[list[object]]:
    """`choose_precision` for each shape, on the common GPUs and on this machine's GPU (if any)."""
    gpus = [precision.Gpu(int(free * 1e9), cc, name) for name, free, cc in GPUS]
    if device.type == "cuda":
        here = precision.read_gpu(device)
        gpus.append(precision.Gpu(here.free_bytes, here.capability, f"this GPU: {here.name}"))
    rows = []
    for name in shapes:
        if name == "tiny":
            continue
        config = common.janus_config(common.SHAPES[name], common.filler_tokenizer(1), common.SHAPES[name].layers, False)
        for images_only in (False, True):
            needs = precision.needs_for(config, images_only)
            for gpu in gpus:
                choice = precision.choose_precision(needs, gpu)
                label = common.SHAPES[name].name + (", images only" if images_only else "")
                picks = precision.LABELS[choice.quantization] if choice.quantization != "none" else "unquantized"
                rows.append([label, gpu.name, picks, precision.dtype_label(choice.dtype), choice.reason])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1b,7b", help="comma-separated, from tiny, 1b, 7b")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from none (bf16), 8bit, 4bit")
    parser.add_argument("--images-only-modes", default="4bit", help="modes also measured in images-only mode")
    parser.add_argument("--device", default="auto", choices=loading.DEVICES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--build-large-on-cpu", action="store_true", help=f"build even above {CPU_BUILD_LIMIT:.0e} B")
    parser.add_argument("--quick", action="store_true", help="bf16 and 4-bit only, no images-only rows")
    parser.add_argument("--image-counts", default="1,4", help="images per measured request, comma-separated")
    parser.add_argument("--auto-only", action="store_true", help="only the table of what auto picks (no builds)")
    args = parser.parse_args(argv)
    IMAGE_COUNTS[:] = [int(n) for n in common.split(args.image_counts)]
    common.quiet()
    torch.set_num_threads(args.threads)
    device = loading.resolve_device(args.device)
    shapes = common.split(args.shapes)
    modes = ["none", "4bit"] if args.quick else common.split(args.modes)
    images_only = [] if args.quick else common.split(args.images_only_modes)
    variants = [(mode, False) for mode in modes] + [(mode, True) for mode in images_only]

    rows = []
    for name in [] if args.auto_only else shapes:
        if device.type == "cpu" and too_large_for_cpu(name) and not args.build_large_on_cpu:
            print(f"[{name}] estimating from the shape (too large to build on this CPU)...", flush=True)
            rows += estimated_rows(name, variants)
            continue
        for quantization, lean in variants:
            print(f"[{name} {mode_label(quantization, lean)}] building on {device}...", flush=True)
            rows.append(built_rows(name, device, quantization, lean))

    print(f"\n{common.describe_machine(device, args.threads)}.\n")
    if rows:
        print("Peaks are whole requests, guidance 5, weights included.")
        headers = ["model", "weights", "weights GB"]
        headers += [f"peak GB, {n} image{'s' * (n > 1)}" for n in IMAGE_COUNTS]
        headers += [f"predicted GB, {n} image{'s' * (n > 1)}" for n in IMAGE_COUNTS]
        common.print_table(headers + ["while loading GB"], rows)
    auto = auto_rows(shapes, device)
    if auto:
        print(f"What `--quantization auto` picks (weights + a default request of {memory.GPU_DEFAULT_IMAGES} images)")
        common.print_table(["model", "GPU (free GB)", "auto picks", "dtype", "reason"], auto, text_columns=5)


if __name__ == "__main__":
    main()
