"""README.md's front matter is a valid Space card that agrees with the pins, files and flags it names."""

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from janus_demo.launch.settings import build_parser
from janus_demo.model.options import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with a --- front matter block"
    return yaml.safe_load(match.group(1))


def pinned_version(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(rf"{package}(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            return match.group(2)
    raise AssertionError(f"{package} is not pinned in requirements.txt")


@pytest.fixture(scope="module")
def card() -> dict:
    return front_matter(README)


def test_card_has_every_field_a_space_needs(card):
    required = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file"}
    assert required <= card.keys()
    assert {"short_description", "license", "models", "preload_from_hub", "startup_duration_timeout"} <= card.keys()
    assert card["sdk"] == "gradio"
    colours = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert card["colorFrom"] in colours and card["colorTo"] in colours


def test_sdk_version_is_the_gradio_pin(card):
    assert str(card["sdk_version"]) == pinned_version("gradio")


# What ZeroGPU runs (hub-docs docs/hub/spaces-zerogpu.md, "Supported Versions"): Python 3.10.13, and 3.12 since
# huggingface/hub-docs#2153; PyTorch from its own list, whose newest entries are 2.12.1 and 2.13.0
# (huggingface/hub-docs#2763). Any other torch pin fails the build ("No candidate PyTorch version found").
ZEROGPU_PYTHONS = ("3.10.13", "3.12")
ZEROGPU_NEWEST_TORCH = ("2.12.1", "2.13.0")


def test_python_version_is_one_zerogpu_runs_and_every_pin_accepts(card):
    assert isinstance(card["python_version"], str), "quote it: YAML reads 3.10 as 3.1"
    assert card["python_version"] in ZEROGPU_PYTHONS
    for version in (card["python_version"], (ROOT / ".python-version").read_text().strip()):
        for package in ("transformers", "numpy", "gradio", "spaces", "torch"):
            needs = SpecifierSet(metadata.metadata(package)["Requires-Python"] or "")
            assert needs.contains(version), f"{package} needs Python {needs}, not {version}"


def test_torch_pin_is_one_zerogpu_installs():
    assert pinned_version("torch") in ZEROGPU_NEWEST_TORCH


def test_app_file_exists_and_defines_demo(card):
    app = ROOT / card["app_file"]
    assert app.is_file()
    assert re.search(r"^demo = ", app.read_text(), re.MULTILINE)


def test_short_description_fits_the_hub_limit(card):
    assert 0 < len(card["short_description"]) <= 60


def test_default_model_is_listed_and_preloaded(card):
    assert DEFAULT_MODEL in card["models"]
    preloaded = [entry.split()[0] for entry in card["preload_from_hub"]]
    assert DEFAULT_MODEL in preloaded


def test_startup_timeout_is_a_duration(card):
    assert re.fullmatch(r"\d+[smh]", str(card["startup_duration_timeout"]))


def test_spaces_package_is_pinned_for_zerogpu():
    assert pinned_version("spaces")


def test_settings_table_lists_every_flag_and_variable():
    table = "\n".join(line for line in README.splitlines() if line.startswith("| `--"))
    for action in build_parser()._actions:
        flags = [flag for flag in action.option_strings if flag.startswith("--") and not flag.startswith("--no-")]
        if not flags or flags[0] == "--help":
            continue
        assert f"`{flags[0]}" in table, f"{flags[0]} is missing from README's settings table"
        variable = re.search(r"\[([A-Z_]+)\]", action.help or "")
        assert variable and f"`{variable.group(1)}`" in table, f"{flags[0]}'s variable is missing"
