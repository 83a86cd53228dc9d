"""API sessions' conversations, kept on the server between turns, so that a follow-up `/chat` call sees the
earlier turns (the browser keeps its own: `janus_demo.service.saved_chats`).

    histories = Histories(max_sessions=500, idle_s=3600)
    history = histories.get(session_hash)          # [] for a new or forgotten session
    histories.put(session_hash, history + [turn])

Bounded for a public server: at most `max_sessions` conversations (the least recently used go first), each
forgotten `idle_s` seconds after its last use.
"""

from __future__ import annotations

import threading

from cachetools import TTLCache

from janus_demo.service.conversation import Message


class Histories:
    """Conversations by session, bounded in number and forgotten when idle."""

    def __init__(self, max_sessions: int, idle_s: float) -> None:
        self._cache: TTLCache[str, list[Message]] = TTLCache(maxsize=max_sessions, ttl=idle_s)
        self._lock = threading.Lock()

    def get(self, session: str | None) -> list[Message]:
        """The session's conversation so far (a copy), [] when there is none."""
        with self._lock:
            return list(self._cache.get(session, [])) if session else []

    def put(self, session: str | None, history: list[Message]) -> None:
        """Keep `history` as the session's conversation (and count this as its last use)."""
        if session:
            with self._lock:
                self._cache[session] = list(history)

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
