"""The per-client ledger on its own, with a fake clock: what counts, for how long, and what is refused."""

import pytest

from janus_demo.service.clients import MB, Client, ClientLedger, ClientLimits, parse_size, size_text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def ledger_with(clock, **limits) -> ClientLedger:
    return ClientLedger(ClientLimits(**limits), clock=clock)


def test_jobs_count_per_session_address_and_login(clock):
    ledger = ledger_with(clock)
    alice = Client("s1", "203.0.113.1", "alice")
    assert ledger.admit_job("j1", alice) is None and ledger.admit_job("j2", alice) is None
    assert ledger.admit_job("j3", alice).startswith("Too many requests: this session already has 2")
    other_tab = Client("s2", "203.0.113.1", "alice")
    assert ledger.admit_job("j4", other_tab) is None and ledger.admit_job("j5", other_tab) is None
    assert "your address already has 4" in ledger.admit_job("j6", Client("s3", "203.0.113.1", None))
    assert "your login already has 4" in ledger.admit_job("j7", Client("s4", "203.0.113.9", "alice"))
    ledger.job_ended("j1")
    assert ledger.admit_job("j8", alice) is None


def test_loopback_is_not_counted_as_an_address_but_its_anonymous_clients_share_one_bound(clock):
    ledger = ledger_with(clock, jobs_shared_address=8)
    for n in range(8):
        assert ledger.admit_job(f"j{n}", Client(f"s{n}", "127.0.0.1")) is None
    refusal = ledger.admit_job("j8", Client("s8", "::1"))
    assert refusal is not None and "without a login" in refusal
    assert ledger.admit_job("j9", Client("s9", "127.0.0.1", user="alice")) is None, "a login is told apart"
    assert ledger.admit_job("j10", Client("s10", "203.0.113.1")) is None, "so is a real address"
    assert Client("s", "::1").keys() == [("session", "s")]


def test_a_job_ends_with_its_event_and_a_closed_stream_drops_waiting_ones(clock):
    ledger = ledger_with(clock)
    who = Client("s1", "203.0.113.1")
    ledger.admit_job("j1", who), ledger.admit_job("j2", who)
    ledger.job_event("j1", "e1"), ledger.job_event("j2", "e2")
    ledger.event_ended("e1")
    assert ledger.jobs("s1") == 1
    ledger.stream_opened("s1")
    ledger.stream_closed("s1")  # gradio drops the session's waiting jobs when its client goes
    assert ledger.jobs("s1") == 0


def test_a_stream_gradio_ends_itself_keeps_a_job_joining_at_that_moment(clock):
    """gradio closes a session's stream when its last pending event completes; a job admitted just then
    (a field's check completing as the message is sent) is still in line, and must run when it starts."""
    ledger = ledger_with(clock, stream_grace_s=10)
    who = Client("s1", "203.0.113.1")
    ledger.stream_opened("s1")
    ledger.admit_job("chat", who)
    ledger.stream_closed("s1", disconnected=False)
    clock.now += 2  # the client opens a new stream for it
    assert ledger.jobs("s1") == 1 and ledger.job_started("chat") and not ledger.abandoned("chat")


def test_a_join_without_a_session_is_known_by_its_event(clock):
    ledger = ledger_with(clock)
    ledger.admit_job("j1", Client(None, "203.0.113.1"))
    ledger.job_event("j1", "e1")
    assert ledger.session_of("e1") == "e1" and ledger.jobs("e1") == 1


def test_nobody_reading_a_job_for_the_grace_period_abandons_it(clock):
    ledger = ledger_with(clock, stream_grace_s=10)
    ledger.admit_job("read", Client("s1", "203.0.113.1"))
    ledger.admit_job("unread", Client("s2", "203.0.113.2"))
    ledger.stream_opened("s1")
    clock.now += 11
    assert not ledger.abandoned("read") and ledger.abandoned("unread")
    ledger.stream_writing("s1", True)  # a write that waits: the client stopped reading
    clock.now += 11
    assert ledger.abandoned("read")
    ledger.stream_writing("s1", False)
    assert not ledger.abandoned("read")


def test_an_abandoned_job_that_never_started_stops_counting_and_is_stopped_when_it_starts(clock):
    ledger = ledger_with(clock, stream_grace_s=10, jobs_per_session=1)
    who = Client("s1", "203.0.113.1")
    ledger.admit_job("j1", who)
    assert ledger.admit_job("j2", who) is not None
    clock.now += 11
    assert ledger.admit_job("j2", who) is None
    assert not ledger.job_started("j1") and ledger.abandoned("j1"), "forgotten: it stops at once when it starts"
    assert ledger.job_started("j2")


def test_uploads_are_budgeted_per_window(clock):
    ledger = ledger_with(clock, upload_bytes_per_window=100 * MB, upload_window_s=600)
    who = Client(None, "203.0.113.1")
    assert [ledger.admit_upload(who, 30 * MB) is None for _ in range(4)] == [True, True, True, False]
    assert ledger.admit_upload(Client(None, "203.0.113.2"), 30 * MB) is None
    clock.now += 601
    assert ledger.admit_upload(who, 30 * MB) is None


def test_failed_logins_hold_back_the_address_for_a_minute_never_the_user(clock):
    ledger = ledger_with(clock)
    for _ in range(10):
        assert ledger.login_refusal("203.0.113.1", "alice") is None
        ledger.login_failed("203.0.113.1", "alice")
    assert ledger.login_refusal("203.0.113.1", "bob") is not None  # this address
    assert ledger.login_refusal("203.0.113.2", "alice") is None  # alice elsewhere: no lockout
    assert ledger.login_refusal("203.0.113.2", "bob") is None
    clock.now += 61
    assert ledger.login_refusal("203.0.113.1", "alice") is None


def test_a_user_name_guessed_from_everywhere_holds_back_the_guessers_only(clock):
    ledger = ledger_with(clock, login_failures_per_user=20)
    for n in range(20):
        ledger.login_failed(f"198.51.100.{n}", "alice")
    assert ledger.login_refusal("198.51.100.3", "alice") is not None, "an address that guessed her waits"
    assert ledger.login_refusal("198.51.100.3", "bob") is None, "but may log in as someone else"
    assert ledger.login_refusal("203.0.113.5", "alice") is None, "a fresh address is heard"


def test_a_session_belongs_to_its_first_login(clock):
    ledger = ledger_with(clock)
    assert ledger.session_owner("s1", "alice") and ledger.session_owner("s1", "alice")
    assert not ledger.session_owner("s1", "bob")


def test_tracked_tables_are_bounded(clock):
    ledger = ledger_with(clock, max_tracked=3)
    for n in range(10):
        ledger.session_owner(f"s{n}", "alice")
    assert not ledger.session_owner("s9", "bob") and ledger.session_owner("s0", "bob")


@pytest.mark.parametrize(("text", "size"), [("1mb", MB), ("200MB", 200 * MB), ("512kb", 512 * 1024), ("7", 7)])
def test_sizes_read_and_write_like_gradios(text, size):
    assert parse_size(text) == size
    assert parse_size(size_text(size)) == size


@pytest.mark.parametrize("text", ["", "mb", "-1mb", "0", "lots"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)
