"""Manage Service SSL Certificates: the table, install, reset, details, rollback, apply, restart."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from ..errors import AccessDeniedError, InputError, excerpt
from ..operations.autofill import CertificateChoice, autofill_certificate, use_certificate
from .. import timewords
from ..operations.browse import parse_reference, refresh_index
from ..operations.csr import create_csr, split_domains
from ..operations.dane import recorded_dane, start_rollover
from ..operations.install import KeyReference, assess_choice, install_certificate, install_warnings
from ..operations.assessment import FLAG_LABELS, Thresholds
from ..operations.inventory import SERVED_CHAIN, service_details
from ..operations.reset import reset_certificate
from ..operations.rollback import rollback_certificate
from ..operations.users import actor_seen_by
from ..x509.encode import certificate_pem, chain_pem
from ..settings import KEY_TYPES, ServiceSettings
from ..x509.generate import key_type_label
from .auth import current_user, login_required, root_required, service_ssl_required
from .context import context, service_statuses
from .forms import ConfirmForm, CsrForm, InstallForm
from .results import recall, remember
from .timeline import timeline_for

bp = Blueprint("service_ssl", __name__, url_prefix="/scripts2")

PAGE = "/manageservicecrts"
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----\s*|$)", re.S)
FIELD_OF_ERROR = {"crt": "crt", "key": "key", "cabundle": "cabundle", "password": "password", "service": "services",
                  "key_source": "key", "allow_untrusted": "allow_untrusted",
                  "allow_dane_mismatch": "allow_dane_mismatch"}


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
        elif check is not None and check.state == SERVED_CHAIN and "served-chain" not in status.assessment.codes:
            flags.append(FLAG_LABELS["served-chain"])  # found by this very probe: the assessment has it next time
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
                           form=ConfirmForm(), thresholds=Thresholds.from_settings(ctx.settings),
                           hostname_problem=hostname_problem(ctx))


def hostname_problem(ctx):
    """The last maintenance run's word on the hostname, when it cannot get a certificate (with the fix)."""
    runs = ctx.store.runs(1)
    if not runs:
        return None
    found = runs[0].report.get("hostname") or {}
    if not found.get("blocker") or found.get("name") != ctx.settings.server.hostname.lower().rstrip("."):
        return None
    return {"at": runs[0].started_at, "blocker": found["blocker"], "fix": found.get("fix")}


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


def _apply_source(form: InstallForm, source: ServiceSettings) -> str:
    """Pre-fill the form with a service's certificate and CA bundle; its key goes by reference."""
    ctx = context()
    details = service_details(ctx, source)
    status = details.status
    if status.installed is None:
        raise InputError(f"The service '{source.name}' has no readable certificate to apply.", field="service")
    if status.info is not None and status.info.not_after <= ctx.now():
        raise InputError(f"The certificate of “{source.name}” {timewords.expiry(status.info.not_after, ctx.now())}: "
                         "it cannot be applied to another service. Install a current certificate instead.",
                         field="service")
    form.crt.data = certificate_pem(status.installed.leaf).decode()
    form.cabundle.data = chain_pem(status.installed.chain).decode()
    if status.active is not None and status.active.fingerprint == status.fingerprint:
        form.key_ref.data = status.fingerprint
    return source.name


APPLY_INDEX_AGE = 10.0  # seconds: Apply looks again (a stat per file) when the index is older than this


def _apply_key_note(form: InstallForm, source: str) -> tuple[str | None, str | None]:
    """When the source's key is not in svcssl's store (its files were changed outside svcssl): look for it on
    the server by its public key, and say what happened — (note, problem)."""
    if form.key_ref.data:
        return None, None
    changed = f"The files of “{source}” were changed outside svcssl, so svcssl's store does not hold this certificate's key."
    def look() -> object | None:
        try:
            return autofill_certificate(context(), current_user(), (form.crt.data or "").encode())
        except (InputError, AccessDeniedError):
            return None

    choice = look()
    if (choice is None or choice.key is None) and refresh_index(context(), if_older_than=APPLY_INDEX_AGE,
                                                                 lock_timeout=5.0) is not None:
        choice = look()  # the key may sit in the service's own key file, written since the index last looked
    if choice is not None and choice.key is not None:
        form.key_source.data = choice.key.reference
        return f"{changed} The matching key was found in {choice.key.origin} and is used by reference.", None
    return None, (f"{changed} No private key on this server that you may use matches it. Paste the private key of "
                  f"this certificate below (or upload it), or install the certificate with its key on “{source}” "
                  "first, then apply it.")


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
        choice = extra["choice"]
        assessment = assess_choice(context(), choice.info, choice.certificate_pem, choice.cabundle_pem)
        extra.setdefault("choice_assessment", assessment)
        extra.setdefault("choice_warnings", install_warnings(assessment))
    extra.setdefault("apply_from", None)
    if extra.get("chosen") and (len(extra["chosen"]) > 512 or "\n" in extra["chosen"]):
        extra["chosen"] = None
    return render_template("service_ssl/install.html", form=form, error_summary=_error_summary(form, extra), **extra), status


FIELD_IDS = {"services": "services-first", "crt": "crt", "password": "password", "key": "key", "cabundle": "cabundle"}


def _error_summary(form: InstallForm, extra: dict) -> list[tuple[str | None, str]]:
    """Every message of this form: (id of the field to jump to, or None; message) for the summary at the top."""
    items: list[tuple[str | None, str]] = []
    if extra.get("form_error"):
        items.append((None, extra["form_error"]))
    for name, field_id in FIELD_IDS.items():
        for message in getattr(form, name).errors:
            items.append((field_id, message))
    return items


def _key_source_origin(reference: str) -> str | None:
    try:
        store, owner, _ = parse_reference(reference, "key")
    except InputError:
        return None
    return {"account": f"the SSL storage of account {owner}", "apache": "Apache's files",
            "service": "a service's files", "keystore": "svcssl's key store"}.get(store)


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
                apply_from = _apply_source(form, ctx.service(source))
            except InputError as exc:
                flash(exc.message, "error")
                return redirect(url_for(".index"))
            note, problem = _apply_key_note(form, apply_from)
            return _render_install(form, apply_from=apply_from, apply_note=note, apply_problem=problem)
        use = request.args.get("use")
        if use:
            try:
                choice = use_certificate(ctx, current_user(), use)
            except AccessDeniedError as exc:
                abort(403, exc.message)
            except InputError as exc:
                return _render_install(form, 400, form_error=exc.message)
            _fill_from_choice(form, choice)
            return _render_install(form, choice=choice, chosen=use)
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
        return _render_install(form, choice=choice, autofilled=True, chosen="autofill")
    key = None
    try:
        crt = _read_field(form, "crt", "crt_file", limit)
        key = _read_field(form, "key", "key_file", limit)
        cabundle = _read_field(form, "cabundle", "cabundle_file", limit)
        password = form.password.data.encode() if form.password.data else None
        if crt is None:
            raise InputError("Paste a certificate or choose a certificate file.", field="crt")
        key_ref = KeyReference(installed=form.key_ref.data or None, found=form.key_source.data or None,
                               user=current_user())
        prepared, outcomes = install_certificate(ctx, form.services.data or [], crt, key, cabundle, password,
                                                 actor=_actor(), key_ref=key_ref,
                                                 allow_untrusted=bool(form.allow_untrusted.data),
                                                 confirm_with="tick \u201cInstall it anyway\u201d below the form",
                                                 allow_dane_mismatch=bool(form.allow_dane_mismatch.data),
                                                 confirm_dane_with="tick the DANE \u201cInstall it anyway\u201d "
                                                                   "below the form")
    except InputError as exc:
        if apply_from and exc.field == "key" and key is None and not form.key_ref.data and not form.key_source.data:
            exc = InputError(f"No private key was given, and the key of “{excerpt(apply_from)}” is not in svcssl's store "
                             "(its files were changed outside svcssl). Paste the private key of this certificate.",
                             field="key")
        message = _field_error(form, exc)
        return _render_install(form, 400, apply_from=apply_from, form_error=message,
                               untrusted=exc.field == "allow_untrusted",
                               dane_mismatch=exc.field == "allow_dane_mismatch",
                               choice=_chosen_again(form, request.form.get("chosen")),
                               chosen=request.form.get("chosen"))
    return _show_results(outcomes, prepared.notes + prepared.warnings, prepared.bundle.info)


def _chosen_again(form: InstallForm, chosen: str | None) -> CertificateChoice | None:
    """The "Certificate chosen" card of the form a failed POST came from (rebuilt on the server, never trusted)."""
    if not chosen or len(chosen) > 512:
        return None
    ctx = context()
    try:
        if chosen == "autofill":
            crt = (form.crt.data or "").encode()
            return autofill_certificate(ctx, current_user(), crt) if crt.strip() else None
        return use_certificate(ctx, current_user(), chosen)
    except (InputError, AccessDeniedError):
        return None


def _panel_changed(outcomes) -> bool:
    services = context().settings.services
    return any(o.ok and services[o.service].kind == "panel" for o in outcomes)


def _show_results(outcomes, warnings, info):
    """Post/Redirect/Get: keep the result for this session and send the browser to the page that shows it."""
    current_app.extensions["svcssl"].live.forget()
    result_id = remember({"outcomes": tuple(outcomes), "warnings": tuple(warnings), "info": info,
                          "offer_restart": _panel_changed(outcomes)})
    return redirect(url_for(".results", result_id=result_id), code=303)


@bp.route(PAGE + "/results/<result_id>")
@service_ssl_required
def results(result_id: str):
    result = recall(result_id)
    if result is None:
        abort(404, "This result is no longer available (results are kept for an hour, for the session that "
                   "made them). The service table shows the current state.")
    return render_template("service_ssl/results.html", now=context().now(), restart_form=ConfirmForm(), **result)


def _service_or_404(name: str) -> ServiceSettings:
    """The service a URL names, resolved once per request (after the login and privilege checks)."""
    try:
        return context().service(name)
    except InputError as exc:
        abort(404, exc.message)


@bp.route(PAGE + "/reset/<service>", methods=["GET", "POST"])
@service_ssl_required
def reset(service: str):
    ctx = context()
    svc = _service_or_404(service)
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "The form expired or was not sent from this page. Try again.")
        outcome = reset_certificate(ctx, svc, actor=_actor())
        info = service_details(ctx, svc).status.info
        return _show_results([outcome], ("The new certificate is self-signed: clients will not trust it.",), info)
    certificates = ctx.settings.certificates
    return render_template("service_ssl/reset_confirm.html", service=svc, form=form,
                           hostname=ctx.settings.server.hostname, status=service_details(ctx, svc).status,
                           now=ctx.now(), new_key=key_type_label(certificates.key_type),
                           new_days=certificates.self_signed_days)


@bp.route(PAGE + "/details/<service>")
@service_ssl_required
def details(service: str):
    ctx = context()
    data = service_details(ctx, _service_or_404(service))
    status = data.status
    live = _live_checks([status]).get(status.service.name)
    targets = {t.id for t in ctx.store.rollback_targets(status.service.name)}
    actors = {h.id: actor_seen_by(h.actor, current_user()) for h in data.history}
    return render_template("service_ssl/details.html", details=data, status=status, info=status.info, actors=actors,
                           expiry=status.expiry,
                           live=live, rollback_ids=targets, form=ConfirmForm(), now=ctx.now(),
                           dane=recorded_dane(ctx, status.service, status.installed),
                           chain_pem=chain_pem(status.installed.chain).decode() if status.installed else "",
                           cert_pem=certificate_pem(status.installed.leaf).decode() if status.installed else "")


@bp.route(PAGE + "/dane-rollover/<service>", methods=["POST"])
@service_ssl_required
def dane_rollover(service: str):
    """Start a DANE key rollover: the next key is created and kept on the server; the page shows its record."""
    ctx = context()
    svc = _service_or_404(service)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    try:
        started = start_rollover(ctx, svc.name, actor=_actor())
    except InputError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".details", service=svc.name))
    flash(("Created the next key. " if started.created else "A rollover is already waiting. ")
          + "Add this record beside the current one: " + "; ".join(started.records), "info")
    return redirect(url_for(".details", service=svc.name, _anchor="dane"))


@bp.route(PAGE + "/download/<service>/<any(certificate, fullchain):part>")
@service_ssl_required
def download(service: str, part: str):
    """The installed certificate, or it with its chain, as PEM. Never the key."""
    ctx = context()
    status = service_details(ctx, _service_or_404(service)).status
    if status.installed is None:
        abort(404, f"The service '{status.service.name}' has no readable certificate: {status.problem}")
    body = certificate_pem(status.installed.leaf)
    if part == "fullchain":
        body += chain_pem(status.installed.chain)
    name = f"{status.service.name}-{'fullchain' if part == 'fullchain' else 'cert'}.pem"
    return current_app.response_class(body, mimetype="application/x-pem-file",
                                      headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route(PAGE + "/rollback/<service>", methods=["GET", "POST"])
@service_ssl_required
def rollback(service: str):
    ctx = context()
    form = ConfirmForm()
    if request.method in ("GET", "HEAD"):  # what will change (both certificates), and a POST to confirm it
        svc = _service_or_404(service)
        details = service_details(ctx, svc)
        wanted = request.args.get("fingerprint") or ""
        target = next((h for h in details.history if h.fingerprint == wanted), None)
        if target is None:
            abort(404, "That certificate is not in the history of this service.")
        return render_template("service_ssl/rollback_confirm.html", service=svc, status=details.status,
                               target=target, form=form, now=ctx.now())
    if not form.validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    fingerprint = request.form.get("fingerprint") or None
    try:
        svc = ctx.service(service)
        outcome = rollback_certificate(ctx, svc, actor=_actor(), fingerprint=fingerprint)
    except InputError as exc:
        flash(exc.message, "error")
        return redirect(url_for(".details", service=service) if service in ctx.settings.services else url_for(".index"))
    info = service_details(ctx, svc).status.info
    return _show_results([outcome], (), info)


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
    return redirect(url_for(".restarting"), code=303)


@bp.route("/restarting")
@login_required
def restarting():
    return render_template("service_ssl/restarting.html")


@bp.route(PAGE + "/csr", methods=["GET", "POST"])
@service_ssl_required
def csr():
    """Generate a key and CSR: the key stays in svcssl's key store; the CSR goes to the CA."""
    ctx = context()
    form = CsrForm()
    form.key_type.choices = [(t, key_type_label(t)) for t in KEY_TYPES]
    if request.method in ("GET", "HEAD"):
        form.domains.data = ctx.settings.server.hostname
        form.key_type.data = ctx.settings.certificates.key_type
        return render_template("service_ssl/csr.html", form=form)
    if not form.validate_on_submit():
        return render_template("service_ssl/csr.html", form=form), 400
    try:
        result = create_csr(ctx, split_domains(form.domains.data), form.key_type.data, actor=_actor())
    except InputError as exc:
        getattr(form, "key_type" if exc.field == "key_type" else "domains").errors.append(exc.message)
        return render_template("service_ssl/csr.html", form=form), 400
    result_id = remember(result)
    return redirect(url_for(".csr_result", result_id=result_id), code=303)


@bp.route(PAGE + "/csr/<result_id>")
@service_ssl_required
def csr_result(result_id: str):
    result = recall(result_id)
    if result is None:
        abort(404, "This certificate request is no longer shown here (results are kept for an hour, for the session "
                   "that made them). Its key is still kept on the server.")
    return render_template("service_ssl/csr_result.html", result=result)
