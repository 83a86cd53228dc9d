"""The mark for tests that need a CUDA GPU: skipped without one, selected by `pytest -m gpu`
(`python -m benchmarks.gpu_check` runs them first)."""

from __future__ import annotations

import pytest
import torch


def needs_cuda(test):
    """Mark `test` as a GPU test (`-m gpu`) and skip it where PyTorch sees no CUDA GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))
