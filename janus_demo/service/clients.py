"""What one client may ask of a public server: jobs in line, upload bytes, login attempts, its sessions.

    ledger = ClientLedger(ClientLimits())
    who = Client(session="3f2a...", ip="203.0.113.7", user=None)
    refusal = ledger.admit_job("job-1", who)     # None, or a "Too many requests: ..." message
    ledger.job_event("job-1", "event-id")          # gradio accepted it
    ...
    ledger.job_ended("job-1")                      # it ran to its end, failed, or was cancelled

No gradio here: the gate in front of gradio (`janus_demo.launch.gate`) feeds the ledger from what it sees
on the wire (joins, cancels, event streams, uploads, logins), once per request and before the request
waits for anything; the event functions (`janus_demo.web`) ask it whether their client still reads its
stream (`abandoned`). A client is a session, an IP address and, behind a login, a user: each of them is
counted on its own, so many sessions from one address, or many tabs of one user, add up. A loopback
address is not counted as an address: it is this machine, a share-link tunnel, or a proxy in front whose
forwarded addresses were not configured (`--proxy-hops`), and every user behind it would share one count;
instead, the jobs of such clients without a login share one bound of their own (`jobs_shared_address`).

Every cap is declared once, below, with the flag and environment variable that tune it: the settings
(`janus_demo.launch.settings`) and the README's tables (`janus_demo.service.reference`) read them.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

MB = 2**20


def _cap(flag: str | None, env: str | None, meaning: str, exceeded: str, unit: str = "") -> dict[str, str | None]:
    return {"flag": flag, "env": env, "meaning": meaning, "exceeded": exceeded, "unit": unit}


@dataclass(frozen=True)
class ClientLimits:
    """Caps per request and per client on a public server; each field's metadata names its flag."""

    max_body_bytes: int = field(
        default=1 * MB,
        metadata=_cap(
            "--max-body-size",
            "JANUS_MAX_BODY_SIZE",
            "one request body other than an upload (the browser sends the chat history in it)",
            'refused with HTTP 413: "clear the conversation"',
            "bytes",
        ),
    )
    max_body_depth: int = field(
        default=32,
        metadata=_cap(
            None,
            None,
            "nesting of one JSON body (gradio's deepest, a chat history, is under 10)",
            "refused with HTTP 413",
        ),
    )
    body_read_s: float = field(
        default=30.0,
        metadata=_cap(
            None,
            None,
            "time one request body other than an upload may take to arrive (an upload: this plus its size at 64 KB/s)",
            "refused with HTTP 408",
            "s",
        ),
    )
    max_body_values: int = field(
        default=20_000,
        metadata=_cap(
            None,
            None,
            "values (texts, numbers, lists, objects) in one JSON body: gradio's work per request grows with them",
            "refused with HTTP 413",
        ),
    )
    jobs_per_session: int = field(
        default=2,
        metadata=_cap(
            "--jobs-per-session",
            "JANUS_JOBS_PER_SESSION",
            "requests one browser tab or API client may have waiting or running",
            'refused with HTTP 429: "Too many requests"',
        ),
    )
    jobs_per_ip: int = field(
        default=4,
        metadata=_cap(
            "--jobs-per-ip",
            "JANUS_JOBS_PER_IP",
            "requests one IP address (or one login) may have waiting or running",
            'refused with HTTP 429: "Too many requests"',
        ),
    )
    jobs_shared_address: int = field(
        default=8,
        metadata=_cap(
            "--jobs-shared-address",
            "JANUS_JOBS_SHARED_ADDRESS",
            "requests that clients who cannot be told apart (this machine's own address and no login: a share "
            "link without auth, a proxy without `--proxy-hops`) may have waiting or running, all together",
            'refused with HTTP 429: "Too many requests"',
        ),
    )
    upload_bytes_per_window: int = field(
        default=200 * MB,
        metadata=_cap(
            "--upload-budget",
            "JANUS_UPLOAD_BUDGET",
            "bytes one IP address (or one login, or all clients that cannot be told apart together) may upload "
            "per `upload_window_s`",
            "refused with HTTP 429 until the window moves on",
            "bytes",
        ),
    )
    upload_window_s: float = field(
        default=600.0, metadata=_cap(None, None, "the window of `upload_bytes_per_window`", "-", "s")
    )
    max_sessions: int = field(
        default=500,
        metadata=_cap(
            "--max-sessions",
            "JANUS_MAX_SESSIONS",
            "sessions whose state (API chat history, last inputs) the server keeps",
            "the least recently used session is forgotten",
        ),
    )
    session_ttl_s: float = field(
        default=3600.0,
        metadata=_cap(None, None, "an API session's chat history after its last use", "forgotten", "s"),
    )
    stream_grace_s: float = field(
        default=10.0,
        metadata=_cap(
            None, None, "a request whose client reads no event stream for this long", "stopped, model freed", "s"
        ),
    )
    login_failures_per_minute: int = field(
        default=10,
        metadata=_cap(
            None,
            None,
            "wrong passwords per minute from one IP address, and for one user name from one address",
            "that address is refused with HTTP 429",
        ),
    )
    login_failures_per_user: int = field(
        default=100,
        metadata=_cap(
            None,
            None,
            "wrong passwords per minute for one user name, from all addresses together",
            "addresses that failed for it are refused with HTTP 429; the right password from any other "
            "address still logs in",
        ),
    )
    max_job_age_s: float = 900.0  # a job the ledger never heard the end of stops counting after this long
    max_tracked: int = 100_000  # sessions, tokens and keys remembered at most (oldest forgotten first)


SIZE_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30}


def parse_size(text: str) -> int:
    """'1mb' -> 1048576 (b, kb, mb, gb; binary units, as gradio's --max-file-size); ValueError otherwise."""
    number, unit = text.strip().lower(), "b"
    for suffix in sorted(SIZE_UNITS, key=len, reverse=True):
        if number.endswith(suffix):
            number, unit = number[: -len(suffix)].strip(), suffix
            break
    size = float(number) * SIZE_UNITS[unit]
    if not size >= 1:
        raise ValueError(f"a size must be at least 1 byte, got {text!r}")
    return int(size)


def size_text(size: int) -> str:
    """1048576 -> '1mb' (the largest unit that divides it)."""
    for unit in ("gb", "mb", "kb"):
        if size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return f"{size}b"


def cap_fields() -> list:
    """The ClientLimits fields that appear in the README's caps table, in order."""
    return [f for f in fields(ClientLimits) if f.metadata.get("meaning")]


@dataclass(frozen=True)
class Client:
    """Who sent a request: a session hash (None before gradio gives one), an IP address, a login or None."""

    session: str | None
    ip: str
    user: str | None = None

    def keys(self) -> list[tuple[str, str]]:
        """What this client is counted as: its session, its address (unless loopback), its login."""
        keys = [] if _loopback(self.ip) else [("ip", self.ip)]
        if self.session:
            keys.append(("session", self.session))
        if self.user is not None:
            keys.append(("user", self.user))
        return keys

    def job_keys(self) -> list[tuple[str, str]]:
        """What this client's jobs and uploads are counted as: its keys, and one bucket shared by every client
        that cannot be told apart from the others (loopback, no login)."""
        unidentified = _loopback(self.ip) and self.user is None
        return self.keys() + ([("shared", "loopback")] if unidentified else [])


def _loopback(ip: str) -> bool:
    """A local peer: this machine, a share-link tunnel, or a proxy whose forwarded address is not trusted
    (see --proxy-hops). Counting it per address would put every user behind it in one bucket."""
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


@dataclass
class _Job:
    client: Client
    joined: float
    event_id: str | None = None
    started: bool = False


TOO_MANY_JOBS = (
    "Too many requests: {what} already has {count} request(s) waiting or running (the limit is {limit}). "
    "Wait for one to finish, then try again."
)
TOO_MANY_UPLOADS = (
    "Too many requests: {what} uploaded {used:.0f} MB in the last {window:.0f} minutes (the limit is "
    "{limit:.0f} MB). Try again in a few minutes."
)
TOO_MANY_LOGINS = "Too many failed logins. Try again in a minute."
WHAT = {
    "session": "this session",
    "ip": "your address",
    "user": "your login",
    "shared": "everyone arriving from this server's own address without a login",
}
JOB_LIMITS: dict[str, Callable[[ClientLimits], int]] = {
    "session": lambda limits: limits.jobs_per_session,
    "ip": lambda limits: limits.jobs_per_ip,
    "user": lambda limits: limits.jobs_per_ip,
    "shared": lambda limits: limits.jobs_shared_address,
}


class ClientLedger:
    """Thread-safe counts per client (the middleware runs on the event loop, event functions in threads)."""

    def __init__(self, limits: ClientLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ClientLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self.job_events: frozenset[int] | None = None  # the events that run the model (None: every event counts)
        self._streams: dict[str, int] = {}  # session -> open event streams
        self._blocked_since: dict[str, float] = {}  # session -> when a write to its stream began to wait
        self._last_stream: OrderedDict[str, float] = OrderedDict()  # session -> when a stream last closed
        self._uploads: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._login_failures: dict[tuple[str, str], deque[float]] = {}
        self._owners: OrderedDict[str, str] = OrderedDict()  # session -> the login that first used it

    # --- jobs ------------------------------------------------------------------------------------

    def is_job(self, event: object) -> bool:
        """Whether a request for `event` (gradio's fn_index) counts as a job: only the model's work does, not
        a field's own check when the user leaves it."""
        return self.job_events is None or event in self.job_events

    def admit_job(self, job: str, client: Client) -> str | None:
        """Count `job` against its client, or say why not (a 'Too many requests' message)."""
        with self._lock:
            self._expire_jobs()
            for kind, value in client.job_keys():
                limit = JOB_LIMITS[kind](self.limits)
                count = sum(1 for other in self._jobs.values() if (kind, value) in other.client.job_keys())
                if count >= limit:
                    return TOO_MANY_JOBS.format(what=WHAT[kind], count=count, limit=limit)
            self._jobs[job] = _Job(client, self._clock())
            return None

    def job_event(self, job: str, event_id: str) -> None:
        """gradio accepted `job` as `event_id` (a join without a session gets the event id as its session)."""
        with self._lock:
            if record := self._jobs.get(job):
                record.event_id = event_id
                if record.client.session is None:
                    record.client = Client(event_id, record.client.ip, record.client.user)

    def job_started(self, job: str) -> bool:
        """The job's function began; False when the ledger no longer counts it (abandoned while it waited)."""
        with self._lock:
            if record := self._jobs.get(job):
                record.started = True
            return record is not None

    def job_ended(self, job: str) -> None:
        """The job is over (answered, refused, cancelled or never accepted): it stops counting."""
        with self._lock:
            self._jobs.pop(job, None)

    def event_ended(self, event_id: str) -> None:
        """gradio reported `event_id` completed or cancelled (a job that never started ends here)."""
        with self._lock:
            for job, record in list(self._jobs.items()):
                if record.event_id == event_id:
                    del self._jobs[job]

    def session_of(self, event_id: str) -> str | None:
        """The session of the job gradio knows as `event_id` (the /call routes name only the event)."""
        with self._lock:
            return next((r.client.session for r in self._jobs.values() if r.event_id == event_id), None)

    def jobs(self, session: str) -> int:
        with self._lock:
            return sum(1 for record in self._jobs.values() if record.client.session == session)

    def _expire_jobs(self) -> None:
        """Forget jobs that will never report their end: not started and nobody reads their stream, or too old."""
        now = self._clock()
        for job, record in list(self._jobs.items()):
            if now - record.joined > self.limits.max_job_age_s or (not record.started and self._abandoned(record)):
                del self._jobs[job]

    # --- event streams ---------------------------------------------------------------------------

    def stream_opened(self, session: str) -> None:
        with self._lock:
            self._streams[session] = self._streams.get(session, 0) + 1

    def stream_closed(self, session: str, disconnected: bool = True) -> None:
        """The client's event stream closed. When the client went away (`disconnected`), gradio drops its
        waiting jobs, so they stop counting here too. When gradio closed it (nothing of the session was
        pending), a job joining at that moment is still in line: it keeps counting, and the client opens
        a new stream for it within the grace period."""
        with self._lock:
            left = self._streams.get(session, 1) - 1
            if left > 0:
                self._streams[session] = left
                return
            self._streams.pop(session, None)
            self._blocked_since.pop(session, None)
            self._remember(self._last_stream, session, self._clock())
            for job, record in list(self._jobs.items()):
                if disconnected and record.client.session == session and not record.started:
                    del self._jobs[job]

    def stream_writing(self, session: str, writing: bool) -> None:
        """A write to the session's stream began (True) or finished (False); one that waits means no reader."""
        with self._lock:
            if writing:
                self._blocked_since.setdefault(session, self._clock())
            else:
                self._blocked_since.pop(session, None)

    def abandoned(self, job: str) -> bool:
        """True when nobody reads `job`'s results: no open stream for `stream_grace_s`, or a stuck one; also
        when the ledger forgot the job (it was given up while it waited in line)."""
        with self._lock:
            record = self._jobs.get(job)
            return record is None or self._abandoned(record)

    def _abandoned(self, record: _Job) -> bool:
        session, now, grace = record.client.session, self._clock(), self.limits.stream_grace_s
        if session in self._streams:
            blocked = self._blocked_since.get(session)
            return blocked is not None and now - blocked > grace
        recent = max(record.joined, self._last_stream.get(session, record.joined))
        return now - recent > grace

    # --- uploads ---------------------------------------------------------------------------------

    def admit_upload(self, client: Client, size: int) -> str | None:
        """Count `size` upload bytes against the client's address and login, or say why not."""
        window, budget = self.limits.upload_window_s, self.limits.upload_bytes_per_window
        with self._lock:
            now = self._clock()
            keys = [key for key in client.job_keys() if key[0] != "session"]  # unidentified clients share one
            for key in keys:
                spent = self._uploads.get(key)
                while spent and now - spent[0][0] > window:
                    spent.popleft()
                used = sum(size for _, size in spent or ())
                if used + size > budget:
                    return TOO_MANY_UPLOADS.format(
                        what=WHAT[key[0]], used=used / MB, window=window / 60, limit=budget / MB
                    )
            for key in keys:
                self._uploads.setdefault(key, deque()).append((now, size))
            self._trim(self._uploads)
            return None

    # --- logins ----------------------------------------------------------------------------------

    def login_refusal(self, ip: str, user: str) -> str | None:
        """A message when this address failed too often in the last minute (for any user name, or for this
        one), or when this user name failed too often from everywhere and this address is one that failed for
        it. An address that has not failed for the user is always heard: nobody can lock a user out."""
        with self._lock:
            per_address = self.limits.login_failures_per_minute
            if not _loopback(ip) and self._failures(("ip", ip)) >= per_address:
                return TOO_MANY_LOGINS
            tried_here = self._failures(("pair", f"{ip}|{user}"))
            if tried_here >= per_address:
                return TOO_MANY_LOGINS
            if tried_here and self._failures(("user", user)) >= self.limits.login_failures_per_user:
                return TOO_MANY_LOGINS
            return None

    def login_failed(self, ip: str, user: str) -> None:
        with self._lock:
            now = self._clock()
            for key in [("ip", ip), ("pair", f"{ip}|{user}"), ("user", user)]:
                self._login_failures.setdefault(key, deque(maxlen=1000)).append(now)
            self._trim(self._login_failures)

    def _failures(self, key: tuple[str, str]) -> int:
        """Failures recorded under `key` in the last minute."""
        failures = self._login_failures.get(key)
        while failures and self._clock() - failures[0] > 60:
            failures.popleft()
        return len(failures or ())

    # --- sessions and logins ---------------------------------------------------------------------

    def session_owner(self, session: str, user: str) -> bool:
        """Bind `session` to the first login that uses it; True when `user` is that login."""
        with self._lock:
            owner = self._owners.setdefault(session, user)
            self._owners.move_to_end(session)
            self._trim(self._owners)
            return owner == user

    # --- bounds ----------------------------------------------------------------------------------

    def _remember(self, table: OrderedDict, key: str, value: float) -> None:
        table[key] = value
        table.move_to_end(key)
        self._trim(table)

    def _trim(self, table: dict) -> None:
        while len(table) > self.limits.max_tracked:
            del table[next(iter(table))]
