"""What the browser offers is exactly what the server accepts: each numeric widget's maximum (and minimum) is
accepted by the API and one step beyond is refused with a message naming the field, both read from the
served app (the widgets' config, and the API's own parameter names)."""

import httpx
import pytest
from support.fake_backend import FakeBackend
from support.raw_api import fn_index, raw_call
from support.serving import served

from janus_demo.service.schemas import Limits

NUMERIC = {"slider", "number"}
GOOD = {  # each endpoint's data, in API order
    "chat": [{"text": "hi", "files": []}, 4, 0.0, 0.95, 1],
    "generate_images": ["a fox", 1, 5.0, 1.0, 1, 1.0, 0, "off"],
}


def widgets(url: str) -> dict[str, dict]:
    """The numeric widgets on the page by the field they edit (their elem_id is "field-<name>")."""
    config = httpx.get(url + "config", timeout=10).json()
    found = {}
    for component in config["components"]:
        elem_id = component["props"].get("elem_id") or ""
        if component["type"] in NUMERIC and elem_id.startswith("field-"):
            found.setdefault(elem_id.removeprefix("field-"), component["props"])
    return found


def parameters(url: str, api_name: str) -> list[str]:
    from support.serving import new_client

    client = new_client(url)
    names = [
        p["parameter_name"]
        for p in client.view_api(return_format="dict", print_info=False)["named_endpoints"][f"/{api_name}"][
            "parameters"
        ]
    ]
    client.close()
    return names


def edge_cases(url: str, api_name: str):
    """(position, label, accepted, refused) for both ends of every numeric widget of the endpoint's fields."""
    shown = widgets(url)
    for position, name in enumerate(parameters(url, api_name)):
        if name in shown:
            props, step = shown[name], shown[name].get("step") or 1
            yield position, props["label"], props["maximum"], props["maximum"] + step
            yield position, props["label"], props["minimum"], props["minimum"] - step


@pytest.fixture(scope="module")
def roomy(loaded_tiny):
    """A host that allows more than the defaults."""
    backend = FakeBackend(loaded_tiny, limits=Limits(max_num_images=32, max_new_tokens=4096))
    with served(backend) as (_, url):
        yield backend, url


@pytest.mark.parametrize("api_name", list(GOOD))
def test_every_widget_range_is_the_servers_range(fake, api_name):
    index = fn_index(fake.url, api_name)
    cases = list(edge_cases(fake.url, api_name))
    assert len(cases) == 2 * {"chat": 4, "generate_images": 6}[api_name], "every numeric setting is a widget"
    for position, label, accepted, refused in cases:
        data = list(GOOD[api_name])
        data[position] = accepted
        completed, _ = raw_call(fake.url, index, data)
        assert completed["success"], f"{label} = {accepted} (the widget's edge) was refused: {completed}"
        data[position] = refused
        completed, _ = raw_call(fake.url, index, data)
        assert not completed["success"], f"{label} = {refused} was accepted"
        assert completed["output"]["error"].startswith(f"{label} must be"), completed["output"]["error"]


def test_a_host_with_higher_limits_serves_requests_above_the_defaults(roomy):
    backend, url = roomy
    assert widgets(url)["num_images"]["maximum"] == 32 and widgets(url)["max_new_tokens"]["maximum"] == 4096
    data = list(GOOD["generate_images"])
    data[4] = 20
    completed, _ = raw_call(url, fn_index(url, "generate_images"), data)
    assert completed["success"] and len(completed["output"]["data"][0]) == 20
    data = list(GOOD["chat"])
    data[1] = 3000
    completed, _ = raw_call(url, fn_index(url, "chat"), data)
    assert completed["success"] and completed["output"]["data"][0].count("x") == 3000


def test_the_real_model_layer_runs_a_request_above_the_default_limits(loaded_tiny):
    from support.service_calls import Backend

    backend = Backend(loaded_tiny, limits=Limits(max_num_images=32))
    stream = backend.generate_images("a fox", 1, num_images=20, guidance_scale=1.0, preview_every=0)
    first = next(progress for progress in stream if hasattr(progress, "step"))
    stream.close()
    assert first.step == 1 and first.total == 576
