"""Text-to-image speed: our loop (with and without previews) next to transformers' generate, and the floor.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_image            # tiny + mid (1B widths, 1 layer), CPU: ~2.5 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_image --quick    # tiny on an 8x8 grid, one round: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_image --models 7b --num-images 4 --repeats 3   # GPU, real shape
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_image --models 7b --quantization 4bit --num-images 1

Same model, seed, prompt and batch for every method; each a full 576-step batch with guidance 5, sampling
the full distribution (`top_k=0` for generate). Methods: transformers' `generate(generation_mode="image")`;
our loop (on CUDA: CUDA-graph steps); on CUDA also our loop with eager steps (`JANUS_CUDA_GRAPHS=0`); our
loop with previews every `--preview-every` steps ("auto": palette on CPU, decode on CUDA). Seconds run to the
last token (the final VQ decode, the same for all, is left out; the prompt is in). Medians over interleaved,
shuffled rounds. Peak memory: the rise above the memory in use before the run (CUDA allocator peak, or CPU
peak RSS).

The floor: the weights one step must read (language-model layers, generation head and aligner, in their
stored dtype / quantization) x 576 steps / the device's bandwidth, measured with a large tensor copy. "+KV"
adds the KV cache an average step reads.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

from benchmarks import common
from janus_demo.model import cuda_graphs, previews
from janus_demo.model.image_loop import encode_prompt
from janus_demo.model.loading import LoadedJanus

GENERATE = "transformers generate"
LOOP = "our loop"
EAGER = "our loop, eager steps"


def methods_for(loaded: LoadedJanus, args: argparse.Namespace) -> dict[str, Callable[[], float]]:
    """The methods to time on `loaded`, by name."""
    base = dict(num_images=args.num_images, preview_every=args.preview_every)
    request = common.image_request(loaded, **base, preview_mode="off")
    with_previews = common.image_request(loaded, **base, preview_mode="auto")
    methods = {
        GENERATE: lambda: common.time_generate(loaded, request),
        LOOP: lambda: common.time_loop(loaded, request),
    }
    if loaded.device.type == "cuda":
        methods[EAGER] = lambda: _eager(lambda: common.time_loop(loaded, request))
    methods["our loop + previews"] = lambda: common.time_loop(loaded, with_previews)
    return methods


def _eager(action: Callable[[], float]) -> float:
    previous = os.environ.get(cuda_graphs.ENV_SWITCH)
    os.environ[cuda_graphs.ENV_SWITCH] = "0"
    try:
        return action()
    finally:
        if previous is None:
            os.environ.pop(cuda_graphs.ENV_SWITCH, None)
        else:
            os.environ[cuda_graphs.ENV_SWITCH] = previous


def warm_up_previews(loaded: LoadedJanus) -> None:
    """Render one preview, so the palette's one-time fit (or the decoder's first call) is timed by no method."""
    mode = previews.resolve_mode("auto", loaded.device)
    tokens = torch.zeros((1, loaded.image_shape.tokens), dtype=torch.long, device=loaded.device)
    previews.render_previews(loaded.model, tokens, 48, mode)
    common.synchronize(loaded.device)


def speed_rows(name: str, samples: dict[str, list[common.Sample]], tokens: int) -> list[list[object]]:
    """One row per method; `tokens`: image tokens per batch."""
    generate = common.median_seconds(samples[GENERATE])
    rows = []
    for method, runs in samples.items():
        seconds = common.median_seconds(runs)
        rate = tokens / seconds
        rows.append(
            [
                name,
                method,
                f"{seconds:.2f}",
                f"{rate:.0f}",
                common.mb(common.max_extra(runs)),
                f"{generate / seconds:.2f}x",
            ]
        )
    return rows


def floor_row(name: str, loaded: LoadedJanus, loop_seconds: float, bandwidth: float, num_images: int) -> list[object]:
    """Weights read per step x the image's steps / bandwidth, with and without the KV cache reads, next to our
    loop."""
    steps = loaded.image_shape.tokens
    weights = common.step_weight_bytes(loaded.model)
    rows = 2 * num_images  # guidance doubles the batch
    prompt_len = encode_prompt(loaded, common.PROMPT).shape[1]
    kv = common.step_kv_bytes(loaded.model, rows, prompt_len, loaded.dtype, steps)
    floor = weights * steps / bandwidth
    floor_kv = (weights + kv) * steps / bandwidth
    kind = loaded.quantization if loaded.quantization != "none" else str(loaded.dtype).removeprefix("torch.")
    return [
        name,
        kind,
        common.mb(weights),
        f"{bandwidth / 1e9:.0f}",
        f"{floor:.2f}",
        f"{floor_kv:.2f}",
        f"{loop_seconds:.2f}",
        f"{loop_seconds / floor:.1f}x",
    ]


def bench_model(name: str, loaded: LoadedJanus, args: argparse.Namespace, bandwidth: float) -> tuple[list, list]:
    repeats = args.repeats or (3 if name.startswith("tiny") else 1)
    print(f"[{name}] warming up, then {repeats} round(s) of {len(methods_for(loaded, args))} methods...", flush=True)
    common.warm_up(loaded)
    warm_up_previews(loaded)
    samples = common.interleaved(methods_for(loaded, args), repeats, loaded.device)
    loop_seconds = common.median_seconds(samples[LOOP])
    label = f"{name} ({loaded.model_id})" if not name.startswith("tiny") else name
    return speed_rows(label, samples, loaded.image_shape.tokens * args.num_images), [
        floor_row(label, loaded, loop_seconds, bandwidth, args.num_images)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, models="tiny,mid")
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=0, help="rounds per model (default: 3 for tiny, else 1)")
    parser.add_argument("--preview-every", type=int, default=48)
    parser.add_argument("--quick", action="store_true", help="the tiny model on an 8x8 grid, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.repeats = "tiny8", 1
    device, dtype, models = common.setup(args)

    bandwidth = common.copy_bandwidth(device)
    speed, floor, steps = [], [], set()
    for name in models:
        loaded = common.load_model(name, device, dtype, args.quantization, args.mid_layers)
        steps.add(loaded.image_shape.tokens)
        rows = bench_model(name, loaded, args, bandwidth)
        speed += rows[0]
        floor += rows[1]
        del loaded
        common.free_device_memory(device)

    print(
        f"\n{common.describe_machine(device, args.threads)}. {args.num_images} image(s) per batch, "
        f"{' / '.join(map(str, sorted(steps)))} steps, "
        f"guidance 5, previews every {args.preview_every} steps; s = seconds per batch to the last token.\n"
    )
    print("Speed")
    common.print_table(["model", "method", "s", "tokens/s", "peak extra MB", "vs generate"], speed)
    print("Floor (weights read per step x steps / copy bandwidth)")
    headers = ["model", "weights", "MB/step", "GB/s", "floor s", "floor+KV s", "our loop s", "ours / floor"]
    common.print_table(headers, floor)


if __name__ == "__main__":
    main()
