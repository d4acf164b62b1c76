"""The panel's users and API tokens: `svcssl user`, `svcssl reseller`, `svcssl token`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import click

from ..errors import InputError
from ..fsutil import read_bounded
from ..operations.context import Context
from ..operations.users import create_user, delete_user, list_users, set_password, set_service_ssl_privilege
from .command import CLI_ACTOR, EXIT_OK, Choice, Command, Group, Integer, print_table, runs


def _read_password(path: str) -> str:
    data = read_bounded(path, 4096, "password", "a password").rstrip(b"\r\n")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("The password file is not UTF-8 text.", field="password") from None


@click.group("user", cls=Group, metavar="ACTION", help="panel users (root and resellers)")
def user() -> None:
    pass


@user.command("add", help="add a user")
@click.argument("name")
@click.option("--role", type=Choice(("reseller", "root")), default="reseller")
@click.option("--password-file", required=True, metavar="FILE")
@runs
def cmd_user_add(ctx: Context, args: SimpleNamespace) -> int:
    added = create_user(ctx, args.name, args.role, _read_password(args.password_file), actor=CLI_ACTOR)
    print(f"Added {added.role} '{added.name}'.")
    return EXIT_OK


@user.command("passwd", help="set a user's password")
@click.argument("name")
@click.option("--password-file", required=True, metavar="FILE")
@runs
def cmd_user_passwd(ctx: Context, args: SimpleNamespace) -> int:
    set_password(ctx, args.name, _read_password(args.password_file), actor=CLI_ACTOR)
    print(f"Password of '{args.name}' changed; its open sessions end.")
    return EXIT_OK


@user.command("list", help="list the users")
@click.option("--json", is_flag=True, help="machine-readable output")
@runs
def cmd_user_list(ctx: Context, args: SimpleNamespace) -> int:
    users = list_users(ctx)
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role, "service_ssl": u.may_manage_service_ssl} for u in users],
                         indent=2))
        return EXIT_OK
    rows = [["USER", "ROLE", "SERVICE SSL"]]
    rows += [[u.name, u.role, "yes" if u.may_manage_service_ssl else "no"] for u in users]
    print_table(rows)
    return EXIT_OK


@user.command("delete", help="delete a reseller (revokes its API tokens, ends its sessions)")
@click.argument("name")
@runs
def cmd_user_delete(ctx: Context, args: SimpleNamespace) -> int:
    delete_user(ctx, args.name, actor=CLI_ACTOR)
    print(f"Deleted user '{args.name}': its API tokens are revoked and its sessions ended.")
    return EXIT_OK


def cmd_reseller(ctx: Context, args: SimpleNamespace) -> int:
    changed = set_service_ssl_privilege(ctx, args.name, args.action == "grant", actor=CLI_ACTOR)
    state = "may now" if changed.service_ssl else "may no longer"
    print(f"Reseller '{changed.name}' {state} manage service SSL certificates.")
    return EXIT_OK


def cmd_reseller_accounts(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.accounts import assign_accounts, split_account_names, unassign_accounts

    names = split_account_names(" ".join(args.accounts))
    if args.action == "assign":
        result = assign_accounts(ctx, args.name, names, actor=CLI_ACTOR)
        for account, previous in result.moved_from:
            print(f"Account '{account}' moved from reseller '{previous}'.")
        print(f"Reseller '{result.reseller}' now owns: {', '.join(result.changed + result.unchanged)}.")
    else:
        result = unassign_accounts(ctx, args.name, names, actor=CLI_ACTOR)
        print(f"Reseller '{result.reseller}' no longer owns: {', '.join(result.changed)}.")
    return EXIT_OK


@click.group("reseller", cls=Group, metavar="ACTION", help="grant or revoke a reseller's service-SSL privilege")
def reseller() -> None:
    pass


for _action in ("grant", "revoke"):
    reseller.add_command(Command(_action, help=f"{_action} the service-SSL privilege",
                                 params=[click.Argument(["name"])], callback=runs(cmd_reseller, action=_action)))
for _action, _text in (("assign", "give hosting accounts to a reseller (it browses only its own)"),
                       ("unassign", "take hosting accounts back from a reseller")):
    reseller.add_command(Command(_action, help=_text,
                                 params=[click.Argument(["name"]),
                                         click.Argument(["accounts"], nargs=-1, required=True, metavar="USER")],
                                 callback=runs(cmd_reseller_accounts, action=_action)))


@click.group("token", cls=Group, metavar="ACTION", help="API tokens for the WHM-compatible JSON API")
def token() -> None:
    pass


@token.command("create", help="create a token (printed once, alone on the last line)")
@click.argument("user")
@click.option("--name")
@click.option("--expires-days", type=Integer())
@click.option("--metrics-only", is_flag=True,
              help="a token that reads /metrics (Authorization: Bearer TOKEN) and nothing else; the API refuses it")
@runs
def cmd_token_create(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.tokens import create_token

    info, secret = create_token(ctx, args.user, args.name, args.expires_days, actor=CLI_ACTOR,
                                metrics_only=args.metrics_only)
    expiry = f", expires {info.expires_at:%Y-%m-%d}" if info.expires_at else ""
    what = "Metrics token (for /metrics only)" if args.metrics_only else "API token"
    print(f"{what} “{info.name}” for {info.user}{expiry}. It is shown only now:")
    print(secret)
    return EXIT_OK


@token.command("list", help="list tokens")
@click.option("--json", is_flag=True)
@runs
def cmd_token_list(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.tokens import list_tokens

    tokens = list_tokens(ctx)
    now = ctx.now()
    if args.json:
        print(json.dumps([{"name": t.name, "user": t.user, "created_at": int(t.created_at.timestamp()),
                           "expires_at": int(t.expires_at.timestamp()) if t.expires_at else None,
                           "last_used_at": int(t.last_used_at.timestamp()) if t.last_used_at else None,
                           "state": t.state(now), "kind": t.kind} for t in tokens], indent=2))
        return EXIT_OK
    rows = [["NAME", "USER", "CREATED", "EXPIRES", "STATE", "KIND"]]
    rows += [[t.name, t.user, f"{t.created_at:%Y-%m-%d}", f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
              t.state(now), t.kind] for t in tokens]
    print_table(rows)
    return EXIT_OK


@token.command("revoke", help="revoke a token")
@click.argument("name")
@runs
def cmd_token_revoke(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.tokens import revoke_token

    info = revoke_token(ctx, args.name, actor=CLI_ACTOR)
    print(f"API token “{info.name}” of {info.user} is revoked.")
    return EXIT_OK


GROUPS = (token, user, reseller)
