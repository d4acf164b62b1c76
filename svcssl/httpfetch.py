"""One bounded HTTP(S) client for the URLs certificates name: CRLs, OCSP responders, caIssuers.

Those URLs come from certificates, which anyone may paste, so every fetch has the same policy:
http and https only; the host is resolved once and the connection goes to the address that was
checked (a second DNS answer cannot send it elsewhere); addresses of this server's own networks are
refused unless the caller allows them; no proxy from the environment; at most ``max_redirects``
redirects (each hop checked again); at most ``max_bytes`` read, and ``timeout`` seconds in all.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 5.0  # seconds for the whole fetch, redirects included
    max_bytes: int = 64 * 1024
    max_redirects: int = 0
    allow_local: bool = False  # loopback, private, link-local … (tests on loopback; CRL/OCSP as before)
    user_agent: str = "svcssl"


class FetchError(Exception):
    """Why a URL could not be fetched, in words for a person (``HTTP 404 Not Found``, ``timed out after 5 s``)."""

    def __init__(self, message: str, *, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _address(host: str, port: int, allow_local: bool) -> str:
    """The one address to connect to, checked; FetchError when it must not be reached."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise FetchError(f"{host} does not resolve") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise FetchError(f"{host} does not resolve")
    if not allow_local:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not address.is_global:
                raise FetchError(f"{host} resolves to {address}, an address of this server's own network")
    return addresses[0]


def _read(response: http.client.HTTPResponse, policy: FetchPolicy, deadline: float) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > policy.max_bytes:
        raise FetchError(f"the answer of {int(length):,} bytes is over the {policy.max_bytes:,}-byte limit",
                         too_large=True)
    chunks, total = [], 0
    while True:
        if time.monotonic() > deadline:
            raise FetchError(f"timed out after {policy.timeout:g} s")
        chunk = response.read1(min(65536, policy.max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchError(f"the answer is over the {policy.max_bytes:,}-byte limit", too_large=True)


def fetch(url: str, policy: FetchPolicy, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    """GET ``url`` (or POST ``body``) under ``policy``; the body of a 200 answer, else FetchError."""
    deadline = time.monotonic() + policy.timeout
    for _hop in range(policy.max_redirects + 1):
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"{url} is not an http or https URL")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"the port of {url} is not valid") from None
        if not parts.hostname:
            raise FetchError(f"{url} names no host")
        address = _address(parts.hostname, port, policy.allow_local)
        kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        remaining = max(0.05, deadline - time.monotonic())
        connection = kind(parts.hostname, port, address, remaining)
        try:
            connection.request("POST" if body is not None else "GET",
                               (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                               headers={"User-Agent": policy.user_agent, "Connection": "close", **(headers or {})})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urllib.parse.urljoin(url, response.getheader("Location"))
                if _hop == policy.max_redirects:
                    raise FetchError(f"HTTP {response.status} {response.reason}: redirected more than "
                                     f"{policy.max_redirects} times" if policy.max_redirects else
                                     f"HTTP {response.status} {response.reason}: redirects are not followed")
                continue
            if response.status != 200:
                raise FetchError(f"HTTP {response.status} {response.reason}")
            return _read(response, policy, deadline)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"timed out after {policy.timeout:g} s") from None
        except (OSError, ValueError) as exc:
            raise FetchError(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from None
        except http.client.HTTPException as exc:  # IncompleteRead, BadStatusLine …
            raise FetchError(f"{type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
    raise FetchError(f"redirected more than {policy.max_redirects} times")  # pragma: no cover
