"""Manage Service SSL Certificates: the table, install, reset, details, rollback, apply, restart."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from ..errors import AccessDeniedError, InputError
from ..operations.autofill import CertificateChoice, autofill_certificate, load_key, use_certificate
from ..operations.browse import parse_reference
from ..operations.install import assess_info, install_certificate, install_warnings
from ..operations.assessment import Thresholds
from ..operations.inventory import service_details
from ..operations.reset import reset_certificate
from ..operations.rollback import rollback_certificate
from ..operations.users import actor_seen_by
from ..x509.encode import certificate_pem, chain_pem, key_pem
from .auth import current_user, root_required, service_ssl_required
from .context import context, service_statuses
from .forms import ConfirmForm, InstallForm
from .timeline import timeline_for

bp = Blueprint("service_ssl", __name__, url_prefix="/scripts2")

PAGE = "/manageservicecrts"
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----\s*|$)", re.S)
FIELD_OF_ERROR = {"crt": "crt", "key": "key", "cabundle": "cabundle", "password": "password", "service": "services",
                  "key_source": "key"}


def _actor() -> str:
    user = current_user()
    return f"{user.name} (web, {request.remote_addr or '-'})"


def _live_checks(statuses):
    return current_app.extensions["svcssl"].live.get(context(), statuses)


@bp.route(PAGE)
@service_ssl_required
def index():
    ctx = context()
    now = ctx.now()
    statuses = service_statuses()
    live = _live_checks(statuses)
    infos = [s.info for s in statuses if s.info]
    axis_start = min([i.not_before for i in infos] + [now - timedelta(days=30)])
    axis_end = max([i.not_after for i in infos] + [now + timedelta(days=30)])
    rows = []
    for status in statuses:
        info = status.info
        check = live.get(status.service.name)
        flags = list(status.flags)
        if check is not None and check.served_fingerprint and check.served_fingerprint != status.fingerprint:
            flags.append("served certificate differs from installed")
        elif check is not None and check.state == "unreachable":
            flags.append("not reachable for the live check")
        rows.append({
            "status": status,
            "info": info,
            "days": info.days_left(now) if info else None,
            "expiry": status.expiry,
            "flags": flags,
            "live": check,
            "timeline": timeline_for(info, now, axis_start, axis_end) if info else None,
        })
    return render_template("service_ssl/index.html", rows=rows, hostname=ctx.settings.server.hostname,
                           form=ConfirmForm(), thresholds=Thresholds.from_settings(ctx.settings))


def _service_choices():
    return [(s.name, s.description) for s in context().settings.enabled_services()]


def _read_field(form: InstallForm, text_field: str, file_field: str, limit: int) -> bytes | None:
    """An uploaded file wins over pasted text; None when both are empty."""
    upload = getattr(form, file_field).data
    if upload is not None and getattr(upload, "filename", ""):
        data = upload.stream.read(limit + 1)
        if data:
            return data
    text = getattr(form, text_field).data or ""
    return text.encode("utf-8") if text.strip() else None


def _apply_source(form: InstallForm, source: str) -> str:
    """Pre-fill the form with a service's certificate and CA bundle; its key goes by reference."""
    ctx = context()
    details = service_details(ctx, source)
    status = details.status
    if status.installed is None:
        raise InputError(f"The service '{source}' has no readable certificate to apply.", field="service")
    form.crt.data = certificate_pem(status.installed.leaf).decode()
    form.cabundle.data = chain_pem(status.installed.chain).decode()
    if status.active is not None and status.active.fingerprint == status.fingerprint:
        form.key_ref.data = status.fingerprint
    return source


def _render_install(form: InstallForm, status: int = 200, **extra):
    """The install form; a private key is never sent back to the browser (the key field is emptied)."""
    if form.key.data and form.key.data.strip():
        form.key.data = ""
        extra.setdefault("key_cleared", True)
    for field in (form.crt, form.cabundle):  # a key pasted into the wrong field is not echoed either
        if field.data and "PRIVATE KEY" in field.data:
            field.data = _PEM_KEY.sub("", field.data)
            extra.setdefault("key_cleared", True)
    for field in (form.key_ref, form.key_source):  # references only: anything else is dropped, not echoed
        if field.data and ("\n" in field.data or "PRIVATE" in field.data or len(field.data) > 512):
            field.data = ""
    if extra.get("apply_from") and extra["apply_from"] not in context().settings.services:
        extra["apply_from"] = None
    source = form.key_source.data or None
    extra.setdefault("key_source_origin", _key_source_origin(source) if source else None)
    if extra.get("choice") is not None:  # before installing: what the maintenance run would say about it
        assessment = assess_info(context(), extra["choice"].info)
        extra.setdefault("choice_assessment", assessment)
        extra.setdefault("choice_warnings", install_warnings(assessment))
    extra.setdefault("apply_from", None)
    return render_template("service_ssl/install.html", form=form, **extra), status


def _key_source_origin(reference: str) -> str | None:
    try:
        store, owner, _ = parse_reference(reference, "key")
    except InputError:
        return None
    return {"account": f"the SSL storage of account {owner}", "apache": "Apache's files",
            "service": "a service's files"}.get(store)


def _fill_from_choice(form: InstallForm, choice: CertificateChoice, *, keep_cabundle: bytes | None = None) -> None:
    form.crt.data = choice.certificate_pem
    if choice.cabundle_pem or keep_cabundle is None:
        form.cabundle.data = choice.cabundle_pem
    form.key_source.data = choice.key.reference if choice.key else ""
    form.key_ref.data = ""


def _field_error(form: InstallForm, exc: InputError) -> str | None:
    """Attach the message to its field; return it as the form's message when no field fits."""
    field = getattr(form, FIELD_OF_ERROR.get(exc.field or "", ""), None) if exc.field else None
    if field is not None:
        field.errors = list(field.errors) + [exc.message]
        return None
    return exc.message


@bp.route(PAGE + "/install", methods=["GET", "POST"])
@service_ssl_required
def install():
    ctx = context()
    form = InstallForm()
    form.services.choices = _service_choices()
    apply_from = None
    if request.method in ("GET", "HEAD"):
        form.services.data = [s for s in request.args.getlist("service") if s in dict(form.services.choices)]
        source = request.args.get("apply_from")
        if source:
            try:
                apply_from = _apply_source(form, ctx.service(source).name)
            except InputError as exc:
                flash(exc.message, "error")
                return redirect(url_for(".index"))
        use = request.args.get("use")
        if use:
            try:
                choice = use_certificate(ctx, current_user(), use)
            except AccessDeniedError as exc:
                abort(403, exc.message)
            except InputError as exc:
                return _render_install(form, 400, form_error=exc.message)
            _fill_from_choice(form, choice)
            return _render_install(form, choice=choice)
        return _render_install(form, apply_from=apply_from)

    if not form.validate_on_submit():
        return _render_install(form, 400, form_error="The form expired or was not sent from this page. Try again.")
    action = request.form.get("action") or "install"
    if action in ("browse_account", "browse_apache"):
        target = ".account" if action == "browse_account" else ".apache"
        return redirect(url_for("browse" + target, service=form.services.data or []), code=303)
    apply_from = request.form.get("apply_from") or None
    limit = ctx.settings.limits.max_input_bytes
    if action == "autofill":
        try:
            crt = _read_field(form, "crt", "crt_file", limit)
            cabundle = _read_field(form, "cabundle", "cabundle_file", limit)
            if crt is None:
                raise InputError("Paste a certificate or choose a certificate file, then Autofill.", field="crt")
            choice = autofill_certificate(ctx, current_user(), crt)
        except InputError as exc:
            return _render_install(form, 400, form_error=_field_error(form, exc))
        _fill_from_choice(form, choice, keep_cabundle=cabundle)
        return _render_install(form, choice=choice, autofilled=True)
    try:
        crt = _read_field(form, "crt", "crt_file", limit)
        key = _read_field(form, "key", "key_file", limit)
        cabundle = _read_field(form, "cabundle", "cabundle_file", limit)
        password = form.password.data.encode() if form.password.data else None
        if crt is None:
            raise InputError("Paste a certificate or choose a certificate file.", field="crt")
        if key is None and form.key_source.data:
            key = key_pem(load_key(ctx, current_user(), form.key_source.data))
        prepared, outcomes = install_certificate(ctx, form.services.data or [], crt, key, cabundle, password,
                                                 actor=_actor(), key_ref=form.key_ref.data or None)
    except InputError as exc:
        return _render_install(form, 400, apply_from=apply_from, form_error=_field_error(form, exc))
    current_app.extensions["svcssl"].live.forget()
    return render_template("service_ssl/results.html", outcomes=outcomes, warnings=prepared.warnings,
                           info=prepared.bundle.info, now=ctx.now(), restart_form=ConfirmForm(),
                           offer_restart=_panel_changed(outcomes))


def _panel_changed(outcomes) -> bool:
    services = context().settings.services
    return any(o.ok and services[o.service].kind == "panel" for o in outcomes)


@bp.route(PAGE + "/reset/<service>", methods=["GET", "POST"])
@service_ssl_required
def reset(service: str):
    ctx = context()
    try:
        svc = ctx.service(service)
    except InputError as exc:
        abort(404, exc.message)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form expired or was not sent from this page. Try again.")
        outcome = reset_certificate(ctx, svc.name, actor=_actor())
        current_app.extensions["svcssl"].live.forget()
        info = service_details(ctx, svc.name).status.info
        return render_template("service_ssl/results.html", outcomes=[outcome], warnings=(
            "The new certificate is self-signed: clients will not trust it.",), info=info, now=ctx.now(),
            restart_form=ConfirmForm(), offer_restart=_panel_changed([outcome]))
    return render_template("service_ssl/reset_confirm.html", service=svc, form=form,
                           hostname=ctx.settings.server.hostname)


@bp.route(PAGE + "/details/<service>")
@service_ssl_required
def details(service: str):
    ctx = context()
    try:
        data = service_details(ctx, service)
    except InputError as exc:
        abort(404, exc.message)
    status = data.status
    live = _live_checks([status]).get(status.service.name)
    targets = {t.id for t in ctx.store.rollback_targets(status.service.name)}
    actors = {h.id: actor_seen_by(h.actor, current_user()) for h in data.history}
    return render_template("service_ssl/details.html", details=data, status=status, info=status.info, actors=actors,
                           live=live, rollback_ids=targets, form=ConfirmForm(), now=ctx.now(),
                           chain_pem=chain_pem(status.installed.chain).decode() if status.installed else "",
                           cert_pem=certificate_pem(status.installed.leaf).decode() if status.installed else "")


@bp.route(PAGE + "/rollback/<service>", methods=["POST"])
@service_ssl_required
def rollback(service: str):
    ctx = context()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    fingerprint = request.form.get("fingerprint") or None
    try:
        outcome = rollback_certificate(ctx, service, actor=_actor(), fingerprint=fingerprint)
    except InputError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".details", service=service) if service in ctx.settings.services else url_for(".index"))
    current_app.extensions["svcssl"].live.forget()
    info = service_details(ctx, service).status.info
    return render_template("service_ssl/results.html", outcomes=[outcome], warnings=(), info=info, now=ctx.now(),
                           restart_form=ConfirmForm(), offer_restart=_panel_changed([outcome]))


@bp.route("/restart_panel", methods=["POST"])
@root_required
def restart_panel():
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    control = current_app.extensions["svcssl"].panel_control
    if control is None:
        flash("This panel is not running under `svcssl serve`; restart it the way you started it.", "error")
        return redirect(url_for(".index"))
    control.request_restart()
    return render_template("service_ssl/restarting.html")
