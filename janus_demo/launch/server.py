"""The steps app.py runs around the UI: logging, access rules, loading with a readable failure, queue
and launch (share link, login, MCP server)."""

from __future__ import annotations

import contextlib
import io
import logging

import gradio as gr
import torch
import transformers

from janus_demo.launch import access
from janus_demo.launch.cache import CacheDir, cache_base
from janus_demo.launch.cache_budget import CacheBudget
from janus_demo.launch.gate import GateConfig, gate_app_kwargs
from janus_demo.launch.gate.addresses import distrust_forwarded_headers
from janus_demo.launch.gate.bodies import BodyLimits
from janus_demo.launch.queue_polling import calm_idle_polling
from janus_demo.launch.settings import Settings
from janus_demo.model.loading import ModelLoadError, load_janus
from janus_demo.model.options import on_zero_gpu
from janus_demo.model.upscaler import Upscaler, UpscalerError, load_upscaler
from janus_demo.service.backend import Backend
from janus_demo.service.clients import parse_size
from janus_demo.web.demo import launch_options


def configure_logging() -> None:
    """Our own messages at INFO; transformers' per-call deprecation chatter off."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def load_backend_or_exit(settings: Settings) -> Backend:
    """Load the upscaler (if any, first: it fails in seconds) and the model; on failure print one actionable
    line and exit with status 2."""
    log = logging.getLogger("janus_demo")
    upscaler = load_upscaler_or_exit(settings)
    log.info("Loading %s (quantization=%s, device=%s)…", settings.model, settings.quantization, settings.device)
    try:
        loaded = load_janus(
            settings.model, settings.quantization, settings.device, settings.dtype, settings.images_only
        )
    except ModelLoadError as error:
        access.exit_with(str(error))
    info = loaded.info()
    log.info("Loaded in %.1f s: %s", loaded.load_seconds, info)
    if upscaler:
        upscaler.place(loaded.device, loaded.dtype)
        log.info("Upscaler %s on %s in %s", settings.upscaler, upscaler.device, upscaler.dtype)
    return Backend(
        loaded, client_limits=settings.client_limits(), upscaler=upscaler, max_batch_rows=settings.max_batch_rows
    )


def load_upscaler_or_exit(settings: Settings) -> Upscaler | None:
    """The --upscaler checkpoint, on the CPU for now (None without one); on failure one line, exit status 2."""
    if not settings.upscaler:
        return None
    try:
        return load_upscaler(settings.upscaler, torch.device("cpu"))
    except UpscalerError as error:
        access.exit_with(str(error))


def configure_queue(demo: gr.Blocks, max_size: int = 32, zerogpu_concurrency: int = 1) -> gr.Blocks:
    """A bounded line (gradio answers 'queue is full' beyond it) with the routes that bypass the queue closed.

    One request of each kind (chat, images) at a time, and the model lock serialises the two, since they
    share one model on one device. On ZeroGPU each request runs in its own worker process on its own GPU
    (each forked worker has its own copy of the model lock), so `zerogpu_concurrency` requests of each kind
    run at once; one at a time would only queue visitors behind each other. While the line is empty the
    queue looks for work every 10 ms, not gradio's 1 ms (launch/queue_polling.py)."""
    limit = zerogpu_concurrency if on_zero_gpu() else 1
    demo.queue(default_concurrency_limit=limit, max_size=max_size, api_open=False)
    calm_idle_polling(demo)
    return demo


def safe_launch_options(settings: Settings, backend: Backend, logins: list[access.Login] | None = None) -> dict:
    """launch() arguments every deployment gets: no public monitoring page, capped uploads and bodies,
    bounded session state, and the gate (janus_demo/launch/gate/) with the backend's per-client ledger and
    the cache folder's budget (every file gradio writes goes to that folder). uvicorn is told to trust no
    forwarded address: the gate reads them itself, as many as --proxy-hops says."""
    limits = backend.clients.limits
    gate = GateConfig(
        body=BodyLimits(
            max_bytes=limits.max_body_bytes,
            max_upload_bytes=upload_request_bytes(settings, backend),
            max_values=limits.max_body_values,
            max_depth=limits.max_body_depth,
            read_s=limits.body_read_s,
        ),
        login_required=bool(logins),
        proxy_hops=settings.proxy_hops,
    )
    distrust_forwarded_headers()
    return {
        "enable_monitoring": False,
        "max_file_size": settings.max_file_size,
        "show_error": False,
        "state_session_capacity": limits.max_sessions,
        "app_kwargs": gate_app_kwargs(gate, backend.clients, cache_room=cache_budget(settings).admit_upload),
    }


def cache_budget(settings: Settings) -> CacheBudget:
    """The bound on the app's cache folder (GRADIO_TEMP_DIR now: claim_cache_dir has set it, and pointed gradio's
    import-time copies of it there, so MCP images are counted and swept too)."""
    return CacheBudget(cache_base(), parse_size(settings.cache_size), settings.cache_files)


def upload_request_bytes(settings: Settings, backend: Backend) -> int:
    """The largest upload request: as many files of --max-file-size as one message may carry, plus framing."""
    one_file = parse_size(settings.max_file_size)
    return one_file * backend.limits.max_images_per_conversation + 2**20


def launch_kwargs(settings: Settings, backend: Backend, logins: list[access.Login] | None = None) -> dict:
    """Everything `demo.launch` gets from the settings."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "auth": logins,
        "mcp_server": settings.mcp,
        **safe_launch_options(settings, backend, logins),
        **launch_options(),
    }


SHARE_FAILED = (
    "warning: no share link: gradio could not open its tunnel (offline, or its frpc binary is missing "
    "or blocked); serving locally only"
)


def queue_and_launch(
    demo: gr.Blocks,
    settings: Settings,
    backend: Backend,
    logins: list[access.Login] | None = None,
    cache: CacheDir | None = None,
) -> None:
    """Queue, launch quietly, say where the app is (and whether the share link was made), serve until interrupted.

    gradio's launch messages name its own API ("set share=True in launch()"), and its multi-paragraph
    share-link help ignores `quiet`: launch's standard output is dropped whole and this app reports instead.
    """
    configure_queue(demo, settings.queue_size, settings.zerogpu_concurrency)
    with contextlib.redirect_stdout(io.StringIO()):
        demo.launch(**launch_kwargs(settings, backend, logins), prevent_thread_lock=True, quiet=True)
    if cache is not None:
        cache.start_sweeping()
    print(launch_report(settings, demo.local_url, demo.share_url, bool(demo.space_id)), flush=True)
    demo.block_thread()


def launch_report(settings: Settings, local_url: str, share_url: str | None, on_space: bool) -> str:
    """Where the app serves, in this app's own words."""
    lines = [f"Running on {local_url} (Ctrl+C to stop)"]
    if share_url:
        lines.append(f"Public link: {share_url} (it lasts up to a week; stop the app to close it)")
    elif settings.share and not on_space:
        lines.append(SHARE_FAILED)
    elif not settings.share and not on_space:
        lines.append("For a public link, restart with --share and a login (--auth USER:PASS); see --help.")
    if settings.mcp:
        lines.append(f"MCP server (streamable HTTP): {local_url}gradio_api/mcp/")
    return "\n".join(lines)
