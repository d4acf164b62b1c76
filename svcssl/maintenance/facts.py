"""Gather the facts the assessment needs: the hostname in DNS (and CAA), revocation, our own CA, ARI."""

from __future__ import annotations

from dataclasses import dataclass

from ..dnscheck import CaaResult, HostnameFacts, check_caa, check_hostname, default_route_address, make_resolver
from ..operations.context import Context
from ..operations.hostname_certificate import ari_window
from ..operations.inventory import InstalledCertificate
from ..revocation import check_revocation
from ..operations.assessment import CertificateFacts, ServerFacts


@dataclass(frozen=True)
class HostnameCheck:
    """The hostname's DNS facts, CAA, and whether a hostname certificate may be ordered."""

    dns: HostnameFacts
    caa: CaaResult | None
    blocker: str | None  # why no order is possible now, for a person; None when it is

    def server_facts(self) -> ServerFacts:
        return ServerFacts(hostname=self.dns.hostname, problem=self.dns.problem if self._hostname_broken() else None)

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
        caa = check_caa(settings.server.hostname, list(settings.acme.caa_identities), resolver)
        if caa.allowed is False:
            blocker = caa.problem  # it already names the record to add ("…; add example.com. 86400 IN CAA …")
    return HostnameCheck(dns, caa, blocker)


def certificate_facts(ctx: Context, installed: InstalledCertificate, *, check_ari: bool = True) -> CertificateFacts:
    info = installed.info
    now = ctx.now()
    own = ctx.store.is_acme_certificate(info.fingerprint)
    revocation = check_revocation(installed.leaf, installed.chain[0] if installed.chain else None,
                                  cache_dir=ctx.store.layout.crl_cache, now=now)
    window = None
    if own and check_ari:
        window = ari_window(ctx, installed.leaf, installed.chain, now)
    return CertificateFacts(from_own_ca=own, revocation=revocation.state, revocation_detail=revocation.detail,
                            renewal_window=window)
