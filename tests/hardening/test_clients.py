"""One client cannot take the line, the disk or the model: jobs and uploads are counted per session and address,
and a job nobody reads is stopped.

The app is served as on a Space (`--proxy-hops 1`): each test client names its own address in X-Forwarded-For.
Measured (printed with -s): of 8 jobs submitted at once from one session, 2 are accepted and 6 refused at once
with HTTP 429 "Too many requests"; three sessions from one address get 4 places together; a burst of 60 x 19 MB
uploads from one address has 10 accepted (190 MB) and 50 refused; an image job whose event stream is never read
stops within a second of the grace period and frees the model.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support.fake_backend import FakeBackend
from support.meters import lock_idle, wait_until
from support.raw_api import fn_index, raw_join
from support.serving import chat_args, chat_message, close_all, image_args, served

from janus_demo.launch.settings import Settings
from janus_demo.service.clients import ClientLimits

MB = 2**20
SPACE = Settings(proxy_hops=1)  # as on a Hugging Face Space: the proxy appends the visitor's address


def address(n: int) -> dict[str, str]:
    """Headers of a visitor at 203.0.113.n as the Space's proxy forwards them."""
    return {"x-forwarded-for": f"203.0.113.{n}"}


@pytest.fixture
def space_app(loaded_tiny, tmp_path, monkeypatch, request):
    """A FakeBackend app of its own (its own counts and cache), served as on a Space; 1 s stream grace unless the
    test asks for another (`indirect` parametrization)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))
    grace = getattr(request, "param", 1.0)
    backend = FakeBackend(loaded_tiny, client_limits=ClientLimits(stream_grace_s=grace))
    with served(backend, settings=SPACE) as (_, url):
        backend.url, backend.cache = url, tmp_path / "cache"
        yield backend


def join(url: str, api_name: str, headers: dict, session: str) -> httpx.Response:
    data = [{"text": "hi", "files": []}, *chat_args()] if api_name == "chat" else ["fox", *image_args()]
    with httpx.Client(base_url=url, timeout=10, headers=headers) as http:
        return raw_join(http, fn_index(url, api_name), data, session)


def test_8_jobs_at_once_from_one_session_are_mostly_refused(space_app, tmp_path):
    from gradio_client import Client

    space_app.gate.clear()  # the first job holds the model; the others wait in line
    client = Client(space_app.url, headers=address(1), download_files=False, verbose=False)
    jobs = [client.submit(chat_message(f"q{n}"), *chat_args(seed=n), api_name="/chat") for n in range(8)]
    refused, accepted = [], []
    for job in jobs:
        try:
            job.result(timeout=1.5)
        except httpx.HTTPStatusError as error:
            refused.append(error.response)
        except Exception:  # noqa: BLE001 - still waiting: it was accepted
            accepted.append(job)
    assert len(refused) == 6 and len(accepted) == 2
    assert all(r.status_code == 429 and "Too many requests" in r.json()["detail"] for r in refused)
    space_app.gate.set()
    assert sorted(job.result(timeout=30)[0] for job in accepted)[0].startswith("seed=")
    wait_until(lambda: space_app.clients.jobs(client.session_hash) == 0, timeout=60)
    assert client.predict(chat_message("again"), *chat_args(seed=9), api_name="/chat")[0] == "seed=9 xxxx"
    close_all([client])
    print(f"\n[hardening] 8 jobs at once from one session: {len(accepted)} accepted, {len(refused)} refused with 429")


@pytest.mark.parametrize("space_app", [600.0], indirect=True)  # the joins' streams are never read: keep them
def test_sessions_from_one_address_share_its_places(space_app):
    space_app.gate.clear()
    statuses = [join(space_app.url, "chat", address(2), session).status_code for session in ("a", "a", "b", "c", "c")]
    other_address = join(space_app.url, "chat", address(3), "d").status_code
    space_app.gate.set()
    assert statuses == [200, 200, 200, 200, 429]
    assert other_address == 200


def test_a_burst_of_60_uploads_of_19_mb_is_mostly_refused(space_app):
    one = b"\x89PNG" + b"\0" * (19 * MB - 4)
    codes = []
    start = time.monotonic()
    with httpx.Client(base_url=space_app.url, timeout=60, headers=address(4)) as http:
        for n in range(60):
            try:
                codes.append(
                    http.post("gradio_api/upload", files={"files": (f"{n}.png", one, "image/png")}).status_code
                )
            except httpx.TransportError:  # refused before the body was read: the server may close mid-send
                codes.append("closed")
    seconds = time.monotonic() - start
    stored = sum(f.stat().st_size for f in space_app.cache.rglob("*") if f.is_file()) / MB
    assert codes.count(200) <= 11 and len(codes) - codes.count(200) >= 49
    assert 429 in codes
    assert stored <= ClientLimits().upload_bytes_per_window / MB + 19
    other = httpx.post(
        space_app.url + "gradio_api/upload", files={"files": ("x.png", b"\x89PNG1234", "image/png")}, headers=address(5)
    )
    assert other.status_code == 200, "another address still uploads"
    print(
        f"\n[hardening] 60 x 19 MB uploads from one address in {seconds:.1f} s: {codes.count(200)} accepted,"
        f" {len(codes) - codes.count(200)} refused; cache holds {stored:.0f} MB"
    )


@pytest.mark.parametrize("api_name", ["chat", "generate_images"])
def test_a_job_whose_stream_is_never_read_is_stopped(space_app, api_name):
    space_app.reset(token_delay=0.01, step_delay=0.01)
    space_app.image_steps = 2000  # 20 s if nothing stopped it
    data = [{"text": "hi", "files": []}, *chat_args(2000)] if api_name == "chat" else ["fox", *image_args()]
    with httpx.Client(base_url=space_app.url, timeout=10, headers=address(6)) as http:
        assert raw_join(http, fn_index(space_app.url, api_name), data, uuid.uuid4().hex).status_code == 200
    wait_until(lambda: space_app.produced > 0, timeout=60)
    started = time.monotonic()
    wait_until(lambda: lock_idle(space_app), timeout=60)
    held = time.monotonic() - started
    # Stopped after the 1 s grace and the watch's next look: a few hundred steps at most of the 2000 (steps, not
    # seconds: a busy machine slows the fake's steps as much as the watch).
    assert space_app.produced < 500
    print(f"\n[hardening] unread /{api_name} job stopped after {held:.1f} s ({space_app.produced} steps of 2000)")


def test_a_job_whose_stream_is_read_runs_to_its_end(space_app):
    """The watch does not stop a job its client reads, however long it waits for the model."""
    from gradio_client import Client

    space_app.reset(step_delay=0.01)
    space_app.image_steps = 200  # 2 s, longer than the 1 s grace
    clients = [Client(space_app.url, headers=address(7 + n), download_files=False, verbose=False) for n in range(2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: c.predict("fox", *image_args(seed=3), api_name="/generate_images"), clients))
    assert [len(gallery) for gallery, _, _ in results] == [1, 1]
    close_all(clients)


def test_only_the_models_work_takes_a_place_in_line(fake):
    """Leaving a number box runs its own check through the queue; that must not count as one of the client's
    jobs (two such checks while an answer runs would otherwise refuse the next request)."""
    config = httpx.get(fake.url + "config", timeout=10).json()
    by_trigger = {}
    for dependency in config["dependencies"]:
        for _, trigger in dependency["targets"]:
            by_trigger.setdefault(trigger, set()).add(dependency["id"])
    public = ("chat", "generate_images", "complete_image", "redraw_region", "variations")
    named = {d["id"] for d in config["dependencies"] if d.get("api_name") in public}
    jobs = fake.clients.job_events
    assert named <= jobs
    assert not (by_trigger.get("blur", set()) | by_trigger.get("release", set())) & jobs
    # /chat, /generate_images, the browser's send, draw, retry, example and generate; the three edit endpoints
    # and the Edit tab's complete, redraw, variations and "Generate from this"
    assert len(jobs) == 14
