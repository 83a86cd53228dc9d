"""The layers import one way only: launch -> web -> service -> model.

Every module under janus_demo/ is found by glob, so a new module cannot escape the check. Imports are read
from the source (ast), including imports inside functions; each module is also imported on its own in a fresh
interpreter to prove the model and service layers run without gradio.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "janus_demo"
LAYERS = ["model", "service", "web", "launch"]  # lowest first: a layer may import only the layers before it
NO_GRADIO = {"model", "service"}
# The service has a module per use case (chat, images, edits, variations, upscale) over one drawing path
# (image_requests, drawing), plus their events, schemas and GPU budget; model/ splits what `auto` picks
# (precision) from where weights live (placement) and ZeroGPU's detection (zero_gpu); web/ a module per tab
# plus the adapters from events to outputs.
MOST_MODULES = {"model": 16, "service": 25, "web": 17, "launch": 14}


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


def imported_names(path: Path) -> set[str]:
    """Every module name `path` imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "janus_demo" and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the layer folders: {loose}"
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
    for layer in LAYERS:
        count = len([path for path in modules(layer) if path.name != "__init__.py"])
        assert count <= MOST_MODULES[layer], f"{layer}/ holds {count} modules: split it"


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down_only(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in modules(layer):
        for name in imported_names(path):
            target = layer_of(name)
            assert target is None or target in allowed, (
                f"{path.relative_to(ROOT)} imports {name} ({target} is above {layer})"
            )
            if layer in NO_GRADIO:
                assert name.split(".")[0] != "gradio", f"{path.relative_to(ROOT)} imports gradio"


def test_web_talks_to_the_service_layer_only():
    for path in modules("web"):
        for name in imported_names(path):
            assert layer_of(name) != "model", f"{path.relative_to(ROOT)} imports {name}: go through janus_demo.service"


def test_model_and_service_layers_run_without_gradio():
    names = [f"janus_demo.{layer}.{p.stem}" for layer in sorted(NO_GRADIO) for p in modules(layer)]
    assert imported_after(names, ("gradio",)) == []


def imported_after(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    """Which of `heavy` a fresh interpreter has imported after importing `modules`."""
    imports = "; ".join(f"import {name}" for name in modules)
    code = f"import sys; {imports}; print(*[m for m in {heavy!r} if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_what_app_py_runs_before_its_heavy_imports_imports_none():
    """app.py reads its settings and access rules before `import spaces`: --help and a refused flag answer at
    once, and on ZeroGPU nothing touches torch before spaces has patched it."""
    light = ["janus_demo.launch.settings", "janus_demo.launch.access"]
    assert imported_after(light, ("torch", "gradio", "transformers", "spaces")) == []


def test_the_check_catches_an_upward_import(tmp_path):
    """The checker itself: a model module importing gradio or the service layer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import gradio\n    from janus_demo.service import backend\n")
    assert {"gradio", "janus_demo.service", "janus_demo.service.backend"} <= imported_names(bad)
    assert layer_of("janus_demo.service.backend") == "service"


def test_the_model_layer_has_no_import_circle():
    """No module of model/ imports, even for a type hint, a module that imports it back (at any distance)."""
    graph = {path.stem: set() for path in modules("model") if path.name != "__init__.py"}
    for name in graph:
        for imported in imported_names(PACKAGE / "model" / f"{name}.py"):
            parts = imported.split(".")
            if parts[:2] == ["janus_demo", "model"] and len(parts) > 2 and parts[2] in graph:
                graph[name].add(parts[2])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph[start])

    circles = sorted(name for name in graph if reaches(name, name, {name}))
    assert circles == [], f"model/ modules in an import circle: {circles}"
