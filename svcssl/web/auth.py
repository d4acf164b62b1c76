"""Login, logout, the current user, and the role checks every other blueprint uses."""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, make_response, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import InputError
from ..operations.tokens import WrongTokenKind, authenticate_token, new_cpsess
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


BOUNCE_PAGE = ('<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0">'
               '<title>svcssl</title><p><a href="">Continue to the panel</a></p>')


def bounce_cross_site_navigation():
    """A link from another site: answer with a page that reloads itself, from this site.

    The session cookie is SameSite=Strict, so a browser leaves it out of a navigation that starts on
    another site; the page would look signed out, and the login form would set a fresh cookie over
    the real one. The reload is a same-site navigation: the cookie comes with it. Nothing is set here.
    """
    if (request.method == "GET" and request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
            and request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
            and current_app.config["SESSION_COOKIE_NAME"] not in request.cookies):
        return current_app.response_class(BOUNCE_PAGE, mimetype="text/html")
    return None


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


DEVICE_COOKIE = "__Host-svcssl_device"  # OWASP's device cookie: set at a successful login, signed
DEVICE_LIFETIME = 180 * 24 * 3600


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="svcssl known device")


def _known_device(name: str) -> bool:
    """Does this browser show the signed cookie of a past successful login as ``name``?"""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return False
    try:
        return _device_signer().loads(value, max_age=DEVICE_LIFETIME).get("user") == name
    except (BadSignature, AttributeError):
        return False


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    status = 200
    retry_after = None
    if request.method == "POST":
        if form.validate_on_submit():
            name = form.username.data.strip()
            try:
                user = authenticate(context(), name, form.password.data, request.remote_addr or "-",
                                    known_device=_known_device(name))
            except LoginThrottled as exc:
                error, status, retry_after = exc.message, 429, exc.retry_after
            except LoginError as exc:
                error, status = exc.message, 401
            else:
                open_session(user, new_cpsess())
                current_app.logger.info("login: %s from %s", user.name, request.remote_addr)
                response = redirect(_safe_next(request.args.get("next")))
                response.set_cookie(DEVICE_COOKIE, _device_signer().dumps({"user": user.name}), max_age=DEVICE_LIFETIME,
                                    path="/", secure=True, httponly=True, samesite="Strict")
                return response
        else:
            status = 400
    response = make_response(render_template("auth/login.html", form=form, error=error), status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.route("/logout", methods=["POST"])
def logout():
    end_session(context(), session.get("sid"))
    session.clear()
    return redirect(url_for("auth.login"))


# --- the JSON API's callers ---------------------------------------------------------------------


class ApiFailure(Exception):
    """A WHM API answer with ``result: 0`` and this reason: HTTP 200 for a refused call, or another
    status (401, 403, 429) for its credentials."""

    def __init__(self, reason: str, status: int = 200):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class Caller:
    user: PanelUser
    actor: str  # for the audit log: who, and through which credential


CROSS_SITE_REFUSED = ("This API call came from another site (its Origin or Sec-Fetch-Site says so) and carries a "
                      "password or a browser session; such calls are refused. Scripts authenticate with "
                      "“Authorization: whm USER:TOKEN”.")


def is_cross_site() -> bool:
    """True when a browser says this request was made by another site's page (Fetch Metadata, else Origin)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not sent by a browser's cross-site fetch: scripts, curl
    parts = urlsplit(origin.strip())
    return parts.scheme != "https" or parts.netloc.lower() != request.host.lower()


def _refuse_cross_site() -> None:
    if is_cross_site():
        raise ApiFailure(CROSS_SITE_REFUSED, 403)


def authenticate_api_call(cpsess: str | None) -> Caller:
    """Who calls the JSON API: an API token, HTTP Basic, or this browser session under its /cpsess prefix."""
    ctx = context()
    header = request.headers.get("Authorization", "")
    remote = request.remote_addr or "-"
    if header:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "whm":
            user, sep, token = credentials.partition(":")
            if not sep or not user or not token:
                raise ApiFailure("The Authorization header must be “whm USER:TOKEN”.", 401)
            try:
                panel_user, info = authenticate_token(ctx, user, token)
            except WrongTokenKind as exc:  # a metrics-only token: valid, but not for the API
                raise ApiFailure(exc.message, 403) from None
            except (LoginError, InputError) as exc:
                raise ApiFailure(exc.message, 401) from None
            return Caller(panel_user, f"{panel_user.name} (API token {info.name}, {remote})")
        if scheme.lower() == "basic":
            _refuse_cross_site()  # a browser may replay cached Basic credentials for another site's page
            try:
                user, sep, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise ApiFailure("The Basic Authorization header is not valid base64 of USER:PASSWORD.", 401) from None
            if not sep:
                raise ApiFailure("The Basic Authorization header must hold USER:PASSWORD.", 401)
            try:
                panel_user = authenticate(ctx, user, password, remote)
            except LoginThrottled as exc:
                raise ApiFailure(exc.message, 429) from None
            except LoginError as exc:
                raise ApiFailure(exc.message, 401) from None
            return Caller(panel_user, f"{panel_user.name} (API, password, {remote})")
        raise ApiFailure("Unsupported Authorization scheme: use “whm USER:TOKEN” or HTTP Basic.", 401)
    user = g.get("user")
    if user is not None:
        _refuse_cross_site()
        if cpsess is None or cpsess != session.get("cpsess"):
            raise ApiFailure("A browser session calls the API under its own /cpsess… path prefix.", 401)
        return Caller(user, f"{user.name} (web session, {remote})")
    raise ApiFailure("Authentication required: send “Authorization: whm USER:TOKEN” or HTTP Basic.", 401)
