"""API tokens (root only): create (shown once), list, revoke."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import InputError
from ..operations.tokens import create_token, list_tokens, revoke_token
from ..operations.users import list_users
from .auth import current_user, root_required
from .context import context
from .forms import ConfirmForm, TokenForm
from .results import recall_once, remember

SECRET_SHOWN_FOR = 600.0  # seconds the new token waits for the redirect's GET; it is shown once, then forgotten

bp = Blueprint("tokens", __name__, url_prefix="/scripts")


def _actor() -> str:
    return f"{current_user().name} (web, {request.remote_addr or '-'})"


def _page(form: TokenForm, status: int = 200, created=None, secret: str | None = None):
    ctx = context()
    return render_template("tokens/index.html", tokens=list_tokens(ctx), form=form, confirm=ConfirmForm(),
                           created=created, secret=secret, now=ctx.now()), status


def _form() -> TokenForm:
    form = TokenForm()
    form.user.choices = [(u.name, f"{u.name} ({u.role})") for u in list_users(context())]
    return form


@bp.route("/tokens", methods=["GET", "POST"])
@root_required
def index():
    form = _form()
    if request.method in ("GET", "HEAD"):
        created = recall_once(request.args.get("created"))
        if created is not None:
            return _page(form, 200, created["info"], created["secret"])
        return _page(form)
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        info, secret = create_token(context(), form.user.data, (form.name.data or "").strip() or None,
                                    int(form.expires_days.data) if form.expires_days.data else None, actor=_actor(),
                                    metrics_only=bool(form.metrics_only.data))
    except InputError as exc:
        getattr(form, exc.field if exc.field in ("name", "expires_days", "user") else "name").errors.append(exc.message)
        return _page(form, 400)
    result_id = remember({"info": info, "secret": secret}, ttl=SECRET_SHOWN_FOR)
    return redirect(url_for(".index", created=result_id), code=303)


@bp.route("/tokens/<name>/revoke", methods=["GET", "POST"])
@root_required
def revoke(name: str):
    if request.method in ("GET", "HEAD"):  # what will change, and a POST to confirm it
        ctx = context()
        token = next((t for t in list_tokens(ctx) if t.name == name), None)
        if token is None:
            abort(404, f"There is no API token named “{name}”.")
        return render_template("tokens/revoke_confirm.html", token=token, form=ConfirmForm(), now=ctx.now())
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    try:
        revoke_token(context(), name, actor=_actor())
    except InputError as exc:
        abort(404, exc.message)
    flash(f"The API token “{name}” is revoked.", "ok")
    return redirect(url_for(".index"))
