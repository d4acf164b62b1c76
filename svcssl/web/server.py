"""`svcssl serve`: the panel over HTTPS with cheroot, on the `cpanel` service's own certificate.

Why cheroot: a production-grade, pure-Python, thread-pooled WSGI server that terminates TLS
itself with Python's `ssl` module — so the panel can swap its certificate in-process. Each new
connection is wrapped with the current SSLContext; when the certificate files change (an install
from the web, the CLI or the maintenance run), the next handshake loads them, and connections in
flight keep the context they started with: no request is dropped. *Restart the panel* stops
accepting, lets the requests in flight finish, and re-executes the process (WHM's "Restart cpsrvd").
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import sys
import threading
import time
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)

STAT_INTERVAL = 0.25  # seconds between checks of the certificate files


class PanelCertificate:
    """The panel's TLS context, rebuilt when its certificate or key file changes."""

    def __init__(self, cert_file: Path, key_file: Path):
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._checked = 0.0
        self._context = self._load()
        if self._context is None:
            raise RuntimeError(f"cannot load the panel certificate {cert_file} with key {key_file}")

    def _stat_signature(self) -> tuple | None:
        try:
            a, b = os.stat(self.cert_file), os.stat(self.key_file)
        except OSError:
            return None
        return (a.st_ino, a.st_mtime_ns, a.st_size, b.st_ino, b.st_mtime_ns, b.st_size)

    def _load(self) -> ssl.SSLContext | None:
        signature = self._stat_signature()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # e.g. caught between the swap of the certificate and of the key: try again next time
            log.warning("panel certificate not (re)loaded yet: %s", exc)
            return None
        self._signature = signature
        return context

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= STAT_INTERVAL:
            with self._lock:
                self._checked = now
                if self._stat_signature() != self._signature:
                    fresh = self._load()
                    if fresh is not None:
                        self._context = fresh
                        log.info("panel certificate reloaded for new connections")
        return self._context


class ReloadingSSLAdapter(BuiltinSSLAdapter):
    def __init__(self, certificate: PanelCertificate):
        super().__init__(str(certificate.cert_file), str(certificate.key_file))
        self._certificate = certificate

    def wrap(self, sock):
        self._context = self._certificate.context()
        return super().wrap(sock)


class LoggingServer(wsgi.Server):
    """cheroot's messages through `logging`. A client that drops the TLS handshake — every browser visit to a panel
    with a self-signed certificate ("certificate unknown") — is routine: logged at debug level only."""

    ROUTINE = ("peer dropped the TLS connection",)

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        routine = any(words in msg for words in self.ROUTINE)
        log.log(logging.DEBUG if routine else level, "%s", msg, exc_info=bool(traceback) and not routine)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"listen address must be HOST:PORT, not {listen!r}") from None
    if not 0 < number < 65536:
        raise ValueError(f"port out of range in {listen!r}")
    return host, number


class PanelServer:
    """Runs the app; also the app's PanelControl (graceful restart)."""

    def __init__(self, listen: str, certificate: PanelCertificate, threads: int = 16):
        self.bind = parse_listen(listen)
        self.certificate = certificate
        self.threads = threads
        self.server: wsgi.Server | None = None
        self._restart = threading.Event()
        self._stoppers: list[threading.Thread] = []

    def _stop_in_background(self, delay: float = 0.0) -> None:
        """Stop the server from another thread; run() waits for it before it exits or re-executes."""

        def stop():
            time.sleep(delay)
            if self.server is not None:
                self.server.stop()  # waits for the requests in flight

        stopper = threading.Thread(target=stop, name="svcssl-stop", daemon=True)
        self._stoppers.append(stopper)
        stopper.start()

    def request_restart(self) -> None:
        self._restart.set()
        self._stop_in_background(delay=0.3)  # let the "restarting" page go out first

    def run(self, app) -> None:
        self.server = LoggingServer(self.bind, app, numthreads=self.threads, server_name="svcssl",
                                  shutdown_timeout=10)
        self.server.ssl_adapter = ReloadingSSLAdapter(self.certificate)

        def stop(signum, frame):
            self._restart.clear()  # SIGTERM/SIGINT mean exit, even during a restart
            self._stop_in_background()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            self.server.start()
        finally:
            # start() returns as soon as the serve loop sees the stop flag, while stop() in the other
            # thread is still letting the requests in flight finish: wait for it, or exec/exit cuts them off.
            for stopper in list(self._stoppers):
                stopper.join(self.server.shutdown_timeout + 5)
            self.server.stop()
        if self._restart.is_set():
            log.warning("restarting the panel")
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, "-m", "svcssl.cli", *sys.argv[1:]])
