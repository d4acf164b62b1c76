"""The live check: what each service's port serves, compared with what is installed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..deploy.probe import ProbeError, fetch_served_certificate
from ..settings import ServiceSettings
from .context import Context
from .inventory import ServiceStatus, service_status

MATCH, DIFFERS, UNREACHABLE, NOT_PROBED = "match", "differs", "unreachable", "not probed"


@dataclass(frozen=True)
class LiveCheck:
    service: str
    probe: str | None
    installed_fingerprint: str | None
    served_fingerprint: str | None
    state: str  # match | differs | unreachable | not probed
    detail: str

    @property
    def ok(self) -> bool:
        return self.state in (MATCH, NOT_PROBED)


def check_service(ctx: Context, service: ServiceSettings, installed: str | None, timeout: float) -> LiveCheck:
    if service.probe is None:
        return LiveCheck(service.name, None, installed, None, NOT_PROBED, "no probe configured")
    try:
        served = fetch_served_certificate(service.probe, timeout, ctx.settings.server.hostname).fingerprint
    except ProbeError as exc:
        return LiveCheck(service.name, str(service.probe), installed, None, UNREACHABLE, exc.message)
    if served == installed:
        return LiveCheck(service.name, str(service.probe), installed, served, MATCH, "serves the installed certificate")
    return LiveCheck(service.name, str(service.probe), installed, served, DIFFERS,
                     "served certificate differs from installed")


def check_statuses(ctx: Context, statuses: list[ServiceStatus], timeout: float | None = None) -> list[LiveCheck]:
    """Probe each service of ``statuses`` in parallel and compare with its installed fingerprint."""
    if not statuses:
        return []
    timeout = timeout if timeout is not None else min(5.0, ctx.settings.deploy.probe_timeout)
    with ThreadPoolExecutor(max_workers=min(8, len(statuses))) as pool:
        return list(pool.map(lambda st: check_service(ctx, st.service, st.fingerprint, timeout), statuses))


def check_services(ctx: Context, names: list[str] | tuple[str, ...] = (), timeout: float | None = None) -> list[LiveCheck]:
    """Probe the named services (all enabled ones when none are named)."""
    services = ctx.services(names) if names else ctx.settings.enabled_services()
    return check_statuses(ctx, [service_status(ctx, s) for s in services], timeout)
