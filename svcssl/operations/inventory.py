"""What each service has installed: read from its files, compared with the store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256

from ..errors import InputError, SvcsslError
from ..fsutil import StatCache, read_bounded
from ..settings import ServiceSettings
from ..statedir import TOUCH_FILES
from ..store import AuditEntry, HistoryEntry
from ..deploy.layout import installed_certificate_path, installed_key_path
from ..x509 import Bundle, assemble_bundle
from ..x509.inspect import CertificateInfo, describe
from ..x509.parse import read_certificate_input, read_private_key
from .assessment import (Assessment, CertificateFacts, ServerFacts, Thresholds, assess,
                         assess_unreadable, expiry_level)
from .context import Context
from .dane import known_dane
from .trust import UNTRUSTED, judge_trust
from ..x509.trust import name_label

SERVED_CHAIN = "served-chain"  # the live probe's state when the port serves the certificate with a chain too short

INSTALLED_FILE_LIMIT = 1024 * 1024
_SHA256 = SHA256()
DRIFT_FLAG = "files changed outside svcssl"


@dataclass(frozen=True)
class InstalledCertificate:
    """The certificate as it is on disk: leaf and chain, parsed."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    info: CertificateInfo
    chain_fingerprints: tuple[str, ...] = ()

    @property
    def trust_key(self) -> tuple:
        return (self.info.fingerprint, self.chain_fingerprints)


@dataclass(frozen=True)
class ServiceStatus:
    service: ServiceSettings
    installed: InstalledCertificate | None
    problem: str | None  # why nothing could be read from disk
    active: HistoryEntry | None  # what the store calls active
    assessment: Assessment  # the one verdict every surface shows
    expiry: str  # the expiry cell's colour: expired | critical | expiring | ok
    profile: str | None = None  # the ACME profile it was ordered with, when svcssl ordered it with one
    facts: CertificateFacts | None = None  # the facts its assessment used (known from the last run)

    @property
    def info(self) -> CertificateInfo | None:
        return self.installed.info if self.installed else None

    @property
    def drift(self) -> bool:
        """The files hold another certificate than the one svcssl last installed (changed behind its back)."""
        return self.active is not None and self.fingerprint is not None and self.active.fingerprint != self.fingerprint

    @property
    def flags(self) -> tuple[str, ...]:
        return self.assessment.flags + ((DRIFT_FLAG,) if self.drift else ())

    @property
    def fingerprint(self) -> str | None:
        return self.installed.info.fingerprint if self.installed else None


@dataclass(frozen=True)
class ServiceDetails:
    status: ServiceStatus
    chain: tuple[CertificateInfo, ...]
    history: tuple[HistoryEntry, ...]


_parsed_files = StatCache(size=256)  # parsed certificate files, for the table, the banner and the API


def read_installed(service: ServiceSettings) -> InstalledCertificate:
    """Parse the service's certificate file (leaf first, then its chain)."""
    path = installed_certificate_path(service)

    def parse() -> InstalledCertificate:
        data = read_bounded(path, INSTALLED_FILE_LIMIT)
        parsed = read_certificate_input(data, what=f"certificate file {path}", validate_keys=False)
        leaf, *chain = parsed.certificates
        return InstalledCertificate(leaf=leaf, chain=tuple(chain), info=describe(leaf),
                                    chain_fingerprints=tuple(c.fingerprint(_SHA256).hex() for c in chain))

    return _parsed_files.get(path, (path,), parse)


def read_installed_bundle(service: ServiceSettings) -> Bundle:
    """The certificate, key and chain on disk, checked to belong together (key not re-validated)."""
    installed = read_installed(service)
    key_path = installed_key_path(service)
    key_data = read_bounded(key_path, INSTALLED_FILE_LIMIT)
    key = read_private_key(key_data, validate=False)
    return assemble_bundle((installed.leaf,), (key,), installed.chain)


@dataclass(frozen=True)
class KnownFacts:
    """What the last maintenance run learnt from the network (DNS, revocation, ARI), for the surfaces
    that must not wait on the network (the table, the banner, Details, install, list, the API)."""

    server: ServerFacts
    certificates: tuple[tuple[str, CertificateFacts], ...] = ()  # by fingerprint
    checked_at: datetime | None = None

    def for_certificate(self, fingerprint: str, from_own_ca: bool) -> CertificateFacts:
        for fp, facts in self.certificates:
            if fp == fingerprint:
                return replace(facts, from_own_ca=from_own_ca)
        return CertificateFacts(from_own_ca=from_own_ca)


def _window(value) -> tuple[datetime, datetime] | None:
    try:
        return (datetime.fromisoformat(value[0]), datetime.fromisoformat(value[1])) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _moment(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def known_facts(ctx: Context) -> KnownFacts:
    """The facts recorded by the latest maintenance run (dry or not), for this hostname."""
    hostname = ctx.settings.server.hostname
    runs = ctx.store.runs(1)
    if not runs:
        return KnownFacts(ServerFacts(hostname))
    report = runs[0].report
    recorded = report.get("hostname") or {}
    same = recorded.get("name") == hostname
    server = ServerFacts(hostname, recorded.get("server_problem") if same else None,
                         order_blocked=bool(same and recorded.get("blocker")))
    certificates = []
    for fp, facts in (report.get("certificates") or {}).items():
        certificates.append((fp, CertificateFacts(bool(facts.get("from_own_ca")), facts.get("revocation", "unknown"),
                                                  facts.get("revocation_detail", ""),
                                                  _window(facts.get("renewal_window")),
                                                  _moment(facts.get("renewal_at")))))
    return KnownFacts(server, tuple(certificates), runs[0].started_at)


def touch_files_present(ctx: Context) -> frozenset[str]:
    layout = ctx.store.layout
    return frozenset(name for name in TOUCH_FILES if layout.touch_file(name).exists())


def assess_status(ctx: Context, installed: InstalledCertificate | None, problem: str | None, server: ServerFacts,
                  facts: CertificateFacts | None, touch: frozenset[str], now: datetime, *, network: bool = False,
                  served_chain: str | None = None) -> Assessment:
    """The one assessment of a service's certificate (the run passes fresh facts, the other surfaces known ones).

    Trust is judged here for every surface alike: the path from the certificate to an anchor, with its chain
    on disk and the intermediates svcssl can find (the caIssuers download only with ``network``)."""
    if installed is None:
        return assess_unreadable(problem or "the certificate file cannot be read", touch)
    facts = facts or CertificateFacts()
    trust = facts.trust or judge_trust(ctx, installed.leaf, installed.chain, now, network=network,
                                       key_hint=installed.trust_key)
    facts = replace(facts, trust=trust, served_chain=facts.served_chain or served_chain,
                    acme_untrusted=facts.from_own_ca and trust.state == UNTRUSTED)
    return assess(installed.info, server, facts, now,
                  thresholds=Thresholds.from_settings(ctx.settings), touch_files=touch)


def served_chain_note(ctx: Context, service: ServiceSettings, installed: InstalledCertificate,
                      probes: dict | None) -> str | None:
    """The last probe found the port serving this certificate with a chain clients do not accept: say so."""
    probe = (probes if probes is not None else _last_probes(ctx)).get(service.name)
    if probe is None or probe.state != SERVED_CHAIN or probe.installed_fingerprint != installed.info.fingerprint:
        return None
    active = ctx.store.active(service.name)
    if active is not None and active.installed_at > probe.probed_at:  # redeployed since (a repair): probe again
        return None
    trust = judge_trust(ctx, installed.leaf, installed.chain, network=False)
    names = ", ".join(f"\u201c{name_label(c.subject)}\u201d" for c in trust.chain) or "an intermediate"
    return (f"the port {service.probe} serves it without the intermediate {names} that clients need (probe of "
            f"{probe.probed_at:%Y-%m-%d %H:%M} UTC): point the daemon at the file with the full chain "
            f"({installed_certificate_path(service)})")


def _last_probes(ctx: Context) -> dict:
    try:
        return ctx.store.last_probes()
    except SvcsslError:
        return {}


def service_status(ctx: Context, service: ServiceSettings, *, known: KnownFacts | None = None,
                   touch: frozenset[str] | None = None, network: bool = False,
                   probes: dict | None = None) -> ServiceStatus:
    active = ctx.store.active(service.name)
    known = known if known is not None else known_facts(ctx)
    touch = touch if touch is not None else touch_files_present(ctx)
    now = ctx.now()
    try:
        installed = read_installed(service)
    except (InputError, SvcsslError) as exc:
        assessment = assess_status(ctx, None, exc.message, known.server, None, touch, now)
        return ServiceStatus(service, None, exc.message, active, assessment, "expired")
    info = installed.info
    facts = known.for_certificate(info.fingerprint, ctx.store.is_acme_certificate(info.fingerprint))
    facts = known_dane(ctx, service, installed.leaf, installed.chain, facts)
    assessment = assess_status(ctx, installed, None, known.server, facts, touch, now, network=network,
                               served_chain=served_chain_note(ctx, service, installed, probes))
    expiry = expiry_level(info, assessment, now, Thresholds.from_settings(ctx.settings))
    ordered = ctx.store.acme_certificate(info.fingerprint)
    return ServiceStatus(service, installed, None, active, assessment, expiry, ordered[1] if ordered else None, facts)


def list_services(ctx: Context, *, include_disabled: bool = False, network: bool = False) -> list[ServiceStatus]:
    known, touch, probes = known_facts(ctx), touch_files_present(ctx), _last_probes(ctx)
    return [
        service_status(ctx, service, known=known, touch=touch, network=network, probes=probes)
        for service in ctx.settings.services.values()
        if service.enabled or include_disabled
    ]


def service_details(ctx: Context, service: ServiceSettings) -> ServiceDetails:
    status = service_status(ctx, service)
    chain = tuple(describe(c) for c in status.installed.chain) if status.installed else ()
    return ServiceDetails(status=status, chain=chain, history=tuple(ctx.store.history(service.name)))


@dataclass(frozen=True)
class ServiceComponents:
    """A service's certificate with its private key and chain, as read from its files."""

    status: ServiceStatus
    key: object | None = field(repr=False)  # the private key, or None when its file could not be read

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self.status.installed.chain if self.status.installed else ()


def export_service_components(ctx: Context, *, actor: str, keys: bool = True) -> list[ServiceComponents]:
    """Every enabled service's certificate, private key and chain. Private keys leave the server: audited
    first, so with ``keys=False`` (the audit log cannot be written: a full disk) they are left out."""
    if keys:
        ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="api fetch_service_ssl_components",
                                       detail="private keys of every service returned"))
    components = []
    for status in list_services(ctx):
        try:
            bundle = read_installed_bundle(status.service) if keys else None
        except SvcsslError:
            bundle = None
        components.append(ServiceComponents(status, bundle.key if bundle is not None else None))
    return components
