"""What each service has installed: read from its files, compared with the store."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from ..errors import InputError, SvcsslError
from ..fsutil import read_bounded
from ..settings import ServiceSettings
from ..store import HistoryEntry
from ..deploy.layout import installed_certificate_path, installed_key_path
from ..x509 import Bundle, assemble_bundle
from ..x509.inspect import CertificateInfo, describe
from ..x509.parse import read_certificate_input, read_private_key
from ..x509.validate import covers_hostname, weak_reasons
from .context import Context

EXPIRING_DAYS = 25
CRITICAL_DAYS = 3
INSTALLED_FILE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class InstalledCertificate:
    """The certificate as it is on disk: leaf and chain, parsed."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    info: CertificateInfo


@dataclass(frozen=True)
class ServiceStatus:
    service: ServiceSettings
    installed: InstalledCertificate | None
    problem: str | None  # why nothing could be read from disk
    active: HistoryEntry | None  # what the store calls active
    flags: tuple[str, ...]

    @property
    def info(self) -> CertificateInfo | None:
        return self.installed.info if self.installed else None

    @property
    def fingerprint(self) -> str | None:
        return self.installed.info.fingerprint if self.installed else None


@dataclass(frozen=True)
class ServiceDetails:
    status: ServiceStatus
    chain: tuple[CertificateInfo, ...]
    history: tuple[HistoryEntry, ...]


class _ParsedFileCache:
    """Parsed certificate files by path, valid while the file's identity and times are unchanged.

    Every install swaps files with os.replace (a new inode), so a stale entry is never served;
    an unchanged file costs one stat instead of a read, a parse and a signature check.
    """

    def __init__(self, size: int = 256):
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict[Path, tuple[tuple, InstalledCertificate]] = {}

    @staticmethod
    def signature(path: Path) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def get(self, path: Path, signature: tuple) -> InstalledCertificate | None:
        with self._lock:
            entry = self._entries.get(path)
        return entry[1] if entry and entry[0] == signature else None

    def put(self, path: Path, signature: tuple, value: InstalledCertificate) -> None:
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[path] = (signature, value)


_parsed_files = _ParsedFileCache()


def read_installed(service: ServiceSettings) -> InstalledCertificate:
    """Parse the service's certificate file (leaf first, then its chain)."""
    path = installed_certificate_path(service)
    signature = _parsed_files.signature(path)
    if signature is not None:
        cached = _parsed_files.get(path, signature)
        if cached is not None:
            return cached
    data = read_bounded(path, INSTALLED_FILE_LIMIT)
    parsed = read_certificate_input(data, what=f"certificate file {path}", validate_keys=False)
    leaf, *chain = parsed.certificates
    installed = InstalledCertificate(leaf=leaf, chain=tuple(chain), info=describe(leaf))
    if signature is not None and signature == _parsed_files.signature(path):
        _parsed_files.put(path, signature, installed)
    return installed


def read_installed_bundle(service: ServiceSettings) -> Bundle:
    """The certificate, key and chain on disk, checked to belong together (key not re-validated)."""
    installed = read_installed(service)
    key_path = installed_key_path(service)
    key_data = read_bounded(key_path, INSTALLED_FILE_LIMIT)
    key = read_private_key(key_data, validate=False)
    return assemble_bundle((installed.leaf,), (key,), installed.chain)


def expiry_class(info: CertificateInfo, now: datetime) -> str:
    """expired / critical (under 3 days) / expiring (under 25 days) / ok — the table's colours."""
    seconds = (info.not_after - now).total_seconds()
    if seconds <= 0:
        return "expired"
    if seconds < CRITICAL_DAYS * 86400:
        return "critical"
    if seconds < EXPIRING_DAYS * 86400:
        return "expiring"
    return "ok"


def certificate_flags(info: CertificateInfo, hostname: str, now: datetime) -> tuple[str, ...]:
    flags = []
    expiry = expiry_class(info, now)
    if expiry != "ok":
        flags.append(expiry)
    if info.not_before > now:
        flags.append("not yet valid")
    if info.is_self_signed:
        flags.append("self-signed")
    flags.extend(weak_reasons(info))
    if not info.has_san:
        flags.append("no subjectAltName")
    if not covers_hostname(info, hostname):
        flags.append(f"does not cover the hostname {hostname}")
    return tuple(flags)


def service_status(ctx: Context, service: ServiceSettings) -> ServiceStatus:
    active = ctx.store.active(service.name)
    try:
        installed = read_installed(service)
    except (InputError, SvcsslError) as exc:
        return ServiceStatus(service, None, exc.message, active, ("no usable certificate",))
    flags = list(certificate_flags(installed.info, ctx.settings.server.hostname, ctx.now()))
    if active is not None and active.fingerprint != installed.info.fingerprint:
        flags.append("files changed outside svcssl")
    return ServiceStatus(service, installed, None, active, tuple(flags))


def list_services(ctx: Context, *, include_disabled: bool = False) -> list[ServiceStatus]:
    return [
        service_status(ctx, service)
        for service in ctx.settings.services.values()
        if service.enabled or include_disabled
    ]


def service_details(ctx: Context, name: str) -> ServiceDetails:
    service = ctx.service(name)
    status = service_status(ctx, service)
    chain = tuple(describe(c) for c in status.installed.chain) if status.installed else ()
    return ServiceDetails(status=status, chain=chain, history=tuple(ctx.store.history(service.name)))
