"""The live check: what each service's port serves, compared with what is installed."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..deploy.probe import ProbeError, fetch_served_certificate
from ..errors import StoreError, SvcsslError
from ..settings import ServiceSettings
from ..store import ProbeRecord
from .context import Context
from .inventory import SERVED_CHAIN, ServiceStatus, read_installed, service_status
from .trust import served_chain_problem

log = logging.getLogger(__name__)
MATCH, DIFFERS, UNREACHABLE, NOT_PROBED, DRIFT = "match", "differs", "unreachable", "not probed", "drift"
__all__ = ["MATCH", "DIFFERS", "UNREACHABLE", "NOT_PROBED", "DRIFT", "SERVED_CHAIN", "LiveCheck", "check_service",
           "check_statuses", "check_services"]


@dataclass(frozen=True)
class LiveCheck:
    """Three fingerprints: what svcssl installed last (the store's active), what the files hold, what the port serves."""

    service: str
    probe: str | None
    installed_fingerprint: str | None  # in the service's files
    served_fingerprint: str | None
    state: str  # match | differs | unreachable | not probed | drift (files changed behind svcssl's back) | served-chain
    detail: str
    active_fingerprint: str | None = None  # what svcssl installed last

    @property
    def ok(self) -> bool:
        return self.state in (MATCH, NOT_PROBED)

    @property
    def serves_installed(self) -> bool:
        return self.state in (MATCH, SERVED_CHAIN)


def _drift(service: str, probe: str | None, installed: str | None, served: str | None, active: str | None,
           probe_detail: str) -> LiveCheck:
    detail = (f"the files hold {installed[:16]}…, not the certificate svcssl installed last ({active[:16]}…): "
              f"they were changed outside svcssl; {probe_detail}")
    return LiveCheck(service, probe, installed, served, DRIFT, detail, active)


def check_service(ctx: Context, service: ServiceSettings, installed: str | None, timeout: float,
                  active: str | None = None) -> LiveCheck:
    drifted = active is not None and installed is not None and active != installed
    if service.probe is None:
        if drifted:
            return _drift(service.name, None, installed, None, active, "no probe configured")
        return LiveCheck(service.name, None, installed, None, NOT_PROBED, "no probe configured", active)
    try:
        sent = fetch_served_certificate(service.probe, timeout, ctx.settings.server.hostname)
        served = sent.fingerprint
    except ProbeError as exc:
        if drifted:
            return _drift(service.name, str(service.probe), installed, None, active, f"the port: {exc.message}")
        return LiveCheck(service.name, str(service.probe), installed, None, UNREACHABLE, exc.message, active)
    if drifted:
        what = "the port serves the files' certificate" if served == installed else (
            "the port serves svcssl's certificate (the daemon has not reloaded)" if served == active
            else "the port serves a third certificate")
        return _drift(service.name, str(service.probe), installed, served, active, what)
    if served == installed:
        missing = _served_chain(ctx, service, sent)
        if missing:
            return LiveCheck(service.name, str(service.probe), installed, served, SERVED_CHAIN,
                             f"the port {service.probe} serves the installed certificate, but {missing}: clients "
                             f"that do not fetch missing intermediates (mail clients, MTAs, curl) refuse it", active)
        return LiveCheck(service.name, str(service.probe), installed, served, MATCH, "serves the installed certificate",
                         active)
    return LiveCheck(service.name, str(service.probe), installed, served, DIFFERS,
                     "served certificate differs from installed", active)


def _served_chain(ctx: Context, service: ServiceSettings, sent) -> str | None:
    """What the port's chain lacks for clients to trust it, or None (also when it cannot be told)."""
    try:
        from cryptography import x509
        installed = read_installed(service)
        chain = tuple(x509.load_der_x509_certificate(der) for der in sent.chain)
        return served_chain_problem(ctx, installed.leaf, chain, installed.chain)
    except (SvcsslError, ValueError) as exc:
        log.info("service %s: the served chain was not judged: %s", service.name, exc)
        return None


def check_statuses(ctx: Context, statuses: list[ServiceStatus], timeout: float | None = None) -> list[LiveCheck]:
    """Probe each service of ``statuses`` in parallel and compare with its installed fingerprint; the results are
    kept in the store for /metrics (which never probes)."""
    if not statuses:
        return []
    timeout = timeout if timeout is not None else min(5.0, ctx.settings.deploy.probe_timeout)
    with ThreadPoolExecutor(max_workers=min(8, len(statuses))) as pool:
        checks = list(pool.map(lambda st: check_service(ctx, st.service, st.fingerprint, timeout,
                                                        st.active.fingerprint if st.active else None), statuses))
    now = ctx.now()
    try:
        ctx.store.record_probes([ProbeRecord(c.service, now, c.state, c.installed_fingerprint, c.served_fingerprint)
                                 for c in checks if c.state != NOT_PROBED])
    except StoreError as exc:  # the checks stand; only /metrics misses this probe
        log.warning("%s", exc.message)
    return checks


def check_services(ctx: Context, names: list[str] | tuple[str, ...] = (), timeout: float | None = None) -> list[LiveCheck]:
    """Probe the named services (all enabled ones when none are named)."""
    services = ctx.services(names) if names else ctx.settings.enabled_services()
    return check_statuses(ctx, [service_status(ctx, s) for s in services], timeout)
