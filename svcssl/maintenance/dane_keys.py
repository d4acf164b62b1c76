"""The maintenance run's DANE steps: look up the TLSA records, choose the key the hostname certificate is ordered
with, refuse a deploy that would break validated records, and finish a key rollover once it is deployed."""

from __future__ import annotations

import logging
from typing import Callable

from ..errors import SvcsslError
from ..operations.context import Context
from ..operations.dane import (KeyChoice, ServiceDane, check_dane, dane_setting, dane_status, finish_rollover,
                               renewal_key, would_break)
from ..operations.hostname_certificate import OrderOutcome
from ..operations.inventory import ServiceStatus, read_installed_bundle
from ..operations.notify import notify_once

log = logging.getLogger(__name__)


def dane_findings(ctx: Context, statuses: list[ServiceStatus], say: Callable[[str], None]) -> dict[str, ServiceDane]:
    """Fresh, recorded TLSA lookups for every service DANE is on for (one service's DNS trouble stops nothing)."""
    findings: dict[str, ServiceDane] = {}
    for status in statuses:
        if not dane_setting(status.service):
            continue
        say(f"looking up the TLSA records of {status.service.name}")
        installed = status.installed
        try:
            finding = check_dane(ctx, status.service, installed.leaf if installed else None,
                                 installed.chain if installed else (), network=True)
        except SvcsslError as exc:
            log.warning("dane: %s: %s", status.service.name, exc.message)
            continue
        if finding is not None:
            findings[status.service.name] = finding
    return findings


def dane_key_choice(ctx: Context, needing: list[ServiceStatus], findings: dict[str, ServiceDane]) -> KeyChoice:
    """The key to order with: a ready rollover's next key, the key a validated "3 1 x" record pins, or a new one."""
    current_keys = {}
    for status in needing:
        name = status.service.name
        if name not in findings or status.installed is None:
            continue
        try:
            current_keys[name] = read_installed_bundle(status.service).key
        except SvcsslError as exc:
            log.warning("dane: the key of %s cannot be read: %s", name, exc.message)
    choice = renewal_key(ctx, {s.service.name: findings[s.service.name] for s in needing
                               if s.service.name in findings}, current_keys)
    if choice.why:
        log.info("dane: %s", choice.why)
    return choice


def dane_refusal(finding: ServiceDane | None, order: OrderOutcome | None, expired: bool = False) -> str | None:
    """Why the ordered certificate must not go on this service: it would stop matching validated TLSA records.

    Without a certificate to install, an expired one would get a self-signed one with a new key: not while a
    validated "3 x x" record matches it (DANE-EE ignores expiry, RFC 7672 §3.1.1: senders still deliver)."""
    if finding is not None and expired and (order is None or order.bundle is None):
        if any(m.record.usage == 3 and m.matches_current for name in finding.names for m in name.usable):
            return ("Its certificate has expired, but a validated TLSA 3 x x record matches it, so DANE senders still "
                    "deliver (they ignore expiry); a self-signed certificate with a new key would stop that. It is kept "
                    "until a renewal with the same key succeeds.")
        return None
    if order is None or order.bundle is None:
        return None
    problem = would_break(finding, order.bundle.leaf, order.bundle.chain, only_if_matching=True)
    if problem:
        return (f"The new certificate was not installed: {problem}. The service keeps its certificate; start a key "
                f"rollover (svcssl dane rollover {finding.service}) to change the key.")
    return None


def finish_dane_rollover(ctx: Context, status: ServiceStatus, actor: str) -> list[dict]:
    """The switch is deployed: record it, and tell the administrator (once) that the old record may go."""
    name = status.service.name
    try:
        finish_rollover(ctx, name, status.installed.leaf.public_key() if status.installed else None, actor=actor)
        (finding,) = dane_status(ctx, name, network=False)
    except (SvcsslError, ValueError) as exc:
        log.warning("dane: finishing the rollover of %s: %s", name, getattr(exc, "message", exc))
        return []
    old = finding.rollover.old_record
    if not old:
        return []
    host = ctx.settings.server.hostname
    key = f"dane-rollover-done:{name}:{old}"
    subject = f"[{host}] {name} uses its next key now: the old TLSA record may be removed"
    body = "\n".join([f"svcssl switched {name} to its next key; its record {finding.rollover.next_record} matches it.",
                      f"The old record may be removed now: {old}", "", f"— svcssl on {host}"]) + "\n"
    return [{"key": key, "subject": subject, "result": notify_once(ctx, key, subject, body)}]


def notify_dane(ctx: Context, findings: dict[str, ServiceDane], statuses: list[ServiceStatus]) -> list[dict]:
    """One mail per service and certificate that no validated TLSA record matches (mail from DANE senders stops
    while everything else looks fine); returns the report's notification entries."""
    host = ctx.settings.server.hostname
    sent = []
    for status in statuses:
        finding = findings.get(status.service.name)
        if finding is None or status.installed is None or not finding.mismatch:
            continue
        key = f"dane-mismatch:{status.service.name}:{status.installed.info.fingerprint}"
        subject = f"[{host}] DANE senders refuse mail to {status.service.name}: no TLSA record matches its certificate"
        body = "\n".join([
            f"The certificate of {status.service.name} matches none of the DNSSEC-validated TLSA records of its names.",
            f"Senders that validate DANE refuse to deliver mail to it: {finding.mismatch}.",
            "What to do: publish the records above (keep the old ones until the new ones are seen validated), or "
            "install a certificate with the key the records name. `svcssl dane status` shows where it stands.",
            "", f"— svcssl on {host}"]) + "\n"
        sent.append({"key": key, "subject": subject, "result": notify_once(ctx, key, subject, body)})
    for name, finding in findings.items():
        if not finding.unvalidated:
            continue
        key = f"dane-unvalidated:{name}"
        subject = f"[{host}] The TLSA records of {name} are not DNSSEC-validated: svcssl does not act on them"
        body = "\n".join([
            f"TLSA records exist for {name}, but the resolver svcssl asks did not validate them: {finding.unvalidated}.",
            "svcssl keeps renewing as if there were none (a new key is possible). What to do: sign the zone with "
            "DNSSEC, or point [dns] nameservers at a validating resolver. You hear of this once.",
            "", f"— svcssl on {host}"]) + "\n"
        sent.append({"key": key, "subject": subject, "result": notify_once(ctx, key, subject, body)})
    return sent
