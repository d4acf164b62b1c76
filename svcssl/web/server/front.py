"""The TLS front: accept at once, cap connections per client address, handshake with a deadline.

Everything up to the request runs on one asyncio event loop, so an idle socket or a stalled
ClientHello never holds a thread and never delays the accept of the next client:

1. accept: a connection over the per-address or the total cap is closed at once;
2. wait, on the loop, for the first bytes of the ClientHello: an idle socket costs a file
   descriptor and a timer, no TLS state;
3. the TLS handshake, finished within `handshake_timeout` of the accept;
4. HTTP/1.1 with its own deadlines (http.py); each request goes to the WSGI app in a thread pool.
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto
import errno
import logging
import socket
from collections import Counter
from concurrent.futures import Executor

from .certificate import PanelCertificate
from .http import HttpConnection, Limits, Site

log = logging.getLogger(__name__)

# asyncio gives each TLS connection a read buffer of SSLProtocol.max_size, 256 KiB by default:
# 5 GB for 20,000 connections that send one byte each. 32 KiB holds two full TLS records.
TLS_READ_BUFFER = 32 * 1024
TLS_HANDSHAKE_RECORD = b"\x16"  # the first byte of every ClientHello
ACCEPT_BATCH = 64  # connections accepted per wake-up of the loop
ACCEPT_PAUSE = 0.5  # seconds without accepting when out of file descriptors
CLOSE_TIMEOUT = 2.0  # for the TLS close of a connection that ends normally


class TLSFront:
    def __init__(self, app, certificate: PanelCertificate, executor: Executor, limits: Limits, site: Site):
        self.app = app
        self.certificate = certificate
        self.executor = executor
        self.limits = limits
        self.site = site
        self.per_address: Counter[str] = Counter()
        self.waiting: dict[socket.socket, tuple[asyncio.TimerHandle, str]] = {}  # accepted, nothing received yet
        self.connections: dict[asyncio.Task, HttpConnection | None] = {}  # handshaking or serving
        self.refused = 0  # connections closed at once for a cap
        self.stopping = False
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open_connections(self) -> int:
        return len(self.waiting) + len(self.connections)

    async def start(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        # the panel's process is the only user of asyncio's TLS in it: a smaller buffer for every connection
        sslproto.SSLProtocol.max_size = min(sslproto.SSLProtocol.max_size, TLS_READ_BUFFER)
        # a duplicate: stop() closes it, the original stays open for a restart (process.py)
        self._listener = sock.dup()
        self._listener.setblocking(False)
        self._loop.add_reader(self._listener.fileno(), self._accept)

    # --- 1. accept ---------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("out of file descriptors or memory (%s): not accepting for %.1f s", exc,
                                ACCEPT_PAUSE)
                    self._loop.remove_reader(self._listener.fileno())
                    self._loop.call_later(ACCEPT_PAUSE, self._resume_accepting)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            address = peer[0]
            if self.per_address[address] >= self.limits.per_address or \
                    self.open_connections() >= self.limits.max_connections:
                self._refuse(conn, address)
                continue
            conn.setblocking(False)
            self.per_address[address] += 1
            deadline = self._loop.time() + self.limits.handshake_timeout
            self.waiting[conn] = (self._loop.call_at(deadline, self._give_up, conn, address), address)
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn, address, deadline)

    def _resume_accepting(self) -> None:
        if not self.stopping and self._listener is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    def _refuse(self, conn: socket.socket, address: str) -> None:
        self.refused += 1
        if self.refused % 1000 == 1:
            log.warning("connection from %s refused: %d open from it, %d in all (caps %d and %d)", address,
                        self.per_address[address], self.open_connections(), self.limits.per_address,
                        self.limits.max_connections)
        conn.close()

    def _release(self, address: str) -> None:
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]

    # --- 2. wait for the ClientHello ---------------------------------------------------------

    def _stop_waiting(self, conn: socket.socket) -> str:
        self._loop.remove_reader(conn.fileno())
        timer, address = self.waiting.pop(conn)
        timer.cancel()
        return address

    def _give_up(self, conn: socket.socket, address: str) -> None:
        """Nothing received within the handshake deadline."""
        self._loop.remove_reader(conn.fileno())
        del self.waiting[conn]
        self._release(address)
        conn.close()

    def _first_bytes(self, conn: socket.socket, address: str, deadline: float) -> None:
        address = self._stop_waiting(conn)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):  # a spurious wake-up: wait again
            self.waiting[conn] = (self._loop.call_at(deadline, self._give_up, conn, address), address)
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn, address, deadline)
            return
        except OSError:
            first = b""
        if first != TLS_HANDSHAKE_RECORD:  # gone before a byte, or not TLS: no TLS state for it
            self._release(address)
            conn.close()
            return
        task = self._loop.create_task(self._serve(conn, address, deadline))
        self.connections[task] = None

    # --- 3. handshake, 4. HTTP ---------------------------------------------------------------

    async def _serve(self, conn: socket.socket, address: str, deadline: float) -> None:
        task = asyncio.current_task()
        writer = None
        graceful = False
        try:
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            remaining = max(0.05, deadline - self._loop.time())
            try:
                transport, _ = await self._loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=self.certificate.context(), ssl_handshake_timeout=remaining,
                    ssl_shutdown_timeout=CLOSE_TIMEOUT)
            except (OSError, TimeoutError, ValueError, EOFError):  # ssl.SSLError is an OSError
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, self._loop)
            http = HttpConnection(reader, writer, self.app, self.executor, self.limits, self.site,
                                  lambda: self.stopping)
            self.connections[task] = http
            graceful = await http.serve()
        except (OSError, TimeoutError):
            pass
        finally:
            self._release(address)
            del self.connections[task]
            if writer is None:
                conn.close()  # no transport took it over
            else:
                await self._close(writer, graceful)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter, graceful: bool) -> None:
        if not graceful:
            writer.transport.abort()
            return
        writer.close()  # flushes what is buffered, then the TLS close
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise

    # --- stop ----------------------------------------------------------------------------------

    async def stop(self, timeout: float) -> None:
        """Stop accepting; close idle connections; let requests in flight finish (up to `timeout`)."""
        self.stopping = True
        if self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for conn in list(self.waiting):
            self._release(self._stop_waiting(conn))
            conn.close()
        for task, http in list(self.connections.items()):
            if http is None or not http.busy:
                task.cancel()
        pending = list(self.connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d request(s) still running after %.0f s: cut off", len(late), timeout)
                await asyncio.wait(late, timeout=1.0)
