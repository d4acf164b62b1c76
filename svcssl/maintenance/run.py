"""The maintenance run (cPanel's upcp role): assess → order one hostname certificate → install → mail → report.

One run at a time across processes (a lock in the state directory). Everything is read after
the lock is taken. One service's failure never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable

from .. import timewords
from ..deploy.preflight import MARGIN as DISK_MARGIN
from ..errors import FileSystemError, InputError, LockTimeoutError, SvcsslError, excerpt
from ..filesystem import mount_point, write_problem
from ..mail import MailError, mail_configured, send_mail
from ..fsutil import atomic_write
from ..operations.context import Context
from ..operations.hostname_certificate import OrderOutcome, order_hostname_certificate
from ..operations.install import InstallOutcome, deploy_bundle
from ..operations.assessment import (ATTENTION, REPAIR, REPLACE, Assessment, CertificateFacts, ServerFacts,
                                     Thresholds, needs_a_person, renewal_overdue)
from ..operations.inventory import (ServiceStatus, assess_status, list_services, read_installed_bundle,
                                    served_chain_note)
from ..operations.trust import UNTRUSTED, judge_trust
from ..x509 import Bundle
from ..operations.notify import notify_once
from ..operations.reset import make_self_signed_bundle
from ..statedir import NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT, TOUCH_FILES
from ..store import AuditEntry
from .facts import HostnameCheck, certificate_facts, check_server_hostname, hostname_fix
from .dane_keys import dane_findings, dane_key_choice, dane_refusal, finish_dane_rollover, notify_dane
from ..operations.dane import KeyChoice, ServiceDane, with_dane

log = logging.getLogger(__name__)

__all__ = ["NO_HOSTNAME_CERTIFICATE", "NO_MANAGEMENT", "TOUCH_FILES", "run_maintenance", "touch_file_state"]
ACTOR = "maintenance"
ACME_ORDER = "acme order"  # the audit log's action for each hostname certificate order
CHAIN_COMPLETED = "chain completed"  # the audit log's action when a repair redeploys a certificate with its chain


@dataclass(frozen=True, kw_only=True)
class ServiceReport:
    service: str
    verdict: str  # the assessment's main reason code (ok, expired, self-signed, …)
    reason: str  # every reason of the assessment, for a person
    action: str  # what was done (or, in a dry run, would be done)
    outcome: str  # ok | failed | none | planned | blocked (dry run: no order is possible, the reason says why)
    ok: bool  # ends the run with a certificate that passes, or was left alone on purpose
    fingerprint_before: str | None
    fingerprint_after: str | None
    detail: str = ""
    assessment: dict = field(default_factory=dict)  # {"verdict", "reasons": [{"code", "message"}]}, as `svcssl list`


@dataclass
class MaintenanceReport:
    started_at: str
    finished_at: str = ""
    trigger: str = "command"
    dry_run: bool = False
    touch_files: dict[str, bool] = field(default_factory=dict)
    hostname: dict = field(default_factory=dict)
    order: dict | None = None
    services: list[ServiceReport] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    certificates: dict[str, dict] = field(default_factory=dict)  # facts learnt per fingerprint (revocation, ARI)
    ok: bool = True
    summary: str = ""  # the result in words: never "fine" while a service needs attention
    disk: list[dict] = field(default_factory=list)  # what a disk stopped: {"message", "cause", "file_system"}
    not_saved: str = ""  # why this report could not be kept in the history (a full disk)
    order_untrusted: str = ""  # a configuration error: the certificate just ordered does not validate
    dane: dict[str, dict] = field(default_factory=dict)  # per service: `svcssl dane status --json`'s object

    def to_dict(self) -> dict:
        return asdict(self)


def touch_file_state(ctx: Context) -> dict[str, bool]:
    layout = ctx.store.layout
    return {name: layout.touch_file(name).exists() for name in TOUCH_FILES}


TOUCH_FILE_MEANING = {
    NO_HOSTNAME_CERTIFICATE: "never order or install a hostname certificate",
    NO_MANAGEMENT: "no automatic replacement of any service certificate and no expiry mail",
}
# Each touch file as the switch a person sees, in positive words: its name, and what "on" (file absent) does.
TOUCH_FILE_SWITCH = {
    NO_MANAGEMENT: ("Automatic certificate management",
                    "the maintenance run replaces certificates that need it and mails expiry warnings"),
    NO_HOSTNAME_CERTIFICATE: ("Automatic hostname certificates",
                              "the maintenance run orders a CA-signed certificate for the hostname and installs it"),
}


def set_touch_file(ctx: Context, name: str, present: bool, *, actor: str) -> bool:
    """Create or remove one of the two touch files (audited); False when it already was so."""
    if name not in TOUCH_FILES:
        raise InputError(f"There is no touch file named '{excerpt(name)}'.", field="touch")
    path = ctx.store.layout.touch_file(name)
    if path.exists() == present:
        return False
    if present:
        atomic_write(path, b"", mode=0o600)
    else:
        path.unlink(missing_ok=True)
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, detail=name,
                                   action="touch file " + ("create" if present else "remove")))
    log.info("touch file %s %s by %s", name, "created" if present else "removed", actor)
    return True


def _facts_for(ctx: Context, status: ServiceStatus, cache: dict[str, CertificateFacts]) -> CertificateFacts:
    """Revocation and ARI facts, fetched once per certificate per run (services often share one)."""
    fingerprint = status.installed.info.fingerprint
    if fingerprint not in cache:
        try:
            cache[fingerprint] = certificate_facts(ctx, status.installed)
        except SvcsslError as exc:  # revocation/ARI trouble must not stop the run
            log.warning("service %s: facts incomplete: %s", status.service.name, exc.message)
            cache[fingerprint] = CertificateFacts(from_own_ca=ctx.store.is_acme_certificate(fingerprint))
    return cache[fingerprint]


def _assess(ctx: Context, status: ServiceStatus, server: ServerFacts, cache: dict[str, CertificateFacts],
            touch: frozenset[str], now: datetime, dane: ServiceDane | None = None) -> Assessment:
    facts = with_dane(_facts_for(ctx, status, cache), dane) if status.installed is not None else None
    served = served_chain_note(ctx, status.service, status.installed, None) if status.installed is not None else None
    return assess_status(ctx, status.installed, status.problem, server, facts, touch, now, network=True,
                         served_chain=served)


def _facts_json(facts: CertificateFacts) -> dict:
    window = facts.renewal_window
    return {"from_own_ca": facts.from_own_ca, "revocation": facts.revocation,
            "revocation_detail": facts.revocation_detail,
            "renewal_window": [window[0].isoformat(), window[1].isoformat()] if window else None,
            "renewal_at": facts.renewal_at.isoformat() if facts.renewal_at else None}


def _service_report(name: str, assessment: Assessment, action: str, outcome: str, ok: bool, before: str | None,
                    after: str | None, detail: str = "") -> ServiceReport:
    return ServiceReport(service=name, verdict=assessment.code, reason=assessment.summary, action=action,
                         outcome=outcome, ok=ok, fingerprint_before=before, fingerprint_after=after, detail=detail,
                         assessment=assessment.to_dict())


def _summary(report: MaintenanceReport, assessments: dict[str, Assessment]) -> str:
    held = [name for name, a in assessments.items() if a.verdict == ATTENTION and a.held_by]
    other = [name for name, a in assessments.items() if a.verdict == ATTENTION and not a.held_by]
    failed = [s.service for s in report.services
              if s.outcome not in ("planned", "blocked") and (not s.ok or s.outcome == "failed")]
    planned = [s.service for s in report.services if s.outcome == "planned" and s.verdict != "incomplete-chain"]
    repairs = [s.service for s in report.services if s.outcome == "planned" and s.verdict == "incomplete-chain"]
    blocked = [s.service for s in report.services if s.outcome == "blocked"]
    parts = []
    if planned:
        parts.append(f"{', '.join(planned)} would get a new certificate")
    if repairs:
        parts.append(f"{', '.join(repairs)} would have its chain completed")
    if blocked:
        parts.append(f"{', '.join(blocked)} cannot get a new certificate (no order is possible)")
    if failed:
        parts.append(f"{', '.join(failed)} did not end with a certificate that passes")
    if held:
        files = sorted({assessments[name].held_by for name in held})
        parts.append(f"{', '.join(held)} left alone because {' and '.join(files)} "
                     f"{'is' if len(files) == 1 else 'are'} present")
    if other:
        parts.append("; ".join(f"{name}: {assessments[name].message}" for name in other))
    if report.order and report.order.get("ok") is False and not report.order.get("skipped"):
        parts.append("the hostname certificate order failed")
    if report.order_untrusted:
        parts.append(f"configuration error: {report.order_untrusted}")
    if parts:  # "needs attention" said once
        return "needs attention: " + "; ".join(parts)
    if any(not a.ok for a in assessments.values()):
        return "every service ends with a certificate that passes (some expire soon)"
    return "every service is fine"


def _mail_body(ctx: Context, lines: list[str]) -> str:
    url = ctx.settings.notify.panel_url or f"https://{ctx.settings.server.hostname}:2087/scripts2/manageservicecrts"
    return "\n".join(lines + ["", f"Manage the service certificates: {url}", "", "— svcssl on "
                              f"{ctx.settings.server.hostname}"]) + "\n"


def run_maintenance(ctx: Context, *, dry_run: bool = False, trigger: str = "command",
                    progress: Callable[[str], None] | None = None) -> MaintenanceReport:
    """Run once. Raises LockTimeoutError when another run holds the lock."""
    say = progress or (lambda text: None)
    try:
        with ctx.store.lock("maintenance", timeout=1.0):
            report = _run_locked(ctx, dry_run, trigger, say)
    except LockTimeoutError:
        raise LockTimeoutError("Another maintenance run is in progress; this one did nothing.") from None
    try:
        ctx.store.add_run(datetime.fromisoformat(report.started_at), datetime.fromisoformat(report.finished_at),
                          trigger, dry_run, report.ok, report.to_dict())
        if report.ok and not dry_run:  # a consistent copy after each successful run
            ctx.store.snapshot("run", ctx.now())
    except FileSystemError as exc:  # the report was printed (and mailed); the history cannot take it now
        report.not_saved = exc.message
        log.warning("maintenance report not saved: %s", exc.message)
    say("done")
    return report


def _run_locked(ctx: Context, dry_run: bool, trigger: str, say: Callable[[str], None]) -> MaintenanceReport:
    now = ctx.now()
    report = MaintenanceReport(started_at=now.isoformat(timespec="seconds"), trigger=trigger, dry_run=dry_run)
    touch = report.touch_files = touch_file_state(ctx)
    present = frozenset(name for name, there in touch.items() if there)
    managed = not touch[NO_MANAGEMENT]
    auto_hostname = not touch[NO_HOSTNAME_CERTIFICATE]
    state_disk = write_problem(ctx.store.root, DISK_MARGIN)  # nothing can be renewed: do not even order
    if state_disk is not None:
        _note_disk(report.disk, state_disk)

    say("checking the hostname in DNS")
    hostname = check_server_hostname(ctx)
    report.hostname = {
        "name": hostname.dns.hostname, "addresses": list(hostname.dns.addresses), "main_ip": hostname.dns.main_ip,
        "problem": hostname.dns.problem, "caa": asdict(hostname.caa) if hostname.caa else None,
        "blocker": hostname.blocker, "fix": hostname_fix(hostname.dns),
        "caa_forbidden": dict(hostname.caa_forbidden),  # CA directory -> why CAA forbids it (the others may issue)
    }
    server = hostname.server_facts()
    report.hostname["server_problem"] = server.problem

    statuses = [s for s in list_services(ctx) if s.service.kind != "apns"]
    verdicts: dict[str, Assessment] = {}
    facts_cache: dict[str, CertificateFacts] = {}
    dane = dane_findings(ctx, statuses, say)
    report.dane = {name: finding.to_dict() for name, finding in dane.items()}
    for status in statuses:
        say(f"assessing {status.service.name}")
        verdicts[status.service.name] = _assess(ctx, status, server, facts_cache, present, now,
                                                dane.get(status.service.name))
    report.certificates = {fp: _facts_json(facts) for fp, facts in facts_cache.items()}
    # (a repair redeploys the same certificate with its completed chain: it orders nothing)
    needing = [s for s in statuses if verdicts[s.service.name].due and verdicts[s.service.name].verdict != REPAIR]

    # One hostname certificate for every service that needs it.
    order: OrderOutcome | None = None
    key_choice = KeyChoice()
    if needing and managed and auto_hostname and hostname.blocker is None and state_disk is None:
        key_choice = dane_key_choice(ctx, needing, dane)
        if dry_run:
            report.order = {"planned": True, "names": [ctx.settings.server.hostname]}
        else:
            say(f"ordering a certificate for {ctx.settings.server.hostname} from {ctx.settings.acme.directory}")
            order = order_hostname_certificate(ctx, caa_forbidden=hostname.caa_forbidden,
                                               renewing=_renewing(needing), key_pem=key_choice.key_pem)
            if not order.skipped:  # audited, and counted by /metrics (svcssl_acme_orders_total)
                ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=ACTOR, action=ACME_ORDER, detail=order.message,
                                               outcome="ok" if order.bundle is not None else "failed"))
            report.order = _order_json(ctx, order)
            report.order["key"] = key_choice.why or "a new key"

    for status in statuses:
        name = status.service.name
        verdict = verdicts[name]
        before = status.fingerprint
        if verdict.held_by:  # needs work, but a touch file says leave it alone: reported, never "fine"
            action = (f"none: {NO_MANAGEMENT} is present" if verdict.held_by == NO_MANAGEMENT
                      else f"none (no hostname certificate: {verdict.held_by} is present)")
            report.services.append(_service_report(name, verdict, action, "none", True, before, before))
            continue
        if not verdict.due:
            report.services.append(_service_report(name, verdict, "none", "none", True, before, before))
            continue
        if state_disk is not None and not dry_run:
            report.services.append(_service_report(name, verdict, "cannot renew: the state directory cannot be "
                                                   "written", "failed", False, before, before, state_disk.message))
            continue
        if verdict.verdict == REPAIR:
            report.services.append(_repair(ctx, status, verdict, dry_run, say, report.disk))
            continue
        refusal = dane_refusal(dane.get(name), order, verdict.expired and not dry_run)
        if refusal:  # never deploy a certificate that would stop matching validated TLSA records
            what = "not installed: it would break DANE" if order is not None and order.bundle is not None else (
                "not replaced by a self-signed certificate: it would break DANE")
            report.services.append(_service_report(name, verdict, what, "failed", False, before, before, refusal))
            continue
        report.services.append(_act(ctx, status, verdict, order, hostname, auto_hostname, dry_run, say, report.disk))
        if key_choice.rollover_service == name and report.services[-1].outcome == "ok":
            report.notifications.extend(finish_dane_rollover(ctx, status, ACTOR))

    if order is not None and order.bundle is not None:
        _check_ordered_trust(ctx, report, order)
    if managed and not dry_run:
        _notify(ctx, report, statuses, verdicts, order)
        unchanged = {s.service for s in report.services if s.fingerprint_after == s.fingerprint_before}
        report.notifications.extend(notify_dane(ctx, dane, [s for s in statuses if s.service.name in unchanged]))
    if not dry_run:
        _notify_disk(ctx, report)
    failed_action = any(s.outcome == "failed" for s in report.services) or bool(
        report.order and report.order.get("ok") is False and not report.order.get("skipped"))
    report.ok = not failed_action and all(s.ok for s in report.services) and not report.order_untrusted
    report.summary = _summary(report, verdicts)
    report.finished_at = ctx.now().isoformat(timespec="seconds")
    log.info("maintenance run finished: %s", "ok" if report.ok else "needs attention")
    return report


ACME_ROOT_UNTRUSTED = "the ACME CA's root is not trusted: add it to [trust] ca_file"


def _check_ordered_trust(ctx: Context, report: MaintenanceReport, order: OrderOutcome) -> None:
    """The certificate just ordered must validate: if it does not, keep it (ordering again would loop), report a
    configuration error and mail it once."""
    bundle = order.bundle
    finding = judge_trust(ctx, bundle.leaf, bundle.chain, network=True)
    if finding.state != UNTRUSTED:
        return
    report.order_untrusted = f"{ACME_ROOT_UNTRUSTED} ({finding.message})"
    if report.order is not None:
        report.order["trust_problem"] = report.order_untrusted
    host = ctx.settings.server.hostname
    key = f"acme-root-untrusted:{order.directory or ctx.settings.acme.directory}"
    subject = f"[{host}] The hostname certificate from the ACME CA is not trusted"
    lines = [f"svcssl got a certificate for {host} from {order.directory or ctx.settings.acme.directory}, but it "
             f"does not validate against this server's trust store.", f"Why: {finding.message}",
             f"What to do: {ACME_ROOT_UNTRUSTED} (a private ACME CA such as step-ca), or configure a public CA.",
             "svcssl keeps the certificate and does not order again. You hear of this once."]
    result = notify_once(ctx, key, subject, _mail_body(ctx, lines))
    report.notifications.append({"key": key, "subject": subject, "result": result})


def _repair(ctx: Context, status: ServiceStatus, verdict: Assessment, dry_run: bool, say,
            disk: list[dict]) -> ServiceReport:
    """Redeploy the same certificate and key with the chain completed (no order): backup, reload, probe, rollback
    as every deploy; the audit log says "chain completed"."""
    name = status.service.name
    before = status.fingerprint
    installed = status.installed
    finding = judge_trust(ctx, installed.leaf, installed.chain, network=True)
    added = ", ".join(f"\u201c{n}\u201d from {where}" for n, where in finding.added)
    if dry_run:
        return _service_report(name, verdict, f"would complete the chain (add {added})", "planned", False, before,
                               before)
    if not finding.completed:
        return _service_report(name, verdict, "complete the chain", "failed", False, before, before,
                               "the missing intermediate cannot be found any more")
    try:
        current = read_installed_bundle(status.service)
    except SvcsslError as exc:
        return _service_report(name, verdict, "complete the chain", "failed", False, before, before, exc.message)
    bundle = Bundle(leaf=current.leaf, key=current.key, chain=finding.chain, info=current.info)
    say(f"completing the chain of {name}")
    outcome = _deploy(ctx, status.service, bundle, action=CHAIN_COMPLETED, disk=disk)
    if outcome.ok:
        return _service_report(name, verdict, f"chain completed (added {added})", "ok", True, before,
                               outcome.fingerprint, outcome.message)
    return _service_report(name, verdict, "complete the chain", "failed", False, before, before,
                           f"{outcome.stage}: {outcome.message}")


def _renewing(needing: list[ServiceStatus]):
    """The leaf the order renews (for ARI ``replaces``): the first certificate due that is not self-signed."""
    return next((s.installed.leaf for s in needing if s.installed is not None and not s.installed.info.is_self_signed),
                None)


def _order_json(ctx: Context, order: OrderOutcome) -> dict:
    return {"names": [ctx.settings.server.hostname], "ok": order.bundle is not None,
            "skipped": order.skipped, "message": order.message, "problem": order.problem,
            "retry_at": order.retry_at.isoformat(timespec="seconds") if order.retry_at else None,
            "attempts": [a.to_dict() for a in order.attempts], "directory": order.directory,
            "profile": order.profile, "replaces": order.replaced, "notes": list(order.notes),
            "fallback_used": order.fallback_used}
def _note_disk(disk: list[dict], problem: FileSystemError) -> None:
    entry = {"message": problem.message, "cause": problem.cause, "file_system": str(mount_point(problem.path))}
    if entry not in disk:
        disk.append(entry)


def _deploy(ctx: Context, service, bundle, *, action: str, disk: list[dict]) -> InstallOutcome:
    """deploy_bundle, with a refusal of the disk (before anything was written) as a failed outcome."""
    try:
        return deploy_bundle(ctx, service, bundle, action=action, actor=ACTOR)
    except FileSystemError as exc:
        _note_disk(disk, exc)
        return InstallOutcome(service.name, False, bundle.fingerprint, None, exc.message, "preflight")


def _notify_disk(ctx: Context, report: MaintenanceReport) -> None:
    """One mail per disk incident (the file system that stopped a renewal), sent without writing to that disk."""
    incidents = ctx.store.incidents
    blocked = [s for s in report.services if s.outcome == "failed" and s.detail
               and any(problem["message"] in s.detail for problem in report.disk)]
    if not report.disk:
        incidents.clear()
        return
    if not blocked:
        return
    # one incident: the same file systems with the same fault (not the bytes free, which move)
    key = "disk:" + " ".join(sorted({f"{p['cause']}:{p['file_system']}" for p in report.disk}))
    host = ctx.settings.server.hostname
    subject = f"[{host}] svcssl cannot renew certificates: a file system refused the write"
    if key in incidents.keys():
        report.notifications.append({"key": key, "subject": subject, "result": "already sent"})
        return
    lines = ["svcssl's maintenance run could not renew certificates because a disk refused the write.", ""]
    lines += [p["message"] for p in report.disk] + [""] + [f"{s.service}: {s.reason} Not renewed." for s in blocked]
    lines += ["", "Nothing was changed. Once the space is back, the next run renews them with no other step."]
    if not mail_configured(ctx.settings.notify):
        result = "not configured"
    else:
        try:
            send_mail(ctx.settings.notify, subject, _mail_body(ctx, lines))
            result = "sent"
            incidents.record(key)
        except MailError as exc:
            result = f"failed: {exc.message}"
    report.notifications.append({"key": key, "subject": subject, "result": result})


def _act(ctx: Context, status: ServiceStatus, verdict: Assessment, order: OrderOutcome | None,
         hostname: HostnameCheck, auto_hostname: bool, dry_run: bool, say, disk: list[dict]) -> ServiceReport:
    name = status.service.name
    before = status.fingerprint
    if order is not None and order.bundle is not None:
        say(f"installing the hostname certificate on {name}")
        outcome = _deploy(ctx, status.service, order.bundle, action="hostname-certificate", disk=disk)
        if outcome.ok:
            return _service_report(name, verdict, "installed the hostname certificate", "ok", True,
                                 before, outcome.fingerprint, outcome.message)
        fallback = _fallback(ctx, status, verdict, dry_run, say, disk)
        return _service_report(name, verdict, "install the hostname certificate", "failed", False,
                             before, fallback or before, f"{outcome.stage}: {outcome.message}")
    # No certificate to install: say why, and cover an expired service with a self-signed one.
    if not auto_hostname:
        why = f"no hostname certificate: {NO_HOSTNAME_CERTIFICATE} is present"
    elif hostname.blocker:
        why = "no hostname certificate can be ordered (the reason and the fix are given once, under the hostname)"
    elif dry_run:
        why = "would install the hostname certificate"
    elif order is not None:
        why = order.message
    else:
        why = "no hostname certificate"
    if dry_run:
        if why.startswith("would"):
            return _service_report(name, verdict, why, "planned", False, before, before)
        if verdict.expired:  # the self-signed stop-gap needs no order: that much is planned
            return _service_report(name, verdict, why + "; would install a self-signed certificate now", "planned",
                                   False, before, before)
        return _service_report(name, verdict, why, "blocked", False, before, before)
    fallback = _fallback(ctx, status, verdict, dry_run, say, disk)
    if fallback is not None:
        return _service_report(name, verdict,
                             f"installed a self-signed certificate until a CA-signed one is ready ({why})", "ok",
                             not auto_hostname, before, fallback)
    if fallback is None and verdict.expired:
        return _service_report(name, verdict, "install a self-signed certificate", "failed", False,
                             before, before, "; ".join([why, *(p["message"] for p in disk)]))
    return _service_report(name, verdict, f"none ({why})", "none", not auto_hostname, before, before)


def _fallback(ctx: Context, status: ServiceStatus, verdict: Assessment, dry_run: bool, say,
              disk: list[dict] | None = None) -> str | None:
    """An expired (or unreadable) certificate gets a self-signed one now; returns its fingerprint."""
    if not verdict.expired or dry_run:
        return None
    say(f"installing a self-signed certificate on {status.service.name} (its certificate has expired)")
    outcome = _deploy(ctx, status.service, make_self_signed_bundle(ctx), action="self-signed fallback",
                      disk=disk if disk is not None else [])
    return outcome.fingerprint if outcome.ok else None


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _notify(ctx: Context, report: MaintenanceReport, statuses: list[ServiceStatus], verdicts: dict[str, Assessment],
            order: OrderOutcome | None) -> None:
    """One mail per certificate and threshold (listing every service that carries it), and per failed order."""
    now = ctx.now()
    threshold = ctx.settings.notify.expiry_days
    host = ctx.settings.server.hostname
    actions = {s.service: s for s in report.services}
    thresholds = Thresholds.from_settings(ctx.settings)
    expired: dict[str, list[ServiceStatus]] = {}
    expiring: dict[str, list[ServiceStatus]] = {}
    held: dict[str, list[ServiceStatus]] = {}
    urgent = False  # a certificate the order was for cannot wait for the next attempt: a person must act
    waiting: list[str] = []  # the certificates that wait on the failed order, for its mail
    failed_order = order is not None and order.bundle is None
    for status in statuses:
        info = status.info
        verdict = verdicts[status.service.name]
        done = actions[status.service.name]
        unchanged = done.fingerprint_after == done.fingerprint_before
        if info is None:
            urgent = urgent or (verdict.due and unchanged)
            continue
        person = needs_a_person(info, verdict, now, thresholds)  # not for what the run renews on time by itself
        # No order could even be tried for it (the hostname's DNS or CAA, auto_hostname off): the run cannot renew
        # it by itself, so it is news once the time a renewal would have needed has run short.
        blocked = verdict.due and unchanged and order is None and done.outcome != "failed"
        person = person or (blocked and renewal_overdue(info, now, thresholds))
        if verdict.due and (unchanged or verdict.expired) and (person or verdict.verdict == REPLACE):
            urgent = True
            waiting.append(f"{status.service.name}: expires on {info.not_after:%Y-%m-%d %H:%M} UTC "
                           f"({verdict.summary})")
        if info.not_after <= now:
            expired.setdefault(info.fingerprint, []).append(status)
        elif verdict.held_by and person:
            held.setdefault(f"{info.fingerprint}:{verdict.held_by}", []).append(status)
        elif person and unchanged and not (verdict.due and failed_order):  # the order's mail tells of those
            expiring.setdefault(info.fingerprint, []).append(status)
    events = []
    for kind, groups in (("expired", expired), ("expiring", expiring), ("held", held)):
        for fp, group in groups.items():
            info = group[0].info
            names = [s.service.name for s in group]
            if kind == "expired":
                key = f"expired:{fp}"
                subject = f"[{host}] The SSL certificate of {_names(names)} has expired"
                first = f"{timewords.expiry(info.not_after, now)}, on {timewords.moment(info.not_after)}."
            elif kind == "held":
                key = f"held:{fp}"
                subject = f"[{host}] A touch file keeps svcssl from renewing the SSL certificate of {_names(names)}"
                first = (f"needs work, but a touch file keeps svcssl from acting on it; it expires on "
                         f"{info.not_after:%Y-%m-%d %H:%M} UTC. What to do: remove the touch file named below, "
                         f"or install a certificate yourself.")
            else:
                key = f"expiring:{fp}:{threshold}"
                subject = f"[{host}] The SSL certificate of {_names(names)} {timewords.expiry(info.not_after, now)}"
                first = f"{timewords.expiry(info.not_after, now)}, on {timewords.moment(info.not_after)}."
            lines = [f"The SSL certificate of {_names([f'“{n}”' for n in names])} {first}",
                     f"Domains: {', '.join(info.domains)}", f"Issuer: {info.issuer_label}"]
            for status in group:
                name = status.service.name
                lines.append(f"{name} ({status.service.description}): {verdicts[name].summary} "
                             f"What svcssl did: {actions[name].action}.")
            events.append((key, subject, lines))
    if order is not None and order.fallback_used:
        first_ca = order.attempts[0]
        events.append((f"ca-fallback:{first_ca.directory}", f"[{host}] The hostname certificate came from a fallback CA", [
            f"svcssl got the certificate for {host} from {order.directory}, not from the first CA of the list.",
            *(f"{a.directory}: {a.outcome}: {a.reason}" for a in order.attempts),
            f"What to do: find out why {first_ca.directory} did not issue (above) and fix it; svcssl tries the CAs in "
            "order at every renewal. You hear of this once.",
        ]))
    if failed_order and urgent:
        backoff = ctx.store.order_backoff(host)
        first = int(backoff.first_failed_at.timestamp()) if backoff else int(now.timestamp())
        events.append((f"order-failed:{host}:{first}", f"[{host}] Ordering the hostname certificate failed", [
            f"svcssl could not get a certificate for {host} from {ctx.settings.acme.directory}.",
            f"Reason: {order.message}",
            f"The CA's problem: {(order.problem or {}).get('type') or 'none given'}",
            f"The next attempt is not before {order.retry_at:%Y-%m-%d %H:%M} UTC." if order.retry_at else "",
            *(f"CA {a.directory}: {a.outcome}: {a.reason}" for a in order.attempts if len(order.attempts) > 1),
            "The services keep their current certificates. Waiting on a new one:", *waiting,
            "What to do: fix what the CA's answer above names (or install a certificate yourself) before they expire.",
        ]))
    for key, subject, lines in events:
        result = notify_once(ctx, key, subject, _mail_body(ctx, [line for line in lines if line]))
        report.notifications.append({"key": key, "subject": subject, "result": result})
