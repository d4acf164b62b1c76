"""HTTP-01 (RFC 8555 §8.3) while the CA validates: ``acme.standalone``'s server on ``host:port``, or webroot files.

Both publish ``acme.standalone`` resources (challenge, response, key authorisation) only inside their
``with`` block; one that cannot start raises :class:`HTTP01Error` before any challenge is answered.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from acme import standalone

from ..errors import ConfigError, SvcsslError
from ..fsutil import atomic_write

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:80"
Resource = standalone.HTTP01RequestHandler.HTTP01Resource  # (chall, response, validation)


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


class _Handler(standalone.HTTP01RequestHandler):
    """``acme``'s HTTP-01 handler, answering 404 (rather than nothing) for a token it does not hold."""

    def handle_simple_http_resource(self) -> None:
        if any(resource.chall.path == self.path for resource in self.simple_http_resources):
            super().handle_simple_http_resource()
        else:
            self.handle_404()


class _Server(socketserver.ThreadingMixIn, standalone.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] in ("::", ""):
            try:  # "[::]:80" answers IPv4 too, whatever the system default
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        super().server_bind()


class StandaloneResponder:
    """Serve the resources on ``listen`` in a thread while inside the ``with`` block (404 for anything else)."""

    def __init__(self, listen: str | None, resources: Iterable[Resource]):
        self.listen, self.resources = listen or DEFAULT_LISTEN, set(resources)
        self.address = parse_listen(self.listen)

    def __enter__(self) -> "StandaloneResponder":
        handler = _Handler.partial_init(simple_http_resources=self.resources, timeout=30)
        try:
            self._server = _Server(self.address, handler, ipv6=":" in self.address[0])
        except OSError as exc:
            hint = (" (if a web server already uses this port, configure a webroot so that it serves the"
                    " challenge files instead)") if exc.errno in (98, 13) else ""  # EADDRINUSE, EACCES
            raise HTTP01Error(
                f"cannot listen on {self.listen} for HTTP-01 validation: {exc.strerror or exc}{hint}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="svcssl-http01", daemon=True)
        self._thread.start()
        log.info("HTTP-01 listener on %s serving %d challenge(s)", self.listen, len(self.resources))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        log.info("HTTP-01 listener on %s closed", self.listen)


@contextmanager
def webroot_files(webroot: Path, resources: Iterable[Resource]) -> Iterator[None]:
    """Write ``webroot/.well-known/acme-challenge/TOKEN`` (0644); remove the files and the directories made."""
    directory, written, created = Path(webroot) / ".well-known" / "acme-challenge", [], []
    if not Path(webroot).is_dir():
        raise HTTP01Error(f"the HTTP-01 webroot {webroot} is not a directory")
    try:
        try:
            for folder in (directory.parent, directory):
                if not folder.is_dir():
                    folder.mkdir(mode=0o755)
                    os.chmod(folder, 0o755)  # whatever the umask: the web server must read it
                    created.append(folder)
            for resource in resources:
                written.append(directory / resource.chall.encode("token"))
                atomic_write(written[-1], resource.validation.encode("ascii"), mode=0o644)
        except OSError as exc:
            raise HTTP01Error(f"cannot write HTTP-01 challenge files under {directory}: {exc.strerror or exc}") from None
        log.info("HTTP-01 challenge files written under %s (%d)", directory, len(written))
        yield
    finally:
        for path in written:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove HTTP-01 challenge file %s: %s", path, exc.strerror)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass  # not empty (someone else's files) or already gone
        log.info("HTTP-01 challenge files removed from %s", directory)


def responder(listen: str | None, webroot: Path | None, resources: Iterable[Resource]):
    """The responder a configuration asks for: webroot files when a webroot is set, else a listener."""
    return webroot_files(webroot, resources) if webroot is not None else StandaloneResponder(listen, resources)
