"""Chat speed: time to first token and tokens/s of our `generate_answer` next to plain `model.generate`.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_chat               # tiny + mid (1B widths, 1 layer), CPU: ~40 s
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_chat --quick       # tiny, 8 tokens, one round: ~10 s
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_chat --models 7b --max-new-tokens 256 --repeats 3   # GPU

Same inputs for both (one image, assets/chelsea.png, and a question, through the chat template and the
processor, which both timings include), same seed and sampling (DeepSeek's temperature 0.1, top-p 0.95) and
the same length: `min_new_tokens = max_new_tokens` on the generation config, so EOS cannot end either early.
Plain generate's first token is timed by a minimal streamer; ours is the first ChatChunk handed to the UI
(decoded text). Decode tokens/s counts the tokens after the first over the time after it. Medians over
interleaved, shuffled rounds; "same text" checks both produced the same answer.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from benchmarks import common
from janus_demo.model import chat, internals
from janus_demo.model.loading import LoadedJanus

IMAGE = Path(__file__).resolve().parent.parent / "assets" / "chelsea.png"
QUESTION = "Describe this picture in detail."
OURS = "janus_demo generate_answer"
PLAIN = "transformers generate"


@dataclass
class Run:
    first: float  # seconds to the first token (ours: to the first text handed out)
    total: float
    tokens: int
    text: str
    peak_extra: int = 0

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / (self.total - self.first) if self.total > self.first and self.tokens > 1 else 0.0


def conversation() -> tuple[list[dict], list[Image.Image]]:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    return messages, [Image.open(IMAGE).convert("RGB")]


@contextlib.contextmanager
def forced_length(loaded: LoadedJanus, tokens: int) -> Iterator[None]:
    """EOS is suppressed until `tokens` new tokens exist (both methods read the model's generation config)."""
    config = loaded.model.generation_config
    previous = config.min_new_tokens
    config.min_new_tokens = tokens
    try:
        yield
    finally:
        config.min_new_tokens = previous


class _Clock(internals.Streamer):
    """Notes when generate hands out its first new token, and counts them."""

    def __init__(self, start: float) -> None:
        self.start, self.first, self.tokens, self.prompt_seen = start, None, 0, False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        if self.first is None:
            self.first = time.perf_counter() - self.start
        self.tokens += value.numel()

    def end(self) -> None:
        pass


def run_plain(loaded: LoadedJanus, options: chat.ChatOptions) -> Run:
    messages, images = conversation()
    start = time.perf_counter()
    inputs = chat.to_model(loaded, chat.encode_conversation(loaded, messages, images))
    clock = _Clock(start)
    torch.manual_seed(options.seed)
    tokenizer = loaded.processor.tokenizer
    with torch.inference_mode():
        output = loaded.model.generate(
            **inputs,
            max_new_tokens=options.max_new_tokens,
            do_sample=True,
            temperature=options.temperature,
            top_p=options.top_p,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            streamer=clock,
        )
    total = time.perf_counter() - start
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return Run(clock.first or total, total, clock.tokens, text)


def run_ours(loaded: LoadedJanus, options: chat.ChatOptions) -> Run:
    messages, images = conversation()
    chunks: list[tuple[float, chat.ChatChunk]] = []
    start = time.perf_counter()
    inputs = chat.encode_conversation(loaded, messages, images)  # the backend encodes before the model lock
    chat.generate_answer(loaded, inputs, options, threading.Event(), lambda c: chunks.append((time.perf_counter(), c)))
    total = time.perf_counter() - start
    first = next((at - start for at, c in chunks if c.new_tokens and not c.done), total)
    final = chunks[-1][1]
    return Run(first, total, final.new_tokens, final.text)


def measure(loaded: LoadedJanus, options: chat.ChatOptions, repeats: int) -> dict[str, list[Run]]:
    """Interleaved, shuffled rounds of both methods, each under a peak-memory meter."""
    methods = {OURS: run_ours, PLAIN: run_plain}
    runs: dict[str, list[Run]] = {name: [] for name in methods}
    order, shuffler = list(methods), random.Random(0)
    with forced_length(loaded, options.max_new_tokens):
        for _ in range(repeats):
            shuffler.shuffle(order)
            for name in order:
                common.free_device_memory(loaded.device)
                with common.PeakMemory(loaded.device) as meter:
                    run = methods[name](loaded, options)
                run.peak_extra = meter.extra
                runs[name].append(run)
    return runs


def table_rows(name: str, runs: dict[str, list[Run]]) -> list[list[object]]:
    def med(method: str, value) -> float:
        return statistics.median(value(run) for run in runs[method])

    plain_first, plain_rate = med(PLAIN, lambda r: r.first), med(PLAIN, lambda r: r.decode_rate)
    same = all(a.text == b.text for a, b in zip(runs[OURS], runs[PLAIN], strict=True))
    rows = []
    for method in (PLAIN, OURS):
        first, rate = med(method, lambda r: r.first), med(method, lambda r: r.decode_rate)
        rows.append(
            [
                name,
                method,
                f"{first:.3f}",
                f"{rate:.1f}",
                f"{med(method, lambda r: r.total):.2f}",
                f"{med(method, lambda r: r.tokens):.0f}",
                common.mb(max(r.peak_extra for r in runs[method])),
                f"{first / plain_first:.2f}",
                f"{rate / plain_rate:.2f}" if plain_rate else "-",
                "yes" if same else "no",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, models="tiny,mid")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="rounds per model")
    parser.add_argument("--quick", action="store_true", help="tiny model only, 8 tokens, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.repeats, args.max_new_tokens = "tiny", 1, 8
    device, dtype, models = common.setup(args)
    options = common.chat_options(max_new_tokens=args.max_new_tokens)

    rows = []
    for name in models:
        loaded = common.load_model(name, device, dtype, args.quantization, args.mid_layers)
        print(f"[{name}] warming up, then {args.repeats} round(s)...", flush=True)
        with forced_length(loaded, 2):
            run_plain(loaded, common.chat_options(max_new_tokens=2))
        label = name if name == "tiny" else f"{name} ({loaded.model_id})"
        rows += table_rows(label, measure(loaded, options, args.repeats))
        del loaded
        common.free_device_memory(device)

    print(
        f"\n{common.describe_machine(device, args.threads)}. One 384x384 image + a question, "
        f"{args.max_new_tokens} new tokens forced, temperature {options.temperature}, top-p {options.top_p}, "
        f"seed {options.seed}.\n"
    )
    headers = ["model", "method", "TTFT s", "decode tokens/s", "total s", "tokens", "peak extra MB"]
    common.print_table(headers + ["TTFT ours/plain", "tokens/s ours/plain", "same text"], rows)


if __name__ == "__main__":
    main()
