"""The discovery index's tables (made by migration 5) and all the SQL that reads and writes them.

One row per file (path, size, mtime, ctime, inode — its *stamp* — and the problem, if it could not
be used), one per certificate in it (fingerprint, SPKI SHA-256, subject and issuer, SKI/AKI,
domains, expiry, …) and one per private key in it (the SHA-256 of its SubjectPublicKeyInfo only:
no key material is ever stored). Autofill finds a key by its public half with one indexed query;
the CA bundle builder finds an issuer by subject name.

What goes in (which files, read and parsed when their stamp changed) is decided by
``svcssl.discovery.index``; this module only keeps the rows. The store opens one ``DiscoveryIndex``
on its connection (``Store.discovery``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Iterator, NamedTuple, Protocol

from ..x509.parse import ParsedFile


class FileStamp(Protocol):
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


class FileVersion(Protocol):
    """A file to index (``svcssl.discovery.index.Candidate`` is one)."""

    path: bytes
    store: str
    owner: str
    stamp: FileStamp | None


class FileChange(NamedTuple):
    """One new or changed file for ``DiscoveryIndex.write_files`` (a plain tuple in this order will do)."""

    replaces: int | None  # the id of the file's old rows, if it was indexed
    file: FileVersion
    parsed: ParsedFile | None  # None: not read (the problem says why)
    problem: str | None


@dataclass(frozen=True)
class IndexedStamp:
    """What the index holds about a file, enough to tell whether it changed."""

    id: int
    store: str
    owner: str
    stamp: tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
    has_problem: bool


@dataclass(frozen=True)
class IndexedFile:
    id: int
    path: bytes
    store: str
    owner: str
    problem: str | None

    @property
    def name(self) -> bytes:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class IndexedCertificate:
    file: IndexedFile
    position: int  # 0 = the first certificate in the file (the leaf of a full chain)
    fingerprint: str
    spki_sha256: str
    subject_cn: str | None
    domains: tuple[str, ...]
    issuer_cn: str | None
    issuer_org: str | None
    issuer_label: str
    not_before: datetime
    not_after: datetime
    is_self_signed: bool
    is_ca: bool
    key_algorithm: str
    key_size: int
    key_label: str
    ecdsa_curve_name: str | None
    signature_algorithm: str
    subject_key_id: str | None
    authority_key_id: str | None


@dataclass(frozen=True)
class IndexedKey:
    file: IndexedFile
    position: int
    spki_sha256: str
    key_label: str


@dataclass(frozen=True)
class IndexedProblem:
    store: str
    owner: str
    path: bytes | None
    line: int | None
    message: str


@dataclass(frozen=True)
class AccountRow:
    name: str
    has_storage: bool
    problem: str | None


@dataclass(frozen=True)
class VhostRow:
    servername: str | None
    aliases: tuple[str, ...]
    addresses: tuple[str, ...]
    ip: str
    port: int | None
    docroot: str | None
    user: str | None
    cert_files: tuple[bytes, ...]
    key_files: tuple[bytes, ...]
    chain_file: bytes | None
    config_file: bytes
    line: int
    domains: tuple[str, ...] = field(default=())


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


_CERT_COLUMNS = (
    "f.id, f.path, f.store, f.owner, f.problem, c.position, c.fingerprint, c.spki_sha256, c.subject_cn, c.domains,"
    " c.issuer_cn, c.issuer_org, c.issuer_label, c.not_before, c.not_after, c.is_self_signed, c.is_ca,"
    " c.key_algorithm, c.key_size, c.key_label, c.ecdsa_curve_name, c.signature_algorithm, c.subject_key_id,"
    " c.authority_key_id"
)
_CERT_FROM = " FROM discovery_certificates c JOIN discovery_files f ON f.id = c.file_id"
_KEY_SQL = ("SELECT f.id, f.path, f.store, f.owner, f.problem, k.position, k.spki_sha256, k.key_label"
            " FROM discovery_keys k JOIN discovery_files f ON f.id = k.file_id")


def _file(row) -> IndexedFile:
    return IndexedFile(row[0], bytes(row[1]), row[2], row[3], row[4])


def _certificate(row) -> IndexedCertificate:
    return IndexedCertificate(
        file=_file(row), position=row[5], fingerprint=row[6], spki_sha256=row[7], subject_cn=row[8],
        domains=tuple(json.loads(row[9])), issuer_cn=row[10], issuer_org=row[11], issuer_label=row[12],
        not_before=_dt(row[13]), not_after=_dt(row[14]), is_self_signed=bool(row[15]), is_ca=bool(row[16]),
        key_algorithm=row[17], key_size=row[18], key_label=row[19], ecdsa_curve_name=row[20],
        signature_algorithm=row[21], subject_key_id=row[22], authority_key_id=row[23],
    )


def _key(row) -> IndexedKey:
    return IndexedKey(_file(row), row[5], row[6], row[7])


class DiscoveryIndex:
    """The discovery tables on one SQLite connection (autocommit mode, as the store opens it)."""

    def __init__(self, conn: sqlite3.Connection):
        self._db = conn

    # --- writing ------------------------------------------------------------------------------

    def file_stamps(self, stores: Iterable[str]) -> dict[bytes, IndexedStamp]:
        """The stamp of every file indexed for ``stores``, by path: what a refresh compares with."""
        stores = tuple(stores)
        if not stores:
            return {}
        marks = ",".join("?" * len(stores))
        return {bytes(row[1]): IndexedStamp(row[0], row[2], row[3], (row[4], row[5], row[6], row[7]), row[8] is not None)
                for row in self._db.execute(
                    "SELECT id, path, store, owner, size, mtime_ns, ctime_ns, inode, problem FROM discovery_files"
                    f" WHERE store IN ({marks})", stores)}

    def write_files(self, changes: Iterable[FileChange], removed: Iterable[int] = ()) -> None:
        """In one transaction: each change replaces its file's rows (if any), then the removed files go."""
        changes, removed = list(changes), list(removed)
        if not changes and not removed:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for replaces, file, parsed, problem in changes:
                if replaces is not None:
                    self._delete_file(replaces)
                self._insert(file, parsed, problem)
            for file_id in removed:
                self._delete_file(file_id)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _delete_file(self, file_id: int) -> None:
        for table in ("discovery_certificates", "discovery_keys", "discovery_domains"):
            self._db.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))
        self._db.execute("DELETE FROM discovery_files WHERE id = ?", (file_id,))

    def _insert(self, candidate: FileVersion, parsed: ParsedFile | None, problem: str | None) -> None:
        stamp = candidate.stamp
        size, mtime_ns, ctime_ns, inode = (-1, -1, -1, -1) if stamp is None else (
            stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode)
        cursor = self._db.execute(
            "INSERT INTO discovery_files (path, store, owner, name, size, mtime_ns, ctime_ns, inode, problem)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (candidate.path, candidate.store, candidate.owner, os.path.basename(candidate.path), size, mtime_ns, ctime_ns,
             inode, problem),
        )
        file_id = cursor.lastrowid
        if parsed is None:
            return
        for position, (info, subject, issuer) in enumerate(parsed.certificates):
            self._db.execute(
                "INSERT INTO discovery_certificates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (file_id, position, info.fingerprint, info.spki_sha256, subject, issuer, info.subject_key_id,
                 info.authority_key_id, info.subject_cn, json.dumps(list(info.domains)),
                 info.issuer_value("commonName"), info.issuer_value("organizationName"), info.issuer_label,
                 _ts(info.not_before), _ts(info.not_after), int(info.is_self_signed), int(info.is_ca),
                 info.key_algorithm, info.key_size, info.key_label, info.ecdsa_curve_name,
                 info.signature_algorithm),
            )
            self._db.executemany("INSERT INTO discovery_domains (domain, file_id, position) VALUES (?,?,?)",
                                 [(domain, file_id, position) for domain in info.domains])
        self._db.executemany("INSERT INTO discovery_keys VALUES (?,?,?,?)",
                             [(file_id, position, spki, label) for position, (spki, label) in enumerate(parsed.keys)])

    def replace_accounts(self, accounts: Iterable[AccountRow]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM discovery_accounts")
            self._db.executemany("INSERT OR REPLACE INTO discovery_accounts (name, has_storage, problem) VALUES (?,?,?)",
                                 [(a.name, int(a.has_storage), a.problem) for a in accounts])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def replace_problems(self, store: str, problems: Iterable[IndexedProblem]) -> None:
        """Problems found outside single files (an account's storage, Apache's configuration)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM discovery_problems WHERE store = ?", (store,))
            self._db.executemany("INSERT INTO discovery_problems (store, owner, path, line, message) VALUES (?,?,?,?,?)",
                                 [(store, p.owner, p.path, p.line, p.message) for p in problems])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def replace_vhosts(self, vhosts: Iterable[VhostRow], inputs: dict[bytes, str]) -> None:
        """The SSL virtual hosts of Apache's configuration, with the stamps of what was read to find them."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM discovery_vhosts")
            self._db.executemany(
                "INSERT INTO discovery_vhosts (servername, aliases, addresses, ip, port, docroot, user, cert_files,"
                " key_files, chain_file, config_file, line) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(v.servername, json.dumps(list(v.aliases)), json.dumps(list(v.addresses)), v.ip, v.port, v.docroot,
                  v.user, json.dumps([os.fsdecode(p) for p in v.cert_files]),
                  json.dumps([os.fsdecode(p) for p in v.key_files]), v.chain_file, v.config_file, v.line)
                 for v in vhosts])
            self._db.execute("DELETE FROM discovery_inputs")
            self._db.executemany("INSERT INTO discovery_inputs (path, stamp) VALUES (?,?)", list(inputs.items()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def set_state(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO discovery_state (key, value) VALUES (?,?)", (key, value))

    # --- reading ------------------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM discovery_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def last_refresh(self) -> dict | None:
        value = self.state("last_refresh")
        return json.loads(value) if value else None

    def inputs(self) -> dict[bytes, str]:
        return {bytes(r[0]): r[1] for r in self._db.execute("SELECT path, stamp FROM discovery_inputs")}

    def accounts(self, prefix: str = "", limit: int | None = None) -> list[AccountRow]:
        sql = "SELECT name, has_storage, problem FROM discovery_accounts WHERE name >= ? AND name < ? ORDER BY name"
        params: tuple = (prefix, prefix + "\U0010ffff")
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [AccountRow(r[0], bool(r[1]), r[2]) for r in self._db.execute(sql, params)]

    def account(self, name: str) -> AccountRow | None:
        row = self._db.execute("SELECT name, has_storage, problem FROM discovery_accounts WHERE name = ?",
                               (name,)).fetchone()
        return AccountRow(row[0], bool(row[1]), row[2]) if row else None

    def count_accounts(self, prefix: str = "") -> int:
        return self._db.execute("SELECT count(*) FROM discovery_accounts WHERE name >= ? AND name < ?",
                                (prefix, prefix + "\U0010ffff")).fetchone()[0]

    def certificates(self, store: str, owner: str | None = None, *, leaves_only: bool = True) -> list[IndexedCertificate]:
        sql = "SELECT " + _CERT_COLUMNS + _CERT_FROM + " WHERE f.store = ?"
        params: tuple = (store,)
        if owner is not None:
            sql += " AND f.owner = ?"
            params += (owner,)
        if leaves_only:
            sql += " AND c.position = 0"
        return [_certificate(r) for r in self._db.execute(sql + " ORDER BY f.owner, f.path, c.position", params)]

    def certificates_in_file(self, path: bytes) -> list[IndexedCertificate]:
        return [_certificate(r) for r in self._db.execute(
            "SELECT " + _CERT_COLUMNS + _CERT_FROM + " WHERE f.path = ? ORDER BY c.position", (path,))]

    def certificates_by_fingerprint(self, fingerprint: str) -> list[IndexedCertificate]:
        return [_certificate(r) for r in self._db.execute(
            "SELECT " + _CERT_COLUMNS + _CERT_FROM + " WHERE c.fingerprint = ? ORDER BY f.path, c.position",
            (fingerprint,))]

    def certificates_by_subject(self, subject: bytes, per_certificate: int = 3) -> list[IndexedCertificate]:
        """Each distinct certificate with this subject, in up to ``per_certificate`` files.

        An intermediate may sit in every account's full-chain file (tens of thousands of rows): the
        distinct fingerprints are walked on the (subject, fingerprint) index one step each, so the
        cost grows with the number of distinct CA certificates, not of copies.
        """
        result: list[IndexedCertificate] = []
        last = ""
        while True:
            row = self._db.execute(
                "SELECT fingerprint FROM discovery_certificates WHERE subject = ? AND fingerprint > ?"
                " ORDER BY fingerprint LIMIT 1", (subject, last)).fetchone()
            if row is None or len(result) > 64 * per_certificate:
                return result
            last = row[0]
            result.extend(_certificate(r) for r in self._db.execute(
                "SELECT " + _CERT_COLUMNS + _CERT_FROM + " WHERE c.subject = ? AND c.fingerprint = ? LIMIT ?",
                (subject, last, per_certificate)))

    def certificates_by_domain(self, names: Iterable[str]) -> list[IndexedCertificate]:
        names = tuple(names)
        if not names:
            return []
        marks = ",".join("?" * len(names))
        return [_certificate(r) for r in self._db.execute(
            "SELECT " + _CERT_COLUMNS + _CERT_FROM + " JOIN discovery_domains d ON d.file_id = c.file_id AND"
            f" d.position = c.position WHERE d.domain IN ({marks}) ORDER BY c.not_after DESC", names)]

    def keys(self, store: str, owner: str | None = None) -> list[IndexedKey]:
        sql = _KEY_SQL + " WHERE f.store = ?"
        params: tuple = (store,)
        if owner is not None:
            sql += " AND f.owner = ?"
            params += (owner,)
        return [_key(r) for r in self._db.execute(sql + " ORDER BY f.path, k.position", params)]

    def keys_in_file(self, path: bytes) -> list[IndexedKey]:
        return [_key(r) for r in self._db.execute(_KEY_SQL + " WHERE f.path = ? ORDER BY k.position", (path,))]

    def file_problem(self, path: bytes) -> str | None:
        row = self._db.execute("SELECT problem FROM discovery_files WHERE path = ?", (path,)).fetchone()
        return row[0] if row else "not indexed yet"

    def keys_by_spki(self, spki: str) -> list[IndexedKey]:
        return [_key(r) for r in self._db.execute(_KEY_SQL + " WHERE k.spki_sha256 = ? ORDER BY f.path", (spki,))]

    def file_problems(self, store: str, owner: str | None = None) -> list[IndexedFile]:
        sql = "SELECT id, path, store, owner, problem FROM discovery_files WHERE store = ? AND problem IS NOT NULL"
        params: tuple = (store,)
        if owner is not None:
            sql += " AND owner = ?"
            params += (owner,)
        return [_file(r) for r in self._db.execute(sql + " ORDER BY path", params)]

    def problems(self, store: str, owner: str | None = None) -> list[IndexedProblem]:
        sql = "SELECT store, owner, path, line, message FROM discovery_problems WHERE store = ?"
        params: tuple = (store,)
        if owner is not None:
            sql += " AND owner = ?"
            params += (owner,)
        return [IndexedProblem(r[0], r[1], bytes(r[2]) if r[2] is not None else None, r[3], r[4])
                for r in self._db.execute(sql + " ORDER BY rowid", params)]

    def vhosts(self) -> list[VhostRow]:
        rows = self._db.execute(
            "SELECT servername, aliases, addresses, ip, port, docroot, user, cert_files, key_files, chain_file,"
            " config_file, line FROM discovery_vhosts ORDER BY servername, id")
        result = []
        for r in rows:
            aliases = tuple(json.loads(r[1]))
            domains: list[str] = []
            for name in ([r[0]] if r[0] else []) + list(aliases):
                if name.lower() not in domains:
                    domains.append(name.lower())
            result.append(VhostRow(
                servername=r[0], aliases=aliases, addresses=tuple(json.loads(r[2])), ip=r[3], port=r[4], docroot=r[5],
                user=r[6], cert_files=tuple(os.fsencode(p) for p in json.loads(r[7])),
                key_files=tuple(os.fsencode(p) for p in json.loads(r[8])),
                chain_file=bytes(r[9]) if r[9] is not None else None, config_file=bytes(r[10]), line=r[11],
                domains=tuple(domains)))
        return result

    def files(self, store: str) -> Iterator[IndexedFile]:
        for r in self._db.execute("SELECT id, path, store, owner, problem FROM discovery_files WHERE store = ?",
                                  (store,)):
            yield _file(r)
