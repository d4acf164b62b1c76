"""The WHM API 1 compatible JSON API (`../shared/whm-api.md`): /json-api/<function>, also under /cpsess<digits>/.

Our results become WHM's field names here and only here. Every function goes through the same
operations as the panel; every change is in the audit log with the caller (and token) named.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, g, jsonify, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict

from ..errors import AccessDeniedError, InputError, SvcsslError, excerpt
from ..operations.autofill import (CertificateChoice, account_certificate_by_id, autofill_certificate, autofill_domain,
                                   private_key_pem, vhost_choices)
from ..operations.browse import StoredCertificate, list_certificates, list_vhosts
from ..operations.context import Context
from ..operations.install import install_certificate
from ..operations.inventory import list_services, read_installed_bundle, service_details
from ..operations.reset import reset_certificate
from ..operations.tokens import authenticate_token, create_login_session, use_login_session
from ..operations.users import LoginError, LoginThrottled, PanelUser, authenticate, find_user
from ..store import AuditEntry
from ..whm import certificate_info
from ..x509.encode import certificate_pem, chain_pem, key_pem
from .auth import open_session
from .context import context

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

CPSESS = re.compile(r"^cpsess\d{1,20}$")


class ApiFailure(Exception):
    """result 0 with this reason (HTTP 200), or another status for credentials."""

    def __init__(self, reason: str, status: int = 200):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class Caller:
    user: PanelUser
    actor: str  # for the audit log: who, and through which credential


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


# --- authentication ---------------------------------------------------------------------------

CROSS_SITE_REFUSED = ("This API call came from another site (its Origin or Sec-Fetch-Site says so) and carries a "
                      "password or a browser session; such calls are refused. Scripts authenticate with "
                      "“Authorization: whm USER:TOKEN”.")


def _is_cross_site() -> bool:
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
    if _is_cross_site():
        raise ApiFailure(CROSS_SITE_REFUSED, 403)


def _authenticate(cpsess: str | None) -> Caller:
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


def _service_payload(ctx: Context, name: str) -> dict:
    status = service_details(ctx, name).status
    installed = status.installed
    return {
        "service": name,
        "service_description": status.service.description,
        "certificate": certificate_pem(installed.leaf).decode() if installed else "",
        "certificate_info": certificate_info(status.info),
        "assessment": status.assessment.to_dict(),  # svcssl's extra: the same verdict as the table and the CLI
    }


def fetch_service_ssl_components(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    services = []
    statuses = {status.service.name: status for status in list_services(ctx)}
    for service in ctx.settings.enabled_services():
        try:
            bundle = read_installed_bundle(service)
            certificate, key, cabundle = (certificate_pem(bundle.leaf).decode(), key_pem(bundle.key).decode(),
                                          chain_pem(bundle.chain).decode())
            info = certificate_info(bundle.info)
        except SvcsslError:
            details = service_details(ctx, service.name).status
            certificate = certificate_pem(details.installed.leaf).decode() if details.installed else ""
            cabundle = chain_pem(details.installed.chain).decode() if details.installed else ""
            key, info = "", certificate_info(details.info)
        services.append({"service": service.name, "certificate": certificate, "key": key, "cabundle": cabundle,
                         "certificate_info": info, "assessment": statuses[service.name].assessment.to_dict()})
    ctx.store.add_audit(AuditEntry(ctx.now(), caller.actor, "api fetch_service_ssl_components", None, None, None,
                                   "ok", "private keys of every service returned"))
    return ApiResult({"services": services})


def install_service_ssl_certificate(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    service = _service_param(ctx, params)
    crt = _pem_param(params, "crt")
    if crt is None:
        raise ApiFailure("You must provide a certificate (crt).")
    prepared, (outcome,) = install_certificate(ctx, [service.name], crt, _pem_param(params, "key"),
                                               _pem_param(params, "cabundle"), actor=caller.actor)
    if not outcome.ok:
        raise ApiFailure(f"The certificate could not be installed on {service.name}: {outcome.message}"
                         + (f" ({outcome.output.strip()})" if outcome.output.strip() else ""))
    return ApiResult(_service_payload(ctx, service.name), warnings=list(prepared.warnings),
                     messages=[outcome.message])


def reset_service_ssl_certificate(ctx: Context, params: MultiDict, caller: Caller) -> ApiResult:
    _require_privilege(caller)
    service = _service_param(ctx, params)
    outcome = reset_certificate(ctx, service.name, actor=caller.actor)
    if not outcome.ok:
        raise ApiFailure(f"The certificate of {service.name} could not be reset: {outcome.message}")
    return ApiResult(_service_payload(ctx, service.name),
                     warnings=["The new certificate is self-signed: clients will not trust it."],
                     messages=[outcome.message])


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
    ctx.store.add_audit(AuditEntry(ctx.now(), caller.actor, "api create_user_session", None, None, None, "ok", user))
    url = f"{request.scheme}://{request.host}/{cpsess}/login/?session={secret}"
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
    ctx.store.add_audit(AuditEntry(ctx.now(), caller.actor, f"api {function}", None, None, None, "ok", detail))


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


# --- generic filters ------------------------------------------------------------------------


def _compare(kind: str, value: Any, arg: str) -> bool:
    text = "" if value is None else (" ".join(map(str, value)) if isinstance(value, list) else str(value))
    if kind in ("eq", "=="):
        return text == arg
    if kind in ("ne", "!="):
        return text != arg
    if kind == "contains":
        return arg.lower() in text.lower()
    if kind == "begins":
        return text.lower().startswith(arg.lower())
    if kind == "ends":
        return text.lower().endswith(arg.lower())
    try:
        number, limit = float(text), float(arg)
    except ValueError:
        raise ApiFailure(f"The filter type “{kind}” needs numbers; “{text[:40]}” or “{arg[:40]}” is not one.") from None
    return {"lt": number < limit, "gt": number > limit, "lt_equal": number <= limit, "gt_equal": number >= limit}[kind]


FILTER_TYPES = ("eq", "==", "ne", "!=", "contains", "begins", "ends", "lt", "gt", "lt_equal", "gt_equal")


def _field(row: Any, name: str) -> Any:
    """A field by name; dots go one level down, and a flat key may hold dots itself (issuer.commonName)."""
    if not isinstance(row, dict):
        return None
    if name in row:
        return row[name]
    head, sep, rest = name.partition(".")
    while sep:
        if head in row:
            found = _field(row[head], rest)
            if found is not None:
                return found
        more_head, sep, rest = rest.partition(".")
        head = f"{head}.{more_head}"
    return None


def apply_filters(data: Any, params: MultiDict) -> Any:
    if params.get("api.filter.enable") != "1":
        return data
    filters = []
    for key in params:
        match = re.fullmatch(r"api\.filter\.([A-Za-z0-9_]+)\.field", key)
        if match:
            ident = match.group(1)
            kind = params.get(f"api.filter.{ident}.type", "contains")
            if kind not in FILTER_TYPES:
                raise ApiFailure(f"Unknown filter type “{kind}” (use one of {', '.join(FILTER_TYPES)}).")
            filters.append((params[key], kind, params.get(f"api.filter.{ident}.arg0", "")))
    if not filters or not isinstance(data, dict):
        return data
    lists = [k for k, v in data.items() if isinstance(v, list)]
    if len(lists) != 1:
        return data
    rows = data[lists[0]]
    kept = [row for row in rows if all(_compare(kind, _field(row, name), arg) for name, kind, arg in filters)]
    return {**data, lists[0]: kept}


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
        caller = _authenticate(cpsess)
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


@bp.route("/<cpsess>/login/")
def session_login(cpsess: str):
    """The one-time login URL of create_user_session: opens a browser session."""
    secret = request.args.get("session", "")
    found = use_login_session(context(), secret) if CPSESS.match(cpsess) and secret else None
    if found is None or found[1] != cpsess:
        return render_template("errors/error.html", status=401,
                               message="This login link has expired or was used already. Ask for a new one."), 401
    user, _ = found
    open_session(user, cpsess)
    return redirect(url_for("home"))
