"""svcssl.dnscheck against a real DNS server (dnslib, tests/servers/dns.py) on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
from pathlib import Path

import dns.nameserver
import pytest

from servers.dns import silent_udp_port, start_dns_server
from support.config import skip_or_fail
from svcssl.dnscheck import (
    CaaResult,
    HostnameFacts,
    check_caa,
    check_hostname,
    default_route_address,
    is_valid_fqdn,
    make_resolver,
)
from svcssl.errors import ConfigError

MAIN_IP = "192.0.2.2"
LE = "letsencrypt.org"

ZONE = {
    # hostnames
    "mail.example.com": {"A": [MAIN_IP], "AAAA": ["2001:db8::2"]},
    "elsewhere.example.com": {"A": ["203.0.113.5", "203.0.113.6"]},
    "v6only.example.com": {"AAAA": ["2001:db8::2"]},
    "noaddr.example.com": {"CAA": [(0, "issue", LE)]},
    "alias.example.com": {"CNAME": "mail.example.com"},
    # CAA
    "host.free.example": {"A": [MAIN_IP]},
    "allow.example": {"CAA": [(0, "issue", "LetsEncrypt.org; validationmethods=http-01"), (0, "iodef", "mailto:ca@allow.example")]},
    "mail.allow.example": {"A": [MAIN_IP]},
    "deny.example": {"CAA": [(0, "issue", "digicert.com"), (0, "issue", "sectigo.com")]},
    "mail.a.deny.example": {"A": [MAIN_IP]},
    "child.deny.example": {"CAA": [(0, "issue", LE)]},
    "empty.example": {"CAA": [(0, "issue", ";")]},
    "iodefonly.example": {"CAA": [(0, "iodef", "mailto:ca@iodefonly.example")]},
    "wild.example": {"CAA": [(0, "issue", LE), (0, "issuewild", "digicert.com")]},
    "wildfallback.example": {"CAA": [(0, "issue", LE)]},
    "wildempty.example": {"CAA": [(0, "issue", LE), (0, "issuewild", ";")]},
    "critical.example": {"CAA": [(0, "issue", LE), (128, "tbs", "unknown")]},
    "criticalknown.example": {"CAA": [(128, "issue", LE), (0, "futuretag", "x")]},
    "sf.example": {"A": [MAIN_IP]},
    "mail.sf.example": {"A": [MAIN_IP]},
}
SERVFAIL = {"broken.example.com", "sf.example"}


@pytest.fixture(scope="module")
def dns_server():
    server = start_dns_server(ZONE, servfail=SERVFAIL)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def resolver(dns_server):
    return make_resolver([dns_server.nameserver], timeout=2.0)


# --------------------------------------------------------------------------- FQDN

@pytest.mark.parametrize("name", [
    "mail.example.com", "MAIL.Example.COM", "mail.example.com.", "a.b", "xn--bcher-kva.example",
    "a-b.c-d.example", "1host.example.com", "a" * 63 + ".example", ".".join(["a" * 61] * 4),
])
def test_valid_fqdns(name):
    assert is_valid_fqdn(name), name


@pytest.mark.parametrize("name", [
    "", "localhost", "mail", "mail.example.com..", ".mail.example.com", "mail..example.com", ".",
    "-mail.example.com", "mail-.example.com", "mail_1.example.com", "*.example.com", "mail example.com",
    " mail.example.com", "a" * 64 + ".example", ".".join(["a" * 62] * 4) + ".com", "host.example.123",
    "192.0.2.2", "2001:db8::1", "[2001:db8::1]", "bücher.example", "mail.example.com:25",
])
def test_invalid_fqdns(name):
    assert not is_valid_fqdn(name), name


# --------------------------------------------------------------------------- resolver construction

def test_make_resolver_parses_host_and_port_forms():
    resolver = make_resolver(["192.0.2.53", "192.0.2.54:5353", "[2001:db8::53]:5300", "2001:db8::54", "[::1]"],
                             timeout=1.5)
    got = [(ns.address, ns.port) for ns in resolver.nameservers]
    assert got == [("192.0.2.53", 53), ("192.0.2.54", 5353), ("2001:db8::53", 5300), ("2001:db8::54", 53),
                   ("::1", 53)]
    assert all(isinstance(ns, dns.nameserver.Do53Nameserver) for ns in resolver.nameservers)
    assert resolver.timeout == 1.5 and resolver.lifetime == 1.5


def test_make_resolver_accepts_a_host_name():
    resolver = make_resolver(["localhost:5353"])
    assert resolver.nameservers
    assert all(ipaddress.ip_address(ns.address).is_loopback and ns.port == 5353 for ns in resolver.nameservers)


@pytest.mark.parametrize("entry, words", [
    ("192.0.2.1:99999", "invalid port"), ("192.0.2.1:dns", "invalid port"), ("[2001:db8::1", "'[IPv6]:port'"),
    ("[2001:db8::1]x", "'[IPv6]:port'"), (":53", "names no host"), ("no-such-host.invalid", "neither an IP"),
])
def test_make_resolver_rejects_bad_entries(entry, words):
    with pytest.raises(ConfigError) as caught:
        make_resolver([entry])
    assert words in str(caught.value) and entry in str(caught.value)


def test_empty_list_reads_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.example\nnameserver 192.0.2.53\n")
    resolver = make_resolver([], resolv_conf=str(conf))
    assert [getattr(ns, "address", ns) for ns in resolver.nameservers] == ["192.0.2.53"]


@pytest.mark.parametrize("content", [None, "", "# nothing here\n"])
def test_missing_or_empty_resolv_conf_is_reported_later(tmp_path, content):
    conf = tmp_path / "resolv.conf"
    if content is not None:
        conf.write_text(content)
    resolver = make_resolver([], resolv_conf=str(conf))  # does not raise
    facts = check_hostname("mail.example.com", MAIN_IP, resolver)
    assert facts.valid_fqdn and facts.resolves is None and facts.points_here is None
    assert "no DNS resolvers are configured" in facts.problem
    caa = check_caa("mail.example.com", [LE], resolver)
    assert caa.allowed is None and "no DNS resolvers are configured" in caa.problem


# --------------------------------------------------------------------------- hostname

def test_hostname_resolves_here(resolver):
    facts = check_hostname("Mail.Example.com.", MAIN_IP, resolver)
    assert facts == HostnameFacts("mail.example.com", True, (MAIN_IP, "2001:db8::2"), True, True, MAIN_IP, None)


def test_hostname_through_cname(resolver):
    facts = check_hostname("alias.example.com", MAIN_IP, resolver)
    assert facts.resolves is True and facts.points_here is True
    assert facts.addresses == (MAIN_IP, "2001:db8::2")


def test_ipv6_main_ip_compares_as_addresses(resolver):
    facts = check_hostname("v6only.example.com", "2001:db8:0:0::2", resolver)
    assert facts.addresses == ("2001:db8::2",) and facts.points_here is True and facts.problem is None


def test_hostname_resolves_elsewhere(resolver):
    facts = check_hostname("elsewhere.example.com", MAIN_IP, resolver)
    assert facts.resolves is True and facts.points_here is False
    assert facts.problem == ("elsewhere.example.com resolves to 203.0.113.5, 203.0.113.6, "
                             "not to this server's main IP 192.0.2.2")


def test_without_main_ip_points_here_is_unknown(resolver):
    facts = check_hostname("elsewhere.example.com", None, resolver)
    assert facts.resolves is True and facts.points_here is None and facts.problem is None


def test_nxdomain(resolver):
    facts = check_hostname("missing.example.com", MAIN_IP, resolver)
    assert facts.resolves is False and facts.points_here is False and facts.addresses == ()
    assert facts.problem == "missing.example.com does not resolve in DNS (NXDOMAIN)"


def test_name_without_address_records(resolver):
    facts = check_hostname("noaddr.example.com", MAIN_IP, resolver)
    assert facts.resolves is False and facts.points_here is False
    assert facts.problem == "noaddr.example.com does not resolve in DNS (no A or AAAA record)"


def test_servfail_is_unknown_not_false(resolver):
    facts = check_hostname("broken.example.com", MAIN_IP, resolver)
    assert facts.valid_fqdn and facts.resolves is None and facts.points_here is None
    assert facts.problem.startswith("could not tell whether broken.example.com resolves")
    assert "SERVFAIL" in facts.problem


def test_timeout_is_unknown():
    sock, port = silent_udp_port()
    try:
        resolver = make_resolver([f"127.0.0.1:{port}"], timeout=0.4)
        started = time.monotonic()
        facts = check_hostname("mail.example.com", MAIN_IP, resolver)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert facts.resolves is None and facts.points_here is None
    assert "timed out after 0.4 s" in facts.problem and f"127.0.0.1:{port}" in facts.problem
    assert elapsed < 3


def test_invalid_hostname_is_not_looked_up(resolver, dns_server):
    before = len(dns_server.queries)
    facts = check_hostname("localhost", MAIN_IP, resolver)
    assert facts.valid_fqdn is False and facts.resolves is None
    assert facts.problem.startswith("'localhost' is not a valid fully qualified domain name: it has only one label")
    assert len(dns_server.queries) == before


# --------------------------------------------------------------------------- CAA

def test_no_caa_anywhere_allows(resolver, dns_server):
    result = check_caa("host.free.example", [LE], resolver)
    assert result == CaaResult(True, None, (), None, None)
    asked = [q for q in dns_server.queries if q[1] == "CAA"]
    # climbed all the way to (but not including) the root
    assert [n for n, _ in asked[-3:]] == ["host.free.example", "free.example", "example"]


def test_caa_allowing_at_parent(resolver):
    result = check_caa("mail.allow.example", ["LETSENCRYPT.ORG"], resolver)
    assert result.allowed is True and result.relevant_domain == "allow.example"
    assert result.records == ('0 issue "LetsEncrypt.org; validationmethods=http-01"',
                              '0 iodef "mailto:ca@allow.example"')
    assert result.problem is None and result.suggestion is None


def test_caa_forbidding_two_levels_up(resolver):
    result = check_caa("mail.a.deny.example", [LE, "letsencrypt.org."], resolver)
    assert result.allowed is False and result.relevant_domain == "deny.example"
    assert result.records == ('0 issue "digicert.com"', '0 issue "sectigo.com"')
    assert result.suggestion == 'deny.example. 86400 IN CAA 0 issue "letsencrypt.org"'
    assert "deny.example" in result.problem and '0 issue "digicert.com"' in result.problem
    assert "mail.a.deny.example" in result.problem and result.suggestion in result.problem


def test_closest_caa_rrset_wins(resolver):
    result = check_caa("www.child.deny.example", [LE], resolver)
    assert result.allowed is True and result.relevant_domain == "child.deny.example"


def test_empty_issue_value_forbids_everyone(resolver):
    result = check_caa("mail.empty.example", [LE, ""], resolver)
    assert result.allowed is False and result.relevant_domain == "empty.example"
    assert result.records == ('0 issue ";"',)
    assert result.suggestion == 'empty.example. 86400 IN CAA 0 issue "letsencrypt.org"'


def test_rrset_without_issue_allows(resolver):
    result = check_caa("mail.iodefonly.example", [LE], resolver)
    assert result.allowed is True and result.relevant_domain == "iodefonly.example"


def test_issuewild_decides_for_wildcards(resolver):
    assert check_caa("mail.wild.example", [LE], resolver).allowed is True
    for result in (check_caa("*.wild.example", [LE], resolver),
                   check_caa("wild.example", [LE], resolver, wildcard=True)):
        assert result.allowed is False and result.relevant_domain == "wild.example"
        assert result.suggestion == 'wild.example. 86400 IN CAA 0 issuewild "letsencrypt.org"'
        assert "wildcard certificates for *.wild.example" in result.problem
    assert check_caa("*.wild.example", ["digicert.com"], resolver).allowed is True


def test_wildcard_falls_back_to_issue(resolver):
    assert check_caa("*.wildfallback.example", [LE], resolver).allowed is True
    result = check_caa("*.wildfallback.example", ["digicert.com"], resolver)
    assert result.allowed is False
    assert result.suggestion == 'wildfallback.example. 86400 IN CAA 0 issue "digicert.com"'


def test_empty_issuewild_forbids_wildcards_only(resolver):
    assert check_caa("mail.wildempty.example", [LE], resolver).allowed is True
    assert check_caa("*.wildempty.example", [LE], resolver).allowed is False


def test_unknown_critical_tag_forbids(resolver):
    result = check_caa("mail.critical.example", [LE], resolver)
    assert result.allowed is False and result.relevant_domain == "critical.example"
    assert '128 tbs "unknown"' in result.records
    assert "critical property" in result.problem and "tbs" in result.problem
    assert result.suggestion is None  # adding a record would not help: the critical one has to go


def test_critical_known_tag_and_unknown_non_critical_tag_are_fine(resolver):
    result = check_caa("criticalknown.example", [LE], resolver)
    assert result.allowed is True and result.relevant_domain == "criticalknown.example"


def test_caa_servfail_is_unknown(resolver):
    result = check_caa("mail.sf.example", [LE], resolver)
    assert result.allowed is None and result.relevant_domain is None
    assert "could not check CAA records for mail.sf.example" in result.problem and "SERVFAIL" in result.problem


def test_caa_restricted_but_no_identity_is_unknown(resolver):
    result = check_caa("mail.deny.example", [], resolver)
    assert result.allowed is None and "no CA identity is configured" in result.problem


def test_caa_of_an_invalid_name(resolver):
    result = check_caa("mail", [LE], resolver)
    assert result.allowed is None and "not a valid fully qualified domain name" in result.problem


def test_zone_can_change(dns_server, resolver):
    dns_server.set_zone({**ZONE, "host.free.example": {"A": ["198.51.100.7"]}}, servfail=SERVFAIL)
    try:
        assert check_hostname("host.free.example", MAIN_IP, resolver).points_here is False
    finally:
        dns_server.set_zone(ZONE, servfail=SERVFAIL)
    assert check_hostname("host.free.example", MAIN_IP, resolver).points_here is True


def test_tcp_is_served_too(dns_server):
    import dns.message
    import dns.query

    reply = dns.query.tcp(dns.message.make_query("mail.example.com.", "A"), "127.0.0.1", port=dns_server.port,
                          timeout=2)
    assert [r.to_text() for r in reply.answer[0]] == [MAIN_IP]


# --------------------------------------------------------------------------- default route

ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def test_default_route_from_a_routing_table(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTE_HEADER
                     + "nosuch0\t00000000\t010200C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
                     + "lo\t00000000\t00000000\t0001\t0\t0\t100\t00000000\t0\t0\t0\n"
                     + "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n")
    assert default_route_address(table) == "127.0.0.1"  # the lower metric wins


def test_no_default_route(tmp_path):
    table = tmp_path / "route"
    table.write_text(ROUTE_HEADER + "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n")
    assert default_route_address(table) is None
    assert default_route_address(tmp_path / "missing") is None
    down = tmp_path / "down"
    down.write_text(ROUTE_HEADER + "lo\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n")
    assert default_route_address(down) is None


def test_default_route_of_this_machine():
    address = default_route_address()
    route = Path("/proc/net/route")
    if address is None:
        skip_or_fail("this machine has no IPv4 default route")
    assert ipaddress.ip_address(address).version == 4
    iface = next(line.split()[0] for line in route.read_text().splitlines()[1:]
                 if line.split()[1] == "00000000" and line.split()[7] == "00000000")
    if shutil.which("ip"):
        shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", iface], capture_output=True, text=True).stdout
        assert f"inet {address}/" in shown
