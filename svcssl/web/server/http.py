"""HTTP/1.1 on one (TLS) stream, answered by a WSGI application in a thread pool.

h11 parses and frames; this module adds the deadlines (request head, body, writes), the body cap,
and the WSGI environ. The application's response is collected in the worker thread and written
with a Content-Length (the panel's pages are small and nothing of it streams).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from concurrent.futures import Executor
from dataclasses import dataclass
from email.utils import formatdate
from typing import Callable
from urllib.parse import unquote_to_bytes, urlsplit

import h11

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
MAX_HEAD = 32 * 1024  # request line and headers; more answers 431
NO_BODY_STATUS = {204, 304}


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


@dataclass(frozen=True)
class Site:
    """What the environ says about the server."""
    name: str
    port: int
    scheme: str = "https"


class HttpConnection:
    """Serves the requests of one connection, one after the other (keep-alive)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app, executor: Executor,
                 limits: Limits, site: Site, stopping: Callable[[], bool]):
        self.reader = reader
        self.writer = writer
        self.app = app
        self.executor = executor
        self.limits = limits
        self.site = site
        self.stopping = stopping
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
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
                await self._error(exc.error_status_hint, "Bad request")
                return True
            if not isinstance(request, h11.Request):
                return isinstance(request, h11.ConnectionClosed)
            if head_size(request) > MAX_HEAD:  # h11 bounds only a head that is still incomplete
                await self._error(431, "Request header fields too large")
                return True
            self.busy = True
            try:
                if not await self._answer(request):
                    return True
            finally:
                self.busy = False
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE or self.stopping():
                return True
            self.h11.start_next_cycle()

    async def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.reader.read(READ_SIZE)
            self.h11.receive_data(data)  # b"" means the client closed its side

    async def _answer(self, request: h11.Request) -> bool:
        """Read the body, run the app, write its response. False: the connection must close."""
        try:
            body = await self._read_body(request)
        except TimeoutError:
            return False
        except h11.RemoteProtocolError as exc:
            await self._error(exc.error_status_hint, "Bad request")
            return False
        if isinstance(body, h11.ConnectionClosed):
            return False
        too_large = isinstance(body, int)
        # too large: the app sees the size and no body, and answers 413 in its own words; then close
        environ = self._environ(request, b"" if too_large else body, length=body if too_large else None)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.executor, call_app, self.app, environ)
        closing = too_large or self.stopping()
        await self._send_response(request, status, headers, content, close=closing)
        return not closing

    async def _read_body(self, request: h11.Request) -> bytes | int | h11.ConnectionClosed:
        """The body; or its size (declared or read so far) when over the cap, without the rest."""
        length = next((int(v) for k, v in request.headers if k == b"content-length"), None)
        if length is not None and length > self.limits.max_body:
            return length
        if self.h11.they_are_waiting_for_100_continue:
            await self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks, size = [], 0
        async with asyncio.timeout(self.limits.body_timeout):
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > self.limits.max_body:
                        return size
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return b"".join(chunks)
                else:  # ConnectionClosed midway
                    return h11.ConnectionClosed()

    def _environ(self, request: h11.Request, body: bytes, length: int | None = None) -> dict:
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
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if length is not None:
            environ["CONTENT_LENGTH"] = str(length)
        elif body or request.method not in (b"GET", b"HEAD"):
            environ["CONTENT_LENGTH"] = str(len(body))
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

    async def _error(self, code: int, text: str) -> None:
        """A short plain-text error, then the connection closes (only if no response was begun)."""
        body = f"{code} {text}\n".encode()
        try:
            data = self.h11.send(h11.Response(status_code=code, reason=text.encode(), headers=[
                (b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", str(len(body)).encode()),
                (b"Connection", b"close")]))
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
