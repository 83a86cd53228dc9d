"""Memory of Janus-Pro-1B and 7B shapes in bf16, 8-bit and 4-bit: weights, and peak GPU memory per request.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory          # CPU: 1B built and quantized, 7B estimated, ~2 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory --quick --shapes tiny   # the tiny model: ~10 s
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_memory          # on a GPU: every row measured (1B and 7B)

Random weights of the real shapes (see benchmarks/common.py), built directly on the device in bf16 and
quantized in memory exactly as `load_janus` does (language model only; vision tower, VQ and generation
head stay bf16). Columns:
- weights GB: `model.get_memory_footprint()` (parameters and buffers; bitsandbytes' small absmax/scale
  tensors are not in it). "est." = computed from the shape on the meta device, for models too large to
  build here: quantized Linear layers are costed by quantizing one layer of each distinct size.
- peak GB, 1 / 4 images: `torch.cuda.max_memory_allocated` over a whole request (576 steps, previews on
  as in the app, the final decode), weights included. "needs CUDA" without a GPU.
- predicted: weights + `janus_demo.model.memory`'s estimate, the number the app checks before a request.
"""

from __future__ import annotations

import argparse
import threading
from collections import Counter

import torch
from transformers import JanusForConditionalGeneration

from benchmarks import common
from janus_demo.model import internals, loading, memory
from janus_demo.model.image_loop import DECODE_CHUNK, iter_image_generation
from janus_demo.model.loading import LoadedJanus

MODES = ("none", "8bit", "4bit")
IMAGE_COUNTS = (1, 4)
CPU_BUILD_LIMIT = 5e9  # bf16 bytes above which a CPU run estimates instead of building


def mode_label(quantization: str) -> str:
    return "bf16" if quantization == "none" else quantization


def peak_for_request(loaded: LoadedJanus, num_images: int) -> int:
    """Absolute peak allocated bytes over one whole request, as the app runs it (CUDA only)."""
    common.free_device_memory(loaded.device)
    request = common.image_request(loaded, num_images=num_images)
    with common.PeakMemory(loaded.device) as meter:
        for _ in iter_image_generation(loaded, request, threading.Event()):
            pass
    return meter.peak


def predicted_peak(loaded: LoadedJanus, weights: int, num_images: int) -> int:
    prompt_len = common.prompt_length(loaded.processor)
    shape = memory.memory_shape(loaded.model, torch.bfloat16)
    return weights + memory.estimate_image_memory(shape, prompt_len, True, DECODE_CHUNK).total(num_images)


# --- estimates for shapes too large to build -------------------------------------------------------


def meta_model(shape: common.Shape, small_vision: bool = False) -> JanusForConditionalGeneration:
    """The model of `shape` on the meta device: sizes and dtypes, no memory."""
    tokenizer = common.filler_tokenizer(shape.vocab)
    config = common.janus_config(shape, tokenizer, shape.layers, small_vision)
    with internals.skip_weight_init(), common.default_dtype(torch.bfloat16), torch.device("meta"):
        return JanusForConditionalGeneration(config)


def estimated_footprint(model: torch.nn.Module, quantization: str) -> int:
    """get_memory_footprint's sum for `model` (on meta) as if quantized: bf16 tensors as they are, each
    quantized Linear priced by quantizing one real layer of its size on the CPU."""
    total = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    if quantization == "none":
        return total

    skip = loading.quantization_config(quantization).llm_int8_skip_modules
    sizes = Counter(
        (m.in_features, m.out_features)
        for name, m in model.named_modules()
        if type(m) is torch.nn.Linear and internals.quantizes(name, skip)
    )
    for (fan_in, fan_out), count in sizes.items():
        total += count * (_quantized_bytes(fan_in, fan_out, quantization) - fan_in * fan_out * 2)
    return total


def _quantized_bytes(fan_in: int, fan_out: int, quantization: str) -> int:
    layer = torch.nn.Sequential()
    layer.add_module("proj", torch.nn.Linear(fan_in, fan_out, bias=False, dtype=torch.bfloat16))
    common.fill_random_(layer)
    common.quantize_in_memory(layer, quantization)
    return sum(t.numel() * t.element_size() for t in list(layer.parameters()) + list(layer.buffers()))


# --- rows ----------------------------------------------------------------------------------------


def built_rows(name: str, device: torch.device, quantization: str) -> list[object]:
    """Build the model on `device`, measure its footprint and, on CUDA, the peak of 1 and 4 image requests."""
    if name == "tiny":
        loaded = common.load_tiny(device.type, "bfloat16", quantization)
    else:
        loaded = common.build_random(
            common.SHAPES[name], dtype=torch.bfloat16, device=device, quantization=quantization
        )
    weights = loaded.model.get_memory_footprint()
    shown = common.gb(weights)
    if name != "tiny":  # the estimate used for shapes too large to build, checked against the real thing
        shown += f" (est. {common.gb(estimated_footprint(meta_model(common.SHAPES[name]), quantization))})"
    peaks = [peak_for_request(loaded, n) if device.type == "cuda" else None for n in IMAGE_COUNTS]
    predicted = [predicted_peak(loaded, weights, n) for n in IMAGE_COUNTS]
    label = name if name == "tiny" else loaded.model_id
    del loaded
    common.free_device_memory(device)
    return row(label, quantization, shown, peaks, predicted)


def estimated_rows(name: str, quantizations: list[str]) -> list[list[object]]:
    shape = common.SHAPES[name]
    model = meta_model(shape)
    rows = []
    for quantization in quantizations:
        weights = estimated_footprint(model, quantization)
        predicted = [weights + _estimate(model, n) for n in IMAGE_COUNTS]
        rows.append(row(shape.name, quantization, f"{common.gb(weights)} est.", [None, None], predicted))
    return rows


def _estimate(model: torch.nn.Module, num_images: int) -> int:
    shape = memory.memory_shape(model, torch.bfloat16)
    return memory.estimate_image_memory(shape, common.prompt_length(), True, DECODE_CHUNK).total(num_images)


def row(label: str, quantization: str, weights: str, peaks: list[int | None], predicted: list[int]) -> list[object]:
    measured = [common.gb(p) if p is not None else "needs CUDA" for p in peaks]
    return [label, mode_label(quantization), weights, *measured, *(common.gb(p) for p in predicted)]


def too_large_for_cpu(name: str) -> bool:
    if name == "tiny":
        return False
    shape = common.SHAPES[name]
    return sum(t.numel() for t in meta_model(shape).parameters()) * 2 > CPU_BUILD_LIMIT


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1b,7b", help="comma-separated, from tiny, 1b, 7b")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, from none (bf16), 8bit, 4bit")
    parser.add_argument("--device", default="auto", choices=loading.DEVICES)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--build-large-on-cpu", action="store_true", help=f"build even above {CPU_BUILD_LIMIT:.0e} B")
    parser.add_argument("--quick", action="store_true", help="bf16 and 4-bit only")
    args = parser.parse_args(argv)
    common.quiet()
    torch.set_num_threads(args.threads)
    device = loading.resolve_device(args.device)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    modes = ["none", "4bit"] if args.quick else [m.strip() for m in args.modes.split(",") if m.strip()]

    rows = []
    for name in shapes:
        if device.type == "cpu" and too_large_for_cpu(name) and not args.build_large_on_cpu:
            print(f"[{name}] estimating from the shape (too large to build on this CPU)...", flush=True)
            rows += estimated_rows(name, modes)
            continue
        for quantization in modes:
            print(f"[{name} {mode_label(quantization)}] building on {device}...", flush=True)
            rows.append(built_rows(name, device, quantization))

    print(
        f"\n{common.describe_machine(device, args.threads)}. Peaks are whole requests, guidance 5, weights included.\n"
    )
    headers = ["model", "weights", "weights GB"]
    headers += [f"peak GB, {n} image{'s' * (n > 1)}" for n in IMAGE_COUNTS]
    headers += [f"predicted GB, {n} image{'s' * (n > 1)}" for n in IMAGE_COUNTS]
    common.print_table(headers, rows)


if __name__ == "__main__":
    main()
