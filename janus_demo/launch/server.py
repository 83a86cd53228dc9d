"""The steps app.py runs around the UI: logging, access rules, loading with a readable failure, queue
and launch (share link, login, MCP server)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from typing import NoReturn

import gradio as gr
import transformers

from janus_demo.launch import access
from janus_demo.launch.settings import Settings
from janus_demo.model import previews
from janus_demo.model.loading import ModelLoadError, load_janus
from janus_demo.service.backend import Backend
from janus_demo.web.demo import launch_options


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


def check_access_or_exit(settings: Settings) -> list[access.Login] | None:
    """The logins to require (None: an open server). Refuse unsafe settings in one line, exit status 2."""
    try:
        logins = access.read_logins(settings)
    except access.AccessError as error:
        _exit_with(str(error))
    if problem := access.access_problem(settings, logins):
        _exit_with(problem)
    if warning := access.access_warning(settings, logins):
        print(f"warning: {warning}", file=sys.stderr)
    return logins


def _exit_with(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def launch_kwargs(settings: Settings, logins: list[access.Login] | None = None) -> dict:
    """Everything `demo.launch` gets from the settings."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": logins,
        "mcp_server": settings.mcp,
        **safe_launch_options(settings),
        **launch_options(),
    }


SHARE_FAILED = (
    "warning: no share link: gradio could not open its tunnel (offline, or its frpc binary is missing "
    "or blocked); serving locally only at {url}"
)


def queue_and_launch(demo: gr.Blocks, settings: Settings, logins: list[access.Login] | None = None) -> None:
    """Queue, launch, report a share link that could not be made in one line, then serve until interrupted."""
    configure_queue(demo, settings.queue_size)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            demo.launch(**launch_kwargs(settings, logins), prevent_thread_lock=True)
    finally:
        share_failed = settings.share and not demo.share_url and not demo.space_id
        print(without_share_help(printed.getvalue()) if share_failed else printed.getvalue(), end="", flush=True)
    if share_failed:
        print(SHARE_FAILED.format(url=demo.local_url), flush=True)
    demo.block_thread()


def without_share_help(launch_output: str) -> str:
    """gradio's launch output minus its multi-paragraph "Could not create share link" help.

    The help runs from that line to gradio's next status line (starting with "*" or "🔨") or the end.
    """
    kept, skipping = [], False
    for line in launch_output.splitlines(keepends=True):
        if line.startswith("Could not create share link"):
            skipping = True
        elif skipping and line.startswith(("*", "🔨")):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)
