"""Opening the state database so that reading needs no free space, and saying what is wrong with it.

The database uses SQLite's rollback journal (``journal_mode=DELETE``), not WAL: a reader then writes
nothing and creates no file (WAL needs its ``-shm`` file sized on open, which fails on a full disk), so
every reading command and the panel keep working while the file system is full. Writes fail with
SQLite's FULL, which ``Database`` turns into the one sentence of ``svcssl.filesystem``.

Damage (a truncated file, an overwritten page) is found when the database is opened (its header
promises more pages than the file holds) and whenever SQLite meets it (CORRUPT, NOTADB); the message
names the file and the command that puts the latest snapshot back.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from contextlib import contextmanager
from pathlib import Path

from ..errors import DamagedDatabaseError, SvcsslError
from ..filesystem import from_sqlite_error

HEADER = b"SQLite format 3\x00"
DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def damaged(path: Path, detail: str) -> DamagedDatabaseError:
    return DamagedDatabaseError(
        f"The state database {path} is damaged ({detail}). Run `svcssl state restore` to put back the latest "
        f"snapshot (`svcssl state snapshots` lists them); the damaged file is kept beside it.", path=str(path))


def translate(exc: sqlite3.Error, path: Path) -> SvcsslError | None:
    """The sentence for an SQLite error on the state database, or None when it is not about the disk or damage."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(DAMAGE):
        return damaged(path, str(exc))
    return from_sqlite_error(exc, path)


def has_hot_journal(path: Path) -> bool:
    journal = path.with_name(path.name + "-journal")
    try:
        return journal.stat().st_size > 0
    except FileNotFoundError:
        return False


def header_problem(path: Path) -> str | None:
    """What the file's header says is wrong without reading further: not SQLite, or shorter than it claims."""
    if has_hot_journal(path):
        return None  # a commit was interrupted: SQLite puts the file back from the journal when it opens it
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return None
    if not header:
        return None  # an empty file is a new database
    if len(header) < 100 or not header.startswith(HEADER):
        return "it is not an SQLite database"
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages, change, valid_for = struct.unpack(">I", header[28:32])[0], header[24:28], header[92:96]
    if change == valid_for and pages * page_size > size:  # the in-header size is valid (SQLite ≥ 3.7.0 wrote it)
        return f"it is truncated: {size:,} bytes of {pages * page_size:,}"
    return None


class Database:
    """The SQLite connection of a Store, every disk or damage error said in words."""

    def __init__(self, path: Path):
        self.path = path
        problem = header_problem(path)
        if problem:
            raise damaged(path, problem)
        self.connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            self.execute("PRAGMA foreign_keys=ON")
            # a large write (the discovery index) keeps its pages in memory until COMMIT, so readers are held
            # up only while it commits (a spill to the file would take the exclusive lock early)
            self.execute("PRAGMA cache_size=-32768")
            if self.execute("PRAGMA journal_mode").fetchone()[0] != "delete":
                self._leave_wal()
        except BaseException:
            self.connection.close()
            raise

    def _leave_wal(self) -> None:
        """A database an earlier release left in WAL mode goes back to the rollback journal (once; a
        process of that release still holding it open keeps it in WAL until the next open)."""
        self.connection.execute("PRAGMA busy_timeout=0")
        try:
            self.connection.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass
        finally:
            self.connection.execute("PRAGMA busy_timeout=30000")

    def execute(self, sql: str, parameters=()) -> sqlite3.Cursor:
        if sql == "ROLLBACK" and not self.connection.in_transaction:
            # SQLite already rolled the transaction back itself (it does after FULL and IOERR on COMMIT)
            return self.connection.execute("SELECT 0")
        with self._in_words():
            return self.connection.execute(sql, parameters)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        with self._in_words():
            return self.connection.executemany(sql, rows)

    @contextmanager
    def _in_words(self):
        """SQLite's FULL, IOERR, READONLY and damage errors as svcssl's sentence about this file (others as they are)."""
        try:
            yield
        except sqlite3.Error as exc:
            said = translate(exc, self.path)
            if said is None:
                raise
            raise said from None

    def close(self) -> None:
        self.connection.close()


def check_integrity(path: Path, *, quick: bool = True) -> list[str]:
    """SQLite's own check of the file (``quick_check``, or the full ``integrity_check``), read-only: the
    problems it reports, [] when the database is sound."""
    problem = header_problem(path)
    if problem:
        return [problem]
    mode = "rw" if has_hot_journal(path) else "ro"  # an interrupted commit is rolled back first, as any open does
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    found = [row[0] for row in rows]
    return [] if found == ["ok"] else found
