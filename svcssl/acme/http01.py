"""HTTP-01 (RFC 8555 §8.3) in a ``with`` block: ``acme.standalone``'s servers (threaded) on host:port, or webroot files.
A responder that cannot start raises :class:`HTTP01Error` before any challenge is answered."""

from __future__ import annotations

import logging
import os
import socketserver
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterable, Iterator

from acme import standalone

from ..errors import AcmeError
from ..fsutil import atomic_write
from ..settings import parse_listen

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:80"
Resource = standalone.HTTP01RequestHandler.HTTP01Resource  # (chall, response, validation)


class _ThreadedServer(socketserver.ThreadingMixIn, standalone.HTTP01Server):
    daemon_threads = True  # a thread per connection: an idle client cannot hold the port while the CA validates


class HTTP01Error(AcmeError):
    """The HTTP-01 responder could not be started (port in use, webroot not writable, ...)."""


class StandaloneResponder:
    """Serve the resources with ``acme.standalone``'s HTTP-01 servers on ``listen`` inside the ``with`` block."""

    def __init__(self, listen: str | None, resources: Iterable[Resource]):
        self.listen, self.resources = listen or DEFAULT_LISTEN, set(resources)
        self.address = parse_listen(self.listen, "HTTP-01 listen address")

    def __enter__(self) -> "StandaloneResponder":
        try:
            self._servers = standalone.BaseDualNetworkedServers(_ThreadedServer, self.address, self.resources,
                                                                timeout=10)
        except OSError as exc:
            hint = (" (if a web server already uses this port, configure a webroot so that it serves the"
                    " challenge files instead)") if exc.errno in (98, 13) else ""  # EADDRINUSE, EACCES
            raise HTTP01Error(
                f"cannot listen on {self.listen} for HTTP-01 validation: {exc.strerror or exc}{hint}") from None
        self._servers.serve_forever()
        log.info("HTTP-01 listener on %s serving %d challenge(s)", self.listen, len(self.resources))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._servers.shutdown_and_server_close()
        log.info("HTTP-01 listener on %s closed", self.listen)


@contextmanager
def webroot_files(webroot: Path, resources: Iterable[Resource]) -> Iterator[None]:
    """Write ``webroot/.well-known/acme-challenge/TOKEN`` (0644); remove the files and the directories made."""
    directory = Path(webroot) / ".well-known" / "acme-challenge"
    if not Path(webroot).is_dir():
        raise HTTP01Error(f"the HTTP-01 webroot {webroot} is not a directory")
    created = [folder for folder in (directory.parent, directory) if not folder.is_dir()]
    files = {directory / resource.chall.encode("token"): resource.validation for resource in resources}
    try:
        try:
            for folder in created:
                folder.mkdir(mode=0o755)
                os.chmod(folder, 0o755)  # whatever the umask: the web server must read it
            for path, validation in files.items():
                atomic_write(path, validation.encode("ascii"), mode=0o644)
        except OSError as exc:
            raise HTTP01Error(f"cannot write HTTP-01 challenge files under {directory}: "
                              f"{exc.strerror or exc}") from None
        log.info("HTTP-01 challenge files written under %s (%d)", directory, len(files))
        yield
    finally:
        for path in files:
            with suppress(OSError):
                path.unlink()
        for folder in reversed(created):
            with suppress(OSError):  # not empty (someone else's files) or already gone
                folder.rmdir()
        log.info("HTTP-01 challenge files removed from %s", directory)
