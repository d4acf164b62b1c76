"""What every operation needs: the settings, the store and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from ..errors import UnknownServiceError, excerpt
from ..settings import ServiceSettings, Settings
from ..store import Store


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    settings: Settings
    store: Store
    clock: Callable[[], datetime] = field(default=utc_now)

    def now(self) -> datetime:
        return self.clock()

    def service(self, name: str, *, enabled_only: bool = True) -> ServiceSettings:
        """The named service, or an error listing the valid names."""
        if not name:
            raise UnknownServiceError("You must provide a service.")
        service = self.settings.services.get(name)
        valid = [s.name for s in self.settings.services.values() if s.enabled or not enabled_only]
        if service is None or name not in valid:
            state = " (it is disabled)" if service is not None else ""
            raise UnknownServiceError(f"Unknown service '{excerpt(name)}'{state}. Valid services: {', '.join(valid)}.")
        return service

    def services(self, names: list[str] | tuple[str, ...]) -> list[ServiceSettings]:
        if not names:
            raise UnknownServiceError("You must provide a service.")
        resolved = []
        for name in names:
            service = self.service(name)
            if service not in resolved:
                resolved.append(service)
        return resolved


def open_context(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Context:
    store = Store(settings.server.state_dir, keep_snapshots=settings.server.state_snapshots)
    return Context(settings=settings, store=store, clock=clock)
