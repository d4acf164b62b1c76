"""Post/Redirect/Get: a POST's result kept for a while under a random id, shown by a GET (a reload shows it again).

Results live in the panel process's memory, bound to the browser session that made them; another
session (or another user) asking for the id gets nothing. They expire after ``ttl`` seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from flask import current_app, session


class ResultStore:
    def __init__(self, ttl: float = 3600.0, size: int = 500):
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str, Any]] = {}

    def put(self, owner: str, payload: Any, ttl: float | None = None) -> str:
        result_id = secrets.token_urlsafe(12)
        expires = time.monotonic() + (self.ttl if ttl is None else ttl)
        with self._lock:
            self._drop_expired()
            while len(self._entries) >= self.size:  # the oldest goes first
                self._entries.pop(next(iter(self._entries)))
            self._entries[result_id] = (expires, owner, payload)
        return result_id

    def get(self, owner: str, result_id: str, *, remove: bool = False) -> Any | None:
        """The owner's result under ``result_id``; with ``remove`` it is gone afterwards (shown exactly once)."""
        with self._lock:
            entry = self._entries.get(result_id)
            if entry is None or entry[0] < time.monotonic() or not secrets.compare_digest(entry[1], owner):
                return None
            if remove:
                del self._entries[result_id]
            return entry[2]

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _, _) in self._entries.items() if expires < now]:
            del self._entries[key]


def _store() -> ResultStore:
    return current_app.extensions["svcssl"].extra.setdefault("results", ResultStore())


def _owner() -> str:
    return str(session.get("sid") or "")


def remember(payload: Any, ttl: float | None = None) -> str:
    """Keep a result for this browser session; the id goes into the redirect's URL."""
    return _store().put(_owner(), payload, ttl)


def recall(result_id: str | None) -> Any | None:
    """The result this session stored under ``result_id``; None when unknown, expired or someone else's."""
    if not result_id or len(result_id) > 64 or not _owner():
        return None
    return _store().get(_owner(), result_id)


def recall_once(result_id: str | None) -> Any | None:
    """The result this session stored under ``result_id``, forgotten as it is returned (a reload shows nothing)."""
    if not result_id or len(result_id) > 64 or not _owner():
        return None
    return _store().get(_owner(), result_id, remove=True)
