"""How much streamed previews cost on the CPU, next to plain generation, for two model sizes.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_previews                   # tiny model only: ~40 s on 2 cores
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_previews --mid-layers 1    # + mid-size (1 layer): ~3 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_previews --mid-layers 2    # + mid-size (2 layers): ~4 min
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_previews --quick           # tiny on an 8x8 grid, one round: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_previews --threads 2

Models (random weights, so only the timings mean anything):
- tiny: `janus_demo.model.tiny` (LM 128 wide x 2 layers, real 24x24 grid and 16384-code VQ, VQ base channels 32).
- mid: Janus-Pro-1B's language model widths (hidden 2048, intermediate 5632, 16 heads, vocab 102400) with
  only `--mid-layers` layers (the real model has 24), the real-size VQ (base channels 128) and generation
  head, and a one-layer vision tower (text-to-image never runs it).

Methods, each a full 576-step batch: transformers' `generate(generation_mode="image")` (sampling, top_k=0),
our loop without previews, and with palette / decode previews every `--preview-every` steps. Seconds are
token generation only (to the last token); the final VQ decode, identical for all, and the palette's cost
(each code is decoded alone the first time it appears: one request's codes from a cold palette, and with
`--whole-palette` the whole codebook) are rows of their own. Medians over interleaved, shuffled repeats,
since other jobs share the CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from benchmarks import common
from benchmarks.common import PROMPT, load_tiny, time_generate, time_loop, warm_up  # noqa: F401 - re-exported
from janus_demo.model import previews
from janus_demo.model.image_loop import decode_images
from janus_demo.model.loading import LoadedJanus

MODES = ("palette", "decode")


def build_mid(layers: int) -> LoadedJanus:
    """Janus-Pro-1B widths with `layers` LM layers and the real VQ, random weights, in memory (fp32, CPU)."""
    return common.build_random(common.SHAPES["1b"], layers, small_vision=True)


def time_once(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(loaded: LoadedJanus, args: argparse.Namespace, repeats: int, modes: list[str]) -> dict[str, float]:
    """Median seconds per method over interleaved, shuffled rounds (see common.interleaved)."""
    base = dict(num_images=args.num_images, preview_every=args.preview_every)
    plain = common.image_request(loaded, **base, preview_mode="off")
    methods: dict[str, Callable[[], float]] = {
        "transformers generate": lambda: time_generate(loaded, plain),
        "our loop, no previews": lambda: time_loop(loaded, plain),
    }
    for mode in modes:
        request = common.image_request(loaded, **base, preview_mode=mode)
        methods[f"our loop + {mode} previews"] = lambda request=request: time_loop(loaded, request)
    samples = common.interleaved(methods, repeats, loaded.device)
    return {name: common.median_seconds(runs) for name, runs in samples.items()}


# --- report ----------------------------------------------------------------------------------


def table_rows(model: str, medians: dict[str, float], once: dict[str, float], tokens: int) -> list[str]:
    """The table's rows for one model; `tokens`: image tokens per batch."""
    plain = medians["our loop, no previews"]
    generate = medians["transformers generate"]
    rows = []
    for name, seconds in medians.items():
        rate = tokens / seconds
        vs_loop = f"{100 * (seconds - plain) / plain:+.1f}%"
        vs_generate = f"{100 * (seconds - generate) / generate:+.1f}%"
        rows.append(f"| {model} | {name} | {seconds:.2f} | {rate:.0f} | {vs_loop} | {vs_generate} |")
    for name, seconds in once.items():
        rows.append(f"| {model} | {name} | {seconds:.3f} | | | |")
    return rows


def time_previews_alone(loaded: LoadedJanus, mode: str, num_images: int, every: int) -> float:
    """Seconds spent rendering the previews of one request, measured without the loop around them."""
    tokens = random_tokens(loaded, num_images, seed=1)
    start = time.perf_counter()
    for step in range(every, loaded.image_shape.tokens, every):
        previews.render_previews(loaded.model, tokens, step, mode)
    return time.perf_counter() - start


def random_tokens(loaded: LoadedJanus, num_images: int, seed: int = 0) -> torch.Tensor:
    size = loaded.model.config.vq_config.num_embeddings
    shape = (num_images, loaded.image_shape.tokens)
    return torch.randint(0, size, shape, generator=torch.Generator().manual_seed(seed))


def bench_model(name: str, loaded: LoadedJanus, args: argparse.Namespace, repeats: int) -> list[str]:
    print(f"[{name}] warming up, timing the palette...", flush=True)
    warm_up(loaded)
    previews.clear_palette(loaded.model)
    cold = random_tokens(loaded, args.num_images)
    once = {"palette: one request's codes, each decoded alone (cold)": time_once(
        lambda: previews.palette_colours(loaded.model, cold)
    )}  # fmt: skip
    if args.whole_palette:
        every_code = torch.arange(loaded.model.config.vq_config.num_embeddings)
        previews.clear_palette(loaded.model)
        once["palette: the whole codebook, each code decoded alone"] = time_once(
            lambda: previews.palette_colours(loaded.model, every_code)
        )
    previews.clear_palette(loaded.model)  # the timed rounds meet their codes for the first time too
    print(f"[{name}] timing {repeats} round(s) of {2 + len(MODES)} methods...", flush=True)
    medians = measure(loaded, args, repeats, list(MODES))
    tokens = torch.zeros((args.num_images, loaded.image_shape.tokens), dtype=torch.long)
    once["final VQ decode of the batch"] = time_once(lambda: decode_images(loaded, tokens))
    for mode in MODES:
        previews.clear_palette(loaded.model)
        alone = time_previews_alone(loaded, mode, args.num_images, args.preview_every)
        share = 100 * alone / medians["our loop, no previews"]
        once[f"{mode} previews alone, cold palette ({share:.1f}% of our loop)"] = alone
    return table_rows(name, medians, once, loaded.image_shape.tokens * args.num_images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1 measured faster here)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds for the tiny model")
    parser.add_argument("--mid-layers", type=int, default=0, help="LM layers of the mid-size model; 0 skips it")
    parser.add_argument("--mid-repeats", type=int, default=1, help="rounds for the mid-size model")
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument("--preview-every", type=int, default=48)
    parser.add_argument("--quick", action="store_true", help="the tiny model on an 8x8 grid, one round")
    parser.add_argument(
        "--whole-palette", action="store_true", help="also time decoding all 16384 codes (~100 s on 2 cores, real VQ)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.mid_layers, args.repeats, args.preview_every = 0, 1, 16
    common.quiet()
    torch.set_num_threads(args.threads)

    small = load_tiny(grid=8) if args.quick else load_tiny()
    rows = bench_model("tiny8" if args.quick else "tiny", small, args, args.repeats)
    if args.mid_layers > 0:
        rows += bench_model(f"mid {args.mid_layers}L", build_mid(args.mid_layers), args, args.mid_repeats)

    print(
        f"\n{common.describe_machine(torch.device('cpu'), args.threads)}, {args.num_images} image(s) per batch, "
        f"{small.image_shape.tokens} steps{' (576 for mid)' * (args.mid_layers > 0)}, guidance 5, "
        f"previews every {args.preview_every} steps; s = seconds per batch to the last token.\n"
    )
    print("| model | method | s | tokens/s | vs our loop | vs generate |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
