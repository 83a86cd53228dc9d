"""Load Janus-Pro (model + processor) through `from_pretrained`, in bf16, 8-bit or 4-bit.

    loaded = load_janus("deepseek-community/Janus-Pro-1B", quantization="auto", device="auto")
    loaded.info()  # {"model_id": ..., "device": ..., "dtype": ..., "quantization": ..., ...}

`model` is a hub id, a local checkpoint folder, or "tiny" (a random-weight model built
offline by `janus_demo.model.tiny`). Failures raise `ModelLoadError` with a one-line message that
says what to do.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoProcessor, BitsAndBytesConfig, JanusForConditionalGeneration, JanusProcessor

from janus_demo.model import hub, tiny

DEFAULT_MODEL = "deepseek-community/Janus-Pro-1B"
QUANTIZATIONS = ("auto", "none", "8bit", "4bit")
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")

# Only the language model is quantized. bitsandbytes matches these from the start of the
# full module name (or as a suffix), and a custom list replaces its default, hence `lm_head`.
# Skipping `model.generation_aligner` also keeps its 8-input fc1 away from the CPU 4-bit
# kernel, which needs in_features % 64 == 0.
QUANTIZATION_SKIP_MODULES = [
    "lm_head",
    "model.vision_model",
    "model.aligner",
    "model.vqmodel",
    "model.generation_embeddings",
    "model.generation_aligner",
    "model.generation_head",
]


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why and what to try instead."""


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

    def info(self) -> dict[str, Any]:
        """What `/model_info` reports."""
        return {
            "model_id": self.model_id,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "quantized_layers": count_quantized_layers(self.model),
            "footprint_bytes": int(self.model.get_memory_footprint()),
            "random_weights": self.random_weights,
            "load_seconds": round(self.load_seconds, 3),
        }


# --- choosing device, dtype and quantization ---------------------------------------------


ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU Spaces


def on_zero_gpu() -> bool:
    """True on a Hugging Face ZeroGPU Space (spaces' own test: SPACES_ZERO_GPU is 1, t or true)."""
    return os.environ.get(ZERO_GPU_ENV, "").strip().lower() in ("1", "t", "true")


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
    """`auto` is bf16 on GPUs that have it (fp16 otherwise) and fp32 on CPU.

    DeepSeek's own demo runs fp16 on CPU and dies in the convolutions; fp32 always works.
    """
    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda" and on_zero_gpu():
        return torch.bfloat16  # ZeroGPU lends H200 slices; no GPU is attached at start-up to ask
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_quantization(quantization: str, device: torch.device) -> str:
    """`auto` is 4-bit on CUDA (so 7B fits a consumer GPU) and none elsewhere, ZeroGPU included (a
    large slice, and bitsandbytes there is unproven)."""
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"Unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}.")
    if quantization == "auto":
        return "4bit" if device.type == "cuda" and not on_zero_gpu() else "none"
    return quantization


def quantization_config(quantization: str) -> BitsAndBytesConfig | None:
    """bitsandbytes settings: nf4 with bf16 compute, or LLM.int8; language model only."""
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=QUANTIZATION_SKIP_MODULES,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=QUANTIZATION_SKIP_MODULES)
    return None


def count_quantized_layers(model: torch.nn.Module) -> int:
    """Number of bitsandbytes Linear4bit / Linear8bitLt modules in `model`."""
    try:
        import bitsandbytes as bnb
    except ImportError:
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
) -> LoadedJanus:
    """Load model and processor with `from_pretrained`; raise `ModelLoadError` on failure."""
    start = time.perf_counter()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    quant = resolve_quantization(quantization, torch_device)
    path = resolve_model_path(model)
    local_only = local_files_only(model, path)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # 8-bit logs a cast warning per matmul
    try:
        processor = AutoProcessor.from_pretrained(path, local_files_only=local_only)
        janus = JanusForConditionalGeneration.from_pretrained(
            path,
            dtype=torch_dtype,
            quantization_config=quantization_config(quant),
            device_map=device_map(torch_device),
            local_files_only=local_only,
        )
        if on_zero_gpu() and torch_device.type == "cuda":
            janus.to(torch_device)  # ZeroGPU's documented pattern: load on the CPU, move at start-up
    except Exception as error:  # noqa: BLE001 - every failure becomes one actionable line
        raise ModelLoadError(explain_load_error(error, model, quant, torch_device)) from error
    janus.eval()
    return LoadedJanus(
        model=janus,
        processor=processor,
        model_id=model,
        device=torch_device,
        dtype=torch_dtype,
        quantization=quant,
        random_weights=tiny.is_tiny_checkpoint(janus.config),
        load_seconds=time.perf_counter() - start,
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
