"""Whether this process runs on a Hugging Face ZeroGPU Space (no GPU at start-up; each request borrows one).

if on_zero_gpu(): ...
"""

from __future__ import annotations

import os

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU Spaces


def on_zero_gpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (spaces' own test: SPACES_ZERO_GPU is 1, t or true)."""
    return os.environ.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")
