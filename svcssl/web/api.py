"""The WHM API 1 compatible JSON API (`../shared/whm-api.md`): /json-api/<function>, also under /cpsess<digits>/.

Our results become WHM's field names here and only here. Every function goes through the same
operations as the panel; every change is in the audit log with the caller (and token) named.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from ..errors import AccessDeniedError, FileSystemError, InputError, SvcsslError, excerpt
from ..operations.autofill import (CertificateChoice, account_certificate_by_id, autofill_certificate, autofill_domain,
                                   private_key_pem, vhost_choices)
from ..operations.browse import StoredCertificate, list_certificates, list_vhosts
from ..operations.context import Context
from ..settings import ServiceSettings, parse_listen
from ..operations.install import install_certificate
from ..operations.inventory import export_service_components, service_details
from ..operations.reset import reset_certificate
from ..operations.tokens import create_login_session, find_login_session, use_login_session
from ..operations.users import find_user
from ..store import AuditEntry
from ..whm import apply_filters, certificate_info
from ..x509.encode import certificate_pem, chain_pem, key_pem
from .auth import ApiFailure, Caller, authenticate_api_call, current_user, is_cross_site, open_session
from .context import context

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

CPSESS = re.compile(r"^cpsess\d{1,20}$")


@dataclass
class ApiResult:
    data: Any
    warnings: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def envelope(command: str, ok: bool, reason: str, data: Any = None, warnings=(), messages=()) -> dict:
    metadata: dict[str, Any] = {"command": command, "result": 1 if ok else 0, "reason": reason, "version": 1}
    if warnings or messages:
        metadata["output"] = {"warnings": list(warnings), "messages": list(messages)}
    body: dict[str, Any] = {"metadata": metadata}
    if ok:
        body["data"] = data
    return body


def _require_privilege(caller: Caller) -> None:
    if not caller.user.may_manage_service_ssl:
        raise ApiFailure(f"The user “{caller.user.name}” does not have the privilege to manage service SSL "
                         "certificates.", 403)


# --- parameters ------------------------------------------------------------------------------


def _pem_param(params: MultiDict, name: str) -> bytes | None:
    """A PEM parameter; '+' turned into ' ' by a client that did not URI-encode it is put back."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if "-----BEGIN" in value and " " in value:
        lines = []
        for line in value.replace("\r\n", "\n").split("\n"):
            inner = line.strip()
            if inner and not inner.startswith("-----") and ":" not in inner:
                inner = line.replace(" ", "+")  # base64 has no spaces: each was a '+' (at either end too)
            lines.append(inner)
        value = "\n".join(lines)
    return value.encode("utf-8")


def _service_param(ctx: Context, params: MultiDict):
    name = params.get("service", "")
    return ctx.service(name)  # "You must provide a service." / unknown, listing the valid names


# --- functions -------------------------------------------------------------------------------


def _service_payload(ctx: Context, service: ServiceSettings) -> dict:
    status = service_details(ctx, service).status
    installed = status.installed
    return {
        "service": service.name,
        "service_description": status.service.description,
        "certificate": certificate_pem(installed.leaf).decode() if installed else "",
        "certificate_info": certificate_info(status.info),
        "assessment": status.assessment.to_dict(),  # svcssl's extra: the same verdict as the table and the CLI
    }


def fetch_service_ssl_components(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    services, warnings = [], []
    try:
        components = export_service_components(ctx, actor=caller.actor)
    except FileSystemError as exc:  # a full disk: the certificates still, the keys not without their audit entry
        components = export_service_components(ctx, actor=caller.actor, keys=False)
        warnings.append(f"The private keys are withheld: the audit log cannot record that they left the server. "
                        f"{exc.message}")
    for component in components:
        status = component.status
        key = component.key if component.key is not None and status.installed is not None else None
        services.append({
            "service": status.service.name,
            "certificate": certificate_pem(status.installed.leaf).decode() if status.installed else "",
            "key": key_pem(key).decode() if key is not None else "",
            "cabundle": chain_pem(component.chain).decode() if status.installed else "",
            "certificate_info": certificate_info(status.info),
            "assessment": status.assessment.to_dict(),
        })
    return ApiResult({"services": services}, warnings=warnings)


def install_service_ssl_certificate(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    service = _service_param(ctx, params)
    crt = _pem_param(params, "crt")
    if crt is None:
        raise ApiFailure("You must provide a certificate (crt).")
    prepared, (outcome,) = install_certificate(ctx, [service.name], crt, _pem_param(params, "key"),
                                               _pem_param(params, "cabundle"), actor=caller.actor,
                                               allow_untrusted=True,  # WHM installs it and says so in its warnings
                                               allow_dane_mismatch=True)
    if not outcome.ok:
        raise ApiFailure(f"The certificate could not be installed on {service.name}: {outcome.message}"
                         + (f" ({outcome.output.strip()})" if outcome.output.strip() else ""))
    return ApiResult(_service_payload(ctx, service), warnings=list(prepared.warnings),
                     messages=[*prepared.notes, outcome.message])


def reset_service_ssl_certificate(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    service = _service_param(ctx, params)
    outcome = reset_certificate(ctx, service, actor=caller.actor)
    if not outcome.ok:
        raise ApiFailure(f"The certificate of {service.name} could not be reset: {outcome.message}")
    return ApiResult(_service_payload(ctx, service),
                     warnings=["The new certificate is self-signed: clients will not trust it."],
                     messages=[outcome.message])


def panel_origin(ctx: Context) -> str:
    """https://HOSTNAME:PORT of the panel: its configured hostname and the port the server listens on
    (the environ's SERVER_PORT), never the request's Host header."""
    port = request.environ.get("SERVER_PORT") or str(parse_listen(ctx.settings.server.listen)[1])
    return f"https://{ctx.settings.server.hostname}" + ("" if port == "443" else f":{port}")


def create_user_session(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    user = params.get("user") or ""
    if not user:
        raise ApiFailure("You must provide a user.")
    if params.get("service", "whostmgrd") not in ("whostmgrd", "svcssl"):
        raise ApiFailure(f"The service “{params.get('service')}” is not supported: use whostmgrd.")
    if user != caller.user.name and not caller.user.is_root:
        raise ApiFailure("Only root may create a session for another user.", 403)
    if find_user(ctx, user) is None:
        raise ApiFailure(f"There is no user named “{excerpt(user)}”.")
    secret, cpsess = create_login_session(ctx, user)
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=caller.actor, action="api create_user_session", detail=user))
    url = f"{panel_origin(ctx)}/{cpsess}/login/?session={secret}"
    return ApiResult({"cp_security_token": f"/{cpsess}", "session": secret, "url": url, "expires": 300})


# --- browsing the server's certificates (accounts' SSL storage, Apache) --------------------------


def _crt_row(cert: StoredCertificate) -> dict:
    return {
        "id": cert.id,
        "user": cert.owner if cert.store == "account" else None,
        "domain": cert.domains[0] if cert.domains else "",
        "domains": list(cert.domains),
        "friendly_name": cert.friendly_name,
        "is_self_signed": int(cert.is_self_signed),
        "issuer.commonName": cert.issuer_cn,
        "issuer.organizationName": cert.issuer_org,
        "not_before": int(cert.not_before.timestamp()),
        "not_after": int(cert.not_after.timestamp()),
        "key_algorithm": cert.key_algorithm,
        "modulus_length": cert.key_size if cert.key_algorithm == "rsaEncryption" else None,
        "ecdsa_curve_name": cert.ecdsa_curve_name,
        "signature_algorithm": cert.signature_algorithm,
        "has_key": int(cert.has_key),
    }


def _key_of(ctx: Context, caller: Caller, choice: CertificateChoice) -> str:
    return private_key_pem(ctx, caller.user, choice.key.reference).decode() if choice.key else ""


def _audit_key_read(ctx: Context, caller: Caller, function: str, detail: str) -> None:
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=caller.actor, action=f"api {function}", detail=detail))


def listcrts(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    account = params.get("user") or None
    return ApiResult({"crt": [_crt_row(c) for c in list_certificates(ctx, caller.user, account)]})


def fetchcrtinfo(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    cert_id, account = params.get("id") or "", params.get("user") or ""
    if not cert_id or not account:
        raise ApiFailure("You must provide the certificate's id and its user.")
    choice = account_certificate_by_id(ctx, caller.user, account, cert_id)
    key = _key_of(ctx, caller, choice)
    _audit_key_read(ctx, caller, "fetchcrtinfo", f"{account}/{cert_id}" + (" with its key" if key else ""))
    return ApiResult({"certificate": choice.certificate_pem, "key": key, "cabundle": choice.cabundle_pem,
                      "is_self_signed": int(choice.info.is_self_signed)}, warnings=list(choice.missing))


def fetch_ssl_vhosts(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    vhosts = []
    for vhost in list_vhosts(ctx, caller.user).vhosts:
        vhosts.append({
            "servername": vhost.servername, "domains": list(vhost.domains), "user": vhost.user, "ip": vhost.ip,
            "port": vhost.port, "docroot": vhost.docroot,
            "crt": _crt_row(vhost.certificate) if vhost.certificate else None,
            "problem": vhost.problem,
        })
    return ApiResult({"vhosts": vhosts})


def fetch_vhost_ssl_components(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    components = []
    for vhost in vhost_choices(ctx, caller.user):
        choice = vhost.choice
        components.append({
            "servername": vhost.servername,
            "certificate": choice.certificate_pem if choice else "",
            "certificate_id": vhost.certificate_id,
            "key": _key_of(ctx, caller, choice) if choice else "",
            "key_id": choice.key.id if choice and choice.key else "",
            "cabundle": choice.cabundle_pem if choice else "",
        })
    _audit_key_read(ctx, caller, "fetch_vhost_ssl_components", "private keys of the SSL virtual hosts returned")
    return ApiResult({"components": components})


def fetchsslinfo(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    crtdata, domain = _pem_param(params, "crtdata"), params.get("domain") or ""
    if crtdata is None and not domain:
        raise ApiFailure("No certificate data or domain supplied.")
    choice = autofill_certificate(ctx, caller.user, crtdata) if crtdata is not None else \
        autofill_domain(ctx, caller.user, domain)
    key = _key_of(ctx, caller, choice)
    if key:
        _audit_key_read(ctx, caller, "fetchsslinfo", f"key of {', '.join(choice.info.domains)}")
    return ApiResult({
        "crt": choice.certificate_pem, "key": key, "cab": choice.cabundle_pem,
        "domain": domain or (choice.info.domains[0] if choice.info.domains else ""),
        "user": choice.account, "crt_origin": choice.origin, "key_origin": choice.key.origin if choice.key else None,
    }, warnings=list(choice.missing))


FUNCTIONS: dict[str, Callable[[Context, MultiDict, Caller], ApiResult]] = {
    "listcrts": listcrts,
    "fetchcrtinfo": fetchcrtinfo,
    "fetch_ssl_vhosts": fetch_ssl_vhosts,
    "fetch_vhost_ssl_components": fetch_vhost_ssl_components,
    "fetchsslinfo": fetchsslinfo,
    "fetch_service_ssl_components": fetch_service_ssl_components,
    "install_service_ssl_certificate": install_service_ssl_certificate,
    "reset_service_ssl_certificate": reset_service_ssl_certificate,
    "create_user_session": create_user_session,
}


# --- dispatch --------------------------------------------------------------------------------


def call(function: str, params: MultiDict, caller: Caller, *, in_batch: bool = False) -> tuple[dict, int]:
    """Run one function; return the envelope and the HTTP status."""
    ctx = context()
    if params.get("api.version") != "1":
        return envelope(function, False, "This interface needs “api.version=1”."), 200
    if function == "batch" and not in_batch:
        return _batch(params, caller), 200
    handler = FUNCTIONS.get(function)
    if handler is None:
        return envelope(function, False, f"Unknown app (“{excerpt(function)}”) requested for this version (1) of the API."), 200
    try:
        result = handler(ctx, params, caller)
        data = apply_filters(result.data, params)
    except ApiFailure as exc:
        return envelope(function, False, exc.reason), exc.status
    except AccessDeniedError as exc:
        return envelope(function, False, exc.message), 403
    except InputError as exc:
        return envelope(function, False, exc.message), 200
    except SvcsslError as exc:
        return envelope(function, False, exc.message), 200
    except Exception as exc:  # never a stack trace in a response
        log.exception("API failure in %s", function)
        return envelope(function, False, f"API failure: {type(exc).__name__}; the error has been logged."), 200
    return envelope(function, True, "OK", data, result.warnings, result.messages), 200


def _batch(params: MultiDict, caller: Caller) -> dict:
    commands = params.getlist("command")
    if not commands:
        return envelope("batch", False, "A batch needs one or more “command” parameters.")
    results = []
    for command in commands:
        function, _, query = command.partition("?")
        inner = MultiDict(parse_qsl(query, keep_blank_values=True))
        inner.setdefault("api.version", "1")
        body, _status = call(function, inner, caller, in_batch=True)
        results.append(body)
    failed = sum(1 for r in results if r["metadata"]["result"] != 1)
    reason = "OK" if not failed else f"{failed} of {len(results)} calls failed."
    return {"metadata": {"command": "batch", "result": 0 if failed else 1, "reason": reason, "version": 1},
            "data": {"result": results}}


def _respond(function: str, cpsess: str | None):
    params = MultiDict(request.values.items(multi=True))
    try:
        caller = authenticate_api_call(cpsess)
    except ApiFailure as exc:
        response = jsonify(envelope(function, False, exc.reason))
        response.status_code = exc.status
        if exc.status == 401:
            # a Basic challenge makes browsers prompt for (and cache) root's password: offer it only to
            # a caller that tried Basic itself
            tried_basic = request.headers.get("Authorization", "").strip().lower().startswith("basic")
            response.headers["WWW-Authenticate"] = 'Basic realm="svcssl"' if tried_basic else 'whm realm="svcssl"'
        return response
    body, status = call(function, params, caller)
    response = jsonify(body)
    response.status_code = status
    return response


@bp.route("/json-api/<function>", methods=["GET", "POST"])
def json_api(function: str):
    return _respond(function, None)


@bp.route("/<cpsess>/json-api/<function>", methods=["GET", "POST"])
def json_api_session(cpsess: str, function: str):
    if not CPSESS.match(cpsess):
        response = jsonify(envelope(function, False, "Not found: the path prefix must be /cpsess<digits>."))
        response.status_code = 404
        return response
    return _respond(function, cpsess)


LINK_COOKIE = "__Host-svcssl_link"  # the confirmation page's double-submit nonce (SameSite=Strict)
LINK_EXPIRED = "This login link has expired or was used already. Ask for a new one."


def _link_confirmation(nonce: str, secret: str) -> str:
    key = current_app.config["SECRET_KEY"]
    key = key.encode() if isinstance(key, str) else key
    return hmac.new(key, f"login-link\0{nonce}\0{secret}".encode(), hashlib.sha256).hexdigest()


@bp.route("/<cpsess>/login/", methods=["GET", "POST"])
def session_login(cpsess: str):
    """The one-time login URL of create_user_session.

    A GET never signs anyone in and never touches the browser's session (login CSRF: the link may
    be opened from another site in root's browser): it shows "Sign in as bob?" with a form whose
    token is bound to a SameSite=Strict cookie set with the page. Only that form's POST, from this
    site, uses the link up and opens the session.
    """
    secret = request.values.get("session", "")
    ctx = context()
    found = find_login_session(ctx, secret) if CPSESS.match(cpsess) and secret else None
    if found is None or found[1] != cpsess:
        return render_template("errors/error.html", status=401, message=LINK_EXPIRED), 401
    user, _ = found
    if request.method == "GET":
        nonce = secrets.token_urlsafe(16)
        page = render_template("auth/login_link.html", target=user, current=current_user(), secret=secret,
                               confirmation=_link_confirmation(nonce, secret))
        response = make_response(page)
        response.set_cookie(LINK_COOKIE, nonce, max_age=300, path="/", secure=True, httponly=True, samesite="Strict")
        return response
    nonce = request.cookies.get(LINK_COOKIE, "")
    confirmation = request.form.get("confirmation", "")
    if is_cross_site() or not nonce or not hmac.compare_digest(confirmation, _link_confirmation(nonce, secret)):
        return render_template("errors/error.html", status=403, message=(
            "This sign-in was not confirmed from the panel's own page (it came from another site, or the page "
            "expired). Open the login link again and confirm.")), 403
    used = use_login_session(ctx, secret)
    if used is None or used[1] != cpsess:
        return render_template("errors/error.html", status=401, message=LINK_EXPIRED), 401
    open_session(used[0], cpsess)
    current_app.logger.info("login: %s with a one-time link from %s", used[0].name, request.remote_addr)
    response = redirect(url_for("home"))
    response.delete_cookie(LINK_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response
