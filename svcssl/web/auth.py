"""Login, logout, the current user, and the role checks every other blueprint uses."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit
from typing import Callable

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from ..operations.tokens import new_cpsess
from ..operations.users import (LoginError, LoginThrottled, PanelUser, authenticate, end_session, session_user,
                                start_session)
from .context import context
from .forms import LoginForm

bp = Blueprint("auth", __name__)


def load_user() -> None:
    """The user of this request's session, checked against the server's record on every request."""
    g.user = None
    session_id = session.get("sid")
    if not session_id:
        return
    user = session_user(context(), session_id)
    if user is None or user.name != session.get("user"):
        session.clear()  # logged out, password changed, user deleted, or expired
        return
    g.user = user


def open_session(user: PanelUser, cpsess: str) -> None:
    """Log ``user`` in: a fresh cookie whose id the server keeps until logout (or expiry)."""
    session.clear()
    session["user"] = user.name
    session["sid"] = start_session(context(), user, current_app.permanent_session_lifetime)
    session["cpsess"] = cpsess  # the path prefix for this session's own API calls
    session.permanent = True


def current_user() -> PanelUser | None:
    return g.get("user")


def login_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if current_user() is None:
            return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
        return view(*args, **kwargs)

    return wrapped


def service_ssl_required(view: Callable) -> Callable:
    """root, or a reseller root has granted the service-SSL privilege; everyone else 403."""

    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user().may_manage_service_ssl:
            abort(403, "You do not have the privilege to manage service SSL certificates. Ask root to grant it.")
        return view(*args, **kwargs)

    return wrapped


def root_required(view: Callable) -> Callable:
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user().is_root:
            abort(403, "Only root can open this page.")
        return view(*args, **kwargs)

    return wrapped


def _safe_next(target: str | None) -> str:
    """Only a path on this site: no scheme or host, no control characters (browsers drop them), no backslash."""
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(c) < 32 or ord(c) == 127 for c in target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                user = authenticate(context(), form.username.data.strip(), form.password.data,
                                    request.remote_addr or "-")
            except LoginThrottled as exc:
                error, status = exc.message, 429
            except LoginError as exc:
                error, status = exc.message, 401
            else:
                open_session(user, new_cpsess())
                current_app.logger.info("login: %s from %s", user.name, request.remote_addr)
                return redirect(_safe_next(request.args.get("next")))
        else:
            status = 400
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/logout", methods=["POST"])
def logout():
    end_session(context(), session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))
