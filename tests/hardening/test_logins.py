"""Behind --auth: a session belongs to the login that used it, every queue route needs a login, logins are
throttled and user names compared exactly.

Measured (printed with -s): with two users, bob sending alice's session hash to /queue/join, /queue/data,
/cancel or the heartbeat gets 403 and her chat answers normally; an anonymous POST /gradio_api/cancel with her
session hash gets 401 and her chat still answers; after 10 wrong passwords in a minute further attempts for
that user name (or from that address) get 429, the right password included; " alice" does not log in as alice.
"""

import contextlib
import time

import httpx
import pytest
from gradio_client import Client
from support.fake_backend import FakeBackend
from support.meters import wait_until
from support.raw_api import raw_join
from support.serving import chat_args, chat_message, close_all, served

from janus_demo.launch.settings import Settings

LOGINS = [("alice", "alice-pass"), ("bob", "bob-pass"), ("carol", "carol-pass")]
CHAT = [{"text": "hi", "files": []}, *chat_args()]


@pytest.fixture(scope="module")
def login_app(loaded_tiny, tmp_path_factory):
    backend = FakeBackend(loaded_tiny)
    with served(backend, settings=Settings(proxy_hops=1), logins=LOGINS) as (_, url):
        backend.url = url
        yield backend


@pytest.fixture
def auth_app(login_app):
    login_app.reset()
    yield login_app
    login_app.reset()


def logged_in(url: str, user: str, password: str, headers: dict | None = None) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=10, headers=headers)
    assert http.post("login", data={"username": user, "password": password}).status_code == 200
    return http


def login_status(url: str, user: str, password: str, headers: dict | None = None) -> int:
    return httpx.post(url + "login", data={"username": user, "password": password}, headers=headers).status_code


def test_another_users_session_hash_is_refused_everywhere(auth_app):
    auth_app.gate.clear()
    alice = Client(auth_app.url, auth=LOGINS[0], download_files=False, verbose=False)
    job = alice.submit(chat_message("mine"), *chat_args(seed=4), api_name="/chat")
    wait_until(lambda: job.communicator.event_id is not None and auth_app.lock.active == 1, timeout=60)
    hers, chat = alice.session_hash, fn_index_with_login(auth_app.url)
    with contextlib.closing(logged_in(auth_app.url, "bob", "bob-pass")) as bob:
        refused = {
            "join": raw_join(bob, chat, CHAT, hers).status_code,
            "data": bob.get("gradio_api/queue/data", params={"session_hash": hers}).status_code,
            "cancel": bob.post(
                "gradio_api/cancel",
                json={"session_hash": hers, "fn_index": chat, "event_id": job.communicator.event_id},
            ).status_code,
            "heartbeat": bob.get(f"gradio_api/heartbeat/{hers}").status_code,
        }
        own = raw_join(bob, chat, CHAT, "bobs-own-session").status_code
    auth_app.gate.set()
    answer, _ = job.result(timeout=30)
    close_all([alice])
    assert refused == {"join": 403, "data": 403, "cancel": 403, "heartbeat": 403}
    assert own == 200
    assert answer == "seed=4 xxxx", "her chat went on"
    print(f"\n[hardening] bob with alice's session hash: {refused}; her chat answered")


def fn_index_with_login(url: str) -> int:
    with contextlib.closing(logged_in(url, "bob", "bob-pass")) as http:
        config = http.get("config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")


def test_an_anonymous_cancel_gets_401_and_her_chat_goes_on(auth_app):
    auth_app.gate.clear()
    alice = Client(auth_app.url, auth=LOGINS[0], download_files=False, verbose=False)
    job = alice.submit(chat_message("mine"), *chat_args(seed=5), api_name="/chat")
    wait_until(lambda: job.communicator.event_id is not None and auth_app.lock.active == 1, timeout=60)
    body = {"session_hash": alice.session_hash, "fn_index": 0, "event_id": job.communicator.event_id}
    cancel = httpx.post(auth_app.url + "gradio_api/cancel", json=body)
    anonymous = {
        route: httpx.request(method, auth_app.url + route, json=body if method == "POST" else None).status_code
        for method, route in [
            ("GET", f"gradio_api/heartbeat/{alice.session_hash}"),
            ("POST", "gradio_api/reset"),
            ("POST", "gradio_api/queue/join"),
            ("GET", f"gradio_api/queue/data?session_hash={alice.session_hash}"),
        ]
    }
    start = time.monotonic()
    auth_app.gate.set()
    answer, _ = job.result(timeout=30)
    waited = time.monotonic() - start
    close_all([alice])
    assert cancel.status_code == 401
    assert set(anonymous.values()) == {401}, anonymous
    assert answer == "seed=5 xxxx"
    print(f"\n[hardening] anonymous cancel: 401; her chat answered {waited:.2f} s after the model was free")


def test_30_wrong_passwords_lock_that_user_name_for_a_minute(auth_app):
    statuses = [login_status(auth_app.url, "carol", f"guess-{n}") for n in range(30)]
    right = login_status(auth_app.url, "carol", "carol-pass")
    someone_else = login_status(auth_app.url, "bob", "bob-pass")
    assert statuses[:10] == [400] * 10
    assert set(statuses[10:]) == {429}
    assert right == 429, "the right password too, for a minute"
    assert someone_else == 200
    print(f"\n[hardening] 30 wrong passwords: {statuses.count(400)} answered, {statuses.count(429)} refused with 429")


def test_wrong_passwords_from_one_address_lock_that_address(auth_app):
    guesser, bystander = {"x-forwarded-for": "203.0.113.30"}, {"x-forwarded-for": "203.0.113.31"}
    statuses = [login_status(auth_app.url, f"user{n}", "guess", guesser) for n in range(12)]
    assert statuses[:10] == [400] * 10 and statuses[10:] == [429, 429]
    assert login_status(auth_app.url, "bob", "bob-pass", guesser) == 429
    assert login_status(auth_app.url, "bob", "bob-pass", bystander) == 200


@pytest.mark.parametrize("name", [" alice", "alice ", "\talice", "ALICE"])
def test_user_names_are_compared_exactly(auth_app, name):
    assert login_status(auth_app.url, name, "alice-pass") == 400
    assert login_status(auth_app.url, "alice", "alice-pass") == 200


def test_files_are_served_only_behind_the_login(auth_app):
    with contextlib.closing(logged_in(auth_app.url, "alice", "alice-pass")) as alice:
        uploaded = alice.post("gradio_api/upload", files={"files": ("cat.png", b"\x89PNG-bytes", "image/png")}).json()
        assert alice.get(f"gradio_api/file={uploaded[0]}").status_code == 200
    assert httpx.get(auth_app.url + f"gradio_api/file={uploaded[0]}").status_code == 401
