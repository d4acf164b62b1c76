"""Roll a service back to the certificate it had before the active one."""

from __future__ import annotations

from ..errors import NothingToRollBackError
from ..settings import ServiceSettings
from .context import Context
from .install import InstallOutcome, deploy_bundle


def rollback_certificate(ctx: Context, service: ServiceSettings, *, actor: str,
                         fingerprint: str | None = None) -> InstallOutcome:
    """Back to the previous certificate, or to the earlier one with ``fingerprint`` ("roll back to this")."""
    store = ctx.store
    targets = store.rollback_targets(service.name)
    if fingerprint is not None:
        targets = [t for t in targets if t.fingerprint == fingerprint]
        if not targets:
            raise NothingToRollBackError(f"The certificate {fingerprint[:16]}… is not an earlier certificate of "
                                         f"'{service.name}' that can be rolled back to.")
    if not targets:
        raise NothingToRollBackError(f"The service '{service.name}' has no earlier certificate in its history to roll back to.")
    target = targets[0]
    bundle = store.get_bundle(target.fingerprint)
    return deploy_bundle(
        ctx, service, bundle, action="rollback", actor=actor,
        record=lambda: store.record_rollback(service.name, target, ctx.now()),
    )
