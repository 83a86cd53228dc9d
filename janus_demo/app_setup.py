"""The steps app.py runs around the UI: logging, loading with a readable failure, queue and launch."""

from __future__ import annotations

import logging
import sys

import gradio as gr
import transformers

from janus_demo import previews
from janus_demo.backend import Backend
from janus_demo.loading import ModelLoadError, load_janus
from janus_demo.settings import Settings
from janus_demo.ui import launch_options


def configure_logging() -> None:
    """Our own messages at INFO; transformers' per-call deprecation chatter off."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def load_backend_or_exit(settings: Settings) -> Backend:
    """Load the model; on failure print one actionable line and exit with status 2."""
    log = logging.getLogger("janus_demo")
    log.info("Loading %s (quantization=%s, device=%s)…", settings.model, settings.quantization, settings.device)
    try:
        loaded = load_janus(settings.model, settings.quantization, settings.device, settings.dtype)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    info = loaded.info()
    log.info("Loaded in %.1f s: %s", loaded.load_seconds, info)
    if previews.resolve_mode("auto", loaded.device) == "palette":
        previews.code_palette(loaded.model)  # fit once now, not during the first user's request
    return Backend(loaded)


def configure_queue(demo: gr.Blocks, max_size: int = 32) -> gr.Blocks:
    """One worker at a time per event, a bounded line (gradio answers 'queue is full' beyond it),
    and the routes that bypass the queue closed. The GPU section serialises chat and images."""
    return demo.queue(default_concurrency_limit=1, max_size=max_size, api_open=False)


def safe_launch_options(settings: Settings) -> dict:
    """launch() arguments every deployment gets: no public monitoring page, capped uploads."""
    return {"enable_monitoring": False, "max_file_size": settings.max_file_size, "show_error": False}


def queue_and_launch(demo: gr.Blocks, settings: Settings) -> None:
    """Queue, then serve until interrupted."""
    configure_queue(demo, settings.queue_size)
    demo.launch(
        server_name=settings.host, server_port=settings.port, **safe_launch_options(settings), **launch_options()
    )
