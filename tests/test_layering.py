"""The model layer never imports gradio: it runs in scripts, notebooks and benchmarks without a UI."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_LAYER = [
    "loading", "tiny", "chat_format", "chat", "history", "imagegen", "previews", "png_metadata",
    "backend", "gpu_section", "validation", "image_intake", "memory", "cuda_graphs", "errors",
]  # fmt: skip


def test_model_layer_modules_do_not_import_gradio():
    imports = "; ".join(f"import janus_demo.{name}" for name in MODEL_LAYER)
    code = f"import sys; {imports}; print('gradio' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
