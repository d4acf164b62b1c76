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
from .users import LoginError, PanelUser, get_user

TOKEN_ALPHABET = string.ascii_uppercase + string.digits
TOKEN_LENGTH = 32  # as WHM's tokens
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
LOGIN_SESSION_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    user: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        return "active"


def _info(record: TokenRecord) -> TokenInfo:
    return TokenInfo(record.name, record.user, record.created_at, record.expires_at, record.revoked_at,
                     record.last_used_at)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(ctx: Context, user: str, name: str | None = None, expires_days: int | None = None, *,
                 actor: str) -> tuple[TokenInfo, str]:
    """A new token for ``user``; the secret is returned once and only its hash is kept."""
    owner = get_user(ctx, user)
    now = ctx.now()
    name = name or f"{owner.name}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    if not NAME_PATTERN.match(name):
        raise InputError("A token name is 1–50 letters, digits, '.', '_' or '-'.", field="name")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InputError("A token expires after 1 to 3650 days.", field="expires_days")
    secret = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    expires = now + timedelta(days=expires_days) if expires_days else None
    try:
        ctx.store.add_token(name, owner.name, _hash(secret), now, expires)
    except StoreError as exc:
        raise InputError(exc.message[0].upper() + exc.message[1:] + ".", field="name") from None
    ctx.store.add_audit(AuditEntry(at=now, actor=actor, action="token create", detail=f"{name} for {owner.name}"))
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


def authenticate_token(ctx: Context, user: str, secret: str) -> tuple[PanelUser, TokenInfo]:
    """The user and token for `whm USER:TOKEN`; LoginError when unknown, revoked, expired or not the user's."""
    record = ctx.store.token_by_hash(_hash(secret))
    if record is None or not hmac.compare_digest(record.user, user):
        raise LoginError("The API token is not valid for this user.")
    info = _info(record)
    now = ctx.now()
    state = info.state(now)
    if state != "active":
        raise LoginError(f"The API token “{info.name}” is {state}.")
    ctx.store.touch_token(info.name, now)
    return get_user(ctx, user), info


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


def use_login_session(ctx: Context, secret: str) -> tuple[PanelUser, str] | None:
    found = ctx.store.use_login_session(_hash(secret), ctx.now())
    if found is None:
        return None
    user, cpsess = found
    return get_user(ctx, user), cpsess
