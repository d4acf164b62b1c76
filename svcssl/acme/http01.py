"""HTTP-01 responders (RFC 8555 §8.3): a standalone listener or files under a web server's webroot.

Both are context managers that publish ``{token: key_authorisation}`` while the CA validates and
withdraw it afterwards:

* :class:`StandaloneResponder` binds ``host:port`` only inside the ``with`` block and serves, in a
  thread, exactly the key authorisation at ``/.well-known/acme-challenge/TOKEN`` (404 for anything
  else).
* :class:`WebrootResponder` writes ``webroot/.well-known/acme-challenge/TOKEN`` (0644) and removes
  the files (and the directories it created) afterwards.

A responder that cannot start raises :class:`HTTP01Error` (an ``AcmeError`` without a problem
document) before any challenge has been answered.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError, SvcsslError
from ..fsutil import atomic_write

log = logging.getLogger(__name__)

CHALLENGE_PATH = "/.well-known/acme-challenge/"
DEFAULT_LISTEN = "0.0.0.0:80"


class HTTP01Error(SvcsslError):
    """The HTTP-01 responder could not be started (port in use, webroot not writable, ...)."""


def parse_listen(listen: str | None) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``":port"`` (every IPv4 address) to ``(host, port)``.

    ``"[::]:80"`` listens on every IPv6 and IPv4 address (dual stack).
    """
    text = (listen or DEFAULT_LISTEN).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"HTTP-01 listen address {text!r} is not host:port (e.g. 0.0.0.0:80)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], responses: Mapping[str, bytes]):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.responses = dict(responses)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            try:  # "[::]:80" answers IPv4 too, whatever the system default
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "svcssl-http01"
    sys_version = ""

    def _respond(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        body = None
        if path.startswith(CHALLENGE_PATH):
            body = self.server.responses.get(path[len(CHALLENGE_PATH):])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._respond(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        log.debug("HTTP-01 request from %s: %s", self.address_string(), format % args)


class StandaloneResponder:
    """Serve key authorisations on ``listen`` while inside the ``with`` block."""

    def __init__(self, listen: str | None, responses: Mapping[str, str]):
        self.listen = listen or DEFAULT_LISTEN
        self.address = parse_listen(self.listen)
        self.responses = {token: value.encode("ascii") for token, value in responses.items()}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "StandaloneResponder":
        try:
            self._server = _Server(self.address, self.responses)
        except OSError as exc:
            hint = ""
            if exc.errno in (98, 13):  # EADDRINUSE, EACCES
                hint = (" (if a web server already uses this port, configure a webroot so that it serves the"
                        " challenge files instead)")
            raise HTTP01Error(
                f"cannot listen on {self.listen} for HTTP-01 validation: {exc.strerror or exc}{hint}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="svcssl-http01", daemon=True)
        self._thread.start()
        log.info("HTTP-01 listener on %s serving %d challenge(s)", self.listen, len(self.responses))
        return self

    def __exit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        log.info("HTTP-01 listener on %s closed", self.listen)


class WebrootResponder:
    """Publish key authorisations as files under ``webroot/.well-known/acme-challenge/``."""

    def __init__(self, webroot: Path, responses: Mapping[str, str]):
        self.webroot = Path(webroot)
        self.directory = self.webroot / CHALLENGE_PATH.strip("/")
        self.responses = dict(responses)
        self._written: list[Path] = []
        self._created: list[Path] = []

    def __enter__(self) -> "WebrootResponder":
        if not self.webroot.is_dir():
            raise HTTP01Error(f"the HTTP-01 webroot {self.webroot} is not a directory")
        try:
            for directory in (self.webroot / ".well-known", self.directory):
                if not directory.is_dir():
                    directory.mkdir(mode=0o755)
                    os.chmod(directory, 0o755)  # whatever the umask: the web server must read it
                    self._created.append(directory)
            for token, value in self.responses.items():
                target = self.directory / token
                atomic_write(target, value.encode("ascii"), mode=0o644)
                self._written.append(target)
        except OSError as exc:
            self._remove()
            raise HTTP01Error(f"cannot write HTTP-01 challenge files under {self.directory}: "
                              f"{exc.strerror or exc}") from None
        log.info("HTTP-01 challenge files written under %s (%d)", self.directory, len(self._written))
        return self

    def _remove(self) -> None:
        for path in self._written:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove HTTP-01 challenge file %s: %s", path, exc.strerror)
        self._written.clear()
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:
                pass  # not empty (someone else's files) or already gone
        self._created.clear()

    def __exit__(self, *exc_info) -> None:
        self._remove()
        log.info("HTTP-01 challenge files removed from %s", self.directory)


def responder(listen: str | None, webroot: Path | None, responses: Mapping[str, str]):
    """The responder a configuration asks for: webroot files when a webroot is set, else a listener."""
    if webroot is not None:
        return WebrootResponder(webroot, responses)
    return StandaloneResponder(listen, responses)
