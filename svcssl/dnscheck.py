"""Facts about the hostname from DNS: is it a valid FQDN, does it resolve, to this server, and CAA.

Everything here takes plain parameters (no settings, no Flask) and returns frozen dataclasses.
DNS failures never raise: they come back as ``None`` ("could not tell") with a sentence in
``problem`` that a person can act on. ``make_resolver`` is the only constructor of a resolver;
nothing touches the network at import time.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import re
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from .errors import ConfigError

log = logging.getLogger(__name__)

RESOLV_CONF = "/etc/resolv.conf"
SUGGESTED_TTL = 86400

# RFC 8659 §4.2-4.4 and later registered properties (RFC 8657 parameters live inside values).
KNOWN_CAA_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"})
CAA_CRITICAL = 0x80

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII | re.IGNORECASE)


# --------------------------------------------------------------------------- resolver

def _split_nameserver(entry: str) -> tuple[str, int]:
    """"host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address → (host, port)."""
    text = entry.strip()
    port = 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"DNS nameserver '{entry}' is not 'host', 'host:port' or '[IPv6]:port'")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a plain host, IPv4 address or bare IPv6 address
        host, port_text = text, None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"DNS nameserver '{entry}' has an invalid port '{port_text}'")
        port = int(port_text)
    if not host:
        raise ConfigError(f"DNS nameserver '{entry}' names no host")
    return host, port


def _nameserver_addresses(host: str, entry: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    # A host name: look it up once with the system resolver (at construction, never at import).
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except OSError as exc:
        raise ConfigError(f"DNS nameserver '{entry}' is neither an IP address nor a name this system can resolve "
                          f"({exc.strerror or exc})") from None
    addresses: list[str] = []
    for info in infos:
        address = info[4][0].split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    return addresses


def make_resolver(nameservers: list[str] | tuple[str, ...], timeout: float = 3.0, *,
                  resolv_conf: str = RESOLV_CONF) -> dns.resolver.Resolver:
    """A dnspython resolver that asks ``nameservers`` ("host", "host:port", "[v6]:port"), each query
    giving up after ``timeout`` seconds.

    An empty list means the system's resolvers from /etc/resolv.conf. If that file is missing or
    names no nameserver the resolver is still returned, with no nameservers; the check functions
    then report "no DNS resolvers are configured" instead of failing here. (``resolv_conf`` is
    there for tests.)
    A malformed entry raises ``ConfigError``.
    """
    resolver = dns.resolver.Resolver(configure=False)
    if nameservers:
        servers: list[dns.nameserver.Nameserver] = []
        for entry in nameservers:
            host, port = _split_nameserver(entry)
            servers.extend(dns.nameserver.Do53Nameserver(address, port)
                           for address in _nameserver_addresses(host, entry))
        resolver.nameservers = servers
    else:
        try:
            resolver.read_resolv_conf(resolv_conf)
        except dns.resolver.NoResolverConfiguration as exc:
            log.warning("dns: no usable system resolver configuration (%s)", exc)
            resolver.nameservers = []
        # Only the nameservers matter: hostnames are always looked up as absolute names.
        resolver.search = []
        resolver.domain = dns.name.root
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


def _no_nameservers_problem(resolver) -> str | None:
    if getattr(resolver, "nameservers", None):
        return None
    return (f"no DNS resolvers are configured ({RESOLV_CONF} is missing or names no nameserver, "
            "and none is set in svcssl's configuration)")


def _servers_text(resolver) -> str:
    shown = []
    for server in getattr(resolver, "nameservers", ()):
        if isinstance(server, dns.nameserver.Do53Nameserver):
            address = f"[{server.address}]" if ":" in server.address else server.address
            shown.append(address if server.port == 53 else f"{address}:{server.port}")
        else:
            shown.append(str(server))
    return ", ".join(shown) or "none"


def _dns_error_text(exc: Exception, qname: str, rdtype: str, resolver) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return (f"the DNS lookup of {qname} ({rdtype}) timed out after {resolver.lifetime:g} s "
                f"(nameservers: {_servers_text(resolver)})")
    if isinstance(exc, dns.resolver.NoNameservers):
        reasons = []
        for error in exc.kwargs.get("errors", ()) or ():
            # (server such as "Do53:127.0.0.1@53", tcp, port, rcode text or exception, answer)
            if not isinstance(error, tuple) or len(error) < 4:
                continue
            host, _, port = str(error[0]).removeprefix("Do53:").rpartition("@")
            if not host or port == "53":
                server = host or port
            else:
                server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            detail = error[3]
            text = f"{server} answered {detail}" if isinstance(detail, str) else f"{server}: {detail}"
            if text not in reasons:
                reasons.append(text)
        why = "; ".join(reasons) or "no nameserver answered"
        return f"no nameserver could answer the DNS lookup of {qname} ({rdtype}): {why}"
    return f"the DNS lookup of {qname} ({rdtype}) failed: {exc}"


# --------------------------------------------------------------------------- FQDN

def _fqdn_problem(name: object) -> str | None:
    """Why ``name`` is not a valid fully qualified host name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "the hostname is empty"
    if name != name.strip() or any(ch.isspace() for ch in name):
        return "it contains whitespace"
    text = name[:-1] if name.endswith(".") else name
    if not text or text.endswith(".") or text.startswith(".") or ".." in text:
        return "it has an empty label (a leading, doubled or extra trailing dot)"
    try:
        ipaddress.ip_address(text.strip("[]"))
        return "it is an IP address, not a host name"
    except ValueError:
        pass
    if not text.isascii():
        return "it contains non-ASCII characters (use the xn-- form of an internationalised name)"
    if len(text) > 253:
        return f"it is {len(text)} characters long (at most 253)"
    labels = text.split(".")
    if len(labels) < 2:
        return "it has only one label (a fully qualified name needs a domain, like host.example.com)"
    for label in labels:
        if len(label) > 63:
            return f"the label '{label[:20]}…' is {len(label)} characters long (at most 63)"
        if not _LABEL.fullmatch(label):
            return (f"the label '{label}' is not letters, digits and hyphens "
                    "(not starting or ending with a hyphen)")
    if labels[-1].isdigit():
        return f"its top-level label '{labels[-1]}' is all numeric"
    return None


def is_valid_fqdn(name: str) -> bool:
    """A fully qualified host name: ≥ 2 LDH labels of ≤ 63 characters, ≤ 253 in all, one optional
    trailing dot, top-level label not all digits, and not an IP address."""
    return _fqdn_problem(name) is None


def _normalise(name: str) -> str:
    text = name.strip().lower()
    return text[:-1] if text.endswith(".") else text


# --------------------------------------------------------------------------- hostname

@dataclass(frozen=True)
class HostnameFacts:
    hostname: str  # lower-cased, without a trailing dot
    valid_fqdn: bool
    addresses: tuple[str, ...]  # A then AAAA, in the order DNS gave them
    resolves: bool | None  # None = DNS unreachable or failing, so unknown
    points_here: bool | None  # any address == main_ip; None when unknown or no main_ip given
    main_ip: str | None
    problem: str | None  # a sentence a person can read, None when all is well


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def check_hostname(hostname: str, main_ip: str | None, resolver) -> HostnameFacts:
    """Is ``hostname`` a valid FQDN, does it resolve (A and AAAA), and does it point at ``main_ip``?

    NXDOMAIN, or no A/AAAA record at all → ``resolves=False``. Timeouts, SERVFAIL, refused or no
    resolvers configured → ``resolves=None`` (unknown), with the reason in ``problem``.
    """
    name = _normalise(hostname) if isinstance(hostname, str) else ""
    invalid = _fqdn_problem(hostname.strip() if isinstance(hostname, str) else hostname)
    if invalid:
        return HostnameFacts(name, False, (), None, None, main_ip,
                             f"'{hostname}' is not a valid fully qualified domain name: {invalid}")
    missing = _no_nameservers_problem(resolver)
    if missing:
        return HostnameFacts(name, True, (), None, None, main_ip, f"cannot look up {name} in DNS: {missing}")

    addresses: list[str] = []
    no_answer: list[str] = []
    errors: list[str] = []
    qname = name + "."
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            log.info("dns: %s does not exist (NXDOMAIN)", name)
            return HostnameFacts(name, True, (), False, False if main_ip else None, main_ip,
                                 f"{name} does not resolve in DNS (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            no_answer.append(rdtype)
            continue
        except dns.exception.DNSException as exc:
            errors.append(_dns_error_text(exc, name, rdtype, resolver))
            continue
        for rdata in answer:
            address = rdata.to_text()
            if address not in addresses:
                addresses.append(address)

    if addresses:
        resolves: bool | None = True
    elif errors:
        resolves = None
    else:
        resolves = False

    points_here: bool | None = None
    if main_ip:
        if resolves is True:
            points_here = any(_same_address(address, main_ip) for address in addresses)
        elif resolves is False:
            points_here = False

    problem = None
    if resolves is None:
        problem = f"could not tell whether {name} resolves: " + "; ".join(errors)
    elif resolves is False:
        problem = f"{name} does not resolve in DNS (no A or AAAA record)"
    elif points_here is False:
        problem = f"{name} resolves to {', '.join(addresses)}, not to this server's main IP {main_ip}"
    log.info("dns: %s → %s (resolves=%s, points_here=%s)", name, ", ".join(addresses) or "-", resolves, points_here)
    return HostnameFacts(name, True, tuple(addresses), resolves, points_here, main_ip, problem)


# --------------------------------------------------------------------------- CAA

@dataclass(frozen=True)
class CaaResult:
    allowed: bool | None  # None = could not check
    relevant_domain: str | None  # where the relevant CAA RRset was found (no trailing dot)
    records: tuple[str, ...]  # that RRset in presentation form, e.g. '0 issue "letsencrypt.org"'
    problem: str | None
    suggestion: str | None  # e.g. 'example.com. 86400 IN CAA 0 issue "letsencrypt.org"'


@dataclass(frozen=True)
class _Property:
    flags: int
    tag: str  # lower-cased
    value: str
    text: str

    @property
    def issuer_domain(self) -> str:
        return self.value.split(";", 1)[0].strip().lower().rstrip(".")


def _caa_properties(answer) -> list[_Property]:
    properties = []
    for rdata in answer:
        tag = rdata.tag.decode("ascii", "replace") if isinstance(rdata.tag, bytes) else str(rdata.tag)
        value = rdata.value.decode("utf-8", "replace") if isinstance(rdata.value, bytes) else str(rdata.value)
        properties.append(_Property(int(rdata.flags), tag.lower(), value, rdata.to_text()))
    return properties


def _climb(name: str) -> list[str]:
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def check_caa(hostname: str, ca_identities: list[str] | Sequence[str], resolver, *,
              wildcard: bool = False) -> CaaResult:
    """May a CA with one of ``ca_identities`` (e.g. "letsencrypt.org") issue for ``hostname``? (RFC 8659)

    Climbs from the name toward the root (the root itself is not asked); the first non-empty CAA
    RRset is the relevant one, and none anywhere means any CA may issue. A name starting with
    "*." is a wildcard (as is ``wildcard=True``): the search starts at the name without "*." and
    ``issuewild`` decides when the RRset has one, else ``issue``. An RRset without the deciding
    property allows issuance; an issuer-domain (the value before ';') equal to an identity
    (case-insensitive) authorises; an empty value (";") forbids everyone. An unknown tag with the
    critical flag forbids issuance. Parameters after ';' (accounturi, validationmethods) are not
    checked. DNS failures → ``allowed=None``.

    When issuance is not allowed, ``suggestion`` is the record to add at the relevant domain for
    the first identity (None when only a critical unknown property stands in the way, since that
    record has to be removed or its flag cleared instead).
    """
    text = hostname.strip() if isinstance(hostname, str) else ""
    if text.startswith("*."):
        text, wildcard = text[2:], True
    invalid = _fqdn_problem(text)
    if invalid:
        return CaaResult(None, None, (), f"cannot check CAA for '{hostname}': it is not a valid fully qualified "
                                          f"domain name ({invalid})", None)
    name = _normalise(text)
    shown_name = f"*.{name}" if wildcard else name
    missing = _no_nameservers_problem(resolver)
    if missing:
        return CaaResult(None, None, (), f"cannot check CAA records for {shown_name}: {missing}", None)
    identities = [i.strip().lower().rstrip(".") for i in ca_identities if i and i.strip()]

    relevant: str | None = None
    properties: list[_Property] = []
    for domain in _climb(name):
        try:
            answer = resolver.resolve(domain + ".", "CAA", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            problem = f"could not check CAA records for {shown_name}: " + _dns_error_text(exc, domain, "CAA", resolver)
            log.info("caa: %s", problem)
            return CaaResult(None, None, (), problem, None)
        properties = _caa_properties(answer)
        if properties:
            relevant = domain
            break

    if relevant is None:
        log.info("caa: no CAA records above %s: any CA may issue", shown_name)
        return CaaResult(True, None, (), None, None)

    records = tuple(p.text for p in properties)
    listed = "; ".join(records)
    critical = [p for p in properties if p.flags & CAA_CRITICAL and p.tag not in KNOWN_CAA_TAGS]
    deciding_tag = "issue"
    if wildcard and any(p.tag == "issuewild" for p in properties):
        deciding_tag = "issuewild"
    deciding = [p for p in properties if p.tag == deciding_tag]

    if deciding and not identities:
        problem = (f"CAA records at {relevant} restrict which CAs may issue for {shown_name} ({listed}), "
                   "but no CA identity is configured to compare with")
        return CaaResult(None, relevant, records, problem, None)
    authorised = not deciding or any(p.issuer_domain and p.issuer_domain in identities for p in deciding)
    suggestion = None
    if not authorised:
        suggestion = f'{relevant}. {SUGGESTED_TTL} IN CAA 0 {deciding_tag} "{identities[0]}"'

    problems = []
    if critical:
        tags = ", ".join(sorted({p.tag for p in critical}))
        problems.append(f"the CAA records at {relevant} have a critical property that CAs do not understand "
                        f"({tags}), so no CA may issue for {shown_name}: remove it or clear its critical flag")
    if not authorised:
        who = " or ".join(identities)
        problems.append(f"the CAA records at {relevant} ({listed}) do not authorise {who} to issue "
                        f"{'wildcard ' if wildcard else ''}certificates for {shown_name}; add {suggestion}")
    if problems:
        problem = "; ".join(problems)
        problem = problem[0].upper() + problem[1:]
        log.info("caa: %s", problem)
        return CaaResult(False, relevant, records, problem, suggestion)
    log.info("caa: %s allows %s for %s", relevant, ", ".join(identities) or "any CA", shown_name)
    return CaaResult(True, relevant, records, None, None)


# --------------------------------------------------------------------------- main IP

SIOCGIFADDR = 0x8915
RTF_UP = 0x1


def _default_interface(route_file: Path) -> str | None:
    try:
        lines = route_file.read_text().splitlines()
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, flags, metric, mask = fields[0], fields[1], fields[3], fields[6], fields[7]
        try:
            if int(destination, 16) != 0 or int(mask, 16) != 0 or not int(flags, 16) & RTF_UP:
                continue
            rank = int(metric)
        except ValueError:
            continue
        if best is None or rank < best[0]:
            best = (rank, iface)
    return best[1] if best else None


def _interface_address_ioctl(iface: str) -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # never used to send anything
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", iface.encode()[:15]))
    except (OSError, ValueError):
        return None
    return socket.inet_ntoa(packed[20:24])


def _interface_address_ip(iface: str) -> str | None:
    try:
        proc = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", iface], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in proc.stdout.splitlines():
        match = re.search(r"\binet\s+(\d+\.\d+\.\d+\.\d+)/", line)
        if match:
            return match.group(1)
    return None


def default_route_address(route_file: Path = Path("/proc/net/route")) -> str | None:
    """The IPv4 address of the interface that carries the default route, or None if unknown.

    Reads the routing table (``route_file``, Linux's /proc/net/route) and asks the kernel for that
    interface's address (SIOCGIFADDR, else ``ip -4 -o addr show dev IFACE``). Sends no packet.
    """
    iface = _default_interface(route_file)
    if iface is None:
        return None
    return _interface_address_ioctl(iface) or _interface_address_ip(iface)
