"""Consistent copies of the state database, and putting one back.

A snapshot is taken with SQLite's backup API (consistent even while other processes write) into a
0600 file under ``snapshots/``, after each successful maintenance run and before each schema upgrade;
only then, so that after a restore anything installed later shows as a change made outside svcssl.
The newest ``keep`` are kept. Restoring moves the damaged file aside (never deletes it) and puts a
checked copy of the snapshot in its place.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError, StoreError
from ..filesystem import from_os_error
from ..fsutil import fsync_dir
from ..statedir import StateLayout
from .database import check_integrity

STAMP = "%Y%m%dT%H%M%SZ"
NAME = re.compile(r"^svcssl-(\d{8}T\d{6}Z)(?:-(\d+))?-([a-z]+)\.db$")
REASONS = {"run": "after a maintenance run", "upgrade": "before a schema upgrade"}


@dataclass(frozen=True)
class Snapshot:
    name: str
    path: Path
    taken_at: datetime  # aware UTC
    reason: str  # run | upgrade
    size: int

    @property
    def why(self) -> str:
        return REASONS.get(self.reason, self.reason)


def list_snapshots(layout: StateLayout) -> list[Snapshot]:
    """Every snapshot, newest first."""
    found = []
    try:
        entries = list(os.scandir(layout.snapshots))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        taken = datetime.strptime(match.group(1), STAMP).replace(tzinfo=timezone.utc)
        found.append((taken, int(match.group(2) or 0), Snapshot(entry.name, Path(entry.path), taken, match.group(3),
                                                               entry.stat().st_size)))
    return [snap for _, _, snap in sorted(found, key=lambda item: item[:2], reverse=True)]


def _free_name(layout: StateLayout, now: datetime, reason: str) -> str:
    stamp = now.astimezone(timezone.utc).strftime(STAMP)
    name, counter = f"svcssl-{stamp}-{reason}.db", 1
    while layout.snapshot(name).exists():
        counter += 1
        name = f"svcssl-{stamp}-{counter}-{reason}.db"
    return name


def take_snapshot(source: sqlite3.Connection, layout: StateLayout, *, reason: str, now: datetime,
                  keep: int) -> Snapshot:
    """Copy the database behind ``source`` into a new snapshot (0600), then keep only the newest ``keep``."""
    layout.snapshots.mkdir(mode=0o700, exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=layout.snapshots, prefix=".svcssl-", suffix=".db-new")  # 0600
    os.close(fd)
    try:
        copy = sqlite3.connect(staged)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        name = _free_name(layout, now, reason)
        os.replace(staged, layout.snapshot(name))
        fsync_dir(layout.snapshots)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    for old in list_snapshots(layout)[max(keep, 1):]:
        old.path.unlink(missing_ok=True)
    return next(s for s in list_snapshots(layout) if s.name == name)


def is_newest_snapshot(layout: StateLayout, path: Path) -> bool:
    """True when ``path`` holds the same bytes as the newest snapshot (it was just restored from it)."""
    snapshots = list_snapshots(layout)
    if not snapshots or snapshots[0].size != path.stat().st_size:
        return False
    with open(snapshots[0].path, "rb") as newest, open(path, "rb") as current:
        while True:
            a, b = newest.read(1 << 20), current.read(1 << 20)
            if a != b:
                return False
            if not a:
                return True


@dataclass(frozen=True)
class Restored:
    snapshot: Snapshot
    moved_aside: Path | None  # where the previous database went (None when there was none)


def restore_snapshot(layout: StateLayout, name: str | None, now: datetime) -> Restored:
    """Put snapshot ``name`` (default: the newest) in place of the database. The snapshot is checked first;
    the current database (with its journal files) is moved aside as ``svcssl.db.damaged-<time>``."""
    snapshots = list_snapshots(layout)
    if not snapshots:
        raise InputError(f"There is no snapshot in {layout.snapshots} to restore.", field="snapshot")
    chosen = snapshots[0] if name is None else next((s for s in snapshots if s.name == name), None)
    if chosen is None:
        raise InputError(f"There is no snapshot named '{name}'. `svcssl state snapshots` lists them.",
                         field="snapshot")
    problems = check_integrity(chosen.path, quick=False)
    if problems:
        raise StoreError(f"The snapshot {chosen.path} is damaged too ({problems[0]}); choose another "
                         "(`svcssl state snapshots`).")
    target = layout.database
    try:
        fd, staged = tempfile.mkstemp(dir=layout.root, prefix=".svcssl-restore-", suffix=".db")  # 0600
        with os.fdopen(fd, "wb") as out, open(chosen.path, "rb") as source:
            while block := source.read(1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        said = from_os_error(exc, layout.root)
        raise (said or StoreError(f"Cannot copy the snapshot {chosen.path}: {exc.strerror}.")) from None
    moved = None
    stamp = now.astimezone(timezone.utc).strftime(STAMP)
    if target.exists():
        moved = layout.damaged_database(stamp)
        os.replace(target, moved)
    for suffix in ("-journal", "-wal", "-shm"):  # they belong to the file moved aside
        extra = target.with_name(target.name + suffix)
        if extra.exists():
            os.replace(extra, layout.damaged_database(stamp).with_name(f"{layout.damaged_database(stamp).name}{suffix}"))
    os.replace(staged, target)
    fsync_dir(layout.root)
    return Restored(chosen, moved)
