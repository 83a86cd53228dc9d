"""Random-weight Real-ESRGAN (RRDBNet) checkpoints, built offline in a fraction of a second."""

from __future__ import annotations

from pathlib import Path

import torch

from janus_demo.model.upscaler import RRDBNet, Upscaler, load_upscaler


def tiny_upscaler_file(
    folder: Path, scale: int = 2, blocks: int = 1, features: int = 8, growth: int = 4, wrap: str | None = "params_ema"
) -> Path:
    """A small RRDBNet of `scale` saved as BasicSR does ({"params_ema": state dict}), or raw with wrap=None."""
    torch.manual_seed(0)
    state = RRDBNet(scale, blocks, features, growth).state_dict()
    path = Path(folder) / f"tiny-x{scale}.pth"
    torch.save({wrap: state} if wrap else state, path)
    return path


def tiny_upscaler(folder: Path) -> Upscaler:
    """A loaded 2x upscaler of one block and 8 features, on the CPU (384 -> 768 in well under a second)."""
    return load_upscaler(str(tiny_upscaler_file(folder)), torch.device("cpu"))
