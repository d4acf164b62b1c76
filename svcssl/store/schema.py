"""The SQLite schema, versioned with PRAGMA user_version. Later issues append migrations."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: certificates, per-service history (the active one is the newest not rolled back), audit log
    """
    CREATE TABLE certificates (
        fingerprint TEXT PRIMARY KEY,
        spki_sha256 TEXT NOT NULL,
        subject_cn TEXT,
        domains TEXT NOT NULL,
        issuer TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        key_label TEXT NOT NULL,
        is_self_signed INTEGER NOT NULL,
        added_at INTEGER NOT NULL
    );
    CREATE INDEX certificates_spki ON certificates(spki_sha256);
    CREATE TABLE service_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        service TEXT NOT NULL,
        fingerprint TEXT NOT NULL REFERENCES certificates(fingerprint),
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        installed_at INTEGER NOT NULL,
        rolled_back_at INTEGER
    );
    CREATE INDEX service_history_service ON service_history(service, id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        service TEXT,
        old_fingerprint TEXT,
        new_fingerprint TEXT,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: panel users (root and resellers) with the service-SSL privilege; failed-login throttling
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('root', 'reseller')),
        password_hash TEXT NOT NULL,
        service_ssl INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        password_changed_at INTEGER NOT NULL
    );
    CREATE TABLE login_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        first_at INTEGER NOT NULL,
        locked_until INTEGER
    );
    """,
    # 3: the maintenance run: its reports, notifications sent, hostname certificates ordered, order back-off
    """
    CREATE TABLE maintenance_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        report TEXT NOT NULL
    );
    CREATE TABLE notifications (
        key TEXT PRIMARY KEY,
        sent_at INTEGER NOT NULL,
        subject TEXT NOT NULL
    );
    CREATE TABLE acme_certificates (
        fingerprint TEXT PRIMARY KEY,
        directory TEXT NOT NULL,
        ordered_at INTEGER NOT NULL
    );
    CREATE TABLE order_backoff (
        names TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        first_failed_at INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        problem TEXT NOT NULL
    );
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest version; return that version.

    The version is read and the migrations applied inside one IMMEDIATE transaction, so two
    processes (or threads) opening a new state directory at once never apply one twice.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the state database is version {version}, newer than this svcssl ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)
