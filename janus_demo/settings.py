"""Command-line flags, each with an environment-variable twin (flags win).

    python app.py --help
    JANUS_MODEL=tiny python app.py            # same as --model tiny

A flag's default comes from its environment variable when set, so a Space configures the
app with variables alone.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from janus_demo.loading import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS


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
    max_file_size: str = "20mb"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


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
        help="bitsandbytes quantization of the language model; auto = 4bit on CUDA, none elsewhere "
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
        help="weights' dtype; auto = bfloat16 on GPU, float32 on CPU [JANUS_DTYPE] (default: %(default)s)",
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
        "--max-file-size",
        default=_env("JANUS_MAX_FILE_SIZE", "20mb"),
        help="largest upload gradio accepts [JANUS_MAX_FILE_SIZE] (default: %(default)s)",
    )
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Read flags (and their environment twins) into Settings."""
    args = build_parser().parse_args(argv)
    return Settings(**vars(args))
