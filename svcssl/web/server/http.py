"""HTTP/1.1 on one (TLS) stream, answered by a WSGI application in a thread pool.

h11 parses and frames; this module adds the deadlines (request head, body, writes), the body cap,
the WSGI environ, and the few RFC 9112 rules h11 is lenient about (`check_head`): a head with a
bare LF, an obs-fold or a control character, a version other than 1.0/1.1, or both
Content-Length and Transfer-Encoding is refused and the connection closed. The application's response is collected in the worker thread and written
with a Content-Length (the panel's pages are small and nothing of it streams).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import sys
import tempfile
from concurrent.futures import Executor
from dataclasses import dataclass
from email.utils import formatdate
from typing import Callable
from urllib.parse import unquote_to_bytes, urlsplit

import h11

log = logging.getLogger(__name__)


def spool_directory(path: str | None) -> str | None:
    """The directory for large uploads, made 0700 by the first upload that needs it; None (the system's
    temporary directory) when it cannot be made."""
    if path is None:
        return None
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        log.warning("cannot use %s for uploads in progress (%s): using the system's temporary directory", path, exc)
        return None
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    return path

READ_SIZE = 64 * 1024
MAX_HEAD = 32 * 1024  # request line and headers; more answers 431
NO_BODY_STATUS = {204, 304}
HEAD_END = b"\r\n\r\n"
# h11 spends a few microseconds of Python on each chunk of a chunked body: one-byte chunks would cost
# the event loop ~20 ms per 64 KiB read. Browsers send no chunked bodies; curl's chunks are kilobytes.
MAX_SMALL_CHUNKS = 64  # chunks a body may have ...
SMALL_CHUNK = 4096  # ... averaging less than this size
LINGER_SECONDS = 2.0  # after an early answer (413), what the client still sends is read and dropped ...
LINGER_BYTES = 256 * 1024  # ... up to this much
HTTP_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # in a field line: everything below SP but HT, and DEL


class FramingError(h11.RemoteProtocolError):
    """A request head h11 would take but RFC 9112 says to refuse: answered, then the connection closes."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message, error_status_hint=status)
        self.message = message


def check_line_endings(data: bytes) -> None:
    """Every line of a head ends with CRLF: a bare LF or a bare CR is refused (request smuggling)."""
    if data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\r\n"):
        raise FramingError("Bad request: lines must end with CRLF")


def check_head(head: bytes) -> None:
    """The request line and header lines of one complete head (ending with CRLF CRLF)."""
    check_line_endings(head)
    lines = head[: -len(HEAD_END)].split(b"\r\n")
    while lines and not lines[0]:
        lines.pop(0)  # empty lines before the request line are allowed (RFC 9112 section 2.2)
    if not lines:
        return
    parts = lines[0].split(b" ")
    if len(parts) == 3 and HTTP_VERSION.fullmatch(parts[2]) and parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise FramingError("HTTP version not supported", 505)
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise FramingError("Bad request: obsolete line folding (obs-fold)")
        if CONTROL.search(line):
            raise FramingError("Bad request: a control character in a header")


def check_framing(request: h11.Request) -> None:
    names = {name for name, _ in request.headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        raise FramingError("Bad request: both Content-Length and Transfer-Encoding")


@dataclass(frozen=True)
class Limits:
    handshake_timeout: float = 5.0   # TCP accept to the end of the TLS handshake
    head_timeout: float = 10.0       # the whole request head, from the handshake or the previous response
    body_timeout: float = 30.0       # the whole request body
    write_timeout: float = 30.0      # the client must take each response in this time
    # open connections per client address (like nginx's limit_conn): a browser opens up to 6 per host,
    # so 64 leaves room for an office behind one NAT address, scripts, and a reverse proxy's pool
    per_address: int = 64
    max_connections: int = 4096      # open connections in all (kept under the file-descriptor limit)
    max_body: int = 64 * 1024 * 1024
    body_budget: int = 64 * 1024 * 1024      # request bytes held in memory, all connections together
    unauthenticated_body: int = 64 * 1024    # the body of a request without a signed session cookie
    spool_above: int = 1024 * 1024           # a signed-in body larger than this goes to a file, not memory
    spool_dir: str | None = None             # where (None: the system's temporary directory)
    min_body_rate: int = 1024                # bytes per second a body must average ...
    body_grace: float = 10.0                 # ... from this many seconds after its head
    ipv6_prefix: int = 64                    # IPv6 clients are counted by network (operations/clients.py)
    unauthenticated_workers: int = 4         # threads requests without a signed session may use at once


class BodyBudget:
    """Request-body bytes held in memory by all connections together (used on the event loop only).

    Requests without a signed session cookie may hold half of it: the other half stays for the
    signed-in, whatever strangers send.
    """

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.used_by_strangers = 0

    def take(self, size: int, signed_in: bool) -> bool:
        if self.used + size > self.total or (not signed_in and self.used_by_strangers + size > self.total // 2):
            return False
        self.used += size
        if not signed_in:
            self.used_by_strangers += size
        return True

    def give(self, size: int, signed_in: bool) -> None:
        self.used -= size
        if not signed_in:
            self.used_by_strangers -= size


class Shared:
    """What the connections share: the body budget, the threads of the unauthenticated, the session check."""

    def __init__(self, limits: Limits, signed_in: Callable[[h11.Request], bool]):
        self.budget = BodyBudget(limits.body_budget)
        self.unauthenticated = asyncio.Semaphore(max(1, limits.unauthenticated_workers))
        self.signed_in = signed_in

    @classmethod
    def for_limits(cls, limits: Limits, app) -> "Shared":
        return cls(limits, session_checker(app))


def session_checker(app) -> Callable[[h11.Request], bool]:
    """Does a request carry a session cookie the app signed (a signed-in browser)? An HMAC check, no I/O.

    A cookie of a session ended since still passes: this decides who is served first and how much
    body is read, the app itself decides who is signed in.
    """
    interface = getattr(app, "session_interface", None)
    try:
        serializer = interface.get_signing_serializer(app)
        name = app.config["SESSION_COOKIE_NAME"].encode("latin-1")
        max_age = int(app.permanent_session_lifetime.total_seconds())
    except (AttributeError, KeyError, TypeError):
        serializer = None
    if serializer is None:
        return lambda request: False

    def signed_in(request: h11.Request) -> bool:
        for header, value in request.headers:
            if header != b"cookie":
                continue
            for part in value.split(b";"):
                key, _, cookie = part.strip().partition(b"=")
                if key == name:
                    try:
                        return bool(serializer.loads(cookie.decode("latin-1"), max_age=max_age).get("sid"))
                    except Exception:  # noqa: BLE001 - a bad signature, an expired or foreign cookie
                        return False
        return False

    return signed_in


class SlowBody(Exception):
    """The body came slower than Limits.min_body_rate."""


class BudgetSpent(Exception):
    """The memory budget for request bodies is used up by other connections."""


class BodyState:
    """The body being read: when it started, bytes received (framing included), bytes held in the budget."""

    def __init__(self, started: float, signed_in: bool):
        self.started = started
        self.signed_in = signed_in
        self.raw = 0
        self.held = 0
        self.spooling = False


@dataclass(frozen=True)
class Site:
    """What the environ says about the server."""
    name: str
    port: int
    scheme: str = "https"


class HttpConnection:
    """Serves the requests of one connection, one after the other (keep-alive)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app, executor: Executor,
                 limits: Limits, site: Site, stopping: Callable[[], bool], shared: Shared | None = None):
        self.reader = reader
        self.writer = writer
        self.app = app
        self.executor = executor
        self.limits = limits
        self.site = site
        self.stopping = stopping
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.pending = b""  # received, not yet given to h11: the start of a head under inspection
        self.shared = shared or Shared.for_limits(limits, app)
        self.body: BodyState | None = None  # while a request body is read
        self._spool = None  # the temporary file of a large body
        self.cut_off = False  # close without the TLS goodbye (an abusive client)
        self.misbehaved = False  # answered with a protocol error (400, 408, 413, 431, 505 …)
        self.busy = False  # between a request's head and the end of its response

    async def serve(self) -> bool:
        """Until the client leaves, a deadline passes or the server stops. True: close gracefully."""
        while True:
            try:
                async with asyncio.timeout(self.limits.head_timeout):
                    request = await self._next_event()
            except TimeoutError:
                return False
            except h11.RemoteProtocolError as exc:
                await self._error(exc.error_status_hint, error_reason(exc))
                return True
            if not isinstance(request, h11.Request):
                return isinstance(request, h11.ConnectionClosed)
            if head_size(request) > MAX_HEAD:  # h11 bounds only a head that is still incomplete
                await self._error(431, "Request header fields too large")
                return True
            try:
                check_framing(request)
            except FramingError as exc:
                await self._error(exc.error_status_hint, exc.message)
                return True
            self.busy = True
            try:
                if not await self._answer(request):
                    return not self.cut_off
            finally:
                self.busy = False
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE or self.stopping():
                return True
            self._next_cycle()

    def _next_cycle(self) -> None:
        """A fresh h11 state for the next request: bytes already received (pipelined) go through check_head."""
        leftover, closed = self.h11.trailing_data
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.pending = leftover + self.pending
        if closed:
            self.h11.receive_data(b"")

    async def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.their_state is h11.IDLE:
                await self._receive_head()
            elif self.pending:
                data, self.pending = self.pending, b""
                self._count(data)
                self.h11.receive_data(data)
            else:
                data = await self._read_body_bytes() if self.body is not None else await self.reader.read(READ_SIZE)
                self.h11.receive_data(data)  # b"" means the client closed its side

    def _count(self, data: bytes) -> None:
        """Body bytes as received (chunked framing included) go against the shared memory budget."""
        if self.body is None:
            return
        self.body.raw += len(data)
        if not self.body.spooling:
            if not self.shared.budget.take(len(data), self.body.signed_in):
                raise BudgetSpent()
            self.body.held += len(data)

    async def _read_body_bytes(self) -> bytes:
        """The next bytes of a body, if they come in time for the minimum rate (after the grace period)."""
        body, loop = self.body, asyncio.get_running_loop()
        wait = body.started + max(self.limits.body_grace, body.raw / self.limits.min_body_rate) - loop.time()
        if wait <= 0:
            raise SlowBody()
        try:
            async with asyncio.timeout(wait):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise SlowBody() from None
        self._count(data)
        return data

    async def _receive_head(self) -> None:
        """Gather a request head, check it (check_head), then give h11 the head and nothing after it."""
        while True:
            end = self.pending.find(HEAD_END)
            if end >= 0:
                head, self.pending = self.pending[: end + len(HEAD_END)], self.pending[end + len(HEAD_END):]
                check_head(head)
                self.h11.receive_data(head)
                return
            check_line_endings(self.pending[:-1])  # the last byte may be the CR of a CRLF still coming
            if len(self.pending) > MAX_HEAD:
                raise FramingError("Request header fields too large", 431)
            data = await self.reader.read(READ_SIZE)
            if not data:  # closed: h11 tells a clean close from a head cut short
                data, self.pending = self.pending, b""
                self.h11.receive_data(data)
                self.h11.receive_data(b"")
                return
            self.pending += data

    async def _answer(self, request: h11.Request) -> bool:
        """Read the body, run the app, write its response. False: the connection must close."""
        signed_in = self.shared.signed_in(request)
        self.body = BodyState(asyncio.get_running_loop().time(), signed_in)
        try:
            try:
                body = await self._read_body(request, signed_in)
            except TimeoutError:
                return False
            except SlowBody:
                await self._error(408, "Request timeout: the body came too slowly")
                return False
            except BudgetSpent:
                await self._error(503, "Service unavailable: too many uploads at once, try again shortly",
                                  [(b"Retry-After", b"5")])
                return False
            except h11.RemoteProtocolError as exc:
                await self._error(exc.error_status_hint, error_reason(exc))
                self.cut_off = True  # not an honest client's mistake: no lingering for it
                return False
            if isinstance(body, h11.ConnectionClosed):
                return False
            too_large = isinstance(body, int)
            if too_large and body <= self.limits.max_body:  # over the cap without a session (the app's: its words)
                await self._error(413, f"Payload too large: without a signed-in session a request may carry "
                                       f"{self.limits.unauthenticated_body:,} bytes at most")
                await self._linger()
                return False
            # too large: the app sees the size and no body, and answers 413 in its own words; then close
            environ = self._environ(request, b"" if too_large else body, length=body if too_large else None)
            loop = asyncio.get_running_loop()
            if signed_in:  # signed-in browsers first: they may use every thread
                status, headers, content = await loop.run_in_executor(self.executor, call_app, self.app, environ)
            else:
                async with self.shared.unauthenticated:
                    status, headers, content = await loop.run_in_executor(self.executor, call_app, self.app, environ)
            del environ, body
        finally:
            self._end_body()
        closing = too_large or self.stopping()
        await self._send_response(request, status, headers, content, close=closing)
        return not closing

    async def _linger(self) -> None:
        """Read and drop what the client still sends (a little, briefly) so that closing does not reset
        the connection before it has read the answer (nginx's lingering close)."""
        self._end_body()
        dropped = 0
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while dropped < LINGER_BYTES and (data := await self.reader.read(READ_SIZE)):
                    dropped += len(data)
        except (TimeoutError, OSError):
            pass

    def _end_body(self) -> None:
        state, self.body = self.body, None
        if state is not None and state.held:
            self.shared.budget.give(state.held, state.signed_in)
        spool = getattr(self, "_spool", None)
        if spool is not None:
            self._spool = None
            spool.close()

    async def _read_body(self, request: h11.Request, signed_in: bool) -> bytes | io.IOBase | int | h11.ConnectionClosed:
        """The body (in memory, or in a temporary file when large); or its size when over the cap, unread.

        Without a signed session cookie the cap is Limits.unauthenticated_body (the login form), unless
        the request has an Authorization header (an API call: the app checks it); neither is ever spooled.
        """
        credentials = any(name == b"authorization" for name, _ in request.headers)
        cap = self.limits.max_body if signed_in or credentials else \
            min(self.limits.max_body, self.limits.unauthenticated_body)
        length = next((int(v) for k, v in request.headers if k == b"content-length"), None)
        if length is not None and length > cap:
            return length
        if self.h11.they_are_waiting_for_100_continue:
            await self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        body, size, pieces = bytearray(), 0, 0  # one buffer: no per-chunk objects
        async with asyncio.timeout(self.limits.body_timeout):
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    pieces += 1 if event.chunk_start else 0  # chunked bodies only: a chunk's first piece
                    if pieces > MAX_SMALL_CHUNKS and size < pieces * SMALL_CHUNK:
                        raise FramingError(f"Bad request: a chunked body in pieces of {size // pieces:,} bytes on "
                                           f"average (at least {SMALL_CHUNK:,} are needed)")
                    if size > cap or (not signed_in and self.body.raw > 2 * cap + READ_SIZE):  # framing counts
                        return max(size, cap + 1)
                    if signed_in and self._spool is None and size > self.limits.spool_above:
                        self._start_spool(body)
                        body = bytearray()
                    if self._spool is not None:
                        self._spool.write(event.data)
                    else:
                        body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    if self._spool is not None:
                        self._spool.seek(0)
                        return self._spool
                    return bytes(body)
                else:  # ConnectionClosed midway
                    return h11.ConnectionClosed()

    def _start_spool(self, start: bytearray) -> None:
        """Go on in a temporary file (0600, unlinked) in the state directory: the memory held is given back."""
        self._spool = tempfile.TemporaryFile(dir=spool_directory(self.limits.spool_dir))
        self._spool.write(start)
        self.body.spooling = True
        self.shared.budget.give(self.body.held, self.body.signed_in)
        self.body.held = 0

    def _environ(self, request: h11.Request, body, length: int | None = None) -> dict:
        target = request.target
        if target.startswith((b"http://", b"https://")):  # absolute form
            parts = urlsplit(target)
            target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        path, _, query = target.partition(b"?")
        peer = self.writer.get_extra_info("peername") or ("", 0)
        environ = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self.site.name,
            "SERVER_PORT": str(self.site.port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": peer[0],
            "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.site.scheme,
            "wsgi.input": io.BytesIO(body) if isinstance(body, bytes) else body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        size = len(body) if isinstance(body, bytes) else body.seek(0, io.SEEK_END)
        if not isinstance(body, bytes):
            body.seek(0)
        if length is not None:
            environ["CONTENT_LENGTH"] = str(length)
        elif size or request.method not in (b"GET", b"HEAD"):
            environ["CONTENT_LENGTH"] = str(size)
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1")
            if "_" in name:  # X_Forwarded_For would pass for X-Forwarded-For: drop it, as nginx does
                continue
            value = raw_value.decode("latin-1")
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
                continue
            if name in ("content-length", "transfer-encoding"):
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in environ:
                value = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + value
            environ[key] = value
        return environ

    async def _send_response(self, request: h11.Request, status: str, headers: list, content: bytes,
                             close: bool = False) -> None:
        code, _, reason = status.partition(" ")
        code = int(code)
        bodyless = request.method == b"HEAD" or code in NO_BODY_STATUS or code < 200
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower in ("transfer-encoding", "connection", "keep-alive") or (lower == "content-length" and not
                                                                               request.method == b"HEAD"):
                continue
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        if not bodyless:
            out.append((b"Content-Length", str(len(content)).encode()))
        out.append((b"Date", formatdate(usegmt=True).encode()))
        if close:
            out.append((b"Connection", b"close"))
        data = self.h11.send(h11.Response(status_code=code, headers=out, reason=reason.encode("latin-1")))
        if not bodyless and content:
            data += self.h11.send(h11.Data(data=content))
        data += self.h11.send(h11.EndOfMessage())
        await self._write(data)

    async def _error(self, code: int, text: str, extra: list | None = None) -> None:
        """A short plain-text error, then the connection closes (only if no response was begun)."""
        self.misbehaved = True
        body = f"{code} {text}\n".encode()
        try:
            data = self.h11.send(h11.Response(status_code=code, reason=text.encode(), headers=[
                (b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", str(len(body)).encode()),
                (b"Connection", b"close"), *(extra or [])]))
            data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        try:
            await self._write(data)
        except (OSError, TimeoutError):
            pass

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await self.writer.drain()


def error_reason(exc: h11.RemoteProtocolError) -> str:
    if isinstance(exc, FramingError):
        return exc.message
    return {431: "Request header fields too large", 501: "Not implemented", 505: "HTTP version not supported"}.get(
        exc.error_status_hint, "Bad request")


def head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)


def call_app(app, environ: dict) -> tuple[str, list, bytes]:
    """Run the WSGI app in a worker thread and collect its whole response."""
    response: list = []
    chunks: list[bytes] = []

    def start_response(status, headers, exc_info=None):
        if exc_info and response:
            raise exc_info[1].with_traceback(exc_info[2])
        response[:] = [status, headers]
        return chunks.append

    try:
        result = app(environ, start_response)
        try:
            for chunk in result:
                if chunk:
                    chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not response:
            raise RuntimeError("the application did not call start_response")
    except Exception:  # noqa: BLE001 - the app has its own error pages; this is the last resort
        log.exception("unhandled error in the application")
        return ("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")],
                b"500 Internal Server Error\n")
    return response[0], response[1], b"".join(chunks)
