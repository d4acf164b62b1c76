"""Keeping the discovery index current: which files changed, read and parsed only then.

A refresh is incremental: the caller hands over every file that exists now with a fresh stamp
(one ``stat``), and only files whose stamp changed are read and parsed. Rows of files that are
gone are deleted. Requests only query; they never walk the file tree.

The rows and their SQL belong to the store (``svcssl.store.discovery.DiscoveryIndex``, opened as
``Store.discovery``); this module decides what goes in and hands it over in batches.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from ..x509.parse import ParsedFile, parse_file

BATCH = 500  # changed files per write transaction: other writers never wait long


@dataclass(frozen=True)
class Stamp:
    """A file version's identity: any write, replace or chmod changes one of these."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Stamp":
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    def text(self) -> str:
        return f"{self.size}:{self.mtime_ns}:{self.ctime_ns}:{self.inode}"


def stamp_text(path: str | bytes) -> str:
    """A file's or directory's stamp as text; ``missing`` when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
    return f"{kind}:{Stamp.of(st).text()}"


@dataclass(frozen=True)
class Candidate:
    """A file that exists now and belongs in the index. ``read`` is called only when it changed."""

    path: bytes
    store: str  # account | apache | cabundle | service | keystore (svcssl's own keys)
    owner: str  # the account for store "account", else ""
    stamp: Stamp | None  # None: could not be stat'ed (the problem says why)
    read: Callable[[], bytes]
    problem: str | None = None  # known without reading: a symbolic link, not a regular file, …

    @property
    def name(self) -> bytes:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class RefreshReport:
    files: int  # files the sources named
    parsed: int  # read and parsed (new or changed)
    unchanged: int  # a stat only
    removed: int  # gone since the last refresh
    problems: int  # files that could not be used
    seconds: float
    at: datetime

    def to_dict(self) -> dict:
        return {"files": self.files, "parsed": self.parsed, "unchanged": self.unchanged, "removed": self.removed,
                "problems": self.problems, "seconds": round(self.seconds, 3), "at": int(self.at.timestamp())}


def display_path(path: bytes | str | None) -> str:
    """A path for people: undecodable bytes shown as \\xNN, never an exception."""
    if path is None:
        return ""
    if isinstance(path, str):
        path = os.fsencode(path)
    return path.decode("utf-8", "backslashreplace")


def refresh(index: Any, candidates: Iterable[Candidate], stores: Iterable[str], now: datetime) -> RefreshReport:
    """Bring the rows of ``stores`` in line with ``candidates`` (every file those stores hold now).

    ``index`` is the store's ``DiscoveryIndex`` (``Store.discovery``).
    """
    started = time.perf_counter()
    existing = index.file_stamps(stores)
    seen: set[bytes] = set()
    files = parsed = unchanged = problems = 0
    batch: list[tuple] = []
    for candidate in candidates:
        if candidate.path in seen:
            continue  # the same file named twice (e.g. an Apache certificate that is also a service's)
        seen.add(candidate.path)
        files += 1
        old = existing.get(candidate.path)
        stamp = candidate.stamp
        if (old is not None and stamp is not None and (candidate.problem is None or old.has_problem)
                and (old.store, old.owner) == (candidate.store, candidate.owner)
                and old.stamp == (stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode)):
            unchanged += 1
            problems += old.has_problem
            continue
        result: ParsedFile | None = None
        problem = candidate.problem
        if problem is None:
            try:
                data = candidate.read()
            except OSError as exc:
                problem = f"cannot read: {exc.strerror or exc}"
            else:
                result = parse_file(data)
                problem = result.problem
                parsed += 1
        batch.append((old.id if old is not None else None, candidate, result, problem))  # a store FileChange
        problems += problem is not None
        if len(batch) >= BATCH:
            index.write_files(batch)
            batch = []
    gone = [entry.id for path, entry in existing.items() if path not in seen]
    index.write_files(batch, gone)
    report = RefreshReport(files, parsed, unchanged, len(gone), problems, time.perf_counter() - started, now)
    index.set_state("last_refresh", json.dumps(report.to_dict()))
    return report
