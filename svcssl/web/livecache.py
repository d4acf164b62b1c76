"""Live-check results kept for a short while, so the table does not probe every port on every view."""

from __future__ import annotations

import threading
import time

from ..operations.context import Context
from ..operations.inventory import ServiceStatus
from ..operations.livecheck import LiveCheck, check_statuses


class LiveCheckCache:
    def __init__(self, ttl: float = 30.0, timeout: float = 2.0):
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str | None], tuple[float, LiveCheck]] = {}

    def get(self, ctx: Context, statuses: list[ServiceStatus]) -> dict[str, LiveCheck]:
        now = time.monotonic()
        result: dict[str, LiveCheck] = {}
        stale = []
        with self._lock:
            for status in statuses:
                entry = self._entries.get((status.service.name, status.fingerprint))
                if entry and now - entry[0] < self.ttl:
                    result[status.service.name] = entry[1]
                else:
                    stale.append(status)
        for check in check_statuses(ctx, stale, self.timeout):
            result[check.service] = check
            with self._lock:
                self._entries[(check.service, check.installed_fingerprint)] = (time.monotonic(), check)
        return result

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()
