"""The hostname certificate: one ACME order for the server's hostname, with back-off after failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..acme import AcmeConfig, AcmeError, order_certificate, renewal_window
from ..errors import InputError, SvcsslError
from ..store import OrderBackoff
from ..x509 import Bundle
from ..x509.encode import fullchain_pem
from .context import Context
from .install import prepare_bundle

log = logging.getLogger(__name__)

BACKOFF_STEPS = (timedelta(hours=1), timedelta(hours=6), timedelta(hours=24))


@dataclass(frozen=True)
class OrderOutcome:
    bundle: Bundle | None
    message: str
    problem: dict | None = None  # the CA's problem document: type, detail, status
    skipped: bool = False  # back-off in force: no order was attempted
    retry_at: datetime | None = None


def acme_config(ctx: Context) -> AcmeConfig:
    acme = ctx.settings.acme
    hmac_key = None
    if acme.eab_hmac_key_file is not None:
        try:
            hmac_key = acme.eab_hmac_key_file.read_text().strip()
        except OSError as exc:
            raise SvcsslError(f"cannot read [acme] eab_hmac_key_file: {exc.strerror}") from None
    return AcmeConfig(
        directory=acme.directory, email=acme.email, verify=acme.verify or True, key_type=acme.key_type,
        http01_listen=acme.http01_listen, webroot=acme.webroot, eab_kid=acme.eab_kid, eab_hmac_key=hmac_key,
        user_agent="svcssl", dns01_hook=acme.dns01_hook,
    )


def order_names(ctx: Context) -> list[str]:
    return [ctx.settings.server.hostname]


def backoff_in_force(ctx: Context, now: datetime) -> OrderBackoff | None:
    backoff = ctx.store.order_backoff(",".join(order_names(ctx)))
    return backoff if backoff and backoff.next_attempt_at > now else None


def order_hostname_certificate(ctx: Context, *, timeout: float = 120) -> OrderOutcome:
    """Order the hostname certificate unless a back-off is in force; record failures and back off."""
    names = order_names(ctx)
    key = ",".join(names)
    now = ctx.now()
    waiting = backoff_in_force(ctx, now)
    if waiting:
        return OrderOutcome(None, f"An earlier order failed ({waiting.problem.get('detail', 'unknown reason')}); "
                                  f"the next attempt is not before {waiting.next_attempt_at:%Y-%m-%d %H:%M} UTC.",
                            waiting.problem, skipped=True, retry_at=waiting.next_attempt_at)
    try:
        issued = order_certificate(acme_config(ctx), names, ctx.settings.server.state_dir, timeout=timeout)
        prepared = prepare_bundle(ctx, issued.fullchain_pem, issued.key_pem)
    except (AcmeError, InputError, SvcsslError) as exc:
        problem = {"type": getattr(exc, "problem_type", None), "detail": getattr(exc, "detail", exc.message),
                   "status": getattr(exc, "status", None), "message": exc.message}
        previous = ctx.store.order_backoff(key)
        failures = (previous.failures if previous else 0) + 1
        retry = now + BACKOFF_STEPS[min(failures, len(BACKOFF_STEPS)) - 1]
        ctx.store.set_order_backoff(OrderBackoff(key, failures, previous.first_failed_at if previous else now, retry,
                                                 problem), key)
        log.warning("hostname certificate order failed (%d in a row); next attempt after %s", failures, retry)
        return OrderOutcome(None, f"The order for {', '.join(names)} failed: {exc.message}", problem,
                            retry_at=retry)
    ctx.store.set_order_backoff(None, key)
    ctx.store.put_bundle(prepared.bundle, now)
    ctx.store.record_acme_certificate(prepared.bundle.fingerprint, ctx.settings.acme.directory, now)
    return OrderOutcome(prepared.bundle, f"Ordered a certificate for {', '.join(names)} from "
                                         f"{ctx.settings.acme.directory}.")


def ari_window(ctx: Context, leaf, chain, now: datetime) -> tuple[datetime, datetime] | None:
    """The CA's renewal window for a certificate we ordered (None when the CA has no ARI or cannot be asked)."""
    try:
        return renewal_window(acme_config(ctx), fullchain_pem(leaf, chain), now=now, timeout=15)
    except SvcsslError as exc:
        log.info("no renewal information: %s", exc.message)
        return None
