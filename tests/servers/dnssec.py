"""Real DNSSEC on loopback: a zone signed with ``ldns-signzone``, served by NSD, validated by Unbound.

    dnssec = start_dnssec(workdir, "example.test", {"mail": [("A", "127.0.0.1")]})
    dnssec.resolver       # "127.0.0.1:PORT" of unbound: give it to svcssl as [dns] nameservers
    dnssec.authoritative  # "127.0.0.1:PORT" of nsd: answers without validation (no AD bit)
    dnssec.set_records({...})  # re-sign and reload (nsd SIGHUP); unbound sees it once the short TTL runs out
    dnssec.stop()

The signed zone's DS is unbound's trust anchor, so its answers carry the AD bit. A second zone, ``plain.<zone>``'s
sibling ``unsigned.test``, is served unsigned and has no anchor: unbound answers it without AD. Every record has
``ttl`` seconds (default 2) so that a change is seen after a couple of seconds. Both daemons run in the
foreground (``-d``) in their own session and are stopped by PID (see /work/shared/real-parts.md: unbound needs
``do-not-query-localhost: no`` and ``local-zone: "test." transparent``, since it answers ``test.`` itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query

from .ports import free_port

HOST = "127.0.0.1"
UNSIGNED_ZONE = "unsigned.test"
START_TIMEOUT = 10.0


def missing_dnssec_binaries() -> list[str]:
    import shutil
    return [name for name in ("nsd", "unbound", "ldns-signzone", "ldns-keygen")
            if shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin") is None]


def _run(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _zone_text(origin: str, records: dict[str, list[tuple[str, str]]], ttl: int, serial: int) -> str:
    lines = [f"$ORIGIN {origin}.", f"$TTL {ttl}",
             f"@ IN SOA ns.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 {ttl}",
             f"@ IN NS ns.{origin}.", f"ns IN A {HOST}"]
    for owner, entries in records.items():
        for rtype, value in entries:
            lines.append(f"{owner} IN {rtype} {value}")
    return "\n".join(lines) + "\n"


@dataclass
class RunningDnssec:
    workdir: Path
    zone: str
    ttl: int
    nsd_port: int
    unbound_port: int
    ksk: str
    zsk: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    serial: int = 1

    @property
    def resolver(self) -> str:
        return f"{HOST}:{self.unbound_port}"

    @property
    def authoritative(self) -> str:
        return f"{HOST}:{self.nsd_port}"

    def _write_zones(self, records: dict, unsigned: dict) -> None:
        self.serial += 1
        zonefile = self.workdir / f"{self.zone}.zone"
        zonefile.write_text(_zone_text(self.zone, records, self.ttl, self.serial))
        _run(["ldns-signzone", "-f", str(zonefile) + ".signed", str(zonefile), self.ksk, self.zsk], self.workdir)
        (self.workdir / f"{UNSIGNED_ZONE}.zone").write_text(_zone_text(UNSIGNED_ZONE, unsigned, self.ttl, self.serial))

    def set_records(self, records: dict, unsigned: dict | None = None, *, wait: bool = True) -> None:
        """Replace the signed zone's records (and the unsigned zone's), re-sign, reload NSD; with ``wait``,
        return once NSD serves the new serial and the TTL has run out in unbound's cache."""
        self._write_zones(records, unsigned or {})
        nsd = self.processes[0]
        nsd.send_signal(signal.SIGHUP)
        if wait:
            deadline = time.monotonic() + START_TIMEOUT
            while self._nsd_serial() != self.serial:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nsd did not load serial {self.serial}\n{self.log_tail()}")
                time.sleep(0.1)
            time.sleep(self.ttl + 0.5)

    def _nsd_serial(self) -> int | None:
        query = dns.message.make_query(self.zone + ".", "SOA")
        try:
            response = dns.query.udp(query, HOST, port=self.nsd_port, timeout=1)
        except Exception:
            return None
        for rrset in response.answer:
            for rdata in rrset:
                return int(rdata.serial)
        return None

    def log_tail(self) -> str:
        parts = []
        for name in ("nsd.log", "unbound.log", "nsd.out", "unbound.out"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.processes.clear()


def _wait_answers(port: int, name: str, proc: subprocess.Popen, what: str, workdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            dns.query.udp(dns.message.make_query(name, "SOA"), HOST, port=port, timeout=0.5)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on {HOST}:{port}")


def start_dnssec(workdir: Path, zone: str, records: dict, *, unsigned: dict | None = None,
                 ttl: int = 2) -> RunningDnssec:
    """Sign ``zone`` with new keys, serve it with NSD and validate it with Unbound (its DS as trust anchor)."""
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    ksk = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone], workdir).strip()
    zsk = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", zone], workdir).strip()
    ds = (workdir / f"{ksk}.ds").read_text().split(";")[0].strip()
    ds = " ".join(ds.split())
    nsd_port, unbound_port = free_port(udp_too=True), free_port(udp_too=True)
    running = RunningDnssec(workdir, zone, ttl, nsd_port, unbound_port, ksk, zsk)
    running._write_zones(records, unsigned or {})
    (workdir / "nsd.conf").write_text(f"""\
server:
  ip-address: {HOST}@{nsd_port}
  port: {nsd_port}
  zonesdir: "{workdir}"
  pidfile: "{workdir}/nsd.pid"
  xfrdfile: "{workdir}/xfrd.state"
  zonelistfile: "{workdir}/zone.list"
  database: ""
  username: ""
  chroot: ""
  logfile: "{workdir}/nsd.log"
  verbosity: 1
  server-count: 1
  reuseport: no
remote-control:
  control-enable: no
zone:
  name: "{zone}"
  zonefile: "{zone}.zone.signed"
zone:
  name: "{UNSIGNED_ZONE}"
  zonefile: "{UNSIGNED_ZONE}.zone"
""")
    (workdir / "unbound.conf").write_text(f"""\
server:
  interface: {HOST}
  port: {unbound_port}
  do-ip6: no
  do-not-query-localhost: no
  username: ""
  chroot: ""
  directory: "{workdir}"
  pidfile: "{workdir}/unbound.pid"
  use-syslog: no
  logfile: "{workdir}/unbound.log"
  verbosity: 1
  num-threads: 1
  val-permissive-mode: no
  module-config: "validator iterator"
  trust-anchor: "{ds}"
  local-zone: "test." transparent
  cache-max-ttl: {ttl}
  cache-max-negative-ttl: {ttl}
  serve-expired: no
  prefetch: no
stub-zone:
  name: "{zone}."
  stub-addr: {HOST}@{nsd_port}
stub-zone:
  name: "{UNSIGNED_ZONE}."
  stub-addr: {HOST}@{nsd_port}
remote-control:
  control-enable: no
""")
    try:
        for name, argv in (("nsd", ["nsd", "-d", "-c", str(workdir / "nsd.conf")]),
                           ("unbound", ["unbound", "-d", "-c", str(workdir / "unbound.conf")])):
            with open(workdir / f"{name}.out", "ab") as sink:
                proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=sink,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            running.processes.append(proc)
            port = nsd_port if name == "nsd" else unbound_port
            _wait_answers(port, zone + ".", proc, name, workdir)
        # the chain of trust works: unbound validates the zone's SOA
        response = dns.query.udp(dns.message.make_query(zone + ".", "SOA", want_dnssec=True), HOST,
                                 port=unbound_port, timeout=3)
        if not response.flags & dns.flags.AD:
            raise RuntimeError(f"unbound does not validate {zone} (no AD bit: {response.rcode()})")
    except BaseException as exc:
        tail = running.log_tail()
        running.stop()
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}\n{tail}") from None
        raise
    return running
