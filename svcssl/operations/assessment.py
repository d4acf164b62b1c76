"""One truth about a service certificate: the assessment every surface shows. Pure — ``now`` is a parameter.

The table (flags and colours), the Home banner, Details, the install form's warnings, ``svcssl list``,
``svcssl check``, the API and the maintenance run all show the ``Assessment`` this module returns;
none of them judges a certificate by itself. Facts that need the network (the hostname in DNS,
revocation, ACME Renewal Information) are gathered elsewhere and passed in.

Verdicts:
- ``ok``          — nothing to do;
- ``renew-soon``  — it expires soon (the days are in the reason); ``due`` says whether the maintenance
                    run renews it now, or only tells the administrator (certificates from other CAs);
- ``replace``     — it must be replaced, for the reasons given (``untrusted`` among them);
- ``repair``      — the certificate is fine but its files lack an intermediate svcssl can find
                    (``incomplete-chain``): the run redeploys it with the completed chain, orders nothing;
- ``attention``   — it needs renewing or replacing, but a touch file tells svcssl to leave it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..statedir import NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT
from ..x509.inspect import CertificateInfo
from ..x509.validate import covers_hostname, weak_reasons
from .trust import INCOMPLETE, UNTRUSTED, TrustFinding

OK, RENEW_SOON, REPAIR, REPLACE, ATTENTION = "ok", "renew-soon", "repair", "replace", "attention"
VERDICTS = (OK, RENEW_SOON, REPAIR, REPLACE, ATTENTION)  # every verdict, mildest first (/metrics shows each as 0 or 1)
RENEWS_NOW = "the maintenance run renews it now"
CANNOT_RENEW = ("the maintenance run cannot renew it while no certificate can be ordered for the hostname "
                "(the reason and the fix are given once, with the hostname)")
# A verdict said to a person: a state of the certificate, not a command ("replace" reads like an order).
VERDICT_LABELS = {OK: "Fine", RENEW_SOON: "Renews soon", REPAIR: "Repair: chain incomplete", REPLACE: "Needs replacing",
                  ATTENTION: "Needs your attention"}
SHORT_LIVED = timedelta(days=50)  # from here on the cPanel day thresholds bound the lifetime fraction
VERY_SHORT = timedelta(days=10)  # under this lifetime, renew at half of it rather than a third

# The short word each reason code shows as a flag in the table (the message says the rest).
FLAG_LABELS = {
    "unreadable": "no usable certificate",
    "expired": "expired",
    "revoked": "revoked",
    "weak-signature": "weak signature",
    "weak-key": "weak key",
    "not-yet-valid": "not yet valid",
    "self-signed": "self-signed",
    "no-san": "no subjectAltName",
    "no-server-auth": "no serverAuth",
    "not-for-this-server": "not valid for this server",
    "expiring": "expiring",
    "expires-soon": "expires soon",
    "left-alone": "left alone (touch file)",
    "untrusted": "not trusted",
    "incomplete-chain": "incomplete chain",
    "served-chain": "port serves an incomplete chain",
    "acme-root-untrusted": "ACME CA's root not trusted",
    "dane-mismatch": "matches no TLSA record",
    "dane-unvalidated": "TLSA not validated",
}


@dataclass(frozen=True)
class ServerFacts:
    """What is true of this server's hostname (from DNS), for every certificate alike."""

    hostname: str
    problem: str | None = None  # e.g. "mail.example.com does not resolve in DNS"; None when fine or unknown
    order_blocked: bool = False  # no hostname certificate can be ordered now (DNS, CAA): the run cannot renew


@dataclass(frozen=True)
class CertificateFacts:
    from_own_ca: bool = False  # ordered by our own maintenance run over ACME
    revocation: str = "unknown"  # good | revoked | unknown
    revocation_detail: str = ""
    renewal_window: tuple[datetime, datetime] | None = None  # ACME Renewal Information (RFC 9773)
    renewal_at: datetime | None = None  # the random moment inside renewal_window, chosen once and stored (§4.2)
    trust: TrustFinding | None = None  # a path to a trust anchor, as clients build it (None: not judged)
    served_chain: str | None = None  # what the port serves does not validate: the sentence saying which port, what
    acme_untrusted: bool = False  # ordered by the run just now from an ACME CA whose root is not a trust anchor
    dane_mismatch: str | None = None  # validated TLSA records exist and none matches it: what to publish
    dane_unvalidated: str | None = None  # TLSA records exist but the resolver does not validate them (told only)


@dataclass(frozen=True)
class Thresholds:
    """Every number the assessment uses, from settings ([maintenance] and [notify])."""

    own_ca_renew_days: int = 25  # the run renews certificates from our ACME CA under this many days
    other_renew_days: int = 3  # … and certificates from other CAs under this many
    notify_days: int = 20  # under this many days the administrator is told (mail, banner)

    @classmethod
    def from_settings(cls, settings) -> "Thresholds":
        return cls(settings.maintenance.own_ca_renew_days, settings.maintenance.other_renew_days,
                   settings.notify.expiry_days)


@dataclass(frozen=True)
class Reason:
    code: str  # stable, documented in the README
    message: str  # a sentence for a person: capital letter, full stop

    @property
    def label(self) -> str:
        return FLAG_LABELS.get(self.code, self.code)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Assessment:
    verdict: str  # ok | renew-soon | replace | attention
    reasons: tuple[Reason, ...]  # most important first; never empty
    due: bool = False  # the maintenance run acts on it now (when no touch file forbids it)
    expired: bool = False  # expired or unreadable: the run installs a self-signed certificate if nothing better
    days_left: int | None = None
    held_by: str | None = None  # the touch file that makes svcssl leave it alone

    @property
    def code(self) -> str:
        return self.reasons[0].code

    @property
    def message(self) -> str:
        return self.reasons[0].message

    @property
    def ok(self) -> bool:
        return self.verdict == OK

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def flags(self) -> tuple[str, ...]:
        """The table's flags: one short word per reason (none when ok)."""
        return () if self.ok else tuple(dict.fromkeys(r.label for r in self.reasons))

    @property
    def label(self) -> str:
        """The verdict in words for a person ("Needs replacing")."""
        return VERDICT_LABELS.get(self.verdict, self.verdict)

    @property
    def summary(self) -> str:
        """Every reason in one line, for a person (mail, the CLI, the run's report)."""
        return " ".join(r.message for r in self.reasons)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": [r.to_dict() for r in self.reasons]}


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class RenewalMoment:
    """When the maintenance run renews a certificate, and why then (for the run, the table and the scheduler)."""

    at: datetime
    why: str  # e.g. "the CA's renewal window (ACME Renewal Information) opens …"; reads after "it is due because"
    ari: bool = False


def renewal_moment(info: CertificateInfo, facts: CertificateFacts, thresholds: Thresholds) -> RenewalMoment:
    """The moment the certificate becomes due for renewal (pure: no clock).

    With an ACME Renewal Information window: the random moment chosen once inside it (RFC 9773 §4.2), or the
    window's start when none was chosen. Without: when less than a third of the lifetime remains (half for
    lifetimes under 10 days); for long-lived certificates (50 days and more) the cPanel day thresholds (25 days
    for our own ACME CA, 3 for others) bound that, as before.
    """
    if facts.renewal_window is not None:
        start, end = facts.renewal_window
        chosen = facts.renewal_at if facts.renewal_at is not None and start <= facts.renewal_at <= end else start
        return RenewalMoment(chosen, f"the CA's renewal window (ACME Renewal Information, {_when(start)} to "
                                     f"{_when(end)}) is open and the moment chosen in it, {_when(chosen)}, has come",
                             ari=True)
    lifetime = info.not_after - info.not_before
    fraction, share = (lifetime / 2, "half") if lifetime < VERY_SHORT else (lifetime / 3, "a third")
    if lifetime < SHORT_LIVED:
        return RenewalMoment(info.not_after - fraction,
                             f"it is short-lived ({_span(lifetime)}) and less than {share} of its lifetime remains")
    limit = thresholds.own_ca_renew_days if facts.from_own_ca else thresholds.other_renew_days
    if timedelta(days=limit) <= fraction:
        source = "from our ACME CA" if facts.from_own_ca else "from another CA"
        return RenewalMoment(info.not_after - timedelta(days=limit),
                             f"it expires in under {limit} days (the limit for certificates {source})")
    return RenewalMoment(info.not_after - fraction, f"less than {share} of its lifetime ({_span(lifetime)}) remains")


def _span(delta: timedelta) -> str:
    return f"{delta.days} days" if delta >= timedelta(days=2) else f"{delta.total_seconds() / 3600:.0f} hours"


def renewal_overdue(info: CertificateInfo, now: datetime, thresholds: Thresholds) -> bool:
    """Has the run had its chance to renew it and a person must now hear of it? Less than a third of a short
    lifetime remains, or (long-lived certificates) fewer than the configured notify days."""
    lifetime = info.not_after - info.not_before
    limit = lifetime / 3 if lifetime < SHORT_LIVED else timedelta(days=thresholds.notify_days)
    return info.not_after - now < limit


def needs_a_person(info: CertificateInfo, assessment: Assessment, now: datetime, thresholds: Thresholds) -> bool:
    """Should the administrator be told (mail, the Home banner)? Not for a certificate the run renews by itself
    while that is still on time; yes when it expired, a touch file holds it back, it comes from another CA and
    nears expiry, or its renewal is overdue. (Other problems — self-signed, weak, revoked — the run fixes at once
    or the table shows; they are not expiry news.)"""
    if info.not_after <= now:
        return True
    if assessment.held_by:  # its renewal is due and a touch file keeps the run from it
        return "expiring" in assessment.codes
    if "expires-soon" in assessment.codes:  # another CA's certificate: svcssl does not renew it yet
        return True
    if "expiring" in assessment.codes:
        return renewal_overdue(info, now, thresholds)
    return False


def _early_for_short(info: CertificateInfo, now: datetime) -> bool:
    """A short-lived certificate with more than a third of its lifetime left is not "expiring soon" yet."""
    lifetime = info.not_after - info.not_before
    return lifetime < SHORT_LIVED and info.not_after - now >= lifetime / 3


def renewal_due(info: CertificateInfo, facts: CertificateFacts, now: datetime, thresholds: Thresholds) -> str | None:
    """Why the maintenance run renews the certificate now, or None."""
    moment = renewal_moment(info, facts, thresholds)
    if now < moment.at:
        return None
    if moment.ari:
        return moment.why
    days = (info.not_after - now).total_seconds() / 86400
    return f"{moment.why} ({days:.1f} days left)"


_LEAF_ITSELF = {"expired", "revoked", "weak-signature", "weak-key", "not-yet-valid"}


def _problems(info: CertificateInfo, server: ServerFacts, facts: CertificateFacts, now: datetime) -> list[Reason]:
    problems: list[Reason] = []

    def add(code: str, text: str) -> None:
        problems.append(Reason(code, _sentence(text)))

    if info.not_after <= now:
        add("expired", f"it expired on {_when(info.not_after)}")
    if facts.revocation == "revoked":
        add("revoked", f"it is revoked ({facts.revocation_detail})")
    for weak in weak_reasons(info):
        add("weak-signature" if weak.startswith("weak signature") else "weak-key",
            f"it has a {weak}: current TLS clients refuse it")
    if info.not_before > now:
        add("not-yet-valid", f"it is not valid before {_when(info.not_before)}")
    if info.is_self_signed:
        add("self-signed", "it is self-signed, so clients do not trust it")
    elif facts.trust is not None and facts.trust.state == UNTRUSTED and not _LEAF_ITSELF & {r.code for r in problems}:
        # (an expired, weak or not-yet-valid certificate is not trusted either: its own reason says why)
        problems.append(Reason("untrusted", facts.trust.message))
    if not info.has_san:
        add("no-san", "it has no subjectAltName extension: current clients ignore the common name")
    if not info.has_server_auth:
        add("no-server-auth", "its Extended Key Usage extension does not allow server authentication (serverAuth)")
    if server.problem:
        add("not-for-this-server", f"it is not valid for this server: {server.problem}")
    elif not covers_hostname(info, server.hostname):
        add("not-for-this-server", f"it does not cover the hostname {server.hostname} "
                                   f"(it covers {', '.join(info.domains) or 'no names'})")
    return problems


def _held(touch_files: frozenset[str] | set[str] | tuple[str, ...], expired: bool) -> str | None:
    """The touch file that keeps the run from acting on a certificate that needs work, or None."""
    if NO_MANAGEMENT in touch_files:
        return NO_MANAGEMENT
    if NO_HOSTNAME_CERTIFICATE in touch_files and not expired:  # an expired one still gets a self-signed one
        return NO_HOSTNAME_CERTIFICATE
    return None


def _left_alone(touch_file: str) -> Reason:
    if touch_file == NO_MANAGEMENT:
        what = "no automatic replacement and no expiry mail"
    else:
        what = "no hostname certificate is ordered or installed"
    return Reason("left-alone", f"svcssl leaves it alone because the touch file {touch_file} is present in the "
                                f"state directory ({what}); remove that file to let the maintenance run act.")


def assess(info: CertificateInfo, server: ServerFacts, facts: CertificateFacts, now: datetime, *,
           thresholds: Thresholds = Thresholds(), touch_files: frozenset[str] = frozenset()) -> Assessment:
    """The assessment of one certificate: the same inputs give the same answer on every surface."""
    assessment = _assess_certificate(info, server, facts, now, thresholds=thresholds, touch_files=touch_files)
    return _with_dane(assessment, facts)


def _with_dane(assessment: Assessment, facts: CertificateFacts) -> Assessment:
    """DANE: a certificate no validated TLSA record matches needs attention (``dane-mismatch``: mail from DANE
    senders stops); records the resolver does not validate are only told (``dane-unvalidated``)."""
    extra: list[Reason] = []
    verdict = assessment.verdict
    if facts.dane_mismatch:
        extra.append(Reason("dane-mismatch", _sentence(facts.dane_mismatch)))
        if verdict in (OK, RENEW_SOON) and not assessment.due:
            verdict = ATTENTION
    if facts.dane_unvalidated:
        extra.append(Reason("dane-unvalidated", _sentence(facts.dane_unvalidated)))
    if not extra:
        return assessment
    reasons = assessment.reasons[1:] if assessment.code == "ok" and verdict != OK else assessment.reasons
    return replace(assessment, verdict=verdict, reasons=tuple(reasons) + tuple(extra))


def _assess_certificate(info: CertificateInfo, server: ServerFacts, facts: CertificateFacts, now: datetime, *,
                        thresholds: Thresholds, touch_files: frozenset[str]) -> Assessment:
    days = info.days_left(now)
    expired = info.not_after <= now
    problems = _problems(info, server, facts, now)
    due_text = None
    acme_note: tuple[Reason, ...] = ()
    if facts.acme_untrusted and [r.code for r in problems] == ["untrusted"]:
        # ordered by the run from the configured ACME CA: ordering again would loop; a person must add its root
        acme_note = (Reason("acme-root-untrusted", _sentence(
            "it comes from the configured ACME CA, and the ACME CA's root is not trusted: add it to [trust] "
            "ca_file (svcssl does not order again for this)")), *problems)
        problems = []
    if problems:
        verdict, due = REPLACE, True
    else:
        due_text = renewal_due(info, facts, now, thresholds)
        if due_text:
            verdict, due = RENEW_SOON, True
            problems = [Reason("expiring", _sentence(
                f"{due_text}: {CANNOT_RENEW if server.order_blocked else RENEWS_NOW}"))]
        elif days < thresholds.notify_days and not facts.from_own_ca and not _early_for_short(info, now):
            # (a certificate from our own CA is renewed by the run on time: no news until renewal_overdue)
            verdict, due = RENEW_SOON, False
            problems = [Reason("expires-soon", _sentence(
                f"it expires in {days} days, on {info.not_after:%Y-%m-%d}: renew it with its CA (the maintenance "
                f"run replaces certificates from other CAs only under {thresholds.other_renew_days} days left)"
                if not facts.from_own_ca else
                f"it expires in {days} days, on {info.not_after:%Y-%m-%d}"))]
        elif facts.trust is not None and facts.trust.state == INCOMPLETE:
            verdict, due = REPAIR, True
            problems = [Reason("incomplete-chain", facts.trust.message)]
        elif acme_note:
            return Assessment(ATTENTION, acme_note, days_left=days)
        elif facts.served_chain:
            return Assessment(ATTENTION, (Reason("served-chain", _sentence(facts.served_chain)),), days_left=days)
        else:
            return Assessment(OK, (Reason("ok", f"It passes every check ({days} days left)."),), days_left=days)
    problems = list(problems) + list(acme_note)
    if verdict == REPAIR:  # a repair orders nothing: only disable_service_certificate_management holds it back
        held = NO_MANAGEMENT if NO_MANAGEMENT in touch_files else None
    else:
        held = _held(touch_files, expired) if due else None
    if held:
        if problems[0].code == "expiring":  # due, but the run may not act: say so, never "renews it now"
            problems = [Reason("expiring", _sentence(f"{due_text}: it is due for renewal"))]
        return Assessment(ATTENTION, tuple(problems) + (_left_alone(held),), due=False, expired=expired,
                          days_left=days, held_by=held)
    return Assessment(verdict, tuple(problems), due=due, expired=expired, days_left=days)


def assess_unreadable(problem: str, touch_files: frozenset[str] = frozenset()) -> Assessment:
    """A service whose certificate cannot be read at all: replace it (a self-signed one at once if need be)."""
    reasons: tuple[Reason, ...] = (Reason("unreadable", _sentence(f"no usable certificate: {problem}")),)
    held = _held(touch_files, True)
    if held:
        return Assessment(ATTENTION, reasons + (_left_alone(held),), expired=True, held_by=held)
    return Assessment(REPLACE, reasons, due=True, expired=True)


def expiry_level(info: CertificateInfo, assessment: Assessment, now: datetime, thresholds: Thresholds) -> str:
    """The table's colour for the expiry cell: expired / critical / expiring / ok, from the same thresholds."""
    if info.not_after <= now:
        return "expired"
    if (info.not_after - now).total_seconds() < thresholds.other_renew_days * 86400:
        return "critical"
    if {"expiring", "expires-soon"} & set(assessment.codes):
        return "expiring"
    return "ok"
