"""A small authoritative DNS server (dnslib) on 127.0.0.1, UDP and TCP on one free port, in threads.

The zone is a dict ``{name: {"A": [...], "AAAA": [...], "CAA": [(flags, tag, value)], "CNAME": "target"}}``
(names without trailing dot, case-insensitive). Unknown names get NXDOMAIN; ancestors of known
names (empty non-terminals) and known names without the asked type get an empty NOERROR answer.
A CNAME is followed inside the zone, as a recursive resolver would. Names in ``servfail`` get
SERVFAIL. ``queries`` records every (name, type) asked, for tests that count lookups.

    dns = start_dns_server({"mail.example.com": {"A": ["192.0.2.2"]}})
    resolver = make_resolver([dns.nameserver])
    ...
    dns.stop()
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from dnslib import AAAA, CAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

HOST = "127.0.0.1"
TTL = 300
_RDATA = {"A": A, "AAAA": AAAA}


def _norm(name) -> str:
    return str(name).lower().rstrip(".")


class _ZoneResolver(BaseResolver):
    def __init__(self, zone: dict, servfail: set[str]):
        self.lock = threading.Lock()
        self.zone: dict[str, dict] = {}
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.set(zone, servfail)

    def set(self, zone: dict, servfail) -> None:
        with self.lock:
            self.zone = {_norm(k): v for k, v in zone.items()}
            self.servfail = {_norm(n) for n in servfail}

    def _records(self, name: str, qtype: str) -> list[RR]:
        entry = self.zone.get(name, {})
        owner = name + "."
        if qtype == "CAA":
            return [RR(owner, QTYPE.CAA, ttl=TTL, rdata=CAA(flags, tag, value)) for flags, tag, value in entry.get("CAA", ())]
        if qtype in _RDATA:
            return [RR(owner, getattr(QTYPE, qtype), ttl=TTL, rdata=_RDATA[qtype](v)) for v in entry.get(qtype, ())]
        if qtype == "CNAME" and entry.get("CNAME"):
            return [RR(owner, QTYPE.CNAME, ttl=TTL, rdata=CNAME(entry["CNAME"].rstrip(".") + "."))]
        return []

    def _exists(self, name: str) -> bool:
        return name in self.zone or any(known.endswith("." + name) for known in self.zone)

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        name = _norm(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            seen = set()
            while True:
                entry = self.zone.get(name, {})
                if entry.get("CNAME") and qtype != "CNAME" and name not in seen:
                    seen.add(name)
                    reply.add_answer(*self._records(name, "CNAME"))
                    name = _norm(entry["CNAME"])
                    if name in self.servfail:
                        reply.header.rcode = RCODE.SERVFAIL
                        return reply
                    continue
                break
            if not self._exists(name):
                if not seen:  # a dangling CNAME still answers NOERROR with the CNAME
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            reply.add_answer(*self._records(name, qtype))
            return reply


@dataclass
class RunningDns:
    port: int
    _resolver: _ZoneResolver = field(repr=False)
    _servers: list = field(repr=False)
    host: str = HOST

    @property
    def nameserver(self) -> str:
        """The "host:port" entry to give ``svcssl.dnscheck.make_resolver``."""
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._resolver.lock:
            return list(self._resolver.queries)

    def set_zone(self, zone: dict, servfail=()) -> None:
        self._resolver.set(zone, servfail)

    def stop(self) -> None:
        for server in self._servers:
            server.server.shutdown()
            server.server.server_close()
            server.thread.join(timeout=5)
        self._servers.clear()


def _quiet_logger() -> DNSLogger:
    return DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False, logf=lambda _s: None)


def start_dns_server(zone: dict, servfail=()) -> RunningDns:
    """Serve ``zone`` on 127.0.0.1 (UDP and TCP, same free port) until ``stop()``."""
    resolver = _ZoneResolver(zone, set(servfail))
    last_error: OSError | None = None
    for _attempt in range(20):
        udp = DNSServer(resolver, address=HOST, port=0, logger=_quiet_logger())
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address=HOST, port=port, tcp=True, logger=_quiet_logger())
        except OSError as exc:  # the TCP side of that port is taken: pick another
            last_error = exc
            udp.server.server_close()
            continue
        for server in (udp, tcp):
            server.server.daemon_threads = True
            server.thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05},
                                             name="test-dns", daemon=True)
            server.thread.start()
        return RunningDns(port, resolver, [udp, tcp])
    raise RuntimeError(f"no free port for the test DNS server: {last_error}")


def silent_udp_port() -> tuple[socket.socket, int]:
    """A bound UDP socket that never answers (a nameserver that times out). Close it when done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    return sock, sock.getsockname()[1]
