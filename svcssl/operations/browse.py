"""Browse Certificates: the hosting accounts' SSL storage and Apache's SSL virtual hosts, as each user may see them.

Who sees what (``Visibility``): root sees every account, Apache, and the services' files; a
reseller holding the service-SSL privilege sees the accounts root assigned to it and the
services' files (it may already apply a service's certificate with its key); anyone else nothing.

Everything listed here comes from the index (kept by ``svcssl.discovery.index``, stored by
``svcssl.store.discovery``). When it is refreshed:
- ``svcssl serve`` refreshes it when it starts and then every ``REFRESH_INTERVAL`` (5 minutes);
- root's *Refresh the index* button on the browse pages starts a refresh in the background;
- ``svcssl discovery refresh`` refreshes it (for cron on servers that do not run ``serve``);
- the CLI's ``browse`` and ``autofill`` commands refresh it first when it is older than
  ``MIN_INTERVAL`` (60 s): a command is not a request, and an unchanged file costs one stat.
A panel or API request never walks the file tree: it queries the index, then reads only the one
or two files the answer names (re-checked as it reads them). A refresh holds a lock, so two never
run at once; one asked for while another runs is skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from ..discovery.accounts import (STORAGE_DIRS, read_storage_file, scan_accounts, storage_path,
                                  valid_account_name)
from ..discovery.apache import read_apache_config, inputs_unchanged
from ..discovery.index import Candidate, RefreshReport, Stamp, display_path, refresh
from ..errors import AccessDeniedError, InputError, LockTimeoutError, excerpt
from ..fsutil import read_regular
from ..store.discovery import (AccountRow, DiscoveryIndex, IndexedCertificate, IndexedFile, IndexedProblem,
                               VhostRow)
from .context import Context
from .users import PanelUser
from ..timewords import whole_days

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 300  # seconds between the scheduled refreshes in `svcssl serve`
MIN_INTERVAL = 60  # the CLI refreshes first when the index is older than this
CA_FILE_LIMIT = 4 * 1024 * 1024  # a CA directory file may be a whole trust bundle
ALL_STORES = ("account", "apache", "cabundle", "service", "keystore")
_REFERENCE = re.compile(r"^(account|apache|service|keystore):([a-z0-9_.-]{0,32}):([0-9a-f]{64})$")


# --- who may see what -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Visibility:
    user: str
    all_accounts: bool
    accounts: frozenset[str]
    apache: bool
    services: bool

    def may_see(self, store: str, owner: str) -> bool:
        if store == "account":
            return self.all_accounts or owner in self.accounts
        if store == "apache":
            return self.apache
        if store in ("service", "keystore"):  # svcssl's own key store holds keys made for service certificates
            return self.services
        return False  # CA directories hold no keys anyone should take

    def may_see_account(self, account: str) -> bool:
        return self.all_accounts or account in self.accounts


ROOT = Visibility(user="root", all_accounts=True, accounts=frozenset(), apache=True, services=True)


def visibility(ctx: Context, user: PanelUser | None) -> Visibility:
    """``None`` is the command line (root)."""
    if user is None or user.is_root:
        return Visibility(user=user.name if user else "root", all_accounts=True, accounts=frozenset(), apache=True,
                          services=True)
    if not user.may_manage_service_ssl:
        raise AccessDeniedError("You do not have the privilege to manage service SSL certificates. Ask root to grant it.")
    return Visibility(user=user.name, all_accounts=False, accounts=frozenset(ctx.store.accounts_of(user.name)),
                      apache=False, services=True)


def index(ctx: Context) -> DiscoveryIndex:
    return ctx.store.discovery


# --- references that travel through the browser (never a key, never a path) -------------------


def parse_reference(value: str, field: str) -> tuple[str, str, str]:
    """``store:owner:hex`` → its parts; an InputError naming ``field`` when malformed."""
    match = _REFERENCE.match(value or "")
    if not match:
        raise InputError("The reference is not valid: browse again.", field=field)
    store, owner, digest = match.groups()
    if (store == "account") != bool(owner) or (owner and not valid_account_name(owner)):
        raise InputError("The reference is not valid: browse again.", field=field)
    return store, owner, digest


def make_reference(store: str, owner: str, digest: str) -> str:
    return f"{store}:{owner if store == 'account' else ''}:{digest}"


def file_id(name: bytes, suffix: bytes) -> str:
    """A file's id as WHM's listcrts gives it: the name without its suffix; hex for names that are not text."""
    stem = name[:-len(suffix)] if name.lower().endswith(suffix) else name
    try:
        text = stem.decode("utf-8")
        if text.isprintable() and ":" not in text:
            return text
    except UnicodeDecodeError:
        pass
    return "hex-" + stem.hex()


def origin_of(store: str, owner: str, path: bytes) -> str:
    where = display_path(path)
    if store == "account":
        return f"the SSL storage of account {owner} ({where})"
    if store == "apache":
        return f"Apache ({where})"
    if store == "service":
        return f"a service's files ({where})"
    if store == "keystore":
        return f"svcssl's key store ({where})"
    return f"the CA directory ({where})"


# --- reading what the index names ----------------------------------------------------------------


def read_indexed_file(ctx: Context, file: IndexedFile) -> bytes:
    """The bytes of an indexed file, read the safe way for its store. OSError when it cannot be read."""
    if file.store == "account":
        home = ctx.settings.accounts.home_root
        parts = file.path.rsplit(b"/", 2)
        sub = parts[-2].decode("ascii", "replace") if len(parts) == 3 else ""
        name = os.path.basename(file.path)
        if sub not in STORAGE_DIRS or file.path != storage_path(home, file.owner, sub, name):
            raise OSError(0, "no longer in an account's SSL storage")
        return read_storage_file(home, file.owner, sub, name, ctx.settings.limits.max_input_bytes)
    limit = CA_FILE_LIMIT if file.store == "cabundle" else ctx.settings.limits.max_input_bytes
    return read_regular(file.path, limit)


# --- the refresh ---------------------------------------------------------------------------------


def key_store_dir(ctx: Context):
    """svcssl's own key store (keys generated with a CSR), 0700 under the state directory."""
    return ctx.store.layout.key_store


def _stat_candidate(path: bytes, store: str, limit: int, ctx: Context) -> Candidate:
    def read() -> bytes:
        return read_regular(path, limit)

    try:
        st = os.stat(path)
    except OSError as exc:
        return Candidate(path, store, "", None, read, f"cannot read: {exc.strerror}")
    problem = None if stat.S_ISREG(st.st_mode) else "not a regular file"
    return Candidate(path, store, "", Stamp.of(st), read, problem)


class _AccountSource:
    """The accounts' files for the refresh; collects each account's row and problems on the way."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.accounts: list[AccountRow] = []
        self.problems: list[IndexedProblem] = []

    def __iter__(self) -> Iterator[Candidate]:
        home = self.ctx.settings.accounts.home_root
        try:
            scans = scan_accounts(home, self.ctx.settings.limits.max_input_bytes)
            for scan in scans:
                self.accounts.append(AccountRow(scan.account, scan.has_storage, scan.problem))
                if scan.problem:
                    self.problems.append(IndexedProblem("account", scan.account, None, None, scan.problem))
                yield from scan.files
        except OSError as exc:
            self.problems.append(IndexedProblem("account", "", os.fsencode(home), None,
                                                f"[accounts] home_root {home}: {exc.strerror}"))


def _apache_vhosts(ctx: Context, idx: DiscoveryIndex) -> list[VhostRow]:
    """Apache's SSL virtual hosts: parsed again only when a file or directory it read has changed."""
    candidates = ctx.settings.apache.candidates()
    key = "\n".join(os.fspath(c) for c in candidates) + "\n" + os.fspath(ctx.settings.accounts.home_root)
    inputs = {os.fsdecode(path): stamp for path, stamp in idx.inputs().items()}
    if idx.state("apache_source") == key and inputs_unchanged(inputs):
        return idx.vhosts()
    config = read_apache_config(candidates, home_root=ctx.settings.accounts.home_root)
    rows = [VhostRow(
        servername=v.servername, aliases=v.aliases, addresses=v.addresses, ip=v.ip, port=v.port, docroot=v.docroot,
        user=v.user, cert_files=tuple(os.fsencode(p) for p in v.cert_files),
        key_files=tuple(os.fsencode(p) for p in v.key_files),
        chain_file=os.fsencode(v.chain_file) if v.chain_file else None, config_file=os.fsencode(v.config_file),
        line=v.line) for v in config.vhosts]
    idx.replace_vhosts(rows, {os.fsencode(p): s for p, s in config.inputs.items()})
    idx.replace_problems("apache", [IndexedProblem("apache", "", os.fsencode(p.path), p.line, p.message)
                                    for p in config.problems])
    idx.set_state("apache_source", key)
    idx.set_state("apache_config", config.config_file or "")
    idx.set_state("apache_skipped", json.dumps([str(p) for p in config.skipped]))
    log.info("Apache configuration read: %d SSL virtual hosts, %d problems", len(rows), len(config.problems))
    return idx.vhosts()


def _other_candidates(ctx: Context, vhosts: list[VhostRow]) -> Iterator[Candidate]:
    limit = ctx.settings.limits.max_input_bytes
    for vhost in vhosts:
        for path in vhost.cert_files + vhost.key_files + ((vhost.chain_file,) if vhost.chain_file else ()):
            yield _stat_candidate(path, "apache", limit, ctx)
    for service in ctx.settings.enabled_services():
        for path in (service.cert_file, service.key_file, service.chain_file, service.combined_file):
            if path is not None:
                yield _stat_candidate(os.fsencode(path), "service", limit, ctx)
    keys = key_store_dir(ctx)
    try:
        with os.scandir(keys) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".key") and not e.name.startswith("."))
    except OSError:
        names = []
    for name in names:
        yield _stat_candidate(os.fsencode(os.path.join(keys, name)), "keystore", limit, ctx)
    for directory in ctx.settings.cabundles.dirs:
        try:
            with os.scandir(directory) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith("."))
        except OSError:
            continue
        for name in names:
            candidate = _stat_candidate(os.fsencode(os.path.join(directory, name)), "cabundle", CA_FILE_LIMIT, ctx)
            if candidate.stamp is not None and candidate.problem == "not a regular file":
                continue  # a subdirectory: one level only
            yield candidate


def _cabundle_problems(ctx: Context) -> list[IndexedProblem]:
    problems = []
    for directory in ctx.settings.cabundles.dirs:
        try:
            if not os.path.isdir(directory):
                problems.append(IndexedProblem("cabundle", "", os.fsencode(directory), None,
                                               f"[cabundles] dirs: {directory} is not a directory"))
        except OSError:
            pass
    return problems


def refresh_index(ctx: Context, *, if_older_than: float | None = None, lock_timeout: float = 120.0) -> RefreshReport | None:
    """Bring the index up to date: a stat per file, a parse per new or changed file.

    Returns None when skipped: the index is fresher than ``if_older_than`` seconds, or another
    refresh holds the lock for longer than ``lock_timeout``.
    """
    idx = index(ctx)
    if if_older_than is not None:
        age = index_age(ctx)
        if age is not None and age < if_older_than:
            return None
    try:
        with ctx.store.lock("discovery-index", timeout=lock_timeout):
            accounts = _AccountSource(ctx)
            vhosts = _apache_vhosts(ctx, idx)

            def candidates() -> Iterator[Candidate]:
                yield from accounts
                yield from _other_candidates(ctx, vhosts)

            report = refresh(idx, candidates(), ALL_STORES, ctx.now())
            idx.replace_accounts(accounts.accounts)
            idx.replace_problems("account", accounts.problems)
            idx.replace_problems("cabundle", _cabundle_problems(ctx))
    except LockTimeoutError:
        log.info("index refresh skipped: another refresh is running")
        return None
    log.info("index refreshed: %d files, %d parsed, %d unchanged, %d removed, %d problems in %.2f s",
             report.files, report.parsed, report.unchanged, report.removed, report.problems, report.seconds)
    return report


def index_age(ctx: Context) -> float | None:
    """Seconds since the last refresh; None when the index was never built."""
    last = index(ctx).last_refresh()
    if last is None:
        return None
    return (ctx.now() - datetime.fromtimestamp(last["at"], timezone.utc)).total_seconds()


def indexed_at(ctx: Context) -> datetime | None:
    last = index(ctx).last_refresh()
    return datetime.fromtimestamp(last["at"], timezone.utc) if last else None


# --- accounts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountEntry:
    name: str
    owner: str | None  # the reseller it is assigned to
    has_storage: bool
    problem: str | None


@dataclass(frozen=True)
class AccountList:
    accounts: tuple[AccountEntry, ...]
    total: int  # matching the prefix, before the limit
    prefix: str
    indexed_at: datetime | None


def list_accounts(ctx: Context, user: PanelUser | None, prefix: str = "", limit: int = 200) -> AccountList:
    vis = visibility(ctx, user)
    idx = index(ctx)
    prefix = prefix.strip().lower()
    owners = ctx.store.account_owners()
    if vis.all_accounts:
        rows = idx.accounts(prefix, limit)
        total = idx.count_accounts(prefix)
    else:
        names = sorted(a for a in vis.accounts if a.startswith(prefix))
        total = len(names)
        rows = []
        for name in names[:limit]:
            row = idx.account(name)
            rows.append(row or AccountRow(name, False, "not found under the accounts' home directory"))
    entries = tuple(AccountEntry(r.name, owners.get(r.name), r.has_storage, r.problem) for r in rows)
    return AccountList(entries, total, prefix, indexed_at(ctx))


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate in an account's SSL storage (or an Apache file): what the lists show and the API returns."""

    id: str
    store: str
    owner: str
    path: str
    fingerprint: str
    domains: tuple[str, ...]
    issuer_label: str
    issuer_cn: str | None
    issuer_org: str | None
    not_before: datetime
    not_after: datetime
    is_self_signed: bool
    key_algorithm: str
    key_size: int
    key_label: str
    ecdsa_curve_name: str | None
    signature_algorithm: str
    has_key: bool  # a key for it is in the same store (the same account)
    reference: str  # for Use Certificate: store:owner:fingerprint

    @property
    def friendly_name(self) -> str:
        return self.domains[0] if self.domains else self.id

    def days_left(self, now: datetime) -> int:
        return whole_days(self.not_after - now)


def stored_certificate(row: IndexedCertificate, key_spkis: set[str]) -> StoredCertificate:
    return StoredCertificate(
        id=file_id(row.file.name, b".crt"), store=row.file.store, owner=row.file.owner,
        path=display_path(row.file.path), fingerprint=row.fingerprint, domains=row.domains,
        issuer_label=row.issuer_label, issuer_cn=row.issuer_cn, issuer_org=row.issuer_org, not_before=row.not_before,
        not_after=row.not_after, is_self_signed=row.is_self_signed, key_algorithm=row.key_algorithm,
        key_size=row.key_size, key_label=row.key_label, ecdsa_curve_name=row.ecdsa_curve_name,
        signature_algorithm=row.signature_algorithm, has_key=row.spki_sha256 in key_spkis,
        reference=make_reference(row.file.store, row.file.owner, row.fingerprint),
    )


@dataclass(frozen=True)
class FileProblem:
    path: str
    message: str


@dataclass(frozen=True)
class AccountCertificates:
    account: str
    owner: str | None
    certificates: tuple[StoredCertificate, ...]
    problems: tuple[FileProblem, ...]  # broken, unreadable, linked files; the storage itself
    keys_without_certificate: tuple[str, ...]  # key files no certificate of the account matches
    indexed_at: datetime | None


def _check_account(ctx: Context, vis: Visibility, account: str) -> None:
    """The account exists (for root: it is in the index) and the user may see it; one message for both."""
    visible = valid_account_name(account) and vis.may_see_account(account)
    if visible and vis.all_accounts:
        visible = index(ctx).account(account) is not None
    if not visible:
        raise InputError(f"There is no account '{excerpt(account)}' among the accounts you may browse.", field="user")


def account_certificates(ctx: Context, user: PanelUser | None, account: str) -> AccountCertificates:
    vis = visibility(ctx, user)
    _check_account(ctx, vis, account)
    idx = index(ctx)
    keys = idx.keys("account", account)
    key_spkis = {k.spki_sha256 for k in keys}
    rows = idx.certificates("account", account)
    certificates = tuple(stored_certificate(r, key_spkis) for r in rows)
    cert_spkis = {r.spki_sha256 for r in idx.certificates("account", account, leaves_only=False)}
    problems = [FileProblem(display_path(p.path) if p.path else account, p.message)
                for p in idx.problems("account", account)]
    problems += [FileProblem(display_path(f.path), f.problem or "") for f in idx.file_problems("account", account)]
    orphans = tuple(sorted({display_path(k.file.path) for k in keys if k.spki_sha256 not in cert_spkis}))
    return AccountCertificates(account, ctx.store.account_owner(account), certificates, tuple(problems), orphans,
                               indexed_at(ctx))


def list_certificates(ctx: Context, user: PanelUser | None, account: str | None = None) -> list[StoredCertificate]:
    """WHM's listcrts: one account's certificates, or those of every account the user may see."""
    if account:
        return list(account_certificates(ctx, user, account).certificates)
    vis = visibility(ctx, user)
    idx = index(ctx)
    keys: dict[str, set[str]] = {}
    for key in idx.keys("account"):
        keys.setdefault(key.file.owner, set()).add(key.spki_sha256)
    return [stored_certificate(r, keys.get(r.file.owner, set())) for r in idx.certificates("account")
            if vis.may_see_account(r.file.owner)]


# --- Apache -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VhostEntry:
    servername: str | None
    domains: tuple[str, ...]
    addresses: tuple[str, ...]
    ip: str
    port: int | None
    docroot: str | None
    user: str | None
    config_file: str
    line: int
    cert_path: str
    key_path: str | None  # None: the key is in the certificate file
    chain_path: str | None
    certificate: StoredCertificate | None
    problem: str | None  # why the certificate cannot be used


@dataclass(frozen=True)
class ApacheListing:
    config_file: str | None
    vhosts: tuple[VhostEntry, ...]
    problems: tuple[str, ...]  # configuration files that are broken, unreadable, missing, looping
    indexed_at: datetime | None
    skipped: tuple[str, ...] = ()  # virtual hosts the configuration leaves out (a false <IfModule> …), and why


def _require_apache(vis: Visibility) -> None:
    if not vis.apache:
        raise AccessDeniedError("Only root may browse Apache's virtual hosts.")


def list_vhosts(ctx: Context, user: PanelUser | None) -> ApacheListing:
    vis = visibility(ctx, user)
    _require_apache(vis)
    idx = index(ctx)
    entries = []
    for vhost in idx.vhosts():
        cert_path = vhost.cert_files[0]
        certs = idx.certificates_in_file(cert_path)
        problem = None
        certificate = None
        key_paths = vhost.key_files or (cert_path,)
        key_spkis = {k.spki_sha256 for path in key_paths for k in idx.keys_in_file(path)}
        if certs:
            certificate = stored_certificate(certs[0], key_spkis)
        else:
            problem = idx.file_problem(cert_path) or "no certificate in this file"
        entries.append(VhostEntry(
            servername=vhost.servername, domains=vhost.domains, addresses=vhost.addresses, ip=vhost.ip, port=vhost.port,
            docroot=vhost.docroot, user=vhost.user, config_file=display_path(vhost.config_file), line=vhost.line,
            cert_path=display_path(cert_path), key_path=display_path(vhost.key_files[0]) if vhost.key_files else None,
            chain_path=display_path(vhost.chain_file) if vhost.chain_file else None, certificate=certificate,
            problem=problem))
    problems = tuple(f"{display_path(p.path)}{':' + str(p.line) if p.line else ''}: {p.message}"
                     for p in idx.problems("apache"))
    problems += tuple(f"{display_path(f.path)}: {f.problem}" for f in idx.file_problems("apache"))
    try:
        skipped = tuple(str(s) for s in json.loads(idx.state("apache_skipped") or "[]"))
    except ValueError:
        skipped = ()
    return ApacheListing(idx.state("apache_config") or None, tuple(entries), problems, indexed_at(ctx), skipped)


def vhost_for_certificate(ctx: Context, fingerprint: str) -> VhostRow | None:
    """The first SSL virtual host whose certificate file holds this certificate."""
    idx = index(ctx)
    files = {c.file.path for c in idx.certificates_by_fingerprint(fingerprint) if c.file.store == "apache"}
    return next((v for v in idx.vhosts() if v.cert_files and v.cert_files[0] in files), None)
