"""Gather the facts the assessment needs: the hostname in DNS (and CAA), revocation, our own CA, ARI."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from ..dnscheck import CaaResult, HostnameFacts, check_caa, check_hostname, default_route_address, make_resolver
from ..operations.context import Context
from ..operations.hostname_certificate import ari_window, ca_identities
from ..operations.inventory import InstalledCertificate
from ..revocation import check_revocation
from ..operations.assessment import CertificateFacts, ServerFacts


@dataclass(frozen=True)
class HostnameCheck:
    """The hostname's DNS facts, CAA, and whether a hostname certificate may be ordered."""

    dns: HostnameFacts
    caa: CaaResult | None  # for the first CA
    blocker: str | None  # why no order is possible now, for a person; None when it is
    caa_forbidden: Mapping[str, str] = field(default_factory=dict)  # CA directory -> why CAA forbids it

    def server_facts(self) -> ServerFacts:
        return ServerFacts(hostname=self.dns.hostname, problem=self.dns.problem if self._hostname_broken() else None,
                           order_blocked=self.blocker is not None)

    def _hostname_broken(self) -> bool:
        return (not self.dns.valid_fqdn) or self.dns.resolves is False or self.dns.points_here is False


def hostname_fix(dns: HostnameFacts) -> str | None:
    """What the administrator does so the hostname can get a certificate; None when nothing is wrong with it."""
    if not dns.valid_fqdn:
        return ("Give the server a fully qualified hostname that resolves to it (for example mail.example.com) and set "
                "it as `hostname` in the [server] section of the svcssl configuration.")
    if dns.resolves is False:
        target = dns.main_ip or "THIS.SERVER.IP"
        kind = "AAAA" if ":" in target else "A"
        return f"Add this DNS record at your DNS provider: {dns.hostname}. 3600 IN {kind} {target}"
    if dns.points_here is False:
        return (f"Point {dns.hostname} to this server: change its DNS record to {dns.main_ip} (it now resolves to "
                f"{', '.join(dns.addresses) or 'nothing'}), or set `main_ip` in [server] if that address is this server's.")
    if dns.resolves is None:
        return "Check that the name servers in the [dns] section answer from this server, then run maintenance again."
    return None


def check_server_hostname(ctx: Context) -> HostnameCheck:
    settings = ctx.settings
    resolver = make_resolver(settings.dns.nameservers, settings.dns.timeout)
    main_ip = settings.server.main_ip or default_route_address()
    dns = check_hostname(settings.server.hostname, main_ip, resolver)
    caa = None
    blocker = None
    if not dns.valid_fqdn:
        blocker = dns.problem or f"{dns.hostname} is not a fully qualified domain name"
    elif dns.resolves is False or dns.points_here is False:
        blocker = dns.problem
    elif dns.resolves is None:
        blocker = dns.problem or "the hostname could not be looked up in DNS"
    else:
        results = [(directory, check_caa(settings.server.hostname, list(identities), resolver))
                   for directory, identities in ca_identities(ctx)]
        caa = results[0][1]
        forbidden = {directory: result.problem or "CAA forbids it" for directory, result in results
                     if result.allowed is False}
        if len(forbidden) == len(results):  # every CA is forbidden: the first one's record to add is the fix
            blocker = caa.problem  # it already names the record to add ("…; add example.com. 86400 IN CAA …")
        return HostnameCheck(dns, caa, blocker, forbidden)
    return HostnameCheck(dns, caa, blocker)


def certificate_facts(ctx: Context, installed: InstalledCertificate, *, check_ari: bool = True) -> CertificateFacts:
    info = installed.info
    now = ctx.now()
    own = ctx.store.is_acme_certificate(info.fingerprint)
    revocation = check_revocation(installed.leaf, installed.chain[0] if installed.chain else None,
                                  cache_dir=ctx.store.layout.crl_cache, now=now)
    window = moment = None
    if own and check_ari:
        window = ari_window(ctx, installed.leaf, installed.chain, now)
        if window is not None:
            moment = ari_moment(ctx, info.fingerprint, window)
    return CertificateFacts(from_own_ca=own, revocation=revocation.state, revocation_detail=revocation.detail,
                            renewal_window=window, renewal_at=moment)


def ari_moment(ctx: Context, fingerprint: str, window: tuple[datetime, datetime]) -> datetime:
    """The moment to renew inside the CA's window: chosen at random once, stored, and kept while the window
    stays the same (RFC 9773 §4.2); a moved window gets a new moment."""
    stored = ctx.store.renewal_moment(fingerprint, window)
    if stored is not None:
        return stored
    start, end = window
    span = max(0, int((end - start).total_seconds()))
    moment = start + timedelta(seconds=secrets.randbelow(span + 1))
    ctx.store.set_renewal_moment(fingerprint, window, moment)
    return moment
