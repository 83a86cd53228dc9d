"""The optional 2x upscaler: Real-ESRGAN's generator (RRDBNet), loaded from a checkpoint file or the Hub.

    upscaler = load_upscaler("nateraw/real-esrgan:RealESRGAN_x2plus.pth", torch.device("cpu"))
    big = upscaler.upscale(image)        # 384x384 RGB -> 768x768 RGB
    big = upscaler.upscale(image, stop, progress=lambda share: print(f"{share:.0%}"))   # 4%, 8%, ... 92%

Why the network is written here rather than loaded with spandrel (or basicsr/realesrgan): every release of
those loaders imports torchvision, and no torchvision build for torch 2.13 on CPU can be installed here (the
one that matches is a CUDA build that fails to import; installing it would also make transformers use it
for Janus' image processor). The architecture is small and has not changed since ESRGAN (2018): a first
conv, `num_block` RRDBs of three residual dense blocks with five convs each (growth 32, 64 features), two
nearest-neighbour 2x upsampling convs and two last convs, LeakyReLU 0.2. The 2x model first folds each
2x2 pixel block into channels (pixel_unshuffle: 12 input channels) and so works at half resolution. The
parameter names follow xinntao's Real-ESRGAN / BasicSR, so official checkpoints load unchanged and strictly.

Progress: the pass reports the share of its work done after each block (`work_shares`: the convs'
multiply-adds at their map sizes; 23 blocks are 92% of RealESRGAN_x2plus' work, the full-size convs after
them the rest), and Stop is checked before each block, so a 12 s CPU upscale says how far it is every half
second and stops within one. The output is the whole-image pass's, to the bit: no tiles, no seams.

Tiling: not needed for our images. A 384x384 Janus image is one 192x192 feature map after the unshuffle
(0.66 TMAC, 16.7 M parameters); the largest activation is the 768x768x64 map after the second
upsampling, 150 MB in fp32 (75 MB in fp16), and the whole CPU process peaks near 0.85 GiB. The service
layer caps the input at 1024 a side (2048x2048 out: about 7x the work and memory of 384, some 2 GB of
activations in fp16), so no tiling is done.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from janus_demo.model import hub

SCALES = {12: 2, 3: 4}  # conv_first's input channels -> scale (3 x 2x2 unshuffled, or plain RGB)
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


class UpscalerError(RuntimeError):
    """The upscaler could not be found or loaded; the message names the file and says why."""


class Stopped(Exception):
    """The upscale was stopped between two blocks."""


# --- the network ---------------------------------------------------------------------------------------


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block's input and every earlier conv's output; a scaled residual."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        for index in range(1, 6):
            out = features if index == 5 else growth
            setattr(self, f"conv{index}", nn.Conv2d(features + (index - 1) * growth, out, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = [x]
        for index in range(1, 5):
            seen.append(F.leaky_relu(getattr(self, f"conv{index}")(torch.cat(seen, 1)), 0.2))
        return self.conv5(torch.cat(seen, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual: three dense blocks, then a scaled residual around them."""

    def __init__(self, features: int, growth: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(features, growth) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """Real-ESRGAN's generator for scale 2 or 4 (RGB in, RGB out, values in [0, 1])."""

    def __init__(self, scale: int = 2, blocks: int = 23, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        if scale not in SCALES.values():
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (4 if scale == 2 else 1), features, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_hr = nn.Conv2d(features, features, 3, 1, 1)
        self.conv_last = nn.Conv2d(features, 3, 3, 1, 1)

    def forward(
        self, x: torch.Tensor, stop: threading.Event | None = None, progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """`stop` set: raise Stopped before the next block (a 23-block pass stops within 1/23 of its time).
        `progress(share)` after each block: the share of the pass's work done (`work_shares`)."""
        feat = self.conv_first(F.pixel_unshuffle(x, 2) if self.scale == 2 else x)
        shares = self.work_shares(feat.shape[-2] * feat.shape[-1]) if progress is not None else []
        body = feat
        for index, block in enumerate(self.body):
            if stop is not None and stop.is_set():
                raise Stopped
            body = block(body)
            if progress is not None:
                progress(shares[index])
        feat = feat + self.conv_body(body)
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    def work_shares(self, pixels: int) -> list[float]:
        """The share of a pass's work done after each block, for a body map of `pixels` (the input's after the
        unshuffle): multiply-adds of the convs at their map sizes (the last two convs work at 16x the body's)."""

        def macs(conv: nn.Conv2d, at: int) -> int:
            return at * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]

        block = sum(macs(conv, pixels) for conv in self.body[0].modules() if isinstance(conv, nn.Conv2d))
        head = macs(self.conv_first, pixels)
        tail = macs(self.conv_body, pixels) + macs(self.conv_up1, 4 * pixels)
        tail += sum(macs(conv, 16 * pixels) for conv in (self.conv_up2, self.conv_hr, self.conv_last))
        total = head + len(self.body) * block + tail
        return [(head + done * block) / total for done in range(1, len(self.body) + 1)]


# --- loading ---------------------------------------------------------------------------------------------


@dataclass
class Upscaler:
    """A loaded RRDBNet, where it runs and what it was loaded from."""

    net: RRDBNet
    source: str
    device: torch.device
    dtype: torch.dtype

    @property
    def scale(self) -> int:
        return self.net.scale

    def place(self, device: torch.device, dtype: torch.dtype | None = None) -> Upscaler:
        """Move to `device`: float32 on the CPU; on CUDA `dtype` if it is a half type, else float16."""
        half = dtype if dtype in (torch.float16, torch.bfloat16) else torch.float16
        self.device, self.dtype = device, half if device.type == "cuda" else torch.float32
        self.net.to(device, self.dtype)
        return self

    @torch.inference_mode()
    def upscale(
        self,
        image: Image.Image,
        stop: threading.Event | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Image.Image:
        """`image` (RGB) `scale` times larger; Stopped if `stop` is set meanwhile; `progress(share of the work
        done)` after each block."""
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(self.device, self.dtype)
        if self.scale == 2 and (x.shape[2] % 2 or x.shape[3] % 2):  # the unshuffle needs even sides
            x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), mode="replicate")
        out = self.net(x, stop, progress)[:, :, : image.height * self.scale, : image.width * self.scale]
        pixels = out.squeeze(0).float().clamp_(0, 1).mul_(255).round_().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(pixels, "RGB")


def load_upscaler(spec: str, device: torch.device, dtype: torch.dtype | None = None, scale: int = 2) -> Upscaler:
    """Load an RRDBNet checkpoint of `scale`: a local .pth/.safetensors file, or a Hub `repo_id[:filename]`.

    dtype: float32 on the CPU; on CUDA the given half type (Real-ESRGAN runs in float16 there by default).
    A checkpoint of another scale is refused rather than run and resized: a 4x net does four times the
    work of a 2x one for pixels that would be thrown away. UpscalerError says what is wrong in one line.
    """
    path = resolve_checkpoint(spec)
    state = read_state_dict(path)
    found, blocks, features, growth = layout_of(state, path)
    if found != scale:
        raise UpscalerError(
            f"{path} is a {found}x upscaler; the app offers Upscale {scale}x only: use a {scale}x checkpoint "
            "such as RealESRGAN_x2plus.pth."
        )
    with torch.device("meta"):
        net = RRDBNet(found, blocks, features, growth)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()[:200]
        raise UpscalerError(f"{path} is not a Real-ESRGAN RRDBNet checkpoint ({first}).") from None
    upscaler = Upscaler(net.eval().requires_grad_(False), spec, torch.device("cpu"), torch.float32)
    return upscaler.place(device, dtype)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: a raw state dict, or one under "params_ema" / "params" (BasicSR)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is refused with its name
        raise UpscalerError(f"{path} could not be read as a checkpoint ({type(error).__name__}).") from None
    if isinstance(state, dict):
        state = state.get("params_ema", state.get("params", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UpscalerError(f"{path} holds no state dict of tensors: it is not an upscaler checkpoint.")
    return state


def layout_of(state: dict[str, torch.Tensor], path: Path) -> tuple[int, int, int, int]:
    """(scale, blocks, features, growth) read from the keys and shapes; UpscalerError if they do not fit."""
    first = state.get("conv_first.weight")
    growth_weight = state.get("body.0.rdb1.conv1.weight")
    if first is None or growth_weight is None or first.ndim != 4 or first.shape[1] not in SCALES:
        raise UpscalerError(f"{path} is not a Real-ESRGAN RRDBNet checkpoint (no conv_first/body.N.rdbM keys).")
    blocks = 1 + max(int(m.group(1)) for key in state if (m := re.match(r"body\.(\d+)\.", key)))
    return SCALES[first.shape[1]], blocks, first.shape[0], growth_weight.shape[0]


def resolve_checkpoint(spec: str) -> Path:
    """A local file as it is; else a Hub `repo_id[:filename]` (without a filename, the repo's one weights
    file) from the Hub or, when the Hub is offline or unreachable, from the local cache only."""
    if os.path.exists(spec):
        return Path(spec)
    if spec.endswith(WEIGHT_SUFFIXES) and ":" not in spec:
        raise UpscalerError(f"Upscaler file {spec!r} does not exist.")
    repo_id, _, filename = spec.partition(":")
    offline = hub.offline_mode() or not hub.hub_reachable()
    try:
        return Path(_download(repo_id, filename, offline))
    except UpscalerError:
        raise
    except Exception as error:  # noqa: BLE001 - hub errors become one line
        where = "is not in the local cache and the Hub cannot be reached" if offline else "could not be downloaded"
        raise UpscalerError(
            f"Upscaler {spec!r} {where} ({type(error).__name__}): pass --upscaler PATH to a local .pth "
            "or .safetensors file, or leave --upscaler unset."
        ) from None


def _download(repo_id: str, filename: str, offline: bool) -> str:
    import huggingface_hub

    if filename:
        return huggingface_hub.hf_hub_download(repo_id, filename, local_files_only=offline)
    if offline:
        folder = Path(huggingface_hub.snapshot_download(repo_id, local_files_only=True))
        names = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(WEIGHT_SUFFIXES)]
    else:
        names = [name for name in huggingface_hub.list_repo_files(repo_id) if name.endswith(WEIGHT_SUFFIXES)]
    if len(names) != 1:
        found = ", ".join(sorted(names)) or "none"
        raise UpscalerError(f"Upscaler repo {repo_id!r} has {len(names)} weights files ({found}): name one as "
                            f"{repo_id}:FILENAME.")  # fmt: skip
    return huggingface_hub.hf_hub_download(repo_id, names[0], local_files_only=offline)


def memory_problem(upscaler: Upscaler, width: int, height: int) -> str | None:
    """On CUDA, why a `width` x `height` upscale cannot fit in free GPU memory now; None when it can (or off
    CUDA). The peak is about four feature maps at the output size (an upsampled map, its conv's output and
    the activations around them)."""
    if upscaler.device.type != "cuda":
        return None
    from janus_demo.model.memory import available_cuda_bytes

    features = upscaler.net.conv_hr.out_channels
    item = torch.finfo(upscaler.dtype).bits // 8
    needed = 4 * features * item * width * height * upscaler.scale**2
    available = available_cuda_bytes(upscaler.device)
    if needed <= available:
        return None
    return (
        f"Not enough GPU memory to upscale a {width}x{height} image now (needs about {needed / 2**30:.1f} GiB, "
        f"{available / 2**30:.1f} GiB free); try a smaller image, or again when the server is less busy."
    )
