"""Users (root only): list the panel's users, create a reseller, set a password, delete a user."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import InputError, excerpt
from ..operations.tokens import list_tokens
from ..operations.users import create_user, delete_user, find_user, list_users, set_password
from .auth import current_user, root_required
from .context import context
from .forms import ConfirmForm, NewUserForm, PasswordForm

bp = Blueprint("users", __name__, url_prefix="/scripts")


def _actor() -> str:
    return f"{current_user().name} (web, {request.remote_addr or '-'})"


def _page(new_form: NewUserForm | None = None, status: int = 200, **extra):
    return render_template("users/index.html", users=list_users(context()), new_form=new_form or NewUserForm(),
                           confirm=ConfirmForm(), **extra), status


def _passwords_match(form) -> bool:
    if form.password.data != form.confirm.data:
        form.confirm.errors = list(form.confirm.errors) + ["The two passwords differ."]
        return False
    return True


def _user_or_404(name: str):
    user = find_user(context(), name)
    if user is None:
        abort(404, f"There is no user named \'{excerpt(name)}\'.")
    return user


@bp.route("/users", methods=["GET", "POST"])
@root_required
def index():
    form = NewUserForm()
    if request.method in ("GET", "HEAD"):
        return _page(form)
    if not form.validate_on_submit() or not _passwords_match(form):
        return _page(form, 400)
    try:
        user = create_user(context(), form.username.data.strip(), "reseller", form.password.data, actor=_actor())
    except InputError as exc:
        getattr(form, "password" if exc.field == "password" else "username").errors.append(exc.message)
        return _page(form, 400)
    flash(f"Reseller \u201c{user.name}\u201d created. Grant it the service-SSL privilege on the Resellers page "
          "if it should manage service certificates.", "ok")
    return redirect(url_for(".index"), code=303)


@bp.route("/users/<name>/password", methods=["GET", "POST"])
@root_required
def password(name: str):
    user = _user_or_404(name)
    form = PasswordForm()
    if request.method == "POST":
        if form.validate_on_submit() and _passwords_match(form):
            try:
                set_password(context(), user.name, form.password.data, actor=_actor())
            except InputError as exc:
                form.password.errors.append(exc.message)
            else:
                if user.name == current_user().name:  # your own sessions end too, this one included
                    flash("Your password was changed: log in with the new one.", "ok")
                    return redirect(url_for("auth.login"), code=303)
                flash(f"The password of \u201c{user.name}\u201d was changed; its open sessions have ended.", "ok")
                return redirect(url_for(".index"), code=303)
        return render_template("users/password.html", target=user, form=form), 400
    return render_template("users/password.html", target=user, form=form)


@bp.route("/users/<name>/delete", methods=["GET", "POST"])
@root_required
def delete(name: str):
    user = _user_or_404(name)
    if user.is_root:
        abort(400, "root cannot be deleted.")
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form expired or was not sent from this page. Try again.")
        delete_user(context(), user.name, actor=_actor())
        flash(f"User \u201c{user.name}\u201d deleted: its API tokens are revoked and its sessions ended.", "ok")
        return redirect(url_for(".index"), code=303)
    tokens = [t for t in list_tokens(context()) if t.user == user.name and t.state(context().now()) == "active"]
    return render_template("users/delete.html", target=user, form=form, tokens=tokens)
