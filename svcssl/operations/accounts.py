"""Hosting accounts and the resellers that own them: root assigns, a reseller browses only its own."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..discovery.accounts import account_exists, valid_account_name
from ..errors import InputError
from ..store import AuditEntry
from .context import Context
from .users import get_user

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Assignment:
    reseller: str
    changed: tuple[str, ...]  # accounts assigned (or unassigned)
    moved_from: tuple[tuple[str, str], ...]  # (account, previous reseller) for accounts taken from another
    unchanged: tuple[str, ...]  # already so


def split_account_names(text: str) -> list[str]:
    """Names typed in one field: separated by blanks or commas, duplicates dropped, order kept."""
    return list(dict.fromkeys(n for n in _SEPARATORS.split(text.strip().lower()) if n))


def _reseller(ctx: Context, name: str):
    user = get_user(ctx, name)
    if user.is_root:
        raise InputError("root sees every account already: assign accounts to resellers.", field="username")
    return user


def assign_accounts(ctx: Context, reseller: str, accounts: list[str], *, actor: str) -> Assignment:
    """Make ``reseller`` the owner of each account (taking it from another reseller). All or nothing."""
    _reseller(ctx, reseller)
    if not accounts:
        raise InputError("Name at least one account to assign.", field="accounts")
    home = ctx.settings.accounts.home_root
    invalid = [a for a in accounts if not valid_account_name(a)]
    if invalid:
        raise InputError(f"Not an account name: {', '.join(repr(a) for a in invalid)} (lower-case letters, digits, "
                         "'.', '_' and '-').", field="accounts")
    unknown = [a for a in accounts if not account_exists(home, a)]
    if unknown:
        raise InputError(f"No such account under {home}: {', '.join(unknown)}.", field="accounts")
    now = ctx.now()
    changed, moved, unchanged = [], [], []
    for account in accounts:
        if ctx.store.account_owner(account) == reseller:
            unchanged.append(account)
            continue
        previous = ctx.store.assign_account(account, reseller, now)
        changed.append(account)
        if previous:
            moved.append((account, previous))
        detail = f"{account} → {reseller}" + (f" (was {previous})" if previous else "")
        ctx.store.add_audit(AuditEntry(at=now, actor=actor, action="account assign", detail=detail))
    return Assignment(reseller, tuple(changed), tuple(moved), tuple(unchanged))


def unassign_accounts(ctx: Context, reseller: str, accounts: list[str], *, actor: str) -> Assignment:
    """Take accounts from ``reseller``. Each must be owned by it. All or nothing."""
    _reseller(ctx, reseller)
    if not accounts:
        raise InputError("Name at least one account to take back.", field="accounts")
    foreign = [a for a in accounts if ctx.store.account_owner(a) != reseller]
    if foreign:
        raise InputError(f"{reseller} does not own: {', '.join(foreign)}.", field="accounts")
    now = ctx.now()
    for account in accounts:
        ctx.store.unassign_account(account)
        ctx.store.add_audit(AuditEntry(at=now, actor=actor, action="account unassign",
                                       detail=f"{account} from {reseller}"))
    return Assignment(reseller, tuple(accounts), (), ())


def accounts_of(ctx: Context, reseller: str) -> list[str]:
    return ctx.store.accounts_of(reseller)
