"""Command-line flags, each with an environment-variable twin (flags win).

    python app.py --help
    JANUS_MODEL=tiny python app.py            # same as --model tiny
    python app.py --share --auth alice:secret # public link, behind a login

A flag's default comes from its environment variable when set, so a Space configures the
app with variables alone. On/off flags also have a `--no-...` form that beats the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from janus_demo.model.options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS
from janus_demo.service.clients import ClientLimits, cap_fields, parse_size, size_text

_LIMITS = ClientLimits()
MAX_ZEROGPU_CONCURRENCY = 4


@dataclass(frozen=True)
class Settings:
    """Everything app.py needs to load the model and serve the UI."""

    model: str = DEFAULT_MODEL
    quantization: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    queue_size: int = 32
    zerogpu_concurrency: int = 2
    max_batch_rows: int = 16
    max_file_size: str = "20mb"
    share: bool = False
    auth: str | None = field(default=None, repr=False)  # "USER:PASS"; kept out of logs and reprs
    auth_file: str | None = None
    share_without_auth: bool = False
    mcp: bool = False
    images_only: bool = False
    upscaler: str | None = None
    # per client, for a public server (declared in janus_demo.service.clients.ClientLimits)
    max_body_size: str = size_text(_LIMITS.max_body_bytes)
    jobs_per_session: int = _LIMITS.jobs_per_session
    jobs_per_ip: int = _LIMITS.jobs_per_ip
    jobs_shared_address: int = _LIMITS.jobs_shared_address
    upload_budget: str = size_text(_LIMITS.upload_bytes_per_window)
    max_sessions: int = _LIMITS.max_sessions
    proxy_hops: int = 0
    # the whole cache folder, every client together (janus_demo/launch/cache_budget.py)
    cache_size: str = "2gb"
    cache_files: int = 20_000

    def client_limits(self) -> ClientLimits:
        """The per-client caps these settings ask for."""
        return ClientLimits(
            max_body_bytes=parse_size(self.max_body_size),
            jobs_per_session=self.jobs_per_session,
            jobs_per_ip=self.jobs_per_ip,
            jobs_shared_address=self.jobs_shared_address,
            upload_bytes_per_window=parse_size(self.upload_budget),
            max_sessions=self.max_sessions,
        )


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_flag(name: str) -> bool:
    """An on/off variable: 1, true, yes or on (any case) is on; anything else, or unset, is off."""
    return _env(name, "").lower() in {"1", "true", "yes", "on"}


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return number


def _concurrency(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_ZEROGPU_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_ZEROGPU_CONCURRENCY}, got {value}")
    return number


def _batch_rows(value: str) -> int:
    rows = int(value)
    if rows < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return rows


def _size(value: str) -> str:
    try:
        parse_size(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 1mb or 500kb, got {value!r}") from None
    return value


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The argument parser behind `python app.py --help`."""
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Janus-Pro demo: chat about images and generate images, in your browser.",
        epilog="Every flag has an environment-variable twin, shown in brackets; the flag wins.",
    )
    parser.add_argument(
        "--model",
        default=_env("JANUS_MODEL", DEFAULT_MODEL),
        help="hub id, local checkpoint folder, or 'tiny' for a random-weight model built offline "
        "[JANUS_MODEL] (default: %(default)s)",
    )
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default=_env("JANUS_QUANTIZATION", "auto"),
        help="bitsandbytes quantization of the language model; auto = the best that fits the GPU (bf16, "
        "else 8bit, else 4bit), none on CPU "
        "[JANUS_QUANTIZATION] (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=_env("JANUS_DEVICE", "auto"),
        help="where the model runs [JANUS_DEVICE] (default: %(default)s)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default=_env("JANUS_DTYPE", "auto"),
        help="weights' dtype; auto = bfloat16 on GPU (float16 where it has no native bfloat16), float32 on CPU "
        "[JANUS_DTYPE] (default: %(default)s)",
    )
    parser.add_argument(
        "--host",
        default=_env("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 for every interface [GRADIO_SERVER_NAME] (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=_port(_env("GRADIO_SERVER_PORT", "7860")),
        help="port to listen on [GRADIO_SERVER_PORT] (default: %(default)s)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=int(_env("JANUS_QUEUE_SIZE", "32")),
        help="requests that may wait in line; more get a 'busy, try again' message [JANUS_QUEUE_SIZE] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--zerogpu-concurrency",
        type=_concurrency,
        default=_concurrency(_env("JANUS_ZEROGPU_CONCURRENCY", "2")),
        help=f"on ZeroGPU, requests of each kind (chat, images) served at once, each on its own GPU (1-"
        f"{MAX_ZEROGPU_CONCURRENCY}); elsewhere one at a time [JANUS_ZEROGPU_CONCURRENCY] (default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch-rows",
        type=_batch_rows,
        default=_batch_rows(_env("JANUS_MAX_BATCH_ROWS", "16")),
        help="rows one batch of images may hold (an image is 2 rows with guidance, 1 without): visitors' images "
        "waiting together are drawn in one loop up to this many, beside chat; 0 draws one request at a time "
        "(not on ZeroGPU, where each request has a GPU of its own) [JANUS_MAX_BATCH_ROWS] (default: %(default)s)",
    )
    parser.add_argument(
        "--max-file-size",
        default=_env("JANUS_MAX_FILE_SIZE", "20mb"),
        help="largest upload gradio accepts [JANUS_MAX_FILE_SIZE] (default: %(default)s)",
    )
    parser.add_argument(
        "--images-only",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("JANUS_IMAGES_ONLY"),
        help="text-to-image only: leave out the vision tower, aligner, lm_head and the Chat tab, so 7B in "
        "4-bit fits an 8 GB card [JANUS_IMAGES_ONLY] (default: %(default)s)",
    )
    parser.add_argument(
        "--upscaler",
        metavar="PATH_OR_HUB_ID",
        default=_env("JANUS_UPSCALER", "") or None,
        help="a 2x Real-ESRGAN (RRDBNet) checkpoint: a local .pth/.safetensors file, or a hub repo_id[:filename] "
        "such as nateraw/real-esrgan:RealESRGAN_x2plus.pth; adds 'Upscale 2x' and /upscale [JANUS_UPSCALER] "
        "(default: none)",
    )
    add_access_flags(parser)
    add_client_flags(parser)
    add_cache_flags(parser)
    return parser


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    """The bound on gradio's cache folder, for every client together (uploads, results, MCP images)."""
    group = parser.add_argument_group("the file cache, all clients together (see README, Robustness)")
    group.add_argument(
        "--cache-size",
        type=_size,
        default=_env("JANUS_CACHE_SIZE", "2gb"),
        help="bytes the app's cache folder may hold; uploads beyond it are refused (HTTP 507) and its oldest "
        "files removed [JANUS_CACHE_SIZE] (default: %(default)s)",
    )
    group.add_argument(
        "--cache-files",
        type=_positive,
        default=_positive(_env("JANUS_CACHE_FILES", "20000")),
        help="files the app's cache folder may hold; uploads beyond it are refused (HTTP 507) and its oldest "
        "files removed [JANUS_CACHE_FILES] (default: %(default)s)",
    )


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """Per-client caps for a public server: one flag per ClientLimits field that declares one."""
    group = parser.add_argument_group("limits per client (see README, Robustness)")
    for cap in cap_fields():
        flag, env, meaning = cap.metadata["flag"], cap.metadata["env"], cap.metadata["meaning"]
        if not flag:
            continue
        if cap.metadata["unit"] == "bytes":
            kind, default = _size, _env(env, size_text(cap.default))
        else:
            kind, default = _positive, _positive(_env(env, str(cap.default)))
        group.add_argument(flag, type=kind, default=default, help=f"{meaning} [{env}] (default: %(default)s)")
    on_space = bool(os.environ.get("SPACE_ID"))
    group.add_argument(
        "--proxy-hops",
        type=int,
        default=int(_env("JANUS_PROXY_HOPS", "1" if on_space else "0")),
        help="proxies in front of the app that append to X-Forwarded-For; per-address limits then count the "
        "address the outermost one saw (1 on a Hugging Face Space, else 0) [JANUS_PROXY_HOPS] "
        "(default: %(default)s)",
    )


def add_access_flags(parser: argparse.ArgumentParser) -> None:
    """Who can reach the app: share link, login, MCP server."""
    access = parser.add_argument_group("sharing, login and MCP")
    access.add_argument(
        "--share",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("GRADIO_SHARE"),
        help="also serve on a temporary public *.gradio.live link; needs --auth/--auth-file or "
        "--share-without-auth [GRADIO_SHARE] (default: %(default)s)",
    )
    access.add_argument(
        "--auth",
        metavar="USER:PASS",
        default=_env("JANUS_AUTH", "") or None,
        help="require this login (with or without --share) [JANUS_AUTH]",
    )
    access.add_argument(
        "--auth-file",
        metavar="PATH",
        default=_env("JANUS_AUTH_FILE", "") or None,
        help="require a login from this file: one user:pass a line, # comments [JANUS_AUTH_FILE]",
    )
    access.add_argument(
        "--share-without-auth",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("JANUS_SHARE_WITHOUT_AUTH"),
        help="allow --share with no login: anyone with the link can use your GPU "
        "[JANUS_SHARE_WITHOUT_AUTH] (default: %(default)s)",
    )
    access.add_argument(
        "--mcp",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("JANUS_MCP"),
        help="serve the API endpoints as MCP tools at /gradio_api/mcp/ [JANUS_MCP] (default: %(default)s)",
    )


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Read flags (and their environment twins) into Settings."""
    args = build_parser().parse_args(argv)
    return Settings(**vars(args))
