"""Random-weight Real-ESRGAN (RRDBNet) checkpoints, built offline in a fraction of a second.

tiny_upscaler(tmp_path): one block, 8 features (384 -> 768 in well under a second);
held_upscaler(tmp_path): three blocks, the second of which waits for `held.gate` before it runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from janus_demo.model.upscaler import RRDBNet, Upscaler, load_upscaler

HOLD_S = 60  # the longest a held block waits for its gate (a bound for a broken test, not a timing)


def tiny_upscaler_file(
    folder: Path, scale: int = 2, blocks: int = 1, features: int = 8, growth: int = 4, wrap: str | None = "params_ema"
) -> Path:
    """A small RRDBNet of `scale` saved as BasicSR does ({"params_ema": state dict}), or raw with wrap=None."""
    torch.manual_seed(0)
    state = RRDBNet(scale, blocks, features, growth).state_dict()
    path = Path(folder) / f"tiny-x{scale}.pth"
    torch.save({wrap: state} if wrap else state, path)
    return path


def tiny_upscaler(folder: Path, blocks: int = 1) -> Upscaler:
    """A loaded 2x upscaler of `blocks` blocks and 8 features, on the CPU (384 -> 768 in well under a second)."""
    return load_upscaler(str(tiny_upscaler_file(folder, blocks=blocks)), torch.device("cpu"))


@dataclass
class HeldUpscaler:
    """A tiny upscaler one of whose blocks waits for `gate` before it runs (`held_upscaler`)."""

    upscaler: Upscaler
    gate: threading.Event = field(default_factory=threading.Event)  # set: the held block runs
    waiting: threading.Event = field(default_factory=threading.Event)  # set once an upscale waits at the block
    ran: list[int] = field(default_factory=list)  # the blocks that ran, in order, by every upscale


def held_upscaler(folder: Path, blocks: int = 3, at: int = 1) -> HeldUpscaler:
    """A tiny upscaler of `blocks` blocks whose block `at` waits until `.gate` is set before it runs: an upscale
    held there has done the blocks before and told their progress."""
    held = HeldUpscaler(tiny_upscaler(folder, blocks))

    def wait(module: torch.nn.Module, args: object) -> None:
        held.waiting.set()
        held.gate.wait(HOLD_S)

    held.upscaler.net.body[at].register_forward_pre_hook(wait)
    for index, block in enumerate(held.upscaler.net.body):
        block.register_forward_hook(lambda module, args, out, index=index: held.ran.append(index) and None)
    return held
