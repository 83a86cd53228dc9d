"""The README's API examples run against the tiny app, and the API describes its endpoints."""

import re
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

from janus_demo.service.variations import EMPTY_DESCRIPTION

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_URL = "http://127.0.0.1:7860/"


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def python_snippets(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


SNIPPETS = python_snippets(readme_section("API"))


def test_the_api_section_covers_every_endpoint():
    text = "\n".join(SNIPPETS)
    for endpoint in ("/model_info", "/chat", "/generate_images", "/complete_image", "/redraw_region", "/variations"):
        assert f'api_name="{endpoint}"' in text
    assert "client.submit(" in text and "for " in text, "show streaming with submit and iteration"
    assert all(DOCUMENTED_URL in snippet for snippet in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_readme_snippet_runs(snippet, tiny_url, monkeypatch, capsys):
    """On the real grid: the README's values (rows to keep, sizes) are Janus-Pro's."""
    monkeypatch.chdir(ROOT)  # the examples name files relative to the repository
    try:
        exec(compile(snippet.replace(DOCUMENTED_URL, tiny_url), "README.md", "exec"), {"__name__": "readme"})
    except AppError as refused:  # the tiny model's random weights may describe the photo with nothing
        assert 'api_name="/variations"' in snippet and EMPTY_DESCRIPTION in str(refused), refused
    printed = capsys.readouterr().out
    assert printed.strip(), "every example prints what it got"


def test_view_api_describes_the_endpoints(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/chat", "/generate_images", "/model_info"} <= api.keys()
    assert api["/chat"]["description"].startswith("Chat with Janus-Pro about images")
    assert api["/generate_images"]["description"].startswith("Generate images from a text prompt")
    assert api["/model_info"]["description"].startswith("The loaded model")
    chat_params = [p["parameter_name"] for p in api["/chat"]["parameters"]]
    assert chat_params == ["message", "max_new_tokens", "temperature", "top_p", "seed"]
    assert api["/chat"]["parameters"][0]["type"]["properties"].keys() == {"text", "files"}
    images_params = [p["parameter_name"] for p in api["/generate_images"]["parameters"]]
    assert images_params == [
        "prompt",
        "seed",
        "guidance_scale",
        "temperature",
        "num_images",
        "top_p",
        "preview_every",
        "preview_mode",
    ]
    assert len(api["/chat"]["returns"]) == 2  # the answer so far and the status line
    edits = {
        "/complete_image": ["image", "prompt", "keep_rows", *images_params[1:5], "preview_every", "keep_photo_pixels"],
        "/redraw_region": ["image", "mask", "prompt", *images_params[1:5], "preview_every", "keep_photo_pixels"],
        "/variations": ["image", "num_images", "seed", "guidance_scale", "temperature", "preview_every"],
    }
    for endpoint, names in edits.items():
        assert [p["parameter_name"] for p in api[endpoint]["parameters"]] == names
    assert len(api["/variations"]["returns"]) == 4  # gallery, seed used, status, description


def test_the_readme_tables_are_the_schemas_and_caps():
    """The README's parameter and caps tables come from the declarations: python -m janus_demo.service.reference."""
    from janus_demo.service.clients import ClientLimits
    from janus_demo.service.intake import ImageLimits
    from janus_demo.service.reference import caps_table, client_caps_table, parameters_table
    from janus_demo.service.schemas import Limits, schemas_for

    readme = (ROOT / "README.md").read_text()
    for schema in schemas_for(Limits(), gpu=False):
        assert parameters_table(schema) in readme, f"README's {schema.endpoint} table differs from its schema"
    assert caps_table(Limits(), ImageLimits()) in readme
    assert client_caps_table(ClientLimits(), Limits(), ImageLimits()) in readme
