"""The way back from a damaged state database: check it, list the snapshots, restore one.

After a restore the services' files are adopted again (the first-run path), so the table shows what
is installed now; a certificate installed after the snapshot shows as a change made outside svcssl.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..settings import Settings
from ..statedir import StateLayout
from ..store import AuditEntry
from ..store.database import check_integrity, damaged
from ..store.snapshots import Snapshot, list_snapshots, restore_snapshot
from ..fsutil import file_lock
from .context import open_context, utc_now
from .firstrun import ensure_certificates
from .inventory import list_services


@dataclass(frozen=True)
class IntegrityReport:
    database: Path
    exists: bool
    problems: tuple[str, ...]  # empty: sound

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RestoreReport:
    snapshot: Snapshot
    moved_aside: Path | None
    adopted: tuple[str, ...]  # services whose files were adopted again (the snapshot knew none)
    outside: tuple[str, ...]  # services whose files hold another certificate than the snapshot's (changed later)


def check_state(settings: Settings) -> IntegrityReport:
    """SQLite's full integrity check of the state database (read-only: writes nothing)."""
    layout = StateLayout(settings.server.state_dir)
    if not layout.database.exists():
        return IntegrityReport(layout.database, False, ())
    return IntegrityReport(layout.database, True, tuple(check_integrity(layout.database, quick=False)))


def require_sound_state(settings: Settings) -> None:
    """SQLite's quick check when the panel starts: a damaged database is said with the way back."""
    layout = StateLayout(settings.server.state_dir)
    if layout.database.exists():
        problems = check_integrity(layout.database, quick=True)
        if problems:
            raise damaged(layout.database, problems[0])


def state_snapshots(settings: Settings) -> list[Snapshot]:
    return list_snapshots(StateLayout(settings.server.state_dir))


def restore_state(settings: Settings, name: str | None, *, actor: str,
                  clock: Callable[[], datetime] = utc_now) -> RestoreReport:
    """Put snapshot ``name`` (default: the newest) back, moving the current database aside, then adopt the
    services' files again. No maintenance run may be going on meanwhile (its lock is held)."""
    layout = StateLayout(settings.server.state_dir)
    with file_lock(layout.lock("maintenance"), timeout=10.0):
        restored = restore_snapshot(layout, name, clock())
    ctx = open_context(settings, clock)
    try:
        known = {s.name for s in settings.enabled_services() if ctx.store.active(s.name) is not None}
        ensure_certificates(ctx)
        outside = tuple(s.service.name for s in list_services(ctx) if s.drift)
        adopted = tuple(s.name for s in settings.enabled_services()
                        if s.name not in known and ctx.store.active(s.name) is not None)
        detail = f"from {restored.snapshot.name}" + (f"; the previous database is {restored.moved_aside}"
                                                   if restored.moved_aside else "")
        ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="state restore", detail=detail))
    finally:
        ctx.store.close()
    return RestoreReport(restored.snapshot, restored.moved_aside, adopted, outside)
