"""create_app(settings): the Flask application (no side effects beyond building it and its state directory)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Protocol

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from .operations.assessment import VERDICT_LABELS, Thresholds, needs_a_person
from .deploy.preflight import MARGIN as STATE_MARGIN
from .errors import DamagedDatabaseError, FileSystemError
from .filesystem import from_os_error, write_problem
from .operations.context import utc_now
from . import timewords
from .settings import Settings
from .web import api, audit, auth, browse, maintenance, metrics, resellers, service_ssl, tokens, users
from .web.auth import current_user, login_required
from .web.context import StorePool, context, service_statuses
from .web.livecache import LiveCheckCache

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class PanelControl(Protocol):
    def request_restart(self) -> None: ...


@dataclass
class PanelState:
    settings: Settings
    stores: StorePool
    clock: Callable[[], datetime]
    live: LiveCheckCache
    panel_control: PanelControl | None = None
    extra: dict = field(default_factory=dict)


BANNER_CODES = ("unreadable", "expired", "revoked", "expiring", "expires-soon", "untrusted", "served-chain", "acme-root-untrusted")


def resource_dir(name: str) -> Path:
    """templates/ or static/: inside the package when installed from a wheel, else the checkout's top level."""
    packaged = PACKAGE / name
    return packaged if packaged.is_dir() else ROOT / name


def _banner() -> list[dict]:
    """The WHM Home warning for root on every page: the services whose assessment says they are expired,
    revoked, unreadable or expiring — the same assessment the table, Details, the CLI and the run show."""
    if "svcssl_banner" in g:
        return g.svcssl_banner
    warnings = []
    user = current_user()
    if user is not None and user.may_manage_service_ssl:  # root, and resellers root granted the page
        ctx = context()
        now = ctx.now()
        for status in service_statuses():
            assessment = status.assessment
            reason = next((r for r in assessment.reasons if r.code in BANNER_CODES), None)
            if reason is None or (reason.code == "expiring" and status.info is not None and not needs_a_person(
                    status.info, assessment, now, Thresholds.from_settings(ctx.settings))):
                continue  # the maintenance run renews it by itself, still on time
            name = status.service.name
            info = status.info
            if info is None:
                text = f"The service “{name}” has no usable certificate. {reason.message}"
            elif reason.code == "expired":
                text = f"The SSL certificate of “{name}” {timewords.expiry(info.not_after, now)}, on {timewords.day(info.not_after)}."
            elif reason.code == "revoked":
                text = f"The SSL certificate of “{name}” is revoked. {reason.message}"
            elif reason.code in ("untrusted", "served-chain", "acme-root-untrusted"):
                text = f"Clients do not trust the SSL certificate of “{name}”. {reason.message}"
            else:
                text = (f"The SSL certificate of “{name}” {timewords.expiry(info.not_after, now)} "
                        f"({timewords.moment(info.not_after)}). {reason.message}")
            if assessment.held_by:
                text += f" svcssl leaves it alone: {assessment.held_by} is present."
            level = {"expired": "expired", "unreadable": "expired", "revoked": "expired",
                     "untrusted": "expired"}.get(reason.code, status.expiry)
            warnings.append({"service": name, "level": level if level != "ok" else "expiring", "text": text})
    g.svcssl_banner = warnings
    return warnings


def _at_dots(name: str) -> Markup:
    """A DNS name that may break after each dot, never inside a label (a label's hyphens do not break it)."""
    return Markup(".<wbr>").join(Markup('<span class="lbl">{}</span>').format(label) for label in name.split("."))


def for_the_panel(message: str) -> str:
    """A disk's sentence said for a page: "try again", not "run the command again"."""
    return message.replace("run the command again", "try again")


def _read_only_reason() -> str | None:
    """Why no change can be made now (the state directory's file system is full or read-only), for the banner."""
    if "svcssl_read_only" not in g:
        problem = write_problem(context().settings.server.state_dir, STATE_MARGIN)
        g.svcssl_read_only = for_the_panel(problem.message) if problem else None
    return g.svcssl_read_only


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now,
               panel_control: PanelControl | None = None, live_check_ttl: float = 30.0) -> Flask:
    app = Flask("svcssl", template_folder=str(resource_dir("templates")), static_folder=str(resource_dir("static")))
    stores = StorePool(settings.server.state_dir, settings.server.state_snapshots)
    app.config.update(
        SECRET_KEY=stores.get().session_secret(),
        # __Host-: Secure, Path=/ and no Domain, so a sibling host cannot plant or overwrite it
        SESSION_COOKIE_NAME="__Host-svcssl_session",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",  # never sent with another site's requests, navigations included
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        # Bodies up to 16 MiB are read so an oversized field gets its own message (400);
        # anything larger is refused before it is read (413).
        MAX_CONTENT_LENGTH=max(16 * 1024 * 1024, 3 * settings.limits.max_input_bytes + 256 * 1024),
        MAX_FORM_MEMORY_SIZE=max(16 * 1024 * 1024, 3 * settings.limits.max_input_bytes + 256 * 1024),
        PREFERRED_URL_SCHEME="https",
    )
    app.extensions["svcssl"] = PanelState(settings, stores, clock, LiveCheckCache(ttl=live_check_ttl), panel_control)
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # token and Basic calls carry no cookie; browser sessions need the /cpsess… prefix
    for blueprint in (auth.bp, service_ssl.bp, browse.bp, maintenance.bp, resellers.bp, users.bp, tokens.bp, audit.bp,
                      api.bp, metrics.bp):
        app.register_blueprint(blueprint)
    app.before_request(auth.bounce_cross_site_navigation)
    app.before_request(auth.load_user)

    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":  # pages and API answers (some carry private keys) are never cached
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_template_filter(timewords.moment, "moment")
    app.add_template_filter(timewords.day, "day")
    app.add_template_filter(timewords.iso, "iso")
    app.add_template_filter(_at_dots, "at_dots")

    @app.context_processor
    def page_globals():
        return {"user": current_user(), "banner": _banner, "read_only_reason": _read_only_reason,
                "expiry_words": timewords.expiry, "relative_words": timewords.relative,
                "now": app.extensions["svcssl"].clock(), "verdict_labels": VERDICT_LABELS}

    @app.route("/")
    @login_required
    def home():
        if current_user().may_manage_service_ssl:
            return redirect(url_for("service_ssl.index"))
        return render_template("home.html")

    def error_page(status: int, message: str):
        if "/json-api/" in request.path:  # API callers get the JSON envelope, never an HTML page
            function = request.path.rsplit("/", 1)[-1]
            return jsonify(api.envelope(function, False, message)), status
        return render_template("errors/error.html", status=status, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return error_page(400, "The form expired or was not sent from this page (CSRF check failed). "
                               "Go back, reload the page and try again.")

    @app.errorhandler(413)
    def too_large(exc):
        limit = settings.limits.max_input_bytes
        return error_page(413, f"The request is too large (too big, or too many parts): a certificate, key or "
                               f"CA bundle may be at most {limit:,} bytes each.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_page(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(FileSystemError)
    def disk_refused(exc: FileSystemError):  # refused before writing (or undone): nothing changed
        return error_page(503, for_the_panel(exc.message))

    @app.errorhandler(OSError)
    def os_error(exc: OSError):  # a write the disk refused midway (a lock, a bundle file): said in words
        said = from_os_error(exc, exc.filename or settings.server.state_dir)
        if said is not None:
            return error_page(503, for_the_panel(said.message))
        return unexpected(exc)

    @app.errorhandler(DamagedDatabaseError)
    def database_damaged(exc: DamagedDatabaseError):
        log.error("%s", exc.message)
        return error_page(503, exc.message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_page(500, "Something went wrong inside svcssl; the error has been logged. Nothing was changed "
                               "unless a result page said so.")

    return app
