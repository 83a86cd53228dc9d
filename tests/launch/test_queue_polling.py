"""The one adapter to gradio's queue loop (launch/queue_polling.py): it fails when gradio renames or retunes
the intervals it sets, and app.py's queue gets ours."""

import gradio as gr
import pytest

from janus_demo.launch import queue_polling
from janus_demo.launch.server import configure_queue


def blocks() -> gr.Blocks:
    with gr.Blocks() as demo:
        gr.Textbox()
    return demo


def test_gradio_polls_its_empty_queue_every_millisecond_as_the_adapter_says():
    demo = blocks().queue()
    assert (demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free) == (0.001, 0.01), (
        "gradio retuned its queue loop: re-check launch/queue_polling.py"
    )


def test_the_apps_queue_looks_for_work_every_10_ms_and_for_progress_every_100_ms():
    demo = configure_queue(blocks(), max_size=8)
    assert demo._queue.sleep_when_free == queue_polling.IDLE_POLL_S == 0.01
    assert demo._queue.progress_update_sleep_when_free == queue_polling.PROGRESS_POLL_S == 0.1
    assert demo._queue.max_size == 8


def test_a_queue_without_the_intervals_is_named_not_ignored():
    demo = blocks().queue()
    del demo._queue.sleep_when_free
    with pytest.raises(RuntimeError, match="queue_polling"):
        queue_polling.calm_idle_polling(demo)
