"""What differs between service kinds: accepted input, and what a reload means for the daemon."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import APNS_DEPRECATION


@dataclass(frozen=True)
class ServiceKind:
    name: str
    label: str
    pkcs12_only: bool = False  # legacy APNs accepts only a PKCS#12 upload
    restarts: bool = False  # the reload command restarts the daemon (the port goes away for a moment)
    note: str = ""


KINDS: dict[str, ServiceKind] = {
    "panel": ServiceKind("panel", "svcssl panel (cpsrvd role)"),
    "dovecot": ServiceKind("dovecot", "Dovecot", note="doveadm reload applies new files to new connections"),
    "exim": ServiceKind("exim", "Exim", note="Exim runs as Debian-exim: the key must be group-readable (0640 root:Debian-exim)"),
    "pure-ftpd": ServiceKind("pure-ftpd", "pure-ftpd", restarts=True,
                             note="pure-ftpd reads its certificate only at start, and SIGHUP kills it: a change needs a restart"),
    "apns": ServiceKind("apns", "Apple Push Notification Service (legacy)", pkcs12_only=True,
                        note=APNS_DEPRECATION),
    "generic": ServiceKind("generic", "Generic TLS service"),
}


def kind_of(name: str) -> ServiceKind:
    return KINDS[name]
