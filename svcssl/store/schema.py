"""The SQLite schema, versioned with PRAGMA user_version. Later issues append migrations."""

from __future__ import annotations

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
    # 4: API tokens (stored hashed) and one-time login sessions made by create_user_session
    """
    CREATE TABLE api_tokens (
        name TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name),
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER
    );
    CREATE TABLE login_sessions (
        session_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name),
        cpsess TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    );
    """,
    # 5: discovery: hosting accounts owned by resellers, and the index of certificate and key files
    # (accounts' SSL storage, Apache virtual hosts, CA directories, the services' files) with the SSL
    # virtual hosts found in Apache's configuration. Paths are BLOBs: file names need not be UTF-8.
    # No key material is stored: only the SHA-256 of a key's SubjectPublicKeyInfo.
    """
    CREATE TABLE account_owners (
        account TEXT PRIMARY KEY,
        reseller TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        assigned_at INTEGER NOT NULL
    );
    CREATE INDEX account_owners_reseller ON account_owners(reseller, account);
    CREATE TABLE discovery_files (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        store TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        name BLOB NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        problem TEXT
    );
    CREATE INDEX discovery_files_owner ON discovery_files(store, owner);
    CREATE TABLE discovery_certificates (
        file_id INTEGER NOT NULL REFERENCES discovery_files(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        spki_sha256 TEXT NOT NULL,
        subject BLOB NOT NULL,
        issuer BLOB NOT NULL,
        subject_key_id TEXT,
        authority_key_id TEXT,
        subject_cn TEXT,
        domains TEXT NOT NULL,
        issuer_cn TEXT,
        issuer_org TEXT,
        issuer_label TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        is_self_signed INTEGER NOT NULL,
        is_ca INTEGER NOT NULL,
        key_algorithm TEXT NOT NULL,
        key_size INTEGER NOT NULL,
        key_label TEXT NOT NULL,
        ecdsa_curve_name TEXT,
        signature_algorithm TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX discovery_certificates_spki ON discovery_certificates(spki_sha256);
    CREATE INDEX discovery_certificates_subject ON discovery_certificates(subject, fingerprint);
    CREATE INDEX discovery_certificates_fingerprint ON discovery_certificates(fingerprint);
    CREATE TABLE discovery_domains (
        domain TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES discovery_files(id) ON DELETE CASCADE,
        position INTEGER NOT NULL
    );
    CREATE INDEX discovery_domains_domain ON discovery_domains(domain);
    CREATE INDEX discovery_domains_file ON discovery_domains(file_id);
    CREATE TABLE discovery_keys (
        file_id INTEGER NOT NULL REFERENCES discovery_files(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        spki_sha256 TEXT NOT NULL,
        key_label TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX discovery_keys_spki ON discovery_keys(spki_sha256);
    CREATE TABLE discovery_accounts (
        name TEXT PRIMARY KEY,
        has_storage INTEGER NOT NULL,
        problem TEXT
    );
    CREATE TABLE discovery_vhosts (
        id INTEGER PRIMARY KEY,
        servername TEXT,
        aliases TEXT NOT NULL,
        addresses TEXT NOT NULL,
        ip TEXT NOT NULL,
        port INTEGER,
        docroot TEXT,
        user TEXT,
        cert_files TEXT NOT NULL,
        key_files TEXT NOT NULL,
        chain_file BLOB,
        config_file BLOB NOT NULL,
        line INTEGER NOT NULL
    );
    CREATE TABLE discovery_problems (
        store TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        path BLOB,
        line INTEGER,
        message TEXT NOT NULL
    );
    CREATE INDEX discovery_problems_owner ON discovery_problems(store, owner);
    CREATE TABLE discovery_inputs (
        path BLOB PRIMARY KEY,
        stamp TEXT NOT NULL
    );
    CREATE TABLE discovery_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 6: the panel's browser sessions, kept on the server so that logout, a password change and deleting
    # the user end them (the cookie holds only a random id; its SHA-256 is stored)
    """
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX web_sessions_user ON web_sessions(user);
    """,
    # (issue 21) metrics-only API tokens; the last probe of each service's port, kept for /metrics; an index
    # for the deploy and order counts /metrics reads from the audit log
    """
    ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
    CREATE TABLE probe_results (
        service TEXT PRIMARY KEY,
        probed_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        installed_fingerprint TEXT,
        served_fingerprint TEXT
    );
    CREATE INDEX audit_deploys ON audit(service, outcome) WHERE new_fingerprint IS NOT NULL;
    CREATE INDEX audit_actions ON audit(action, outcome);
    """,
    # issue 20: the ACME profile of each certificate we ordered, the random moment chosen once inside each
    # certificate's ARI renewal window (RFC 9773 §4.2), and a CA's Retry-After after it refused an order
    """
    ALTER TABLE acme_certificates ADD COLUMN profile TEXT;
    CREATE TABLE acme_renewal_moments (
        fingerprint TEXT PRIMARY KEY,
        window_start INTEGER NOT NULL,
        window_end INTEGER NOT NULL,
        moment INTEGER NOT NULL
    );
    CREATE TABLE acme_ca_waits (
        directory TEXT PRIMARY KEY,
        not_before INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    """,
)


def schema_version(conn) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn) -> int:
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
