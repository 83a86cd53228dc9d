"""Load Janus-Pro (model + processor) through `from_pretrained`, in bf16, 8-bit or 4-bit.

    loaded = load_janus("deepseek-community/Janus-Pro-1B", quantization="auto", device="auto")
    loaded.info()  # {"model_id": ..., "device": ..., "dtype": ..., "quantization": ..., ...}
    loaded.image_shape  # ImageShape(rows=24, columns=24, patch=16): the images it draws

`model` is a hub id, a local checkpoint folder, or "tiny" (a random-weight model built
offline by `janus_demo.model.tiny`). `auto` picks the best precision that fits the GPU
(`janus_demo.model.precision`) and the model is laid out lean (`janus_demo.model.placement`); `images_only`
leaves out the parts that chat needs. Failures raise `ModelLoadError` with a one-line message that says what to do.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, JanusForConditionalGeneration, JanusProcessor

from janus_demo.model import hub, internals, placement, precision, tiny
from janus_demo.model.image_shape import ImageShape, read_image_shape
from janus_demo.model.options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS, on_zero_gpu

log = logging.getLogger("janus_demo")


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why and what to try instead."""


ZERO_GPU_QUANTIZATION = (
    "--quantization {mode} is not available on ZeroGPU: bitsandbytes quantizes as the weights move to the GPU, "
    "and on ZeroGPU that move happens in spaces' worker, which handles bitsandbytes only before 0.46 (this app "
    "needs 0.50). Use --quantization auto: bf16, unquantized (a ZeroGPU slice holds 7B in bf16)."
)


OFFLINE_HELP = (
    "try the app offline with --model tiny, load a local checkpoint with --model PATH, "
    "or set HF_HUB_OFFLINE=1 to use a copy in the local cache without asking the hub"
)


@dataclass
class LoadedJanus:
    """A loaded Janus model with its processor and how it was loaded."""

    model: JanusForConditionalGeneration
    processor: JanusProcessor
    model_id: str
    device: torch.device
    dtype: torch.dtype
    quantization: str  # "none", "8bit" or "4bit"
    random_weights: bool
    load_seconds: float = 0.0
    quantization_reason: str = ""  # why this precision (auto's choice, or as asked)
    layout: placement.Layout = field(default_factory=placement.Layout)

    @cached_property
    def image_shape(self) -> ImageShape:
        """The token grid and pixel size of the images this model draws, read once from its config."""
        return read_image_shape(self.model.config)

    @property
    def language_billions(self) -> float:
        """Parameters of the language model, in billions (what a decoding step's cost grows with)."""
        return sum(p.numel() for p in internals.language_model(self.model).parameters()) / 1e9

    @property
    def can_chat(self) -> bool:
        """False in images-only mode: the vision tower and lm_head were not kept."""
        return self.layout.chat

    def info(self) -> dict[str, Any]:
        """What `/model_info` reports."""
        return {
            "model_id": self.model_id,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "quantization_reason": self.quantization_reason,
            "quantized_layers": count_quantized_layers(self.model),
            "footprint_bytes": precision.placed_bytes(self.model),
            **self.layout.info(),
            "random_weights": self.random_weights,
            "load_seconds": round(self.load_seconds, 3),
        }


# --- choosing device, dtype and quantization ---------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device not in DEVICES:
        raise ModelLoadError(f"Unknown device {device!r}: choose one of {', '.join(DEVICES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for, but PyTorch sees no CUDA GPU. Use --device cpu.")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` is bf16 on GPUs that have it natively (fp16 on older ones, e.g. T4, V100) and fp32 on CPU.

    DeepSeek's own demo runs fp16 on CPU and dies in the convolutions; fp32 always works.
    """
    check_choice("dtype", dtype, DTYPES)
    return precision.default_dtype(device) if dtype == "auto" else getattr(torch, dtype)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ModelLoadError(f"Unknown {name} {value!r}: choose one of {', '.join(choices)}.")


def count_quantized_layers(model: torch.nn.Module) -> int:
    """Number of bitsandbytes Linear4bit / Linear8bitLt modules in `model` (0 without importing bitsandbytes
    when it was never imported: nothing can hold its layers then)."""
    bnb = internals.loaded_bitsandbytes()
    if bnb is None:
        return 0
    kinds = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    return sum(isinstance(module, kinds) for module in model.modules())


# --- loading -------------------------------------------------------------------------------


def resolve_model_path(model: str) -> str:
    """`tiny` becomes the cached tiny checkpoint's folder; anything else is passed on as is."""
    if model == "tiny":
        return str(tiny.ensure_tiny_janus())
    return model


def load_janus(
    model: str = DEFAULT_MODEL,
    quantization: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    images_only: bool = False,
) -> LoadedJanus:
    """Load model and processor with `from_pretrained`; raise `ModelLoadError` on failure."""
    start = time.perf_counter()
    torch_device = resolve_device(device)
    check_choice("quantization", quantization, QUANTIZATIONS)
    check_choice("dtype", dtype, DTYPES)
    if on_zero_gpu() and quantization in ("8bit", "4bit"):
        raise ModelLoadError(ZERO_GPU_QUANTIZATION.format(mode=quantization))
    path = resolve_model_path(model)
    local_only = local_files_only(model, path)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # 8-bit logs a cast warning per matmul
    choice = None
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=local_only)
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
        choice = precision.resolve_precision(
            quantization, dtype, torch_device, lambda: precision.needs_for(config, images_only)
        )
        log.info("Precision for %s: %s (%s)", model, choice.quantization, choice.reason)
        janus = JanusForConditionalGeneration.from_pretrained(
            path,
            config=config,
            dtype=choice.dtype,
            quantization_config=precision.quantization_config(choice.quantization, choice.dtype),
            device_map=device_map(torch_device),
            local_files_only=local_only,
        )
        if on_zero_gpu() and torch_device.type == "cuda":
            janus.to(torch_device)  # ZeroGPU's documented pattern: load on the CPU, move at start-up
        janus.eval()
        layout = placement.make_lean(janus, choice.quantization, images_only, torch_device)
    except Exception as error:  # noqa: BLE001 - every failure becomes one actionable line
        quant = choice.quantization if choice else quantization
        raise ModelLoadError(explain_load_error(error, model, quant, torch_device)) from error
    return LoadedJanus(
        model=janus,
        processor=processor,
        model_id=model,
        device=torch_device,
        dtype=choice.dtype,
        quantization=choice.quantization,
        random_weights=tiny.is_tiny_checkpoint(janus.config),
        load_seconds=time.perf_counter() - start,
        quantization_reason=choice.reason,
        layout=layout,
    )


def local_files_only(model: str, path: str) -> bool:
    """True: load `model` from the local hub cache only, because the hub cannot be reached. A hub id that is
    neither reachable nor cached fails at once (ModelLoadError), not after minutes of retries."""
    if os.path.isdir(path) or hub.offline_mode():
        return False  # a folder, or the hub's own offline mode (which fails fast by itself)
    status = hub.hub_status(model)
    if status == "missing":
        problem = f"Model {model!r} is not in the local cache and huggingface.co cannot be reached"
        raise ModelLoadError(f"{problem}: {OFFLINE_HELP}.")
    if status == "cached":
        logging.getLogger("janus_demo").warning("huggingface.co cannot be reached: loading the cached %s", model)
    return status == "cached"


def device_map(device: torch.device) -> dict[str, int | str]:
    """One device for everything (the VQ decoder cannot be offloaded: it reads self.weight). On ZeroGPU
    the weights load on the CPU and move afterwards, since no GPU is attached while the Space starts."""
    if device.type == "cuda" and not on_zero_gpu():
        return {"": device.index or 0}
    return {"": "cpu"}


def explain_load_error(error: BaseException, model: str, quantization: str, device: torch.device) -> str:
    """Turn a loading exception into one line that names the fix."""
    text = f"{type(error).__name__}: {error}".lower()
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in text:
        return (
            f"Out of memory while loading {model} on {device}. Try --quantization 4bit, "
            f"or the smaller model: --model {DEFAULT_MODEL}."
        )
    if quantization != "none" and ("bitsandbytes" in text or "bnb" in text or "quantiz" in text):
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"bitsandbytes cannot load {quantization} on {device} ({first_line[:200]}). "
            "Use --quantization none, or install a bitsandbytes build for this device."
        )
    if isinstance(error, OSError) or "does not appear to have" in text or "not a valid model" in text:
        where = "a local folder" if os.path.isdir(model) else "found locally or downloaded"
        if hub.offline_mode() and not os.path.isdir(model):
            where += " (HF_HUB_OFFLINE is set: nothing is downloaded)"
        return (
            f"Model {model!r} could not be {where}. Pass --model PATH to a local Janus checkpoint, "
            "or --model tiny to try the app offline with random weights."
        )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"Could not load {model!r}: {type(error).__name__}: {first_line[:300]}"
