"""Resellers (root only): who has the service-SSL privilege."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import InputError
from ..operations.users import list_users, set_service_ssl_privilege
from .auth import current_user, root_required
from .context import context
from .forms import ConfirmForm

bp = Blueprint("resellers", __name__, url_prefix="/scripts")


@bp.route("/resellers")
@root_required
def index():
    resellers = [u for u in list_users(context()) if u.role == "reseller"]
    return render_template("resellers/index.html", resellers=resellers, form=ConfirmForm())


@bp.route("/resellers/<name>/<any(grant, revoke):action>", methods=["POST"])
@root_required
def change(name: str, action: str):
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    try:
        user = set_service_ssl_privilege(context(), name, action == "grant",
                                         actor=f"{current_user().name} (web, {request.remote_addr or '-'})")
    except InputError as exc:
        abort(404, exc.message)
    flash(f"{user.name} {'may now' if user.service_ssl else 'may no longer'} manage service SSL certificates.", "ok")
    return redirect(url_for(".index"))
