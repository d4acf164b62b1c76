"""/metrics for Prometheus: a metrics-only token (Authorization: Bearer …) or an address in [metrics] allow.

Refusals are plain text that names no service or certificate: 401 without (valid) credentials, 403 for an
ordinary API token (it is valid, but not for this).
"""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, request

from ..maintenance.metrics import CONTENT_TYPE, exposition
from ..operations.tokens import WrongTokenKind, authenticate_metrics_token
from ..operations.users import LoginError
from .context import context

bp = Blueprint("metrics", __name__)

HOW = ("Send “Authorization: Bearer TOKEN” with a metrics token (svcssl token create USER --metrics-only), "
       "or scrape from an address listed in [metrics] allow.")


def _refused(status: int, why: str) -> Response:
    response = Response(f"{why} {HOW}\n", status=status, mimetype="text/plain")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="svcssl metrics"'
    return response


def _allowed_address(remote: str | None) -> bool:
    networks = context().settings.metrics.allow
    if not networks or not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@bp.route("/metrics")
def scrape():
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return _refused(401, "The Authorization header must be “Bearer TOKEN”.")
        try:
            authenticate_metrics_token(context(), secret.strip())
        except WrongTokenKind as exc:
            return _refused(403, exc.message)
        except LoginError as exc:
            return _refused(401, exc.message)
    elif not _allowed_address(request.remote_addr):
        return _refused(401, "Authentication required.")
    return Response(exposition(context()), mimetype=None, content_type=CONTENT_TYPE)
