"""The gate denies by default: each shape that once passed around the per-client caps is refused through the
served app (issue 17's cases 1, 3, 4, 6, 7, 8 and 9; cases 2 and 5 live in test_saved_chats.py and
test_cache_budget.py).

Measured before the gate (printed with -s where a number is worth keeping): an `fn_index` sent as "50" or 50.0
was not counted (6 of 6 joins of one session accepted); `/component_server` read 80 MB of JSON; 40 sessions from
loopback took 33 queue places; the right password was refused from every address after 10 wrong ones; a
client on loopback named its own address in X-Forwarded-For; bob cancelled alice's job and read her /call result;
nested JSON answered 500; a cross-site /logout ended her session; a slow body was held forever; a disconnect
during an upload logged two tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from gradio_client import Client
from support.fake_backend import FakeBackend
from support.meters import wait_until
from support.raw_api import fn_index, raw_join
from support.serving import chat_args, chat_message, close_all, served

from janus_demo.launch.settings import Settings
from janus_demo.service.clients import ClientLimits

LOGINS = [("alice", "alice-pass"), ("bob", "bob-pass"), ("carol", "carol-pass")]
CHAT = [{"text": "hi", "files": []}, *chat_args()]


def address(n: int) -> dict[str, str]:
    """Headers of a visitor at 203.0.113.n as a Space's proxy forwards them."""
    return {"x-forwarded-for": f"203.0.113.{n}"}


@pytest.fixture
def open_app(loaded_tiny, tmp_path, monkeypatch):
    """A FakeBackend app of its own, no login, served on loopback (as a share link without auth is)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    backend = FakeBackend(loaded_tiny, client_limits=ClientLimits(body_read_s=2.0))
    with served(backend) as (_, url):
        backend.url = url
        yield backend
    backend.gate.set()


@pytest.fixture
def login_app(loaded_tiny, tmp_path, monkeypatch, request):
    """A FakeBackend app of its own behind logins, served as on a Space (one proxy hop); a test marked
    `tracked(n)` gets tables of n entries."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    marker = request.node.get_closest_marker("tracked")
    limits = ClientLimits(max_tracked=marker.args[0]) if marker else ClientLimits()
    backend = FakeBackend(loaded_tiny, client_limits=limits)
    with served(backend, settings=Settings(proxy_hops=1), logins=LOGINS) as (_, url):
        backend.url = url
        yield backend
    backend.gate.set()


def logged_in(url: str, user: str, password: str, headers: dict | None = None) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=10, headers=headers)
    assert http.post("login", data={"username": user, "password": password}).status_code == 200
    return http


def login_status(url: str, user: str, password: str, headers: dict | None = None) -> int:
    return httpx.post(url + "login", data={"username": user, "password": password}, headers=headers).status_code


def chat_index(http: httpx.Client) -> int:
    return next(d["id"] for d in http.get("config").json()["dependencies"] if d.get("api_name") == "chat")


def join_as(http: httpx.Client, index: object, session: str) -> httpx.Response:
    """A join whose fn_index is sent exactly as given (an int, a string, a float)."""
    body = {"data": CHAT, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None}
    return http.post("gradio_api/queue/join", json=body)


# --- 1: fn_index of any type gradio accepts is counted -----------------------------------------------------


def test_an_fn_index_sent_as_text_or_float_is_counted_like_an_integer(open_app):
    open_app.gate.clear()  # the first job holds the model; the rest wait in line
    index, session = fn_index(open_app.url, "chat"), uuid.uuid4().hex
    with httpx.Client(base_url=open_app.url, timeout=10) as http:
        shapes = [index, str(index), float(index), f" {index} ", str(index), float(index)]
        statuses = [join_as(http, shape, session).status_code for shape in shapes]
    open_app.gate.set()
    assert statuses == [200, 200, 429, 429, 429, 429]
    print(f"\n[gate] six joins of one session, fn_index as int/str/float: {statuses}")


def test_a_join_gradio_would_refuse_is_a_4xx_from_the_gate(open_app):
    with httpx.Client(base_url=open_app.url, timeout=10) as http:
        no_index = http.post("gradio_api/queue/join", json={"data": [], "session_hash": "s"})
        not_a_number = join_as(http, "fifty", "s")
        not_json = http.post("gradio_api/queue/join", content=b"{oops", headers={"content-type": "application/json"})
    assert (no_index.status_code, not_a_number.status_code, not_json.status_code) == (400, 422, 400)
    assert "Traceback" not in not_a_number.text + not_json.text


# --- 3 and 9: routes nothing uses are closed; bodies bounded in bytes, values, depth, time -----------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "gradio_api/component_server"),
        ("POST", "gradio_api/process_recording"),
        ("POST", "gradio_api/vibe-edit"),
        ("GET", "gradio_api/runs"),
        ("GET", "gradio_api/profiling/summary"),
        ("GET", "gradio_api/proxy=http://127.0.0.1:9/x"),
        ("POST", "gradio_api/stream/abc"),
        ("GET", "monitoring/summary"),
    ],
)
def test_routes_this_app_does_not_use_are_404_before_a_byte_is_read(open_app, method, path):
    body = b"[" + b"{}," * 200_000 + b"{}]"  # 600 KB of JSON values
    response = httpx.request(method, open_app.url + path, content=body, timeout=30)
    assert response.status_code == 404, response.text[:200]


def test_a_known_route_with_another_method_is_405(open_app):
    assert httpx.delete(open_app.url + "gradio_api/queue/join", timeout=10).status_code == 405
    assert httpx.post(open_app.url + "config", timeout=10).status_code == 405


def test_80_mb_to_the_component_server_costs_nothing(open_app):
    """The route is closed, so 80 MB of JSON is answered from its headers (it once raised RSS by 1.8 GB)."""
    url = urlsplit(open_app.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"POST /gradio_api/component_server HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 83886080\r\n\r\n" + b"[" + b"{}," * 100_000
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:100]


def test_deeply_nested_json_is_413_not_a_500(open_app):
    nested = b"[" * 100_000 + b"]" * 100_000  # 200 KB
    response = httpx.post(
        open_app.url + "gradio_api/queue/join", content=nested, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "nested" in response.json()["detail"] and "Traceback" not in response.text


def test_a_body_that_trickles_in_is_refused_with_408(open_app):
    """1 byte, then nothing: refused once its read time (2 s here) is over, not held forever."""
    url = urlsplit(open_app.url)
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(
            b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]


def test_an_upload_of_1000_tiny_files_is_refused(open_app, tmp_path):
    files = [("files", (f"f{n}.png", b"x", "image/png")) for n in range(1000)]
    response = httpx.post(open_app.url + "gradio_api/upload", files=files, timeout=30)
    assert response.status_code == 413 and "Too many files" in response.json()["detail"]
    written = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name.startswith("f")]
    assert written == []
    ok = httpx.post(open_app.url + "gradio_api/upload", files=files[:16], timeout=30)
    assert ok.status_code == 200 and len(ok.json()) == 16


def test_a_disconnect_during_an_upload_is_one_log_line(open_app, caplog):
    url = urlsplit(open_app.url)
    with caplog.at_level(logging.INFO):
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(
                b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\nContent-Disposition: form-data; "
                b'name="files"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n' + b"x" * 200_000
            )
        wait_until(lambda: "client went away" in caplog.text, timeout=30)
    assert "Traceback" not in caplog.text and "ClientDisconnect" not in caplog.text
    assert caplog.text.count("client went away") == 1


# --- 4: clients that cannot be told apart share one bound -------------------------------------------------


def test_sessions_from_loopback_without_login_share_one_bound(open_app):
    """A share link without auth: every visitor is 127.0.0.1; 12 sessions get the shared 8 places, not 12."""
    open_app.gate.clear()
    index = fn_index(open_app.url, "chat")
    with httpx.Client(base_url=open_app.url, timeout=10) as http:
        responses = [join_as(http, index, uuid.uuid4().hex) for _ in range(12)]
    open_app.gate.set()
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * 8 + [429] * 4
    assert "without a login" in responses[-1].json()["detail"]
    print(f"\n[gate] 12 sessions from loopback: {statuses.count(200)} accepted, {statuses.count(429)} refused")


# --- 6: guessing is throttled without locking the user out ------------------------------------------------


def test_the_right_password_from_a_fresh_address_gets_in_after_guessing_elsewhere(login_app):
    guesses = [login_status(login_app.url, "carol", f"guess-{n}", address(40)) for n in range(12)]
    assert guesses[:10] == [400] * 10 and guesses[10:] == [429, 429]
    assert login_status(login_app.url, "carol", "carol-pass", address(40)) == 429, "the guessing address waits"
    assert login_status(login_app.url, "carol", "carol-pass", address(41)) == 200, "carol elsewhere gets in"


def test_guessing_one_user_from_many_addresses_is_throttled_per_address(login_app):
    """100 wrong passwords from 50 addresses: then addresses that failed are refused, a fresh one is heard."""
    for n in range(100):
        login_status(login_app.url, "carol", "guess", address(100 + n % 50))
    assert login_status(login_app.url, "carol", "carol-pass", address(100)) == 429
    assert login_status(login_app.url, "carol", "guess", address(200)) == 400
    assert login_status(login_app.url, "carol", "carol-pass", address(201)) == 200


# --- 7: forwarded addresses are believed only as far as --proxy-hops says --------------------------------


def seen_addresses(backend: FakeBackend) -> list[str]:
    """Record the address of every client the ledger admits a job for."""
    seen, admit = [], backend.clients.admit_job

    def recording(job, client):
        seen.append(client.ip)
        return admit(job, client)

    backend.clients.admit_job = recording
    return seen


def test_without_proxy_hops_a_forwarded_address_is_not_believed(open_app):
    seen = seen_addresses(open_app)
    with httpx.Client(base_url=open_app.url, timeout=10, headers=address(9)) as http:
        assert raw_join(http, fn_index(open_app.url, "chat"), CHAT, "s1").status_code == 200
    assert seen == ["127.0.0.1"]


def test_with_one_hop_every_forwarded_line_is_read(login_app):
    seen = seen_addresses(login_app)
    lines = [("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.7")]  # the proxy's line is last
    with contextlib.closing(logged_in(login_app.url, "alice", "alice-pass")) as http:
        request = http.build_request("POST", "gradio_api/queue/join", json=join_body(chat_index(http), "s2"))
        request.headers = httpx.Headers([*request.headers.multi_items(), *lines])
        assert http.send(request).status_code == 200
    assert seen == ["203.0.113.7"]


def join_body(index: int, session: str) -> dict:
    return {"data": CHAT, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None}


# --- 8: a job belongs to the client that made it ----------------------------------------------------------


def test_bob_cannot_cancel_alices_job_by_its_event_id(login_app):
    login_app.gate.clear()
    alice = Client(login_app.url, auth=LOGINS[0], download_files=False, verbose=False)
    job = alice.submit(chat_message("mine"), *chat_args(seed=7), api_name="/chat")
    wait_until(lambda: job.communicator.event_id is not None and login_app.lock.active == 1, timeout=60)
    with contextlib.closing(logged_in(login_app.url, "bob", "bob-pass")) as bob:
        body = {"session_hash": "bobs-session", "fn_index": chat_index(bob), "event_id": job.communicator.event_id}
        cancelled = bob.post("gradio_api/cancel", json=body)
        unknown = bob.post("gradio_api/cancel", json={**body, "event_id": "no-such-event"})
    login_app.gate.set()
    answer, _ = job.result(timeout=30)
    close_all([alice])
    assert (cancelled.status_code, unknown.status_code) == (403, 404)
    assert answer == "seed=7 xxxx", "her job ran to its end"


def test_a_call_result_goes_only_to_the_client_that_made_it(login_app):
    data = {"data": [{"text": "secret", "files": []}, *chat_args(seed=8)]}
    with (
        contextlib.closing(logged_in(login_app.url, "alice", "alice-pass", address(1))) as alice,
        contextlib.closing(logged_in(login_app.url, "bob", "bob-pass", address(2))) as bob,
    ):
        event_id = alice.post("gradio_api/call/chat", json=data).json()["event_id"]
        stolen = bob.get(f"gradio_api/call/chat/{event_id}")
        own = alice.get(f"gradio_api/call/chat/{event_id}", timeout=30)
    assert stolen.status_code == 403 and "secret" not in stolen.text
    assert own.status_code == 200 and "seed=8" in own.text


# --- 9: logins and logouts ---------------------------------------------------------------------------------


@pytest.mark.tracked(50)
def test_many_logins_of_one_user_never_log_another_user_out(login_app):
    """The cookie table once evicted the oldest cookie of anyone: bob's 60 logins (table of 50) logged carol out."""
    with contextlib.closing(logged_in(login_app.url, "carol", "carol-pass")) as carol:
        for _ in range(60):
            logged_in(login_app.url, "bob", "bob-pass").close()
        still = raw_join(carol, chat_index(carol), CHAT, "carols-session")
    assert still.status_code == 200


def test_a_logout_from_another_site_is_refused(login_app):
    with contextlib.closing(logged_in(login_app.url, "alice", "alice-pass")) as alice:
        cross = alice.get("logout", headers={"sec-fetch-site": "cross-site", "referer": "https://evil.example/"})
        by_referer = alice.get("logout", headers={"referer": "https://evil.example/page"})
        still = raw_join(alice, chat_index(alice), CHAT, "alices-session")
        own = alice.get("logout", headers={"sec-fetch-site": "same-origin"}, follow_redirects=False)
    assert (cross.status_code, by_referer.status_code) == (403, 403)
    assert still.status_code == 200, "her session was not ended"
    assert own.status_code in (200, 302, 307)


def test_refusals_are_json_without_tracebacks(open_app):
    for response in (
        httpx.post(open_app.url + "gradio_api/queue/join", content=b"[" * 5000, timeout=10),
        httpx.post(open_app.url + "gradio_api/cancel", content=b'{"event_id": 5}', timeout=10),
        httpx.post(open_app.url + "gradio_api/upload", content=b"not multipart", timeout=10),
    ):
        assert 400 <= response.status_code < 500
        assert "detail" in json.loads(response.text) and "Traceback" not in response.text


def test_uploads_from_loopback_without_login_share_one_budget(open_app):
    """A share link without auth: 60 x 19 MB from 'different visitors' once all landed (1.1 GB); they now
    share the upload budget of one address (200 MB per 10 minutes)."""
    one = b"\x89PNG" + b"\0" * (19 * 2**20 - 4)
    codes = [
        httpx.post(
            open_app.url + "gradio_api/upload", files={"files": (f"{n}.png", one, "image/png")}, timeout=60
        ).status_code
        for n in range(12)
    ]
    assert codes == [200] * 10 + [429] * 2
    print(f"\n[gate] 12 x 19 MB uploads from loopback: {codes.count(200)} accepted, {codes.count(429)} refused")
