"""`svcssl serve`: the panel over HTTPS on the `cpanel` service's own certificate.

An asyncio TLS front (front.py) accepts, caps connections per client address and handshakes with a
deadline; each request goes to the WSGI app in a thread pool (http.py); the certificate is swapped
in-process (certificate.py). *Restart the panel* stops accepting, lets the requests in flight
finish, and re-executes the same program (process.py) — WHM's "Restart cpsrvd".
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ...settings import parse_listen
from .certificate import PanelCertificate
from .front import TLSFront
from .http import Limits, Site
from .memory import settle_at_start
from .process import connection_budget, listening_socket, raise_fd_limit, reexec

__all__ = ["Limits", "PanelCertificate", "PanelServer", "bind_address"]

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0  # seconds the requests in flight get at a stop or restart


def bind_address(listen: str) -> tuple[str, int]:
    """Where ``svcssl serve`` listens: ``:port`` means every IPv4 address."""
    host, port = parse_listen(listen)
    return host or "0.0.0.0", port


def _body_cap(app) -> int | None:
    """The app's own request-size cap (Flask's MAX_CONTENT_LENGTH): the server buffers no more."""
    value = getattr(app, "config", {}).get("MAX_CONTENT_LENGTH")
    return value if isinstance(value, int) and value > 0 else None


def _configured(limits: Limits, app) -> Limits:
    """The [limits] of the app's settings (svcssl's app keeps them in app.extensions["svcssl"])."""
    settings = getattr(getattr(app, "extensions", {}).get("svcssl"), "settings", None)
    if settings is None:
        return limits
    # uploads in progress: beside the state, not in a shared /tmp; made by the first upload that needs it (a
    # server started on a full disk writes nothing until someone writes)
    spool = settings.server.state_dir / "tmp"
    return replace(limits, body_budget=settings.limits.request_body_budget,
                   unauthenticated_body=settings.limits.unauthenticated_body_bytes,
                   ipv6_prefix=settings.limits.ipv6_prefix, spool_dir=str(spool) if spool else None)


class PanelServer:
    """Runs the app; also the app's PanelControl (graceful restart)."""

    def __init__(self, listen: str, certificate: PanelCertificate, threads: int = 16, limits: Limits | None = None):
        self.bind = bind_address(listen)
        self.certificate = certificate
        self.threads = threads
        self.limits = limits
        self.front: TLSFront | None = None
        self._restart = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._lock = threading.Lock()

    def request_restart(self) -> None:
        """From any thread (the restart page's request): stop gracefully, then re-execute."""
        self._request_stop(restart=True)

    def _request_stop(self, restart: bool) -> None:
        with self._lock:
            if self._stopping and not self._restart:
                return  # an exit was asked for already: it wins
            self._restart = restart
            self._stopping = True
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)

    def _on_signal(self, signum, frame) -> None:
        self._request_stop(restart=False)  # SIGTERM/SIGINT mean exit, even during a restart

    def run(self, app) -> None:
        """Serve until stopped; re-execute if a restart was asked for.

        The event loop runs in its own thread (the caller's thread may have a loop of its own);
        this thread handles SIGTERM/SIGINT and does the re-exec.
        """
        fd_limit = raise_fd_limit()
        limits = self.limits or _configured(Limits(max_connections=connection_budget(fd_limit),
                                                   max_body=_body_cap(app) or Limits.max_body), app)
        settle_at_start()
        sock = listening_socket(*self.bind)
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        executor = ThreadPoolExecutor(self.threads, thread_name_prefix="svcssl-http")
        failure: list[BaseException] = []

        def loop_thread() -> None:
            try:
                asyncio.run(self._serve(app, sock, executor, limits))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                failure.append(exc)

        front = threading.Thread(target=loop_thread, name="svcssl-front")
        try:
            front.start()
            front.join()
        finally:
            executor.shutdown(wait=True)
        if failure:
            sock.close()
            raise failure[0]
        if self._restart:
            log.warning("restarting the panel")
            reexec(sock)
        sock.close()

    async def _serve(self, app, sock, executor, limits: Limits) -> None:
        loop = asyncio.get_running_loop()
        site = Site(name=self.bind[0], port=self.bind[1])
        self.front = TLSFront(app, self.certificate, executor, limits, site)
        await self.front.start(sock)
        with self._lock:
            self._loop, self._stop = loop, asyncio.Event()
            if self._stopping:
                self._stop.set()
        try:
            await self._stop.wait()
            await self.front.stop(SHUTDOWN_TIMEOUT)
        finally:
            with self._lock:
                self._loop = self._stop = None
