"""Load time and memory footprint of each quantization mode, through the app's real loading path.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_loading                 # tiny: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_loading --model 1b      # Janus-Pro-1B shape: ~3 min, ~9 GB RAM on CPU

A random-weight checkpoint of the chosen shape is written once (bf16 safetensors, as on the hub) into a
temporary folder, then loaded with `janus_demo.model.loading.load_janus` — `from_pretrained` plus bitsandbytes —
in every mode, side by side: seconds to load, `get_memory_footprint()`, bitsandbytes layers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks import common
from janus_demo.model import tiny
from janus_demo.model.loading import load_janus

MODES = ("none", "8bit", "4bit")


def write_checkpoint(model: str, folder: Path) -> Path:
    """The tiny checkpoint, or a random model of a real shape saved as the hub stores it."""
    if model == "tiny":
        return tiny.build_tiny_janus(folder)
    loaded = common.build_random(common.SHAPES[model], dtype=torch.bfloat16)
    loaded.model.save_pretrained(folder)
    loaded.processor.save_pretrained(folder)
    return folder


def measure(path: Path, mode: str, device: str, dtype: str, repeats: int) -> dict:
    seconds, info = [], {}
    for _ in range(repeats):
        loaded = load_janus(str(path), quantization=mode, device=device, dtype=dtype)
        seconds.append(loaded.load_seconds)
        info = loaded.info()
        del loaded
        common.free_device_memory(torch.device(device))
    return {"mode": mode, "seconds": statistics.median(seconds), **info}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "1b", "7b"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", help="dtype of the unquantized parts (auto: bf16 GPU, fp32 CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    common.quiet()
    with tempfile.TemporaryDirectory(prefix="janus-load-") as folder:
        path = write_checkpoint(args.model, Path(folder))
        rows = [measure(path, mode, args.device, args.dtype, args.repeats) for mode in MODES]
    print(f"Loading {args.model} on {args.device} (dtype {args.dtype}), median of {args.repeats}\n")
    print("| model | mode | load s | footprint | quantized layers | dtype |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        size = row["footprint_bytes"] / 2**30
        cells = f"{row['seconds']:.2f} | {size:.3f} GiB | {row['quantized_layers']} | {row['dtype']}"
        print(f"| {args.model} | {row['mode']} | {cells} |")


if __name__ == "__main__":
    main()
