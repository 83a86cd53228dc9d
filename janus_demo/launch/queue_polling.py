"""The one adapter to gradio's queue loop: how often it looks for work while it has none.

gradio 6.31's queue looks for a new job every 1 ms while its line is empty, and for `gr.Progress` updates
every 10 ms (`queueing.Queue.sleep_when_free`, `progress_update_sleep_when_free`; no public option sets
them). An idle app burned about 6% of a CPU core that way, all day on a Space. Every 10 ms and 100 ms cost
about a quarter of that (`python -m benchmarks.bench_idle`). A job then starts at most 10 ms after it is
queued, which nobody sees in front of a model's work. This app reports progress by yielding, never through
`gr.Progress`, so the slower progress loop changes nothing a visitor gets.

The attributes are not part of gradio's documented API: `tests/launch/test_queue_polling.py` fails when
gradio renames them or changes their values.
"""

from __future__ import annotations

import gradio as gr

IDLE_POLL_S = 0.01  # how often an empty queue looks for a job (gradio: 0.001)
PROGRESS_POLL_S = 0.1  # how often it looks for gr.Progress updates (gradio: 0.01; this app sends none)


def calm_idle_polling(demo: gr.Blocks) -> None:
    """Make the queue of `demo` (after `demo.queue()`) look for work every IDLE_POLL_S while it has none."""
    queue = demo._queue
    if not hasattr(queue, "sleep_when_free") or not hasattr(queue, "progress_update_sleep_when_free"):
        raise RuntimeError("gradio's queue no longer has its idle poll intervals: re-check launch/queue_polling.py")
    queue.sleep_when_free = IDLE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S
