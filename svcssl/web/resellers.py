"""Resellers (root only): who has the service-SSL privilege, and which hosting accounts each owns."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import InputError, excerpt
from ..operations.accounts import accounts_of, assign_accounts, split_account_names, unassign_accounts
from ..operations.users import find_user, list_users, set_service_ssl_privilege
from .auth import current_user, root_required
from .context import context
from .forms import ConfirmForm

bp = Blueprint("resellers", __name__, url_prefix="/scripts")


def _page(status: int = 200, **extra):
    ctx = context()
    resellers = [u for u in list_users(ctx) if u.role == "reseller"]
    owned = {r.name: accounts_of(ctx, r.name) for r in resellers}
    return render_template("resellers/index.html", resellers=resellers, owned=owned, form=ConfirmForm(),
                           home_root=ctx.settings.accounts.home_root, **extra), status


def _actor() -> str:
    return f"{current_user().name} (web, {request.remote_addr or '-'})"


@bp.route("/resellers")
@root_required
def index():
    return _page()


@bp.route("/resellers/<name>/<any(grant, revoke):action>", methods=["POST"])
@root_required
def change(name: str, action: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    try:
        user = set_service_ssl_privilege(context(), name, action == "grant", actor=_actor())
    except InputError as exc:
        abort(404, exc.message)
    flash(f"{user.name} {'may now' if user.service_ssl else 'may no longer'} manage service SSL certificates.", "ok")
    return redirect(url_for(".index"))


@bp.route("/resellers/<name>/accounts/<any(assign, unassign):action>", methods=["POST"])
@root_required
def accounts(name: str, action: str):
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    ctx = context()
    reseller = find_user(ctx, name)
    if reseller is None or reseller.is_root:
        abort(404, f"There is no reseller named '{excerpt(name)}'.")
    names = split_account_names(request.form.get("accounts", "")[:65536])
    try:
        if action == "assign":
            result = assign_accounts(ctx, name, names, actor=_actor())
        else:
            result = unassign_accounts(ctx, name, names, actor=_actor())
    except InputError as exc:
        return _page(400, error=exc.message, error_for=name, typed=request.form.get("accounts", "")[:1000])
    if action == "assign":
        moved = "".join(f" {a} was {p}'s." for a, p in result.moved_from)
        flash(f"{name} now owns {', '.join(result.changed + result.unchanged)}.{moved}", "ok")
    else:
        flash(f"{name} no longer owns {', '.join(result.changed)}.", "ok")
    return redirect(url_for(".index"), code=303)
