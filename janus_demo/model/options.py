"""What the loader may be asked for, and where it runs: plain names and one environment read, no torch.

    parse flags with QUANTIZATIONS, DEVICES, DTYPES and DEFAULT_MODEL
    if on_zero_gpu(): ...            # a Hugging Face ZeroGPU Space: no GPU at start-up, each request borrows one

The settings read these to parse flags, so `python app.py --help` and a refused flag answer before the heavy
libraries are imported (and, on ZeroGPU, before anything touches torch).
"""

from __future__ import annotations

import os

DEFAULT_MODEL = "deepseek-community/Janus-Pro-1B"
QUANTIZATIONS = ("auto", "none", "8bit", "4bit")
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")
ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU Spaces


def on_zero_gpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (spaces' own test: SPACES_ZERO_GPU is 1, t or true)."""
    return os.environ.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")
