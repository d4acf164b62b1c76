"""Panel users: root and resellers, slow password hashes, the service-SSL privilege, login throttling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import InputError, StoreError, SvcsslError, excerpt
from ..store import AuditEntry, UserRecord
from .clients import client_group
from .context import Context

ROLES = ("root", "reseller")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# werkzeug's scrypt at n=2**15, r=8, p=1: ~0.1–0.2 s per check here, 32 MiB of memory
PASSWORD_METHOD = "scrypt:32768:8:1"
THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_LOCK = timedelta(minutes=15)
THROTTLE_ADDRESS_FAILURES = 20  # per address, whatever the user names: guessing many names is throttled too
# per account, from anywhere (a botnet, an IPv6 range): after 10 failures in a day, each further attempt
# waits 1, 2, 4 … up to 60 minutes; a browser with the account's "known device" cookie is exempt
ACCOUNT_FAILURES = 10
ACCOUNT_WINDOW = timedelta(hours=24)
ACCOUNT_FIRST_LOCK = timedelta(minutes=1)
ACCOUNT_MAX_LOCK = timedelta(minutes=60)


class LoginError(SvcsslError):
    """Wrong name or password (deliberately not saying which)."""


class LoginThrottled(LoginError):
    def __init__(self, message: str, retry_after: int = 900):
        super().__init__(message)
        self.retry_after = retry_after  # seconds, for the Retry-After header


@dataclass(frozen=True)
class PanelUser:
    name: str
    role: str
    service_ssl: bool

    @property
    def is_root(self) -> bool:
        return self.role == "root"

    @property
    def may_manage_service_ssl(self) -> bool:
        return self.is_root or self.service_ssl


def _panel_user(record: UserRecord) -> PanelUser:
    return PanelUser(record.name, record.role, record.service_ssl or record.role == "root")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def _verify_release_0_1(password: str, stored: str) -> bool:
    """The hashes release 0.1 wrote: ``scrypt$N$r$p$<base64 salt>$<base64 digest>``; rehashed at the next login."""
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=64 * 1024 * 1024, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_password(password: str, stored: str) -> bool:
    if stored.startswith("scrypt$"):
        return _verify_release_0_1(password, stored)
    try:
        return check_password_hash(stored, password)
    except (ValueError, TypeError):
        return False


# A hash to verify against when the user does not exist, so both cases cost the same time.
_DUMMY_HASH: str | None = None


def actor_seen_by(actor: str, viewer: PanelUser) -> str:
    """How an audit or history actor is shown to ``viewer``: root sees the credential and address
    ("root (API token deploy, 192.0.2.1)"), anyone else only the user name ("root")."""
    return actor if viewer.is_root else actor.split(" (", 1)[0]


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"The password must have at least {MIN_PASSWORD} characters.", field="password")
    if len(password) > MAX_PASSWORD:
        raise InputError("The password is too long.", field="password")


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InputError("A user name is 1–32 characters: lower-case letters, digits, '.', '_' or '-', "
                         "starting with a letter.", field="username")


def create_user(ctx: Context, name: str, role: str, password: str, *, actor: str) -> PanelUser:
    _check_name(name)
    if role not in ROLES:
        raise InputError(f"The role must be one of {', '.join(ROLES)}.", field="role")
    _check_password_rules(password)
    try:
        ctx.store.add_user(name, role, hash_password(password), ctx.now())
    except StoreError as exc:
        raise InputError(exc.message[0].upper() + exc.message[1:] + ".", field="username") from None
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="user add", detail=f"{role} {name}"))
    return get_user(ctx, name)


def get_user(ctx: Context, name: str) -> PanelUser:
    record = ctx.store.get_user(name)
    if record is None:
        raise InputError(f"There is no user named '{excerpt(name)}'.", field="username")
    return _panel_user(record)


def find_user(ctx: Context, name: str) -> PanelUser | None:
    record = ctx.store.get_user(name)
    return _panel_user(record) if record else None


def list_users(ctx: Context) -> list[PanelUser]:
    return [_panel_user(r) for r in ctx.store.list_users()]


def set_password(ctx: Context, name: str, password: str, *, actor: str) -> None:
    get_user(ctx, name)
    _check_password_rules(password)
    ctx.store.set_password_hash(name, hash_password(password), ctx.now())
    ctx.store.end_web_sessions_of(name)  # every open browser session of this user ends
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="user passwd", detail=name))


def set_service_ssl_privilege(ctx: Context, name: str, granted: bool, *, actor: str) -> PanelUser:
    user = get_user(ctx, name)
    if user.is_root:
        raise InputError("root always has every privilege.", field="username")
    ctx.store.set_service_ssl(name, granted)
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, detail=f"service-ssl {name}",
                                   action="privilege grant" if granted else "privilege revoke"))
    return get_user(ctx, name)


def ensure_root(ctx: Context) -> str | None:
    """Create the root user on an empty state; return its generated password (shown once), else None."""
    if ctx.store.get_user("root") is not None:
        return None
    password = secrets.token_urlsafe(15)
    try:
        ctx.store.add_user("root", "root", hash_password(password), ctx.now())
    except StoreError:  # another process made it at the same moment
        return None
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor="svcssl", action="user add", detail="root (first start)"))
    return password


def _locked_message(locked_until, now) -> str:
    minutes = max(1, int((locked_until - now).total_seconds() // 60) + 1)
    return f"Too many failed logins. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again."


def _throttled(locked_until, now) -> LoginThrottled:
    return LoginThrottled(_locked_message(locked_until, now), max(1, int((locked_until - now).total_seconds()) + 1))


def authenticate(ctx: Context, name: str, password: str, remote: str, *, known_device: bool = False) -> PanelUser:
    """Check a login; throttle repeated failures per user name and client, per client alone, and per account.

    A client is an IPv4 address or an IPv6 network (clients.py). The attempt is counted before the
    password is checked, in one transaction with the check of the lock, so parallel guesses can never
    run more than THROTTLE_FAILURES checks per user and client. The per-account brake counts failures
    from anywhere; ``known_device`` (the browser shows the signed cookie of a past login as this user)
    passes it, so the real administrator is never locked out by someone else's guessing.
    """
    global _DUMMY_HASH
    now = ctx.now()
    client = client_group(remote, ctx.settings.limits.ipv6_prefix)
    key = f"{name.lower()[:64]}|{client}"
    address_key = f"*|{client}"
    account_key = f"{name.lower()[:64]}|*"
    ctx.store.prune_login_failures(now - THROTTLE_WINDOW - THROTTLE_LOCK)
    if not known_device:
        brake = ctx.store.take_escalating_attempt(account_key, ACCOUNT_FAILURES, now, ACCOUNT_WINDOW,
                                                  ACCOUNT_FIRST_LOCK, ACCOUNT_MAX_LOCK)
        if not brake.allowed:
            raise _throttled(brake.locked_until, now)
    attempt = ctx.store.take_login_attempt(((key, THROTTLE_FAILURES), (address_key, THROTTLE_ADDRESS_FAILURES)),
                                           now, THROTTLE_WINDOW, THROTTLE_LOCK)
    if not attempt.allowed:
        raise _throttled(attempt.locked_until, now)
    record = ctx.store.get_user(name) if len(password) <= MAX_PASSWORD else None
    if record is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        verify_password(password[:MAX_PASSWORD], _DUMMY_HASH)
        ok = False
    else:
        ok = verify_password(password, record.password_hash)
    if ok:
        if record.password_hash.startswith("scrypt$"):  # release 0.1's format: store werkzeug's instead
            ctx.store.set_password_hash(record.name, hash_password(password), record.password_changed_at)
        ctx.store.clear_login_attempts(key)
        if not known_device:  # a login past the brake ends it; the known browser's does not (the attack may go on)
            ctx.store.clear_login_attempts(account_key)
        ctx.store.uncount_login_attempt(address_key, THROTTLE_ADDRESS_FAILURES)  # only failures count per address
        return _panel_user(record)
    if record is not None:  # failures for names that do not exist are throttled, not written to the audit log
        ctx.store.add_audit(AuditEntry(at=now, actor=name, action="login", outcome="failed", detail=f"from {remote}"))
    if attempt.reached_limit:
        raise LoginThrottled("Too many failed logins. Wait 15 minutes and try again.",
                             int(THROTTLE_LOCK.total_seconds()))
    raise LoginError("The user name or password is wrong.")


# --- browser sessions: a random id in the cookie, its hash on the server ---------------------------

def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(ctx: Context, user: PanelUser, lifetime: timedelta) -> str:
    """A new browser session for ``user``; the id goes into the (signed) cookie and is checked on every request."""
    session_id = secrets.token_urlsafe(32)
    now = ctx.now()
    ctx.store.add_web_session(_session_hash(session_id), user.name, now, now + lifetime)
    return session_id


def session_user(ctx: Context, session_id: str) -> PanelUser | None:
    """The user of a live session; None once it was ended (logout, password change, user deleted) or expired."""
    if not isinstance(session_id, str) or not session_id or len(session_id) > 128:
        return None
    name = ctx.store.web_session_user(_session_hash(session_id), ctx.now())
    return find_user(ctx, name) if name else None


def end_session(ctx: Context, session_id: str) -> None:
    if isinstance(session_id, str) and session_id:
        ctx.store.end_web_session(_session_hash(session_id))


def delete_user(ctx: Context, name: str, *, actor: str) -> None:
    """Delete a reseller: its API tokens are revoked and its sessions end at once."""
    user = get_user(ctx, name)
    if user.is_root:
        raise InputError("root cannot be deleted.", field="username")
    ctx.store.delete_user(name, ctx.now())
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="user delete", detail=name))
