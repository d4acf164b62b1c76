"""Manage Service SSL Certificates: the table, install, reset, details, rollback, apply, restart."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from ..errors import InputError
from ..operations.install import install_certificate
from ..operations.inventory import expiry_class, service_details
from ..operations.reset import reset_certificate
from ..operations.rollback import rollback_certificate
from ..x509.encode import certificate_pem, chain_pem
from .auth import current_user, service_ssl_required
from .context import context, service_statuses
from .forms import ConfirmForm, InstallForm
from .timeline import timeline_for

bp = Blueprint("service_ssl", __name__, url_prefix="/scripts2")

PAGE = "/manageservicecrts"
FIELD_OF_ERROR = {"crt": "crt", "key": "key", "cabundle": "cabundle", "password": "password", "service": "services"}


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
        if check is not None and check.state == "differs":
            flags.append("served certificate differs from installed")
        elif check is not None and check.state == "unreachable":
            flags.append("not reachable for the live check")
        rows.append({
            "status": status,
            "info": info,
            "days": info.days_left(now) if info else None,
            "expiry": expiry_class(info, now) if info else "expired",
            "flags": flags,
            "live": check,
            "timeline": timeline_for(info, now, axis_start, axis_end) if info else None,
        })
    return render_template("service_ssl/index.html", rows=rows, hostname=ctx.settings.server.hostname,
                           form=ConfirmForm())


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


@bp.route(PAGE + "/install", methods=["GET", "POST"])
@service_ssl_required
def install():
    ctx = context()
    form = InstallForm()
    form.services.choices = _service_choices()
    apply_from = None
    if request.method == "GET":
        form.services.data = [s for s in request.args.getlist("service") if s in dict(form.services.choices)]
        source = request.args.get("apply_from")
        if source:
            try:
                apply_from = _apply_source(form, ctx.service(source).name)
            except InputError as exc:
                flash(exc.message, "error")
                return redirect(url_for(".index"))
        return render_template("service_ssl/install.html", form=form, apply_from=apply_from)

    if not form.validate_on_submit():
        return render_template("service_ssl/install.html", form=form, apply_from=None,
                               form_error="The form expired or was not sent from this page. Try again."), 400
    apply_from = request.form.get("apply_from") or None
    limit = ctx.settings.limits.max_input_bytes
    try:
        crt = _read_field(form, "crt", "crt_file", limit)
        key = _read_field(form, "key", "key_file", limit)
        cabundle = _read_field(form, "cabundle", "cabundle_file", limit)
        password = form.password.data.encode() if form.password.data else None
        if crt is None:
            raise InputError("Paste a certificate or choose a certificate file.", field="crt")
        prepared, outcomes = install_certificate(ctx, form.services.data or [], crt, key, cabundle, password,
                                                 actor=_actor(), key_ref=form.key_ref.data or None)
    except InputError as exc:
        field = getattr(form, FIELD_OF_ERROR.get(exc.field or "", ""), None) if exc.field else None
        if field is not None:
            field.errors = list(field.errors) + [exc.message]
            form_error = None
        else:
            form_error = exc.message
        return render_template("service_ssl/install.html", form=form, apply_from=apply_from,
                               form_error=form_error), 400
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
    return render_template("service_ssl/details.html", details=data, status=status, info=status.info,
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
@service_ssl_required
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
