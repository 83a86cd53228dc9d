"""Jobs belong to whoever created them: each event id is bound at creation to its session, login and address.

gradio cancels by event id alone (`/cancel` names a session, but removes whatever event it is given), and a
`/call/<api>/<event_id>` stream goes to whoever reads it first. The gate records, for every job it lets join
(`/queue/join`, `/call/<api>`), who made it, and lets only that client cancel it or read it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from janus_demo.launch.gate.asgi import Refused
from janus_demo.service.clients import Client

NOT_YOURS = "This request belongs to another client."
UNKNOWN = "No such request: it has ended, or it never existed."


@dataclass
class _Owner:
    client: Client
    created: float
    live: bool = True  # waiting or running: never forgotten to make room (the job caps bound how many)


class JobOwners:
    """event id -> the client that created it; thread-safe and bounded (ended jobs are forgotten first)."""

    def __init__(self, max_ended: int = 100_000, max_age_s: float = 6 * 3600.0) -> None:
        self._owners: OrderedDict[str, _Owner] = OrderedDict()  # oldest first
        self._ended: OrderedDict[str, None] = OrderedDict()  # ended jobs, in the order they ended
        self._lock = threading.Lock()
        self.max_ended, self.max_age_s = max_ended, max_age_s

    def created(self, event_id: str, client: Client, live: bool = True) -> None:
        """`client` made `event_id`; `live` for a job that waits or runs (else only its ownership is kept)."""
        with self._lock:
            self._owners[event_id] = _Owner(client, time.monotonic(), live)
            if not live:
                self._ended[event_id] = None
            self._trim()

    def ended(self, event_id: str) -> None:
        with self._lock:
            if (owner := self._owners.get(event_id)) and owner.live:
                owner.live = False
                self._ended[event_id] = None
                self._trim()

    def owner(self, event_id: str) -> Client | None:
        with self._lock:
            owner = self._owners.get(event_id)
            return owner.client if owner else None

    def check(self, event_id: str, session: str | None, asker: Client) -> None:
        """Refuse `asker` acting on `event_id` (named with `session`, if the route names one) unless it made it:
        404 for an event the gate never saw, 403 for another client's.

        The session must be the job's own (gradio's session hash is the client's secret) and so must the
        login; a job made without a session (`/call`) also keeps its address."""
        owner = self.owner(event_id)
        if owner is None:
            raise Refused(404, UNKNOWN)
        mine = owner.user == asker.user and (owner.session == session if session is not None else owner.ip == asker.ip)
        if not mine:
            raise Refused(403, NOT_YOURS)

    def __len__(self) -> int:
        return len(self._owners)

    def _trim(self) -> None:
        """Forget jobs older than `max_age_s`, then ended jobs beyond `max_ended` (each step O(1) amortised)."""
        now = time.monotonic()
        while self._owners:
            event_id, owner = next(iter(self._owners.items()))
            if now - owner.created <= self.max_age_s:
                break
            del self._owners[event_id]
            self._ended.pop(event_id, None)
        while len(self._ended) > self.max_ended:
            event_id, _ = self._ended.popitem(last=False)
            self._owners.pop(event_id, None)
