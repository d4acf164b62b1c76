"""The TLS front: accept at once, cap connections per client address, handshake with a deadline.

Everything up to the request runs on one asyncio event loop, so an idle socket or a stalled
ClientHello never holds a thread and never delays the accept of the next client:

1. accept: a connection over the per-client or the total cap is closed at once (a client is an
   IPv4 address or an IPv6 /64, operations/clients.py);
2. wait, on the loop, for the whole first record of the ClientHello (SO_RCVLOWAT: the socket wakes
   the loop only when it is complete): an idle socket or a half-sent ClientHello costs a file
   descriptor, its kernel buffer and a timer, no TLS state;
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

from ...operations.clients import client_group
from .certificate import PanelCertificate
from .http import HttpConnection, Limits, Shared, Site
from .memory import give_back_memory

log = logging.getLogger(__name__)

# asyncio gives each TLS connection a read buffer of SSLProtocol.max_size, 256 KiB by default:
# 5 GB for 20,000 connections that send one byte each. 32 KiB holds two full TLS records.
TLS_READ_BUFFER = 32 * 1024
TLS_HANDSHAKE_RECORD = b"\x16"  # the first byte of every ClientHello
STREAM_LIMIT = 16 * 1024  # decrypted bytes a connection buffers (twice this) before reading pauses
TLS_RECORD_HEADER = 5  # type, version (2 bytes), length (2 bytes)
TLS_MAX_RECORD = 16384 + 2048  # RFC 8446 section 5.1 (+ the expansion TLS 1.2 allows)
TRIM_INTERVAL = 5.0  # seconds between looks at whether memory can go back to the system
TRIM_DROP = 32  # ... after at least this many connections closed since the last time
ACCEPT_BATCH = 64  # connections accepted per wake-up of the loop
ACCEPT_PAUSE = 0.5  # seconds without accepting when out of file descriptors
# When the loop runs late (more ready work than it can do), new connections wait in the kernel's
# backlog and accepted ones wait before their TLS handshake (the costly part): the connections that
# are already serving (a signed-in browser's keep-alive connection) keep their turn.
# A client (address or IPv6 network) whose connections keep ending in protocol errors (bad framing,
# bodies over the cap or in tiny chunks, trickled bodies) has its new connections closed at accept
# for a while: such a stream costs a TLS handshake each, and no browser sends it.
ABUSE_WINDOW = 10.0  # seconds
ABUSE_LIMIT = 20  # connections ended in a protocol error within the window ...
ABUSE_PENALTY = 30.0  # ... closes the client's new connections at once for this many seconds
LAG_INTERVAL = 0.05  # seconds between looks at the loop's lateness
LAG_LIMIT = 0.03  # seconds late: overloaded
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
        self.shared = Shared.for_limits(limits, app)
        self.peak = 0  # open connections at most since memory was last given back
        self.abuse: dict[str, tuple[int, float]] = {}  # client -> (protocol errors, since)
        self.penalized: dict[str, float] = {}  # client -> until
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
        self._trimmer = self._loop.call_later(TRIM_INTERVAL, self._trim)
        self.overloaded = False
        self._accepting = True
        self._paused_until = 0.0
        self._lag_timer = self._loop.call_later(LAG_INTERVAL, self._watch_lag, self._loop.time() + LAG_INTERVAL)

    def _watch_lag(self, expected: float) -> None:
        now = self._loop.time()
        self.overloaded = now - expected > LAG_LIMIT
        self._set_accepting(not self.overloaded and now >= self._paused_until)
        if not self.stopping:
            self._lag_timer = self._loop.call_later(LAG_INTERVAL, self._watch_lag, now + LAG_INTERVAL)

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self._accepting or self.stopping or self._listener is None:
            return
        self._accepting = accepting
        if accepting:
            self._loop.add_reader(self._listener.fileno(), self._accept)
        else:
            self._loop.remove_reader(self._listener.fileno())

    def _trim(self) -> None:
        """After a crowd leaves, give the freed memory back to the system (glibc keeps it otherwise)."""
        now_open = self.open_connections()
        if self.peak - now_open >= TRIM_DROP:
            give_back_memory()
            self.peak = now_open
        if not self.stopping:
            self._trimmer = self._loop.call_later(TRIM_INTERVAL, self._trim)

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
                    self._paused_until = self._loop.time() + ACCEPT_PAUSE
                    self._set_accepting(False)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            address = client_group(peer[0], self.limits.ipv6_prefix)
            if self.penalized and self._penalized(address):
                self._refuse(conn, address)
                continue
            if self.per_address[address] >= self.limits.per_address or \
                    self.open_connections() >= self.limits.max_connections:
                self._refuse(conn, address)
                continue
            conn.setblocking(False)
            self.per_address[address] += 1
            deadline = self._loop.time() + self.limits.handshake_timeout
            self.waiting[conn] = (self._loop.call_at(deadline, self._give_up, conn, address), address)
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn, address, deadline)
            self.peak = max(self.peak, self.open_connections())

    def _penalized(self, address: str) -> bool:
        until = self.penalized.get(address)
        if until is None:
            return False
        if until > self._loop.time():
            return True
        del self.penalized[address]
        return False

    def _note_abuse(self, address: str) -> None:
        now = self._loop.time()
        count, since = self.abuse.get(address, (0, now))
        if now - since > ABUSE_WINDOW:
            count, since = 0, now
        count += 1
        if count >= ABUSE_LIMIT:
            self.abuse.pop(address, None)
            self.penalized[address] = now + ABUSE_PENALTY
            log.warning("client %s: %d protocol errors in %.0f s: new connections refused for %.0f s", address,
                        count, now - since, ABUSE_PENALTY)
        else:
            self.abuse[address] = (count, since)
        if len(self.abuse) > 10_000:  # bounded: forget the oldest half
            for key in sorted(self.abuse, key=lambda k: self.abuse[k][1])[:5_000]:
                del self.abuse[key]

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
        if self.overloaded:  # the handshake waits (within its deadline) until the loop has caught up
            self._loop.remove_reader(conn.fileno())
            self._loop.call_later(LAG_INTERVAL, self._wait_again, conn, address, deadline)
            return
        address = self._stop_waiting(conn)
        try:
            complete = self._whole_first_record(conn)
        except OSError:
            complete = False  # gone, or not TLS: no TLS state for it
        if complete is None:  # a spurious wake-up, or a ClientHello still coming: wait for the rest
            self.waiting[conn] = (self._loop.call_at(deadline, self._give_up, conn, address), address)
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn, address, deadline)
            return
        if not complete:
            self._release(address)
            conn.close()
            return
        task = self._loop.create_task(self._serve(conn, address, deadline))
        self.connections[task] = None

    def _wait_again(self, conn: socket.socket, address: str, deadline: float) -> None:
        if conn in self.waiting:  # not given up on meanwhile
            self._loop.add_reader(conn.fileno(), self._first_bytes, conn, address, deadline)

    @staticmethod
    def _whole_first_record(conn: socket.socket) -> bool | None:
        """True: the first TLS record is all in the socket buffer; False: not TLS, or closed; None: not yet.

        Until it is complete, SO_RCVLOWAT makes the socket wake the loop only when enough has come:
        woken with less than that, the client has closed its side (or reset).
        """
        low_water = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
        try:
            head = conn.recv(TLS_RECORD_HEADER, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return None if low_water <= 1 else False
        if head[:1] != TLS_HANDSHAKE_RECORD:
            return False
        if low_water > 1 and len(conn.recv(low_water, socket.MSG_PEEK)) < low_water:
            return False
        wanted = TLS_RECORD_HEADER
        if len(head) == TLS_RECORD_HEADER:
            wanted += int.from_bytes(head[3:5], "big")
            if wanted > TLS_RECORD_HEADER + TLS_MAX_RECORD:
                return False
            if len(conn.recv(wanted, socket.MSG_PEEK)) >= wanted:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                return True
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, wanted)
        return None

    # --- 3. handshake, 4. HTTP ---------------------------------------------------------------

    async def _serve(self, conn: socket.socket, address: str, deadline: float) -> None:
        task = asyncio.current_task()
        writer = None
        graceful = False
        try:
            reader = asyncio.StreamReader(limit=STREAM_LIMIT)
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
                                  lambda: self.stopping, self.shared)
            self.connections[task] = http
            graceful = await http.serve()
        except (OSError, TimeoutError):
            pass
        finally:
            http = self.connections.get(task)
            if http is not None and http.misbehaved:
                self._note_abuse(address)
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
        self._trimmer.cancel()
        self._lag_timer.cancel()
        if self._listener is not None:
            if self._accepting:
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
