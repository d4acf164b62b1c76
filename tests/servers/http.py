"""A tiny threaded HTTP server on 127.0.0.1 for CRL and OCSP tests.

GET serves ``routes`` (path → (content_type, bytes)); POST to a path in ``post_handlers`` calls
``handler(body) -> (content_type, bytes)`` (an OCSP responder). Every request is counted in
``hits`` (path → count). Unknown paths get 404.

    http = start_http_server({"/int.crl": ("application/pkix-crl", crl_der)})
    url = http.url("/int.crl")
    ...
    http.stop()
"""

from __future__ import annotations

import collections
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

HOST = "127.0.0.1"
PostHandler = Callable[[bytes], tuple[str, bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict, post_handlers: dict):
        self.routes: dict[str, tuple[str, bytes]] = dict(routes)
        self.post_handlers: dict[str, PostHandler] = dict(post_handlers)
        self.hits: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        super().__init__((HOST, 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _path(self) -> str:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.hits[path] += 1
        return path

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self._path()
        with self.server.lock:
            route = self.server.routes.get(path)
        if route is None:
            self._send(404, "text/plain", b"not found\n")
        else:
            self._send(200, *route)

    def do_POST(self):  # noqa: N802
        path = self._path()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            handler = self.server.post_handlers.get(path)
        if handler is None:
            self._send(404, "text/plain", b"not found\n")
            return
        content_type, data = handler(body)
        self._send(200, content_type, data)


@dataclass
class RunningHttp:
    port: int
    _server: _Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    host: str = HOST

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def hits(self) -> collections.Counter:
        with self._server.lock:
            return collections.Counter(self._server.hits)

    @property
    def requests(self) -> int:
        return sum(self.hits.values())

    def set_route(self, path: str, content_type: str, data: bytes) -> None:
        with self._server.lock:
            self._server.routes[path] = (content_type, data)

    def set_post_handler(self, path: str, handler: PostHandler) -> None:
        with self._server.lock:
            self._server.post_handlers[path] = handler

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http_server(routes: dict | None = None, post_handlers: dict | None = None) -> RunningHttp:
    server = _Server(routes or {}, post_handlers or {})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http",
                              daemon=True)
    thread.start()
    return RunningHttp(server.server_address[1], server, thread)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def silent_tcp_port() -> tuple[socket.socket, int]:
    """A listening TCP socket that never answers (a server that times out). Close it when done."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(8)
    return sock, sock.getsockname()[1]
