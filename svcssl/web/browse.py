"""Browse Certificates: Browse Account and Browse Apache, server-rendered; Use Certificate returns to the install form.

No JavaScript is needed: the install form's Browse buttons post the ticked services here (as a
redirect with only those in the query), each list links to the install form with ``use=<reference>``
and the same services, and the install form fills itself on the server. A private key never
reaches a page: the form gets a reference to it.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import AccessDeniedError, InputError
from ..operations.browse import account_certificates, index_age, indexed_at, list_accounts, list_vhosts, refresh_index
from ..operations.context import Context
from .auth import current_user, root_required, service_ssl_required
from .background import BackgroundJob, background_job
from .context import context
from .forms import ConfirmForm

bp = Blueprint("browse", __name__, url_prefix="/scripts2/manageservicecrts/browse")
log = logging.getLogger(__name__)
ACCOUNT_LIST_LIMIT = 200


def _refresh(ctx: Context, say) -> str | None:
    if refresh_index(ctx, lock_timeout=1.0) is None:
        return "Another refresh of the index was running; it brings the same result."
    return None


def refresher() -> BackgroundJob:
    return background_job("index refresh")


def _services() -> list[str]:
    names = context().settings.services
    return [s for s in request.args.getlist("service") if s in names][:16]


def _page_state() -> dict:
    ctx = context()
    age = index_age(ctx)
    return {"services": _services(), "indexed_at": indexed_at(ctx), "index_age": age, "refresher": refresher(),
            "refresh_form": ConfirmForm(), "user": current_user(), "now": ctx.now()}


@bp.route("/account")
@service_ssl_required
def account():
    ctx = context()
    user = current_user()
    name = (request.args.get("user") or "").strip().lower()
    state = _page_state()
    if not name:
        prefix = (request.args.get("q") or "").strip().lower()[:64]
        listing = list_accounts(ctx, user, prefix, ACCOUNT_LIST_LIMIT)
        return render_template("browse/accounts.html", listing=listing, prefix=prefix, **state)
    try:
        listing = account_certificates(ctx, user, name[:64])
    except InputError as exc:
        accounts = list_accounts(ctx, user, "", ACCOUNT_LIST_LIMIT)
        return render_template("browse/accounts.html", listing=accounts, prefix="", error=exc.message, **state), 404
    return render_template("browse/account.html", listing=listing, **state)


@bp.route("/apache")
@root_required
def apache():
    try:
        listing = list_vhosts(context(), current_user())
    except AccessDeniedError as exc:
        abort(403, exc.message)
    return render_template("browse/apache.html", listing=listing, skipped=listing.skipped, **_page_state())


@bp.route("/refresh", methods=["POST"])
@root_required
def refresh():
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if refresher().start(context(), _refresh):
        flash("The index is being refreshed in the background: reload this page in a moment.", "ok")
    else:
        flash("A refresh of the index is already running.", "ok")
    target = request.form.get("next") or ""
    if not target.startswith("/scripts2/manageservicecrts/") or "//" in target or "\\" in target:
        target = url_for(".account")
    return redirect(target, code=303)
