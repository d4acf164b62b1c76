"""Fetch the certificate a port serves: plain TLS, or STARTTLS for SMTP, IMAP, POP3 and FTP."""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from dataclasses import dataclass

from ..errors import SvcsslError
from ..settings import ProbeAddress


class ProbeError(SvcsslError):
    """The port could not be reached or did not complete the TLS handshake."""


@dataclass(frozen=True)
class ServedCertificate:
    der: bytes
    chain: tuple[bytes, ...] = ()  # DER of what the server sent after its leaf (unverified)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def _read_reply(reader, is_last) -> bytes:
    """Read lines until ``is_last(line)``; return that line."""
    while True:
        line = reader.readline(4096)
        if not line:
            raise ProbeError("the server closed the connection during the STARTTLS dialogue")
        if is_last(line):
            return line


def _smtp_final(line: bytes) -> bool:
    return len(line) >= 4 and line[3:4] != b"-"


def _starttls(sock: socket.socket, protocol: str) -> None:
    reader = sock.makefile("rb")
    try:
        if protocol in ("smtp-starttls", "ftp-auth-tls"):
            greeting = _read_reply(reader, _smtp_final)
            if not greeting.startswith(b"220"):
                raise ProbeError(f"unexpected greeting: {greeting[:80]!r}")
            if protocol == "smtp-starttls":
                sock.sendall(b"EHLO svcssl-probe.invalid\r\n")
                if not _read_reply(reader, _smtp_final).startswith(b"250"):
                    raise ProbeError("the SMTP server refused EHLO")
                sock.sendall(b"STARTTLS\r\n")
                want = b"220"
            else:
                sock.sendall(b"AUTH TLS\r\n")
                want = b"234"
            reply = _read_reply(reader, _smtp_final)
        elif protocol == "imap-starttls":
            _read_reply(reader, lambda line: True)
            sock.sendall(b"a1 STARTTLS\r\n")
            reply = _read_reply(reader, lambda line: line.startswith(b"a1 "))
            want = b"a1 OK"
        elif protocol == "pop3-starttls":
            _read_reply(reader, lambda line: True)
            sock.sendall(b"STLS\r\n")
            reply = _read_reply(reader, lambda line: True)
            want = b"+OK"
        else:  # pragma: no cover - settings validates the protocol
            raise ProbeError(f"unknown probe protocol {protocol}")
        if not reply.startswith(want):
            raise ProbeError(f"the server refused STARTTLS: {reply.strip()[:120].decode('ascii', 'replace')}")
    finally:
        reader.close()


def fetch_served_certificate(probe: ProbeAddress, timeout: float = 5.0, server_name: str | None = None) -> ServedCertificate:
    """Connect, negotiate TLS without verifying, and return the leaf the server presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            if probe.protocol != "tls":
                _starttls(raw, probe.protocol)
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
                chain = _sent_chain(tls)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"{probe}: {exc.strerror or exc}" if isinstance(exc, OSError) and exc.strerror else f"{probe}: {exc}") from None
    if not der:
        raise ProbeError(f"{probe}: the server presented no certificate")
    return ServedCertificate(der, chain[1:] if chain and chain[0] == der else chain)


MAX_SENT = 10  # certificates of a served chain kept (a hostile server may send many)


def _sent_chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    """The certificates the server sent, leaf first (Python 3.13: get_unverified_chain; before: the C object's)."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(getattr(tls, "_sslobj", None),
                                                                    "get_unverified_chain", None)
    if getter is None:
        return ()
    try:
        sent = getter() or []
    except (ssl.SSLError, ValueError):
        return ()
    result = []
    for cert in sent[:MAX_SENT]:
        data = cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER)
        result.append(bytes(data))
    return tuple(result)


def wait_for_fingerprint(probe: ProbeAddress, expected: str, timeout: float, server_name: str | None = None) -> tuple[bool, str]:
    """Probe until the port serves ``expected`` or ``timeout`` passes; return (matched, last result)."""
    deadline = time.monotonic() + timeout
    last = "not probed"
    while True:
        remaining = max(0.5, min(5.0, deadline - time.monotonic()))
        try:
            served = fetch_served_certificate(probe, remaining, server_name)
            if served.fingerprint == expected:
                return True, served.fingerprint
            last = f"still serves {served.fingerprint[:16]}…"
        except ProbeError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(0.2)
