"""The gate's pieces on their own: routes, bodies, gradio's body models, job owners, logins, addresses."""

from __future__ import annotations

import asyncio
import os

import gradio
import pytest

from janus_demo.launch.gate import bodies, gradio_bodies
from janus_demo.launch.gate.addresses import UVICORN_TRUSTED, client_ip, distrust_forwarded_headers
from janus_demo.launch.gate.asgi import Refused
from janus_demo.launch.gate.headers import same_origin, same_site
from janus_demo.launch.gate.jobs import JobOwners
from janus_demo.launch.gate.logins import Logins
from janus_demo.launch.gate.routes import Kind, route_of
from janus_demo.service.clients import Client, ClientLedger, ClientLimits

# --- routes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/", Kind.PAGE),
        ("HEAD", "/", Kind.PAGE),
        ("GET", "/config", Kind.PAGE),
        ("GET", "/assets/index-abc.js", Kind.PAGE),
        ("GET", "/gradio_api/info", Kind.PAGE),
        ("GET", "/gradio_api/file=/tmp/gradio/abc/cat.png", Kind.PAGE),
        ("POST", "/gradio_api/queue/join", Kind.JOIN),
        ("GET", "/gradio_api/queue/data", Kind.QUEUE_STREAM),
        ("POST", "/gradio_api/cancel", Kind.CANCEL),
        ("GET", "/gradio_api/heartbeat/abc", Kind.HEARTBEAT),
        ("POST", "/gradio_api/run/predict", Kind.RUN),
        ("POST", "/gradio_api/call/chat", Kind.CALL),
        ("POST", "/gradio_api/call/v2/chat", Kind.CALL),
        ("GET", "/gradio_api/call/chat/ev1", Kind.CALL_STREAM),
        ("POST", "/gradio_api/upload", Kind.UPLOAD),
        ("POST", "/login", Kind.LOGIN),
        ("GET", "/logout", Kind.LOGOUT),
        ("POST", "/gradio_api/mcp/", Kind.MCP),
        ("GET", "/gradio_api/mcp/schema", Kind.MCP),
    ],
)
def test_the_routes_the_app_uses_pass(method, path, kind):
    assert route_of(method, path).kind is kind


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/gradio_api/component_server", 404),
        ("POST", "/gradio_api/process_recording", 404),
        ("GET", "/gradio_api/runs", 404),
        ("GET", "/monitoring", 404),
        ("GET", "/gradio_api/proxy=https://example.org/", 404),
        ("POST", "/gradio_api/api/chat", 404),
        ("GET", "/gradio_api/dev/reload", 404),
        ("DELETE", "/gradio_api/queue/join", 405),
        ("POST", "/", 405),
        ("PUT", "/gradio_api/upload", 405),
    ],
)
def test_everything_else_is_refused(method, path, status):
    with pytest.raises(Refused) as refused:
        route_of(method, path)
    assert refused.value.status == status


# --- bodies ------------------------------------------------------------------------------------------------


LIMITS = bodies.BodyLimits(max_values=100, max_depth=5)


def test_json_within_bounds_is_read():
    assert bodies.parse_json(b'{"a": [1, 2, {"b": "c"}]}', LIMITS) == {"a": [1, 2, {"b": "c"}]}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 6 + b"]" * 6, 413),  # 6 levels, 5 allowed
        (b"[" * 100_000 + b"]" * 100_000, 413),  # deeper than Python's recursion limit
        (b"[" + b"1," * 100 + b"1]", 413),  # 102 values
        (b"{oops", 400),
        (b"", 400),
    ],
)
def test_json_beyond_bounds_or_malformed_is_a_4xx(body, status):
    with pytest.raises(Refused) as refused:
        bodies.parse_json(body, LIMITS)
    assert refused.value.status == status


def messages(chunks):
    queue = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


async def drain(receive):
    while (await receive())["type"] == "http.request":
        pass


def multipart(files: int) -> bytes:
    part = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\nDATA\r\n'
    return part * files + b"--xyz--\r\n"


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_files_of_an_upload_are_counted_across_chunk_boundaries(chunk):
    body = multipart(5)
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    with pytest.raises(Refused) as refused:
        asyncio.run(drain(bodies.counting_files(messages(pieces), b"xyz", 4)))
    assert refused.value.status == 413
    body = multipart(4)
    asyncio.run(
        drain(bodies.counting_files(messages([body[i : i + chunk] for i in range(0, len(body), chunk)]), b"xyz", 4))
    )


def test_a_body_larger_than_its_limit_is_413():
    with pytest.raises(Refused) as refused:
        asyncio.run(drain(bodies.bounded(messages([b"x" * 600, b"x" * 600]), 1000, 30)))
    assert refused.value.status == 413


def test_a_body_that_stops_arriving_is_408():
    async def never():
        await asyncio.sleep(3600)

    with pytest.raises(Refused) as refused:
        asyncio.run(bodies.bounded(never, 1000, 0.05)())
    assert refused.value.status == 408


# --- gradio's body models (the one adapter; fails when gradio changes them) --------------------------------


def test_gradio_is_the_version_the_adapter_was_written_for():
    assert gradio.__version__ == "6.31.0", "re-check gate/gradio_bodies.py against this gradio's data_classes"


@pytest.mark.parametrize("index", [3, "3", 3.0, " 3 ", True and 3])
def test_an_fn_index_is_read_as_gradio_reads_it(index):
    assert gradio_bodies.read_join({"data": [], "fn_index": index, "session_hash": "s"}).fn_index == 3


@pytest.mark.parametrize("index", ["three", 3.5, [3]])
def test_an_fn_index_gradio_refuses_is_422(index):
    with pytest.raises(Refused) as refused:
        gradio_bodies.read_join({"data": [], "fn_index": index, "session_hash": "s"})
    assert refused.value.status == 422


def test_a_cancel_names_a_session_an_index_and_an_event():
    cancel = gradio_bodies.read_cancel({"session_hash": "s", "fn_index": "2", "event_id": "e"})
    assert (cancel.session_hash, cancel.fn_index, cancel.event_id) == ("s", 2, "e")


# --- job owners --------------------------------------------------------------------------------------------


def test_only_the_creator_may_act_on_a_job():
    owners, alice = JobOwners(), Client("s-alice", "203.0.113.1", "alice")
    owners.created("e1", alice)
    owners.check("e1", "s-alice", Client(None, "198.51.100.9", "alice"))  # her session, another address: fine
    for session, asker, status in [
        ("s-bob", Client(None, "203.0.113.1", "bob"), 403),
        ("s-alice", Client(None, "203.0.113.1", "bob"), 403),
        ("s-bob", Client(None, "203.0.113.1", "alice"), 403),
        ("s-alice", Client(None, "203.0.113.1", "alice"), None),
    ]:
        if status is None:
            owners.check("e1", session, asker)
            continue
        with pytest.raises(Refused) as refused:
            owners.check("e1", session, asker)
        assert refused.value.status == status
    with pytest.raises(Refused) as unknown:
        owners.check("nope", "s-alice", alice)
    assert unknown.value.status == 404


def test_a_call_job_keeps_its_address():
    owners = JobOwners()
    owners.created("e1", Client(None, "203.0.113.1", None))
    owners.check("e1", None, Client(None, "203.0.113.1", None))
    with pytest.raises(Refused):
        owners.check("e1", None, Client(None, "203.0.113.2", None))


def test_ended_jobs_are_forgotten_first_and_live_ones_never():
    owners = JobOwners(max_ended=3)
    owners.created("live", Client("s", "ip"))
    for n in range(10):
        owners.created(f"ended-{n}", Client("s", "ip"), live=False)
    assert owners.owner("live") is not None
    assert [owners.owner(f"ended-{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3
    assert len(owners) == 4


# --- logins and addresses ----------------------------------------------------------------------------------


def test_logging_in_again_and_again_forgets_only_ones_own_oldest_cookies():
    logins = Logins(ClientLedger(), tokens_per_user=3)
    logins._remember("carol", ["c1"])
    for n in range(10):
        logins._remember("bob", [f"b{n}"])
    cookie = {"type": "http", "headers": [(b"cookie", b"access-token-x=c1")]}
    assert logins.user(cookie) == "carol"
    assert logins.user({"headers": [(b"cookie", b"access-token-x=b0")]}) is None
    assert logins.user({"headers": [(b"cookie", b"access-token-x=b9")]}) == "bob"


def test_guessing_never_locks_out_a_fresh_address():
    ledger = ClientLedger(ClientLimits(login_failures_per_minute=3, login_failures_per_user=5))
    for n in range(6):
        ledger.login_failed(f"203.0.113.{n}", "carol")
    assert ledger.login_refusal("203.0.113.0", "carol") is not None, "it failed for carol: it waits"
    assert ledger.login_refusal("203.0.113.99", "carol") is None, "a fresh address is heard"
    for _ in range(3):
        ledger.login_failed("198.51.100.1", "dave")
    assert ledger.login_refusal("198.51.100.1", "erin") is not None, "an address guessing anyone waits"


def scope(headers: list[tuple[bytes, bytes]], peer: str = "127.0.0.1") -> dict:
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_forwarded_addresses_are_believed_as_far_as_the_hops_say():
    two_lines = scope([(b"x-forwarded-for", b"10.0.0.1, 198.51.100.1"), (b"x-forwarded-for", b"203.0.113.7")])
    assert client_ip(two_lines, 0) == "127.0.0.1"
    assert client_ip(two_lines, 1) == "203.0.113.7"
    assert client_ip(two_lines, 2) == "198.51.100.1"
    assert client_ip(scope([]), 1) == "127.0.0.1"


def test_uvicorn_is_told_to_trust_no_forwarded_address(monkeypatch):
    import uvicorn

    monkeypatch.delenv(UVICORN_TRUSTED, raising=False)
    distrust_forwarded_headers()
    assert os.environ[UVICORN_TRUSTED] == ""
    config = uvicorn.Config(app=lambda *a: None)
    config.load()
    assert not config.loaded_app.trusted_hosts.__contains__("127.0.0.1")  # ProxyHeadersMiddleware trusts nobody


def test_origins_and_sites():
    here = [(b"host", b"demo.example:7860")]
    assert same_origin(scope(here))
    assert same_origin(scope([*here, (b"origin", b"http://demo.example:7860")]))
    assert not same_origin(scope([*here, (b"origin", b"https://evil.example")]))
    assert same_site(scope([*here, (b"sec-fetch-site", b"same-origin")]))
    assert not same_site(scope([*here, (b"sec-fetch-site", b"cross-site")]))
    assert not same_site(scope([*here, (b"referer", b"https://evil.example/x")]))
    assert same_site(scope([*here, (b"referer", b"http://demo.example:7860/?view=api")]))
