"""Reset: a new self-signed certificate for the hostname, as WHM's Reset Certificate makes it."""

from __future__ import annotations

from ..settings import ServiceSettings
from ..x509 import Bundle
from ..x509.generate import generate_private_key, make_self_signed
from ..x509.inspect import describe
from .context import Context
from .install import InstallOutcome, deploy_bundle


def make_self_signed_bundle(ctx: Context) -> Bundle:
    key = generate_private_key(ctx.settings.certificates.key_type)
    cert = make_self_signed(ctx.settings.server.hostname, key, ctx.now(), ctx.settings.certificates.self_signed_days)
    return Bundle(leaf=cert, key=key, chain=(), info=describe(cert))


def reset_certificate(ctx: Context, service: ServiceSettings, *, actor: str) -> InstallOutcome:
    return deploy_bundle(ctx, service, make_self_signed_bundle(ctx), action="reset", actor=actor)
