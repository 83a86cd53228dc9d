"""What the browser offers is exactly what the server accepts: each numeric input's maximum (and minimum) is
accepted and one step beyond is refused with a message naming the field, read from the served app."""

import httpx
import pytest
from support.fake_backend import FakeBackend
from support.raw_api import raw_call
from support.serving import served

from janus_demo.service.requests import Limits

NUMERIC = {"slider", "number"}
GOOD = {
    "chat": [{"text": "hi", "files": []}, None, 4, 0.0, 0.95, 1],
    "generate_images": ["a fox", 1, 5.0, 1.0, 1, 1.0, 0, "off"],
}


def endpoint_inputs(url: str, api_name: str) -> tuple[int, list[dict]]:
    """The event id of a public endpoint and its input components' config, in order."""
    config = httpx.get(url + "config", timeout=10).json()
    components = {component["id"]: component for component in config["components"]}
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return dependency["id"], [components[i] for i in dependency["inputs"]]
    raise KeyError(api_name)


def edge_cases(url: str, api_name: str):
    """(position, label, accepted value, refused value) for both ends of every numeric input."""
    _, inputs = endpoint_inputs(url, api_name)
    for position, component in enumerate(inputs):
        props = component["props"]
        if component["type"] not in NUMERIC:
            continue
        step = props.get("step") or 1
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
    index, _ = endpoint_inputs(fake.url, api_name)
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
    index, inputs = endpoint_inputs(url, "generate_images")
    assert {c["props"]["label"]: c["props"]["maximum"] for c in inputs if c["type"] == "slider"}[
        "Number of images"
    ] == 32
    data = list(GOOD["generate_images"])
    data[4] = 20
    completed, _ = raw_call(url, index, data)
    assert completed["success"] and len(completed["output"]["data"][0]) == 20
    chat_index, _ = endpoint_inputs(url, "chat")
    data = list(GOOD["chat"])
    data[2] = 3000
    completed, _ = raw_call(url, chat_index, data)
    assert completed["success"] and completed["output"]["data"][0].count("x") == 3000


def test_the_real_model_layer_runs_a_request_above_the_default_limits(loaded_tiny):
    from janus_demo.service.backend import Backend

    backend = Backend(loaded_tiny, limits=Limits(max_num_images=32))
    stream = backend.generate_images("a fox", 1, num_images=20, guidance_scale=1.0, preview_every=0)
    first = next(progress for progress in stream if hasattr(progress, "step"))
    stream.close()
    assert first.step == 1 and first.total == 576
