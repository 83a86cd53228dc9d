"""Many visitors, one model: the image scheduler next to serving one request at a time, in the same run.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_serving                  # tiny model, 4 visitors: ~1 min on 2 cores
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_serving --models tiny,mid --mid-layers 1
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_serving --quick          # tiny, 3 visitors, 8x8 grid: seconds
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_serving --models 1b --arrivals together --device cuda  # a GPU

Visitors ask for images (visitor k: `1 + k % --max-images` images, seed k, a preview every 4 token rows) and one
more asks a chat question half a second in. They arrive together, or staggered (`--gap` seconds apart). Two
policies serve them: "one at a time" (one lock around every request, chat included: the app before the
scheduler) and "scheduler" (`janus_demo.service.scheduler.ImageScheduler`: requests waiting together are drawn in
one batch; the chat runs beside the images under a lock of its own). Columns: time to the first preview (images)
or the first token (chat), time to done, median and 95th percentile over the image visitors, the chat's own
times, and images per minute over the whole run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from benchmarks import common
from janus_demo.model import chat, image_loop
from janus_demo.model.loading import LoadedJanus
from janus_demo.service.scheduler import ImageScheduler

QUESTION = "What makes a good photograph?"


@dataclass
class Visit:
    """One visitor's times, in seconds from its arrival."""

    first: float | None = None
    done: float | None = None
    images: int = 0


def image_visit(draw: Callable, loaded: LoadedJanus, k: int, max_images: int) -> Visit:
    rows = loaded.image_shape.rows
    request = common.image_request(
        loaded, seed=k, num_images=1 + k % max_images, preview_every=4 * rows, preview_mode="palette"
    )
    visit, start = Visit(), time.perf_counter()
    for item in draw(request):
        if isinstance(item, image_loop.ImageProgress) and (item.previews or item.done) and visit.first is None:
            visit.first = time.perf_counter() - start
        if isinstance(item, image_loop.ImageProgress) and item.done:
            visit.done, visit.images = time.perf_counter() - start, len(item.images)
    return visit


def chat_visit(answer: Callable, loaded: LoadedJanus, tokens: int) -> Visit:
    messages = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    inputs = chat.encode_conversation(loaded, messages, [])
    options = common.chat_options(max_new_tokens=tokens, seed=1)
    visit, start = Visit(), time.perf_counter()

    def emit(chunk: chat.ChatChunk) -> None:
        if visit.first is None and chunk.new_tokens:
            visit.first = time.perf_counter() - start

    answer(lambda: chat.generate_answer(loaded, inputs, options, threading.Event(), emit))
    visit.done = time.perf_counter() - start
    return visit


def one_at_a_time(loaded: LoadedJanus) -> tuple[Callable, Callable]:
    """(draw, answer) that share one lock: every request waits for every request before it."""
    lock = threading.Lock()

    def draw(request):
        with lock:
            yield from image_loop.iter_image_generation(loaded, request, threading.Event())

    def answer(work):
        with lock:
            work()

    return draw, answer


def scheduled(loaded: LoadedJanus, max_rows: int) -> tuple[Callable, Callable]:
    """(draw, answer): images through the scheduler, chats beside them under a lock of their own."""
    scheduler, chats = ImageScheduler(loaded, max_rows=max_rows), threading.Lock()

    def answer(work):
        with chats:
            work()

    return (lambda request: scheduler.draw(request, threading.Event())), answer


def serve(loaded: LoadedJanus, policy: tuple[Callable, Callable], args: argparse.Namespace, gap: float) -> list:
    """Every visitor's Visit (the chat's last) and the run's wall time."""
    draw, answer = policy
    start = time.perf_counter()
    with ThreadPoolExecutor(args.visitors + 1) as pool:
        futures = []
        for k in range(args.visitors):
            futures.append(pool.submit(image_visit, draw, loaded, k, args.max_images))
            time.sleep(gap)
        time.sleep(max(0.0, 0.5 - gap * args.visitors))
        futures.append(pool.submit(chat_visit, answer, loaded, args.chat_tokens))
        visits = [future.result() for future in futures]
    return [visits, time.perf_counter() - start]


def p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def row(model: str, scenario: str, policy: str, visits: list[Visit], wall: float) -> list[str]:
    images, talk = visits[:-1], visits[-1]
    first, done = [v.first for v in images], [v.done for v in images]
    per_minute = 60 * sum(v.images for v in images) / wall
    return [
        model,
        scenario,
        policy,
        f"{statistics.median(first):.2f}",
        f"{p95(first):.2f}",
        f"{statistics.median(done):.2f}",
        f"{p95(done):.2f}",
        f"{talk.first:.2f}",
        f"{talk.done:.2f}",
        f"{per_minute:.1f}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_args(parser, models="tiny")
    parser.add_argument("--visitors", type=int, default=4, help="image visitors (one chat visitor joins them)")
    parser.add_argument("--max-images", type=int, default=1, help="visitor k asks for 1 + k %% this many images")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between staggered arrivals")
    parser.add_argument("--chat-tokens", type=int, default=32, help="tokens of the chat answer")
    parser.add_argument("--max-rows", type=int, default=16, help="the scheduler's row cap")
    parser.add_argument("--arrivals", default="both", choices=("both", "together", "staggered"))
    parser.add_argument("--quick", action="store_true", help="tiny model on an 8x8 grid, 3 visitors")
    args = parser.parse_args(argv)
    device, dtype, models = common.setup(args)
    if args.quick:
        args.visitors, args.chat_tokens, models = 3, 8, ["tiny8"]
    rows = [line for name in models for line in measure_model(name, device, dtype, args)]
    print(f"\n{common.describe_machine(device, args.threads)}. {args.visitors} image visitors + 1 chat.\n")
    headers = ["model", "arrival", "policy", "first preview median s", "first preview p95 s", "done median s"]
    headers += ["done p95 s", "chat first token s", "chat done s", "images/min"]
    common.print_table(headers, rows, text_columns=3)


def measure_model(name: str, device: torch.device, dtype: torch.dtype, args: argparse.Namespace) -> list:
    """The table's rows for one model: both arrivals, both policies."""
    loaded, rows = common.load_model(name, device, dtype, args.quantization, args.mid_layers), []
    common.warm_up(loaded)
    policies = {"one at a time": lambda: one_at_a_time(loaded), "scheduler": lambda: scheduled(loaded, args.max_rows)}
    arrivals = {"together": [("together", 0.0)], "staggered": [(f"{args.gap:g} s apart", args.gap)]}
    for scenario, gap in arrivals.get(args.arrivals, arrivals["together"] + arrivals["staggered"]):
        for policy, make in policies.items():
            print(f"[{name}] {scenario}, {policy}...", flush=True)
            visits, wall = serve(loaded, make(), args, gap)
            rows.append(row(name, scenario, policy, visits, wall))
    common.free_device_memory(device)
    return rows


if __name__ == "__main__":
    main()
