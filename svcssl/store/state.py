"""The state directory: content-addressed bundles, per-service history, audit log, locks.

Its paths are named by ``svcssl.statedir.StateLayout`` (``Store.layout``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import DamagedDatabaseError, FileSystemError, StoreError
from ..filesystem import from_os_error
from ..fsutil import atomic_write, file_lock, stage_file
from ..statedir import StateLayout
from ..x509 import Bundle, assemble_bundle
from ..x509.encode import certificate_pem, chain_pem, key_pem
from ..x509.parse import read_certificates, read_private_key
from .discovery import DiscoveryIndex
from .database import Database, translate
from .incidents import IncidentLog
from .schema import MIGRATIONS, migrate, schema_version
from .snapshots import Snapshot, is_newest_snapshot, take_snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    service: str
    fingerprint: str
    action: str
    actor: str
    installed_at: datetime
    rolled_back_at: datetime | None
    domains: tuple[str, ...]
    not_after: datetime
    issuer: str


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str  # root | reseller
    password_hash: str
    service_ssl: bool  # the service-SSL privilege (always true in effect for root)
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class LoginAttempt:
    allowed: bool  # False: a key was locked; nothing was counted and no password may be checked
    locked_until: datetime | None  # the lock that refused it
    reached_limit: bool  # this attempt locked a key: if it fails, say so


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: datetime
    finished_at: datetime
    trigger: str
    dry_run: bool
    ok: bool
    report: dict


@dataclass(frozen=True)
class OrderBackoff:
    names: str
    failures: int
    first_failed_at: datetime
    next_attempt_at: datetime
    problem: dict


@dataclass(frozen=True)
class TokenRecord:
    name: str
    user: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    kind: str = "api"  # api (the JSON API) | metrics (/metrics only)


@dataclass(frozen=True)
class ProbeRecord:
    """The last probe of a service's port: what it served, against what the files held then."""

    service: str
    probed_at: datetime
    state: str  # match | differs | unreachable | drift
    installed_fingerprint: str | None
    served_fingerprint: str | None


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    service: str | None = None
    old_fingerprint: str | None = None
    new_fingerprint: str | None = None
    outcome: str = "ok"
    detail: str = ""


def _narrow(path: Path, mode: int) -> None:
    """chmod only when needed: a read-only or full file system must not stop a reader."""
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _dt(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


class Store:
    """One state directory. Cheap to open; open one per process or request."""

    def __init__(self, state_dir: Path, *, keep_snapshots: int = 7):
        self.root = Path(state_dir)
        self.layout = layout = StateLayout(self.root)
        self.keep_snapshots = keep_snapshots
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _narrow(self.root, 0o700)
            for sub in (layout.bundles, layout.locks, layout.journals):
                sub.mkdir(mode=0o700, exist_ok=True)
            new = not layout.database.exists()
            self._db = Database(layout.database)
            _narrow(layout.database, 0o600)
            version = schema_version(self._db)
            if version < len(MIGRATIONS):  # only then is anything written on opening
                if version > 0 and not new and not is_newest_snapshot(layout, layout.database):
                    self.snapshot("upgrade", datetime.now(timezone.utc))
                migrate(self._db)
            elif version > len(MIGRATIONS):
                raise RuntimeError(f"the state database is version {version}, newer than this svcssl ({len(MIGRATIONS)})")
            self.discovery = DiscoveryIndex(self._db)  # the discovery index's tables
            self.incidents = IncidentLog(layout.incidents)  # disk incidents already mailed
            if new:
                self.incidents.clear()  # made now, while there is room: later only rewritten in place
        except (FileSystemError, DamagedDatabaseError):
            raise
        except OSError as exc:
            said = from_os_error(exc)
            raise (said or StoreError(f"cannot use state directory {self.root}: {exc}")) from None
        except (sqlite3.Error, RuntimeError) as exc:
            raise StoreError(f"cannot use state directory {self.root}: {exc}") from None
        self._inode = _inode(layout.database)

    def is_current(self) -> bool:
        """False once the database file was replaced (``svcssl state restore``): open a new Store."""
        return _inode(self.layout.database) == self._inode

    def snapshot(self, reason: str, now: datetime) -> Snapshot:
        """A consistent copy of the database under ``snapshots/`` (the newest ``keep_snapshots`` are kept)."""
        try:
            return take_snapshot(self._db.connection, self.layout, reason=reason, now=now, keep=self.keep_snapshots)
        except OSError as exc:
            said = from_os_error(exc, self.layout.snapshots)
            raise (said or StoreError(f"cannot take a snapshot of the state database: {exc}")) from None
        except sqlite3.Error as exc:
            said = translate(exc, self.layout.database)
            raise (said or StoreError(f"cannot take a snapshot of the state database: {exc}")) from None

    def close(self) -> None:
        self._db.close()

    # --- locks --------------------------------------------------------------
    def lock(self, name: str, timeout: float = 120.0) -> AbstractContextManager[None]:
        return file_lock(self.layout.lock(name), timeout)

    def service_lock(self, service: str) -> AbstractContextManager[None]:
        return self.lock(f"service-{service}")

    def journal_dir(self, service: str) -> Path:
        return self.layout.journal(service)

    # --- bundles ------------------------------------------------------------
    @staticmethod
    def _checked(fingerprint: str) -> str:
        if len(fingerprint) != 64 or not all(c in "0123456789abcdef" for c in fingerprint):
            raise StoreError(f"not a fingerprint: {fingerprint!r}")
        return fingerprint

    def bundle_dir(self, fingerprint: str) -> Path:
        return self.layout.bundle_dir(self._checked(fingerprint))

    def put_bundle(self, bundle: Bundle, now: datetime) -> str:
        """Keep the bundle under its fingerprint (idempotent)."""
        info = bundle.info
        fp = info.fingerprint
        self.bundle_dir(fp).mkdir(mode=0o700, exist_ok=True)
        atomic_write(self.layout.bundle_key(fp), key_pem(bundle.key), 0o600)
        atomic_write(self.layout.bundle_chain(fp), chain_pem(bundle.chain), 0o600)
        atomic_write(self.layout.bundle_cert(fp), certificate_pem(bundle.leaf), 0o600)
        self._db.execute(
            "INSERT OR IGNORE INTO certificates VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                info.fingerprint, info.spki_sha256, info.subject_cn, json.dumps(list(info.domains)),
                info.issuer_label, _ts(info.not_before), _ts(info.not_after), info.key_label,
                int(info.is_self_signed), _ts(now),
            ),
        )
        return info.fingerprint

    def has_bundle(self, fingerprint: str) -> bool:
        return self.layout.bundle_cert(self._checked(fingerprint)).exists()

    def get_bundle(self, fingerprint: str) -> Bundle:
        """Load a stored bundle. Its key was validated on import; it is not validated again."""
        fingerprint = self._checked(fingerprint)
        try:
            leaf_pem = self.layout.bundle_cert(fingerprint).read_bytes()
            chain = self.layout.bundle_chain(fingerprint).read_bytes()
            key = read_private_key(self.layout.bundle_key(fingerprint).read_bytes(), validate=False)
        except OSError as exc:
            raise StoreError(f"stored bundle {fingerprint[:16]}… is missing: {exc.strerror}") from None
        leaf = read_certificates(leaf_pem, what="stored certificate", field="crt")
        chain_certs = read_certificates(chain, what="stored chain") if chain.strip() else ()
        return assemble_bundle(leaf, (key,), chain_certs)

    # --- history ------------------------------------------------------------
    _HISTORY_SQL = (
        "SELECT h.id, h.service, h.fingerprint, h.action, h.actor, h.installed_at, h.rolled_back_at,"
        " c.domains, c.not_after, c.issuer FROM service_history h JOIN certificates c USING (fingerprint)"
    )

    def _entry(self, row) -> HistoryEntry:
        return HistoryEntry(
            id=row[0], service=row[1], fingerprint=row[2], action=row[3], actor=row[4],
            installed_at=_dt(row[5]), rolled_back_at=_dt(row[6]), domains=tuple(json.loads(row[7])),
            not_after=_dt(row[8]), issuer=row[9],
        )

    def active(self, service: str) -> HistoryEntry | None:
        row = self._db.execute(
            self._HISTORY_SQL + " WHERE h.service = ? AND h.rolled_back_at IS NULL ORDER BY h.id DESC LIMIT 1",
            (service,),
        ).fetchone()
        return self._entry(row) if row else None

    def history(self, service: str) -> list[HistoryEntry]:
        rows = self._db.execute(self._HISTORY_SQL + " WHERE h.service = ? ORDER BY h.id DESC", (service,))
        return [self._entry(r) for r in rows]

    def was_installed(self, fingerprint: str) -> bool:
        """True when the certificate is or was active on some service (its bundle is ours to reuse)."""
        row = self._db.execute("SELECT 1 FROM service_history WHERE fingerprint = ? LIMIT 1", (fingerprint,)).fetchone()
        return row is not None and self.has_bundle(fingerprint)

    def record_active(self, service: str, fingerprint: str, *, action: str, actor: str, now: datetime) -> None:
        self._db.execute(
            "INSERT INTO service_history (service, fingerprint, action, actor, installed_at) VALUES (?,?,?,?,?)",
            (service, fingerprint, action, actor, _ts(now)),
        )

    def rollback_targets(self, service: str) -> list[HistoryEntry]:
        """Entries before the active one, not rolled back, holding another certificate; newest first."""
        current = self.active(service)
        if current is None:
            return []
        rows = self._db.execute(
            self._HISTORY_SQL + " WHERE h.service = ? AND h.rolled_back_at IS NULL AND h.id < ?"
            " AND h.fingerprint != ? ORDER BY h.id DESC",
            (service, current.id, current.fingerprint),
        )
        return [self._entry(r) for r in rows]

    def record_rollback(self, service: str, target: HistoryEntry, now: datetime) -> None:
        """Mark every entry newer than ``target`` as rolled back, making ``target`` active again."""
        self._db.execute(
            "UPDATE service_history SET rolled_back_at = ? WHERE service = ? AND id > ? AND rolled_back_at IS NULL",
            (_ts(now), service, target.id),
        )

    # --- audit --------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> None:
        self._db.execute(
            "INSERT INTO audit (at, actor, action, service, old_fingerprint, new_fingerprint, outcome, detail)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (_ts(entry.at), entry.actor, entry.action, entry.service, entry.old_fingerprint,
             entry.new_fingerprint, entry.outcome, entry.detail),
        )

    def audit_entries(self, limit: int = 100, offset: int = 0, *, without_actions: tuple[str, ...] = ()) -> list[AuditEntry]:
        """Newest first; ``without_actions`` leaves those actions out (e.g. failed logins)."""
        where = f" WHERE action NOT IN ({','.join('?' * len(without_actions))})" if without_actions else ""
        rows = self._db.execute(
            "SELECT at, actor, action, service, old_fingerprint, new_fingerprint, outcome, detail"
            f" FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*without_actions, limit, offset),
        )
        return [AuditEntry(at=_dt(r[0]), actor=r[1], action=r[2], service=r[3], old_fingerprint=r[4],
                           new_fingerprint=r[5], outcome=r[6], detail=r[7]) for r in rows]

    # --- users --------------------------------------------------------------
    _USER_SQL = "SELECT name, role, password_hash, service_ssl, created_at, password_changed_at FROM users"

    def _user(self, row) -> UserRecord:
        return UserRecord(row[0], row[1], row[2], bool(row[3]), _dt(row[4]), _dt(row[5]))

    def get_user(self, name: str) -> UserRecord | None:
        row = self._db.execute(self._USER_SQL + " WHERE name = ?", (name,)).fetchone()
        return self._user(row) if row else None

    def list_users(self) -> list[UserRecord]:
        return [self._user(r) for r in self._db.execute(self._USER_SQL + " ORDER BY role DESC, name")]

    def add_user(self, name: str, role: str, password_hash: str, now: datetime) -> None:
        try:
            self._db.execute(
                "INSERT INTO users (name, role, password_hash, service_ssl, created_at, password_changed_at)"
                " VALUES (?,?,?,?,?,?)",
                (name, role, password_hash, int(role == "root"), _ts(now), _ts(now)),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"a user named '{name}' exists already") from None

    def set_password_hash(self, name: str, password_hash: str, now: datetime) -> None:
        self._db.execute("UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                         (password_hash, _ts(now), name))

    def delete_user(self, name: str, now: datetime) -> bool:
        """Remove a user with its tokens, sessions and account assignments, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("api_tokens", "login_sessions", "web_sessions"):
                self._db.execute(f"DELETE FROM {table} WHERE user = ?", (name,))
            deleted = self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return deleted == 1

    def set_service_ssl(self, name: str, granted: bool) -> None:
        self._db.execute("UPDATE users SET service_ssl = ? WHERE name = ?", (int(granted), name))

    # --- login throttling ---------------------------------------------------
    def take_login_attempt(self, limits: tuple[tuple[str, int], ...], now: datetime, window: timedelta,
                           lock: timedelta) -> LoginAttempt:
        """Count one password check under each (key, limit), in one transaction, before the check runs.

        While any key is locked nothing is counted and the attempt is refused. A key that reaches its
        limit is locked from then on, so parallel attempts can never run more checks than the limit.
        """
        now_ts = _ts(now)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = {}
            for key, _limit in limits:
                row = self._db.execute("SELECT failures, first_at, locked_until FROM login_failures WHERE key = ?",
                                       (key,)).fetchone()
                if row and row[2] is not None and row[2] > now_ts:
                    self._db.execute("COMMIT")
                    return LoginAttempt(allowed=False, locked_until=_dt(row[2]), reached_limit=True)
                rows[key] = row
            reached = False
            for key, limit in limits:
                row = rows[key]
                count, first = (0, now_ts) if row is None or now_ts - row[1] > window.total_seconds() else row[:2]
                count += 1
                locked = now_ts + int(lock.total_seconds()) if count >= limit else None
                reached = reached or locked is not None
                self._db.execute("INSERT OR REPLACE INTO login_failures (key, failures, first_at, locked_until)"
                                 " VALUES (?,?,?,?)", (key, count, first, locked))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return LoginAttempt(allowed=True, locked_until=None, reached_limit=reached)

    def take_escalating_attempt(self, key: str, limit: int, now: datetime, window: timedelta, first_lock: timedelta,
                                max_lock: timedelta) -> LoginAttempt:
        """Like take_login_attempt for one key whose lock doubles with each attempt past the limit (capped)."""
        now_ts = _ts(now)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT failures, first_at, locked_until FROM login_failures WHERE key = ?",
                                   (key,)).fetchone()
            if row and row[2] is not None and row[2] > now_ts:
                self._db.execute("COMMIT")
                return LoginAttempt(allowed=False, locked_until=_dt(row[2]), reached_limit=True)
            count, first = (0, now_ts) if row is None or now_ts - row[1] > window.total_seconds() else row[:2]
            count += 1
            locked = None
            if count >= limit:
                seconds = min(first_lock.total_seconds() * 2 ** min(count - limit, 32), max_lock.total_seconds())
                locked = now_ts + int(seconds)
            self._db.execute("INSERT OR REPLACE INTO login_failures (key, failures, first_at, locked_until)"
                             " VALUES (?,?,?,?)", (key, count, first, locked))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return LoginAttempt(allowed=True, locked_until=None if locked is None else _dt(locked),
                            reached_limit=locked is not None)

    def clear_login_attempts(self, key: str) -> None:
        self._db.execute("DELETE FROM login_failures WHERE key = ?", (key,))

    def uncount_login_attempt(self, key: str, limit: int) -> None:
        """Take back one counted attempt (it succeeded), unlocking the key if it falls below its limit."""
        self._db.execute("UPDATE login_failures SET failures = failures - 1,"
                         " locked_until = CASE WHEN failures - 1 < ? THEN NULL ELSE locked_until END"
                         " WHERE key = ? AND failures > 0", (limit, key))

    def prune_login_failures(self, before: datetime) -> None:
        """Forget failure counts whose window and lock are both over."""
        self._db.execute("DELETE FROM login_failures WHERE first_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                         (_ts(before), _ts(before)))

    # --- browser sessions ---------------------------------------------------
    def add_web_session(self, id_hash: str, user: str, now: datetime, expires_at: datetime) -> None:
        self._db.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (_ts(now),))
        self._db.execute("INSERT INTO web_sessions (id_hash, user, created_at, expires_at) VALUES (?,?,?,?)",
                         (id_hash, user, _ts(now), _ts(expires_at)))

    def web_session_user(self, id_hash: str, now: datetime) -> str | None:
        """The user of a live session, or None when it ended, expired or never existed."""
        row = self._db.execute("SELECT user FROM web_sessions WHERE id_hash = ? AND expires_at > ?",
                               (id_hash, _ts(now))).fetchone()
        return row[0] if row else None

    def end_web_session(self, id_hash: str) -> None:
        self._db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,))

    def end_web_sessions_of(self, user: str) -> int:
        return self._db.execute("DELETE FROM web_sessions WHERE user = ?", (user,)).rowcount

    # --- the panel's session secret ----------------------------------------
    def session_secret(self) -> bytes:
        """32 random bytes, made once; two processes starting together still agree on one."""
        path = self.layout.session_secret
        if not path.exists():
            try:
                staged = stage_file(path, os.urandom(32), 0o600)
            except OSError as exc:  # a full or read-only disk: the panel still starts; its sessions end with it
                said = from_os_error(exc, self.root)
                if said is None:
                    raise
                log.warning("the session secret is kept in memory only: %s", said.message)
                return os.urandom(32)
            try:
                os.link(staged, path)  # fails if another process made it first
            except FileExistsError:
                pass
            finally:
                staged.unlink()
        return path.read_bytes()

    # --- maintenance ----------------------------------------------------------
    def add_run(self, started_at: datetime, finished_at: datetime, trigger: str, dry_run: bool, ok: bool,
                report: dict) -> int:
        cursor = self._db.execute(
            "INSERT INTO maintenance_runs (started_at, finished_at, trigger, dry_run, ok, report) VALUES (?,?,?,?,?,?)",
            (_ts(started_at), _ts(finished_at), trigger, int(dry_run), int(ok), json.dumps(report)),
        )
        return cursor.lastrowid

    def runs(self, limit: int = 20) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT id, started_at, finished_at, trigger, dry_run, ok, report FROM maintenance_runs"
            " ORDER BY id DESC LIMIT ?", (limit,))
        return [RunRecord(r[0], _dt(r[1]), _dt(r[2]), r[3], bool(r[4]), bool(r[5]), json.loads(r[6])) for r in rows]

    def notification_sent(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM notifications WHERE key = ?", (key,)).fetchone() is not None

    def record_notification(self, key: str, subject: str, now: datetime) -> None:
        self._db.execute("INSERT OR REPLACE INTO notifications (key, sent_at, subject) VALUES (?,?,?)",
                         (key, _ts(now), subject))

    def record_acme_certificate(self, fingerprint: str, directory: str, now: datetime,
                                profile: str | None = None) -> None:
        self._db.execute("INSERT OR IGNORE INTO acme_certificates (fingerprint, directory, ordered_at, profile)"
                         " VALUES (?,?,?,?)", (fingerprint, directory, _ts(now), profile or None))

    def acme_certificate(self, fingerprint: str) -> tuple[str, str | None] | None:
        """(directory URL, ACME profile or None) of a certificate we ordered; None for any other certificate."""
        row = self._db.execute("SELECT directory, profile FROM acme_certificates WHERE fingerprint = ?",
                               (fingerprint,)).fetchone()
        return (row[0], row[1]) if row else None

    def renewal_moment(self, fingerprint: str, window: tuple[datetime, datetime]) -> datetime | None:
        """The moment chosen earlier inside this ARI window for this certificate (None if none, or the window moved)."""
        row = self._db.execute("SELECT moment FROM acme_renewal_moments WHERE fingerprint = ? AND window_start = ?"
                               " AND window_end = ?", (fingerprint, _ts(window[0]), _ts(window[1]))).fetchone()
        return _dt(row[0]) if row else None

    def set_renewal_moment(self, fingerprint: str, window: tuple[datetime, datetime], moment: datetime) -> None:
        self._db.execute("INSERT OR REPLACE INTO acme_renewal_moments (fingerprint, window_start, window_end, moment)"
                         " VALUES (?,?,?,?)", (fingerprint, _ts(window[0]), _ts(window[1]), _ts(moment)))

    def ca_wait(self, directory: str) -> tuple[datetime, str] | None:
        """Until when a CA asked us to wait (its Retry-After after a refusal), and why; None when it did not."""
        row = self._db.execute("SELECT not_before, reason FROM acme_ca_waits WHERE directory = ?",
                               (directory,)).fetchone()
        return (_dt(row[0]), row[1]) if row else None

    def set_ca_wait(self, directory: str, not_before: datetime | None, reason: str = "") -> None:
        if not_before is None:
            self._db.execute("DELETE FROM acme_ca_waits WHERE directory = ?", (directory,))
            return
        self._db.execute("INSERT OR REPLACE INTO acme_ca_waits (directory, not_before, reason) VALUES (?,?,?)",
                         (directory, _ts(not_before), reason))

    def is_acme_certificate(self, fingerprint: str) -> bool:
        return self._db.execute("SELECT 1 FROM acme_certificates WHERE fingerprint = ?",
                                (fingerprint,)).fetchone() is not None

    def order_backoff(self, names: str) -> OrderBackoff | None:
        row = self._db.execute("SELECT names, failures, first_failed_at, next_attempt_at, problem FROM order_backoff"
                               " WHERE names = ?", (names,)).fetchone()
        return OrderBackoff(row[0], row[1], _dt(row[2]), _dt(row[3]), json.loads(row[4])) if row else None

    def set_order_backoff(self, backoff: OrderBackoff | None, names: str) -> None:
        if backoff is None:
            self._db.execute("DELETE FROM order_backoff WHERE names = ?", (names,))
            return
        self._db.execute(
            "INSERT OR REPLACE INTO order_backoff (names, failures, first_failed_at, next_attempt_at, problem)"
            " VALUES (?,?,?,?,?)",
            (backoff.names, backoff.failures, _ts(backoff.first_failed_at), _ts(backoff.next_attempt_at),
             json.dumps(backoff.problem)),
        )

    # --- what /metrics reads: the last probes, and counts from the audit log ----
    def record_probes(self, probes: list[ProbeRecord]) -> None:
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO probe_results (service, probed_at, state, installed_fingerprint,"
                " served_fingerprint) VALUES (?,?,?,?,?)",
                [(p.service, _ts(p.probed_at), p.state, p.installed_fingerprint, p.served_fingerprint) for p in probes])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record the probes in {self.layout.database}: {exc}") from None

    def last_probes(self) -> dict[str, ProbeRecord]:
        rows = self._db.execute("SELECT service, probed_at, state, installed_fingerprint, served_fingerprint"
                                " FROM probe_results")
        return {r[0]: ProbeRecord(r[0], _dt(r[1]), r[2], r[3], r[4]) for r in rows}

    def deploy_counts(self) -> dict[tuple[str, str], int]:
        """(service, outcome) → how many deploys the audit log holds (outcome: ok | failed | rolled back)."""
        rows = self._db.execute("SELECT service, outcome, COUNT(*) FROM audit WHERE new_fingerprint IS NOT NULL"
                                " GROUP BY service, outcome")
        return {(r[0], r[1]): r[2] for r in rows}

    def action_counts(self, action: str) -> dict[str, int]:
        """outcome → how many audit entries of ``action`` there are."""
        rows = self._db.execute("SELECT outcome, COUNT(*) FROM audit WHERE action = ? GROUP BY outcome", (action,))
        return {r[0]: r[1] for r in rows}

    def last_run_times(self) -> tuple[RunRecord | None, datetime | None]:
        """The newest maintenance run that was not a dry run (report left empty), and when the newest one that
        ended well finished."""
        row = self._db.execute("SELECT id, started_at, finished_at, trigger, dry_run, ok FROM maintenance_runs"
                               " WHERE dry_run = 0 ORDER BY id DESC LIMIT 1").fetchone()
        last = RunRecord(row[0], _dt(row[1]), _dt(row[2]), row[3], bool(row[4]), bool(row[5]), {}) if row else None
        ok = self._db.execute("SELECT finished_at FROM maintenance_runs WHERE dry_run = 0 AND ok = 1"
                              " ORDER BY id DESC LIMIT 1").fetchone()
        return last, _dt(ok[0]) if ok else None

    # --- API tokens and one-time login sessions ------------------------------
    _TOKEN_SQL = ("SELECT name, user, token_hash, created_at, expires_at, revoked_at, last_used_at, kind"
                  " FROM api_tokens")

    def _token(self, row) -> TokenRecord:
        return TokenRecord(row[0], row[1], row[2], _dt(row[3]), _dt(row[4]), _dt(row[5]), _dt(row[6]), row[7])

    def add_token(self, name: str, user: str, token_hash: str, now: datetime, expires_at: datetime | None,
                  kind: str = "api") -> None:
        try:
            self._db.execute("INSERT INTO api_tokens (name, user, token_hash, created_at, expires_at, kind)"
                             " VALUES (?,?,?,?,?,?)",
                             (name, user, token_hash, _ts(now), _ts(expires_at) if expires_at else None, kind))
        except sqlite3.IntegrityError:
            raise StoreError(f"an API token named '{name}' exists already") from None

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self._db.execute(self._TOKEN_SQL + " WHERE token_hash = ?", (token_hash,)).fetchone()
        return self._token(row) if row else None

    def token_by_name(self, name: str) -> TokenRecord | None:
        row = self._db.execute(self._TOKEN_SQL + " WHERE name = ?", (name,)).fetchone()
        return self._token(row) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        return [self._token(r) for r in self._db.execute(self._TOKEN_SQL + " ORDER BY created_at DESC, name")]

    def revoke_token(self, name: str, now: datetime) -> None:
        self._db.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_ts(now), name))

    def touch_token(self, name: str, now: datetime) -> None:
        """Note when a token was last used; on a full or read-only disk the call still goes on (not noted)."""
        try:
            self._db.execute("UPDATE api_tokens SET last_used_at = ? WHERE name = ?", (_ts(now), name))
        except FileSystemError as exc:
            log.warning("token %s: last use not recorded: %s", name, exc.message)

    def add_login_session(self, session_hash: str, user: str, cpsess: str, expires_at: datetime) -> None:
        self._db.execute("INSERT INTO login_sessions (session_hash, user, cpsess, expires_at) VALUES (?,?,?,?)",
                         (session_hash, user, cpsess, _ts(expires_at)))

    def find_login_session(self, session_hash: str, now: datetime) -> tuple[str, str] | None:
        """(user, cpsess) of an unused, unexpired one-time session, leaving it unused; else None."""
        row = self._db.execute("SELECT user, cpsess, expires_at, used_at FROM login_sessions WHERE session_hash = ?",
                               (session_hash,)).fetchone()
        if row is None or row[3] is not None or row[2] <= _ts(now):
            return None
        return row[0], row[1]

    def use_login_session(self, session_hash: str, now: datetime) -> tuple[str, str] | None:
        """(user, cpsess) of an unused, unexpired one-time session, marking it used; else None."""
        row = self._db.execute("SELECT user, cpsess, expires_at, used_at FROM login_sessions WHERE session_hash = ?",
                               (session_hash,)).fetchone()
        if row is None or row[3] is not None or row[2] <= _ts(now):
            return None
        updated = self._db.execute("UPDATE login_sessions SET used_at = ? WHERE session_hash = ? AND used_at IS NULL",
                                   (_ts(now), session_hash))
        return (row[0], row[1]) if updated.rowcount == 1 else None

    # --- hosting accounts owned by resellers ------------------------------------------------
    def assign_account(self, account: str, reseller: str, now: datetime) -> str | None:
        """Make ``reseller`` the owner of ``account``; return the previous owner, if another."""
        row = self._db.execute("SELECT reseller FROM account_owners WHERE account = ?", (account,)).fetchone()
        self._db.execute("INSERT OR REPLACE INTO account_owners (account, reseller, assigned_at) VALUES (?,?,?)",
                         (account, reseller, _ts(now)))
        return row[0] if row and row[0] != reseller else None

    def unassign_account(self, account: str) -> str | None:
        """Take ``account`` from its owner; return who owned it."""
        row = self._db.execute("SELECT reseller FROM account_owners WHERE account = ?", (account,)).fetchone()
        self._db.execute("DELETE FROM account_owners WHERE account = ?", (account,))
        return row[0] if row else None

    def account_owner(self, account: str) -> str | None:
        row = self._db.execute("SELECT reseller FROM account_owners WHERE account = ?", (account,)).fetchone()
        return row[0] if row else None

    def accounts_of(self, reseller: str) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT account FROM account_owners WHERE reseller = ? ORDER BY account",
                                               (reseller,))]

    def account_owners(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT account, reseller FROM account_owners ORDER BY account"))
