"""Roll a service back to the certificate it had before the active one."""

from __future__ import annotations

from ..errors import NothingToRollBackError
from .context import Context
from .install import InstallOutcome, deploy_bundle


def rollback_certificate(ctx: Context, name: str, *, actor: str) -> InstallOutcome:
    service = ctx.service(name)
    store = ctx.store
    target = store.rollback_target(service.name)
    if target is None:
        raise NothingToRollBackError(f"The service '{name}' has no earlier certificate in its history to roll back to.")
    bundle = store.get_bundle(target.fingerprint)
    return deploy_bundle(
        ctx, service, bundle, action="rollback", actor=actor,
        record=lambda: store.record_rollback(service.name, target, ctx.now()),
    )
