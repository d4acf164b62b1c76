"""The hostname certificate: one ACME order for the server's hostname, with back-off after failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping

from ..acme import AcmeConfig, AcmeError, ari_cert_id, order_certificate, renewal_window
from ..errors import InputError, SvcsslError
from ..store import OrderBackoff
from ..x509 import Bundle
from ..x509.encode import fullchain_pem
from ..x509.inspect import fingerprint
from ..x509.parse import read_private_key
from .context import Context
from .install import prepare_bundle

log = logging.getLogger(__name__)

BACKOFF_STEPS = (timedelta(hours=1), timedelta(hours=6), timedelta(hours=24))


@dataclass(frozen=True)
class CaAttempt:
    """One CA tried (or passed over) by one order, for the run's report."""

    directory: str
    outcome: str  # issued | failed | skipped
    reason: str  # for a person

    def to_dict(self) -> dict:
        return {"directory": self.directory, "outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True)
class OrderOutcome:
    bundle: Bundle | None
    message: str
    problem: dict | None = None  # the CA's problem document: type, detail, status
    skipped: bool = False  # back-off in force: no order was attempted
    retry_at: datetime | None = None
    attempts: tuple[CaAttempt, ...] = ()  # every CA, in order, with what happened
    directory: str | None = None  # the CA that issued
    profile: str | None = None  # the profile the order carried
    replaced: str | None = None  # the ARI certID sent in "replaces" (and accepted)
    notes: tuple[str, ...] = ()  # warnings for the report (no profiles, "replaces" refused, …)

    @property
    def fallback_used(self) -> bool:
        """Issued, but not by the first CA of the list."""
        return self.bundle is not None and bool(self.attempts) and self.attempts[0].outcome != "issued"


@dataclass(frozen=True)
class CaChoice:
    """One CA of the list, as the ACME client needs it, and the CAA identities that name it."""

    config: AcmeConfig
    caa_identities: tuple[str, ...]


def _hmac_key(path, where: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SvcsslError(f"cannot read {where} eab_hmac_key_file: {exc.strerror}") from None


def ca_choices(ctx: Context) -> list[CaChoice]:
    """The CAs to try, in order: the [[acme.ca]] entries, or the one CA of the [acme] keys."""
    acme = ctx.settings.acme
    base = dict(email=acme.email, key_type=acme.key_type, http01_listen=acme.http01_listen, webroot=acme.webroot,
                user_agent="svcssl", dns01_hook=acme.dns01_hook, profile_required=acme.profile_required)
    if not acme.ca:
        return [CaChoice(AcmeConfig(directory=acme.directory, verify=acme.verify or True, eab_kid=acme.eab_kid,
                                    eab_hmac_key=_hmac_key(acme.eab_hmac_key_file, "[acme]"), profile=acme.profile,
                                    **base), acme.caa_identities)]
    return [CaChoice(AcmeConfig(directory=ca.directory, verify=ca.verify or acme.verify or True, eab_kid=ca.eab_kid,
                                eab_hmac_key=_hmac_key(ca.eab_hmac_key_file, f"[[acme.ca]] {ca.directory}"),
                                profile=ca.profile or acme.profile, **base),
                     ca.caa_identities or acme.caa_identities) for ca in acme.ca]


def ca_identities(ctx: Context) -> list[tuple[str, tuple[str, ...]]]:
    """(directory, CAA identities) of each CA to try, in order (nothing read from disk)."""
    acme = ctx.settings.acme
    return [(ca.directory, ca.caa_identities or acme.caa_identities) for ca in acme.ca] or [
        (acme.directory, acme.caa_identities)]


def acme_config(ctx: Context, directory: str | None = None) -> AcmeConfig:
    """The configuration of the CA at ``directory`` (the first CA when None or no longer listed)."""
    choices = ca_choices(ctx)
    return next((c.config for c in choices if c.config.directory == directory), choices[0].config)


def order_names(ctx: Context) -> list[str]:
    return [ctx.settings.server.hostname]


def backoff_in_force(ctx: Context, now: datetime) -> OrderBackoff | None:
    backoff = ctx.store.order_backoff(",".join(order_names(ctx)))
    return backoff if backoff and backoff.next_attempt_at > now else None


def replacement_id(ctx: Context, leaf, directory: str) -> str | None:
    """RFC 9773 ``replaces`` for an order at ``directory`` renewing ``leaf``: only for a certificate we ordered there."""
    if leaf is None:
        return None
    known = ctx.store.acme_certificate(fingerprint(leaf))
    return ari_cert_id(leaf) if known is not None and known[0] == directory else None


def _problem(exc: SvcsslError) -> dict:
    return {"type": getattr(exc, "problem_type", None), "detail": getattr(exc, "detail", exc.message),
            "status": getattr(exc, "status", None), "message": exc.message}


def order_hostname_certificate(ctx: Context, *, timeout: float = 120, caa_forbidden: Mapping[str, str] | None = None,
                               renewing=None, key_pem: bytes | None = None) -> OrderOutcome:
    """Order the hostname certificate from the first CA that will issue it, unless a back-off is in force.

    ``caa_forbidden`` maps a CA's directory to why CAA forbids it (skipped); ``renewing`` is the leaf this order
    replaces (its ARI certID goes in ``replaces`` at the CA that issued it); ``key_pem`` the key to keep (DANE),
    None for a new one. Each CA is tried in order; a CA that
    asked us to wait (Retry-After) is skipped until then. Only when every CA fails is a back-off recorded.
    """
    names = order_names(ctx)
    key = ",".join(names)
    now = ctx.now()
    waiting = backoff_in_force(ctx, now)
    if waiting:
        return OrderOutcome(None, f"An earlier order failed ({waiting.problem.get('detail', 'unknown reason')}); "
                                  f"the next attempt is not before {waiting.next_attempt_at:%Y-%m-%d %H:%M} UTC.",
                            waiting.problem, skipped=True, retry_at=waiting.next_attempt_at)
    attempts: list[CaAttempt] = []
    last: SvcsslError | None = None
    try:
        choices = ca_choices(ctx)
    except SvcsslError as exc:
        choices, last = [], exc
    for choice in choices:
        directory = choice.config.directory
        if caa_forbidden and directory in caa_forbidden:
            attempts.append(CaAttempt(directory, "skipped", f"CAA forbids it: {caa_forbidden[directory]}"))
            continue
        wait = ctx.store.ca_wait(directory)
        if wait is not None and wait[0] > now:
            attempts.append(CaAttempt(directory, "skipped", f"it asked us to wait until {wait[0]:%Y-%m-%d %H:%M} UTC "
                                                            f"({wait[1]})"))
            continue
        try:
            issued = order_certificate(choice.config, names, ctx.settings.server.state_dir, timeout=timeout,
                                       replaces=replacement_id(ctx, renewing, directory),
                                       key=read_private_key(key_pem, validate=False) if key_pem else None)
            prepared = prepare_bundle(ctx, issued.fullchain_pem, issued.key_pem)
        except (AcmeError, InputError, SvcsslError) as exc:
            last = exc
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None and retry_after > now:
                ctx.store.set_ca_wait(directory, retry_after, exc.message)
            attempts.append(CaAttempt(directory, "failed", exc.message + (
                f" (it asked us to wait until {retry_after:%Y-%m-%d %H:%M} UTC)" if retry_after else "")))
            log.warning("order from %s failed: %s", directory, exc.message)
            continue
        ctx.store.set_ca_wait(directory, None)
        ctx.store.set_order_backoff(None, key)
        ctx.store.put_bundle(prepared.bundle, now)
        ctx.store.record_acme_certificate(prepared.bundle.fingerprint, directory, now, issued.profile)
        attempts.append(CaAttempt(directory, "issued", "issued" + (f" with profile {issued.profile}"
                                                                   if issued.profile else "")))
        return OrderOutcome(prepared.bundle, f"Ordered a certificate for {', '.join(names)} from {directory}.",
                            attempts=tuple(attempts), directory=directory, profile=issued.profile,
                            replaced=issued.replaced, notes=issued.notes)
    problem = _problem(last) if last is not None else {"type": None, "detail": "no CA may be asked",
                                                       "status": None, "message": "no CA may be asked"}
    previous = ctx.store.order_backoff(key)
    failures = (previous.failures if previous else 0) + 1
    retry = now + BACKOFF_STEPS[min(failures, len(BACKOFF_STEPS)) - 1]
    waits = [w[0] for c in choices if (w := ctx.store.ca_wait(c.config.directory)) is not None and w[0] > now]
    if waits and len(waits) == len(choices):
        retry = max(retry, min(waits))  # every CA asked us to wait: not before the first of them is free
    ctx.store.set_order_backoff(OrderBackoff(key, failures, previous.first_failed_at if previous else now, retry,
                                             problem), key)
    log.warning("hostname certificate order failed (%d in a row); next attempt after %s", failures, retry)
    if len(attempts) == 1 and last is not None:
        message = f"The order for {', '.join(names)} failed: {last.message}"
    else:
        message = f"The order for {', '.join(names)} failed at every CA: " + "; ".join(
            f"{a.directory}: {a.reason}" for a in attempts) if attempts else f"The order failed: {problem['message']}"
    return OrderOutcome(None, message, problem, retry_at=retry, attempts=tuple(attempts))


def ari_window(ctx: Context, leaf, chain, now: datetime) -> tuple[datetime, datetime] | None:
    """The renewal window of the CA that issued a certificate we ordered (None when it has no ARI or cannot be asked)."""
    known = ctx.store.acme_certificate(fingerprint(leaf))
    try:
        return renewal_window(acme_config(ctx, known[0] if known else None), fullchain_pem(leaf, chain), now=now,
                              timeout=15)
    except SvcsslError as exc:
        log.info("no renewal information: %s", exc.message)
        return None
