"""API tokens (WHM's `Authorization: whm USER:TOKEN`) and one-time login sessions (create_user_session)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import InputError, StoreError, excerpt
from ..store import AuditEntry, TokenRecord
from .context import Context
from .users import LoginError, PanelUser, find_user, get_user

TOKEN_ALPHABET = string.ascii_uppercase + string.digits
TOKEN_LENGTH = 32  # as WHM's tokens
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
LOGIN_SESSION_LIFETIME = timedelta(minutes=5)
API, METRICS = "api", "metrics"  # token kinds: the JSON API, or /metrics and nothing else
METRICS_TOUCH_INTERVAL = timedelta(minutes=1)


class WrongTokenKind(LoginError):
    """A valid token used where its kind is refused: a metrics token on the API, an API token on /metrics."""


@dataclass(frozen=True)
class TokenInfo:
    name: str
    user: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    kind: str = API

    def state(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "active"


def _info(record: TokenRecord) -> TokenInfo:
    return TokenInfo(record.name, record.user, record.created_at, record.expires_at, record.revoked_at,
                     record.last_used_at, record.kind)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(ctx: Context, user: str, name: str | None = None, expires_days: int | None = None, *,
                 actor: str, metrics_only: bool = False) -> tuple[TokenInfo, str]:
    """A new token for ``user``; the secret is returned once and only its hash is kept. A metrics-only token
    reads /metrics and nothing else (the JSON API refuses it)."""
    owner = get_user(ctx, user)
    now = ctx.now()
    name = name or f"{owner.name}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    if not NAME_PATTERN.match(name):
        raise InputError("A token name is 1–50 letters, digits, '.', '_' or '-'.", field="name")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InputError("A token expires after 1 to 3650 days.", field="expires_days")
    secret = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    expires = now + timedelta(days=expires_days) if expires_days else None
    kind = METRICS if metrics_only else API
    if metrics_only and not owner.may_manage_service_ssl:
        raise InputError(f"The user “{owner.name}” may not see the service certificates, so a metrics token of "
                         "theirs could read nothing: grant the service-SSL privilege first.", field="user")
    try:
        ctx.store.add_token(name, owner.name, _hash(secret), now, expires, kind)
    except StoreError as exc:
        raise InputError(exc.message[0].upper() + exc.message[1:] + ".", field="name") from None
    ctx.store.add_audit(AuditEntry(at=now, actor=actor, action="token create",
                                   detail=f"{name} for {owner.name}" + (" (metrics only)" if metrics_only else "")))
    return _info(ctx.store.token_by_name(name)), secret


def list_tokens(ctx: Context) -> list[TokenInfo]:
    return [_info(r) for r in ctx.store.list_tokens()]


def revoke_token(ctx: Context, name: str, *, actor: str) -> TokenInfo:
    record = ctx.store.token_by_name(name)
    if record is None:
        raise InputError(f"There is no API token named '{excerpt(name)}'.", field="name")
    ctx.store.revoke_token(name, ctx.now())
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="token revoke", detail=name))
    return _info(ctx.store.token_by_name(name))


def _active_token(ctx: Context, secret: str, what: str, user: str | None = None) -> TokenInfo:
    """The token with this secret (of ``user`` when given), active now; LoginError otherwise."""
    record = ctx.store.token_by_hash(_hash(secret))
    if record is None or (user is not None and not hmac.compare_digest(record.user, user)):
        raise LoginError(f"The {what} is not valid" + (" for this user." if user is not None else "."))
    info = _info(record)
    state = info.state(ctx.now())
    if state != "active":
        raise LoginError(f"The {what} “{info.name}” is {state}.")
    return info


def authenticate_token(ctx: Context, user: str, secret: str) -> tuple[PanelUser, TokenInfo]:
    """The user and token for `whm USER:TOKEN`; LoginError when unknown, revoked, expired or not the user's,
    WrongTokenKind for a metrics-only token."""
    info = _active_token(ctx, secret, "API token", user)
    if info.kind != API:
        raise WrongTokenKind(f"The token “{info.name}” is a metrics-only token: it reads /metrics and cannot call "
                             "the API.")
    ctx.store.touch_token(info.name, ctx.now())
    return get_user(ctx, user), info


def authenticate_metrics_token(ctx: Context, secret: str) -> TokenInfo:
    """The metrics token for `Authorization: Bearer SECRET`; LoginError when unknown, revoked, expired or its user
    may no longer see the service certificates, WrongTokenKind for an ordinary API token."""
    info = _active_token(ctx, secret, "token")
    if info.kind != METRICS:
        raise WrongTokenKind("This is not a metrics token: create one with `svcssl token create USER --metrics-only`.")
    owner = find_user(ctx, info.user)
    if owner is None or not owner.may_manage_service_ssl:
        raise LoginError("The token's user may not see the service certificates.")
    now = ctx.now()
    if info.last_used_at is None or now - info.last_used_at >= METRICS_TOUCH_INTERVAL:
        ctx.store.touch_token(info.name, now)  # not a write per scrape: once a minute is "last used" enough
    return info


def new_cpsess() -> str:
    """A session's path token, WHM style: cpsess and ten digits."""
    return "cpsess" + "".join(secrets.choice(string.digits) for _ in range(10))


def create_login_session(ctx: Context, user: str) -> tuple[str, str]:
    """A one-time login secret (valid 5 minutes) and the session's cpsess path token."""
    get_user(ctx, user)
    secret = secrets.token_urlsafe(24)
    cpsess = new_cpsess()
    ctx.store.add_login_session(_hash(secret), user, cpsess, ctx.now() + LOGIN_SESSION_LIFETIME)
    return secret, cpsess


def find_login_session(ctx: Context, secret: str) -> tuple[PanelUser, str] | None:
    """Who a one-time login secret would sign in, without using it up (the confirmation page)."""
    found = ctx.store.find_login_session(_hash(secret), ctx.now())
    if found is None:
        return None
    user, cpsess = found
    return get_user(ctx, user), cpsess


def use_login_session(ctx: Context, secret: str) -> tuple[PanelUser, str] | None:
    found = ctx.store.use_login_session(_hash(secret), ctx.now())
    if found is None:
        return None
    user, cpsess = found
    return get_user(ctx, user), cpsess
