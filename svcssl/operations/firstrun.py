"""First run: every enabled service gets a usable certificate, as a freshly installed WHM server has.

A service the store knows nothing about either has usable files already (a
certificate and matching key, still valid) — they are adopted as its active
certificate — or gets a new self-signed one, written without a reload so the
daemons can start on it. Interrupted deployments are undone first.
"""

from __future__ import annotations

import logging

from ..deploy import recover_interrupted
from ..errors import FileSystemError, SvcsslError
from ..filesystem import from_os_error
from ..settings import ServiceSettings
from .context import Context
from .install import InstallOutcome, deploy_bundle
from .inventory import read_installed_bundle
from .reset import make_self_signed_bundle

log = logging.getLogger(__name__)

ACTOR = "svcssl (first run)"


def ensure_certificates(ctx: Context) -> list[InstallOutcome]:
    """On a full or read-only disk a service that cannot be set up now is left for the next command (reading
    goes on); the warning says why."""
    outcomes = []
    for service in ctx.settings.enabled_services():
        try:
            _ensure_one(ctx, service, outcomes)
        except FileSystemError as exc:
            log.warning("service %s: not set up now: %s", service.name, exc.message)
        except OSError as exc:
            said = from_os_error(exc, exc.filename or ctx.store.root)
            if said is None:
                raise
            log.warning("service %s: not set up now: %s", service.name, said.message)
    return outcomes


def _ensure_one(ctx: Context, service: ServiceSettings, outcomes: list[InstallOutcome]) -> None:
    store = ctx.store
    journal = store.journal_dir(service.name)
    if journal.exists():
        with store.service_lock(service.name):
            recover_interrupted(service, journal, ctx.settings.deploy)
    if store.active(service.name) is not None:
        return
    try:
        bundle = read_installed_bundle(service)
    except SvcsslError:
        bundle = None
    now = ctx.now()
    if bundle is not None and bundle.info.not_after > now:
        with store.service_lock(service.name):
            if store.active(service.name) is None:
                store.put_bundle(bundle, now)
                store.record_active(service.name, bundle.fingerprint, action="adopted", actor=ACTOR, now=now)
                log.info("service %s: adopted the certificate already installed (%s)", service.name, bundle.fingerprint[:16])
        return
    outcome = deploy_bundle(ctx, service, make_self_signed_bundle(ctx), action="first-run", actor=ACTOR, reload=False)
    outcomes.append(outcome)
