"""The policy: does a service certificate need replacing, and why. Pure — ``now`` is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..x509.inspect import CertificateInfo
from ..x509.validate import covers_hostname, weak_reasons

SHORT_LIVED = timedelta(days=50)


@dataclass(frozen=True)
class ServerFacts:
    """What is true of this server's hostname (from DNS), for every certificate alike."""

    hostname: str
    problem: str | None = None  # e.g. "mail.example.com does not resolve in DNS"; None when fine or unknown


@dataclass(frozen=True)
class CertificateFacts:
    from_own_ca: bool = False  # ordered by our own maintenance run over ACME
    revocation: str = "unknown"  # good | revoked | unknown
    revocation_detail: str = ""
    renewal_window: tuple[datetime, datetime] | None = None  # ACME Renewal Information (RFC 9773)


@dataclass(frozen=True)
class Verdict:
    replace: bool
    code: str  # ok | expired | revoked | weak | not-yet-valid | self-signed | no-san | no-server-auth | not-for-this-server | expiring
    reason: str  # the main reason, for a person
    reasons: tuple[str, ...] = ()  # every problem found
    expired: bool = False

    @property
    def ok(self) -> bool:
        return not self.replace


def renewal_due(info: CertificateInfo, facts: CertificateFacts, now: datetime, *, own_ca_days: int,
                other_days: int) -> str | None:
    """Why the certificate is due for renewal now, or None."""
    remaining = info.not_after - now
    days = remaining.total_seconds() / 86400
    if facts.renewal_window is not None:
        start, _ = facts.renewal_window
        if now >= start:
            return f"the CA's renewal window (ACME Renewal Information) opened on {start:%Y-%m-%d %H:%M} UTC"
        return None
    lifetime = info.not_after - info.not_before
    if lifetime < SHORT_LIVED:
        if remaining < lifetime / 3:
            return (f"it is short-lived ({lifetime.days} days) and less than a third of its lifetime remains "
                    f"({days:.1f} days)")
        return None
    limit = own_ca_days if facts.from_own_ca else other_days
    if days < limit:
        source = "from our ACME CA" if facts.from_own_ca else "from another CA"
        return f"it expires in {days:.1f} days (under {limit} days for certificates {source})"
    return None


def assess(info: CertificateInfo, server: ServerFacts, facts: CertificateFacts, now: datetime, *,
           own_ca_days: int = 25, other_days: int = 3) -> Verdict:
    problems: list[tuple[str, str]] = []
    if info.not_after <= now:
        problems.append(("expired", f"it expired on {info.not_after:%Y-%m-%d %H:%M} UTC"))
    if facts.revocation == "revoked":
        problems.append(("revoked", f"it is revoked ({facts.revocation_detail})"))
    for weak in weak_reasons(info):
        problems.append(("weak", f"it has a {weak}"))
    if info.not_before > now:
        problems.append(("not-yet-valid", f"it is not valid before {info.not_before:%Y-%m-%d %H:%M} UTC"))
    if info.is_self_signed:
        problems.append(("self-signed", "it is self-signed, so clients do not trust it"))
    if not info.has_san:
        problems.append(("no-san", "it has no subjectAltName extension"))
    if not info.has_server_auth:
        problems.append(("no-server-auth", "it does not allow server authentication (no serverAuth extended key usage)"))
    if server.problem:
        problems.append(("not-for-this-server", f"it is not valid for this server: {server.problem}"))
    elif not covers_hostname(info, server.hostname):
        problems.append(("not-for-this-server", f"it does not cover the hostname {server.hostname} "
                                                f"(it covers {', '.join(info.domains) or 'no names'})"))
    if not problems:
        due = renewal_due(info, facts, now, own_ca_days=own_ca_days, other_days=other_days)
        if due:
            problems.append(("expiring", due))
    if not problems:
        until = info.days_left(now)
        return Verdict(False, "ok", f"it passes every check ({until} days left)")
    code, reason = problems[0]
    return Verdict(True, code, reason[0].upper() + reason[1:] + ".", tuple(r for _, r in problems),
                   expired=info.not_after <= now)
