"""Every path under the state directory, named in one place (as certmagic's key builder names its keys).

Layout (directories 0700, files 0600)::

    svcssl.db                                   SQLite database, versioned (store.schema)
    session_secret                              the panel's session secret
    bundles/<fingerprint>/cert.pem chain.pem key.pem
    journal/<service>/                          deploy journal (deploy.deployer)
    locks/<name>.lock                           flock
    acme/<sha256 of the directory URL>/         account-key.pem account.json, while an order is
                                                unfinished pending-key.pem pending.json
    keys/<spki-sha256>.key .csr                 svcssl's key store (keys made with a CSR)
    crl-cache/                                  CRLs fetched for revocation checks
    snapshots/svcssl-<UTC time>-<why>.db        consistent copies of svcssl.db (store.snapshots), 0600
    svcssl.db.damaged-<UTC time>                a damaged database moved aside by `svcssl state restore`
    incidents.json                              disk incidents already mailed (rewritten in place: needs no space)
    disable_auto_hostname_certificate           touch file: never order or install a hostname certificate
    disable_service_certificate_management      touch file: no automatic replacement, no expiry mail
    live/<service>/                             the embedded services' default files (settings)

Names only: nothing here touches the disk. The names are those of every earlier release, so an
existing state directory keeps working.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

DATABASE = "svcssl.db"
SESSION_SECRET = "session_secret"
BUNDLES = "bundles"
BUNDLE_CERT, BUNDLE_CHAIN, BUNDLE_KEY = "cert.pem", "chain.pem", "key.pem"
JOURNAL = "journal"
LOCKS = "locks"
ACME = "acme"
ACME_ACCOUNT_KEY = "account-key.pem"
ACME_ACCOUNT = "account.json"
ACME_PENDING_KEY = "pending-key.pem"
ACME_PENDING = "pending.json"
KEY_STORE = "keys"
CRL_CACHE = "crl-cache"
NO_HOSTNAME_CERTIFICATE = "disable_auto_hostname_certificate"
NO_MANAGEMENT = "disable_service_certificate_management"
TOUCH_FILES = (NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT)
SNAPSHOTS = "snapshots"
INCIDENTS = "incidents.json"


class StateLayout:
    """The paths of one state directory."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"StateLayout({str(self.root)!r})"

    # --- the store ----------------------------------------------------------------------------
    @property
    def database(self) -> Path:
        return self.root / DATABASE

    @property
    def session_secret(self) -> Path:
        return self.root / SESSION_SECRET

    @property
    def bundles(self) -> Path:
        return self.root / BUNDLES

    def bundle_dir(self, fingerprint: str) -> Path:
        return self.bundles / fingerprint

    def bundle_cert(self, fingerprint: str) -> Path:
        return self.bundle_dir(fingerprint) / BUNDLE_CERT

    def bundle_chain(self, fingerprint: str) -> Path:
        return self.bundle_dir(fingerprint) / BUNDLE_CHAIN

    def bundle_key(self, fingerprint: str) -> Path:
        return self.bundle_dir(fingerprint) / BUNDLE_KEY

    @property
    def journals(self) -> Path:
        return self.root / JOURNAL

    def journal(self, service: str) -> Path:
        """The deploy journal folder of one service."""
        return self.journals / service

    @property
    def locks(self) -> Path:
        return self.root / LOCKS

    def lock(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    # --- ACME -----------------------------------------------------------------------------------
    def acme_account_dir(self, directory_url: str) -> Path:
        """The folder of one directory URL: ``acme/`` + lower-case hex SHA-256 of the URL."""
        return self.root / ACME / hashlib.sha256(directory_url.encode("utf-8")).hexdigest()

    def acme_lock(self, directory_url: str) -> Path:
        """One order at a time per directory URL: ``locks/acme-<first 16 hex digits of the hash>.lock``."""
        return self.lock("acme-" + self.acme_account_dir(directory_url).name[:16])

    # --- the rest ---------------------------------------------------------------------------------
    @property
    def key_store(self) -> Path:
        """svcssl's own key store: keys generated with a CSR."""
        return self.root / KEY_STORE

    def key_store_key(self, spki_sha256: str) -> Path:
        return self.key_store / f"{spki_sha256}.key"

    def key_store_csr(self, spki_sha256: str) -> Path:
        return self.key_store / f"{spki_sha256}.csr"

    @property
    def crl_cache(self) -> Path:
        return self.root / CRL_CACHE

    def touch_file(self, name: str) -> Path:
        """One of ``TOUCH_FILES``."""
        if name not in TOUCH_FILES:
            raise ValueError(f"not a touch file: {name!r}")
        return self.root / name

    # --- keeping the database safe ------------------------------------------------------------------
    @property
    def snapshots(self) -> Path:
        """Consistent copies of the database (taken after successful maintenance runs and before upgrades)."""
        return self.root / SNAPSHOTS

    def snapshot(self, name: str) -> Path:
        return self.snapshots / name

    def damaged_database(self, stamp: str) -> Path:
        """Where a damaged database is moved aside (never deleted): ``svcssl.db.damaged-<stamp>``."""
        return self.root / f"{DATABASE}.damaged-{stamp}"

    @property
    def incidents(self) -> Path:
        """The disk incidents the administrator was already mailed about."""
        return self.root / INCIDENTS
