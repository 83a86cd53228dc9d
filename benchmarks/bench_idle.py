"""CPU an idle app uses: gradio's own queue polling against ours (launch/queue_polling.py), side by side.

    HF_HUB_OFFLINE=1 python -m benchmarks.bench_idle               # 10 s each, tiny model: ~30 s
    HF_HUB_OFFLINE=1 python -m benchmarks.bench_idle --seconds 2   # quick

The whole app (tiny model on the 8x8 grid, every tab) is served on loopback with nobody connected; this
process's CPU time is read over the same stretch with gradio's intervals, then with ours, in one run.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmarks import common
from janus_demo.launch.queue_polling import calm_idle_polling
from janus_demo.service.backend import Backend
from janus_demo.web.demo import build_demo


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def idle_cpu(seconds: float) -> float:
    """CPU seconds this process used while sleeping `seconds` (the server's threads did the work)."""
    start = cpu_seconds()
    time.sleep(seconds)
    return cpu_seconds() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="idle stretch measured for each setting")
    args = parser.parse_args(argv)
    common.quiet()
    demo = build_demo(Backend(common.load_tiny(grid=8)))
    demo.queue(default_concurrency_limit=1, api_open=False)  # gradio's own intervals
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)  # gradio finds a free port
    try:
        idle_cpu(1.0)  # start-up work settles
        rows = [["gradio's own (1 ms; progress 10 ms)", idle_cpu(args.seconds)]]
        calm_idle_polling(demo)
        rows.append(["ours (10 ms; progress 100 ms)", idle_cpu(args.seconds)])
    finally:
        demo.close()
    print(f"\n{common.describe_machine(torch.device('cpu'), torch.get_num_threads())}. Nobody connected.\n")
    table = [[name, f"{used:.2f}", f"{100 * used / args.seconds:.1f}"] for name, used in rows]
    common.print_table(["queue polling", f"CPU s in {args.seconds:g} s", "% of a core"], table, text_columns=1)


if __name__ == "__main__":
    main()
