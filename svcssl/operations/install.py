"""Install a certificate on services: validate everything first, then one deploy per service.

This is the one path for the CLI, the web form, the API and the maintenance run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable

from ..deploy import deploy_files, recover_interrupted, render_files
from ..deploy.kinds import kind_of
from ..deploy.preflight import check_deploy
from ..errors import (DeployError, FileSystemError, InputError, InputTooLargeError, UnsupportedInputError,
                      UntrustedError)
from ..filesystem import from_os_error
from ..settings import ServiceSettings
from ..store import AuditEntry
from ..x509 import Bundle, assemble_bundle
from ..x509.encode import certificate_pem, chain_pem, key_pem
from ..x509.parse import PrivateKey, read_certificate_input, read_certificates, read_private_key
from ..x509.validate import require_current, weak_reasons
from ..x509.inspect import CertificateInfo
from .autofill import load_key
from .assessment import ATTENTION, OK, RENEW_SOON, Assessment, Thresholds, assess
from .context import Context
from .dane import require_dane_confirmation
from .trust import INCOMPLETE, UNTRUSTED, TrustFinding, judge_trust
from .inventory import known_facts, touch_files_present
from .users import PanelUser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedBundle:
    """A bundle that passed every check, with the warnings that do not refuse it."""

    bundle: Bundle
    warnings: tuple[str, ...]
    from_pkcs12: bool
    assessment: Assessment | None = None  # what every surface will say about it once installed
    notes: tuple[str, ...] = ()  # what svcssl did to the input, e.g. the intermediates it added
    untrusted: str | None = None  # why clients will not trust it (installed only when confirmed), or None


@dataclass(frozen=True)
class InstallOutcome:
    service: str
    ok: bool
    fingerprint: str
    previous_fingerprint: str | None
    message: str
    stage: str | None = None
    rolled_back: bool = False
    output: str = ""


def _check_size(value: bytes | None, field: str, label: str, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InputTooLargeError(f"The {label} is larger than the {limit:,}-byte limit.", field=field)


@dataclass(frozen=True)
class KeyReference:
    """Where a certificate's private key is, so that the key itself never travels through a browser:
    either a bundle svcssl installed (``installed``: its fingerprint; Apply Certificate to Another
    Service) or a key file Browse, Autofill or ``svcssl csr create`` found (``found``:
    ``store:owner:spki-sha256``, re-checked against what ``user`` may see)."""

    installed: str | None = None
    found: str | None = None
    user: PanelUser | None = None  # None: root (the command line)

    def __bool__(self) -> bool:
        return bool(self.installed or self.found)


def resolve_key(ctx: Context, ref: KeyReference) -> PrivateKey:
    """The private key a reference names; InputError (field key) when it is not available."""
    if ref.found:  # a file outside svcssl's store: fully validated once, here, as a pasted key would be
        return read_private_key(key_pem(load_key(ctx, ref.user, ref.found)))
    return referenced_key(ctx, ref.installed or "")


def prepare_bundle(
    ctx: Context,
    crt: bytes,
    key: bytes | None = None,
    cabundle: bytes | None = None,
    password: bytes | None = None,
    key_ref: KeyReference | None = None,
) -> PreparedBundle:
    """Parse and check the user's input; raise InputError (nothing written) when it cannot be installed.

    ``key_ref`` says where the key is when none is given (by reference: never through the browser).
    """
    limit = ctx.settings.limits.max_input_bytes
    _check_size(crt, "crt", "certificate", limit)
    _check_size(key, "key", "private key", limit)
    _check_size(cabundle, "cabundle", "CA bundle", limit)
    _check_size(password, "password", "password", 4096)
    if crt is None:
        raise InputError("You must provide a certificate.", field="crt")
    parsed = read_certificate_input(crt, password)
    keys = parsed.keys
    if key is not None and key.strip():
        keys = keys + (read_private_key(key, password),)
    elif key_ref and not keys:
        keys = (resolve_key(ctx, key_ref),)
    extra = read_certificates(cabundle) if cabundle is not None and cabundle.strip() else ()
    bundle = assemble_bundle(parsed.certificates, keys, extra)
    info = bundle.info
    require_current(info, ctx.now())
    weak = weak_reasons(info)
    if weak:
        raise InputError(f"The certificate cannot be installed: {'; '.join(weak)}. "
                         "TLS libraries on current systems refuse it.", field="crt")
    bundle, trust, notes = complete_chain(ctx, bundle)
    assessment = assess_candidate(ctx, bundle, trust)
    untrusted = trust.message if trust.state in (UNTRUSTED, INCOMPLETE) else None
    return PreparedBundle(bundle=bundle, warnings=install_warnings(assessment), from_pkcs12=parsed.from_pkcs12,
                          assessment=assessment, notes=notes, untrusted=untrusted)


def complete_chain(ctx: Context, bundle: Bundle) -> tuple[Bundle, TrustFinding, tuple[str, ...]]:
    """The bundle with the intermediates its path to a trust anchor lacks, when svcssl can find them (and says
    where from); the trust finding of the result."""
    trust = judge_trust(ctx, bundle.leaf, bundle.chain, network=True)
    if not trust.completed:
        return bundle, trust, ()
    notes = tuple(f"Added the intermediate \u201c{name}\u201d from {where}." for name, where in trust.added)
    completed = Bundle(leaf=bundle.leaf, key=bundle.key, chain=trust.chain, info=bundle.info)
    return completed, judge_trust(ctx, completed.leaf, completed.chain, network=True), notes


def assess_candidate(ctx: Context, bundle: Bundle, trust: TrustFinding | None = None) -> Assessment:
    """The assessment the certificate will get once installed: the same function, facts and touch files as the table."""
    if trust is None:
        trust = judge_trust(ctx, bundle.leaf, bundle.chain, network=True)
    return assess_info(ctx, bundle.info, trust)


def assess_info(ctx: Context, info: CertificateInfo, trust: TrustFinding | None = None) -> Assessment:
    """The assessment of a certificate that is not installed yet (the install form, Autofill, the API)."""
    known = known_facts(ctx)
    facts = known.for_certificate(info.fingerprint, ctx.store.is_acme_certificate(info.fingerprint))
    if trust is not None:
        facts = replace(facts, trust=trust)
    return assess(info, known.server, facts, ctx.now(), thresholds=Thresholds.from_settings(ctx.settings),
                  touch_files=touch_files_present(ctx))


def assess_choice(ctx: Context, info: CertificateInfo, certificate_pem: str, cabundle_pem: str) -> Assessment:
    """The assessment of a certificate chosen for the install form (Browse, Autofill), its trust included; the web
    page does not wait on the network for it (caIssuers downloads only as already made)."""
    try:
        leaf = read_certificates(certificate_pem.encode(), what="certificate", field="crt")[0]
        chain = read_certificates(cabundle_pem.encode()) if cabundle_pem.strip() else ()
    except (InputError, IndexError):
        return assess_info(ctx, info)
    return assess_info(ctx, info, judge_trust(ctx, leaf, tuple(chain), network=False))


def require_confirmation(prepared: PreparedBundle, allow_untrusted: bool, flag: str) -> None:
    """A certificate clients will not trust is installed only when the person confirms it; nothing is written
    before. (A self-signed one installs as before, with its warning: Reset makes them on purpose.)"""
    if prepared.untrusted and not allow_untrusted:
        raise UntrustedError(f"{prepared.untrusted} Clients will not trust it; the next maintenance run will replace it "
                             f"unless its root is added to [trust] ca_file. Nothing was changed. To install it anyway, "
                             f"{flag}.", field="allow_untrusted")


def install_warnings(assessment: Assessment) -> tuple[str, ...]:
    """The install form's warnings: what the maintenance run would do with this certificate, and why."""
    if assessment.verdict == OK:
        return ()
    if assessment.verdict == RENEW_SOON and not assessment.due:
        return tuple(r.message for r in assessment.reasons)
    warnings = [f"The maintenance run would replace this certificate because {r.message[0].lower()}{r.message[1:]}"
                for r in assessment.reasons if r.code != "left-alone"]
    if assessment.verdict == ATTENTION:
        warnings += [r.message for r in assessment.reasons if r.code == "left-alone"]
    return tuple(warnings)


def referenced_key(ctx: Context, fingerprint: str):
    """The key of a certificate that is or was installed on a service (by its fingerprint)."""
    if not ctx.store.was_installed(fingerprint):
        raise InputError("The referenced private key is not available: paste the private key.", field="key")
    return ctx.store.get_bundle(fingerprint).key


def check_input_accepted(services: list[ServiceSettings], prepared: PreparedBundle) -> None:
    for service in services:
        if kind_of(service.kind).pkcs12_only and not prepared.from_pkcs12:
            raise UnsupportedInputError(
                f"The service '{service.name}' accepts only a PKCS#12 (.p12) file with its password. "
                f"{kind_of(service.kind).note}"
            )


def deploy_bundle(
    ctx: Context,
    service: ServiceSettings,
    bundle: Bundle,
    *,
    action: str,
    actor: str,
    reload: bool = True,
    record: Callable[[], None] | None = None,
) -> InstallOutcome:
    """Deploy one bundle to one service under its lock; audit the outcome. Never raises DeployError; raises
    FileSystemError, with nothing written, when a target or the state directory cannot take it (preflight)."""
    store = ctx.store
    fingerprint = bundle.fingerprint
    files = render_files(service, bundle)
    with store.service_lock(service.name):
        recover_interrupted(service, store.journal_dir(service.name), ctx.settings.deploy)
        current = store.active(service.name)
        previous = current.fingerprint if current else None
        now = ctx.now()
        preflight(ctx, service, bundle)
        try:
            store.put_bundle(bundle, now)
        except OSError as exc:
            raise (from_os_error(exc) or exc) from None

        def activate() -> None:
            if record is not None:
                record()
            else:
                store.record_active(service.name, fingerprint, action=action, actor=actor, now=now)

        try:
            report = deploy_files(
                service, files, fingerprint=fingerprint,
                settings=ctx.settings.deploy, journal_dir=store.journal_dir(service.name),
                activate=activate, reload=reload, server_name=ctx.settings.server.hostname,
            )
        except DeployError as exc:
            try:
                store.add_audit(AuditEntry(at=now, actor=actor, action=action, service=service.name,
                                           old_fingerprint=previous, new_fingerprint=fingerprint,
                                           outcome="rolled back" if exc.rolled_back else "failed",
                                           detail=f"{exc.stage}: {exc.message}"))
            except FileSystemError as full:  # the disk that failed the deploy may refuse the audit too
                log.warning("service %s: the failed deploy could not be audited: %s", service.name, full.message)
            return InstallOutcome(service.name, False, fingerprint, previous, exc.message, exc.stage,
                                  exc.rolled_back, exc.output)
        store.add_audit(AuditEntry(at=now, actor=actor, action=action, service=service.name,
                                   old_fingerprint=previous, new_fingerprint=fingerprint))
    return InstallOutcome(service.name, True, fingerprint, previous, _done_message(service, action, report),
                          output=report.output)


def preflight(ctx: Context, service: ServiceSettings, bundle: Bundle) -> None:
    """Refuse (FileSystemError, nothing written) when the service's targets or the state directory cannot take
    ``bundle``: a read-only or immutable target, or too little free space for the files, backups and journal."""
    stored = len(key_pem(bundle.key)) + len(certificate_pem(bundle.leaf)) + len(chain_pem(bundle.chain))
    check_deploy(render_files(service, bundle), ctx.store.root, bundle_bytes=stored)  # + the bundle kept in state


def _done_message(service: ServiceSettings, action: str, report) -> str:
    """What happened, in words: "Installed on exim; port 25 serves it." / "Rolled back dovecot to …"."""
    what = {"rollback": f"Rolled back {service.name} to its earlier certificate",
            "reset": f"Reset {service.name}: a new self-signed certificate is installed",
            "hostname-certificate": f"Installed the hostname certificate on {service.name}",
            "self-signed fallback": f"Installed a self-signed certificate on {service.name}"}.get(
        action, f"Installed on {service.name}")
    if report.probed and service.probe is not None:
        return f"{what}; port {service.probe.port} serves it."
    if report.reloaded:
        return f"{what}; the daemon was reloaded."
    return f"{what} (files written; no reload is configured for it)."


def install_certificate(
    ctx: Context,
    service_names: list[str] | tuple[str, ...],
    crt: bytes,
    key: bytes | None = None,
    cabundle: bytes | None = None,
    password: bytes | None = None,
    *,
    actor: str,
    key_ref: KeyReference | None = None,
    allow_untrusted: bool = False,
    confirm_with: str = "confirm it",
    allow_dane_mismatch: bool = False,
    confirm_dane_with: str = "confirm it",
) -> tuple[PreparedBundle, list[InstallOutcome]]:
    """Validate once, then install on each service; one outcome per service. A certificate clients will not trust
    needs ``allow_untrusted`` (``confirm_with`` says how the person gives it: a flag, a checkbox)."""
    services = ctx.services(service_names)
    prepared = prepare_bundle(ctx, crt, key, cabundle, password, key_ref)
    check_input_accepted(services, prepared)
    if any(not kind_of(s.kind).pkcs12_only for s in services):  # (an APNs certificate is Apple's client certificate)
        require_confirmation(prepared, allow_untrusted, confirm_with)
    dane = require_dane_confirmation(ctx, services, prepared.bundle.leaf, prepared.bundle.chain, allow_dane_mismatch,
                                     confirm_dane_with)  # (DANE: validated TLSA records its key does not match)
    prepared = replace(prepared, warnings=prepared.warnings + dane) if dane else prepared
    for service in services:  # every service's disks first: a refusal changes nothing anywhere
        preflight(ctx, service, prepared.bundle)
    outcomes = [deploy_bundle(ctx, s, prepared.bundle, action="install", actor=actor) for s in services]
    return prepared, outcomes

