"""A recording HTTPS reverse proxy in front of pebble, on 127.0.0.1, adding what pebble 2.4.0 lacks.

Pebble has no ``meta.profiles`` and no ARI ``renewalInfo``. The proxy forwards every request to pebble
with its body and ``Host`` header unchanged (pebble builds its URLs from ``Host``, so every URL it hands
out points back at the proxy, and the JWS signatures stay valid), and:

* adds ``meta.profiles`` (``profiles``; ``None`` leaves the directory without) and a ``renewalInfo``
  resource it serves itself (``windows``: ARI certID → (start, end); unknown IDs get 404) to the directory;
* records the JWS payload of every newOrder (``orders``, decoded JSON) and every ARI certID asked
  (``renewal_info_asked``);
* answers a newOrder itself when ``refuse_order`` returns a (status, problem type, detail, headers) for
  its payload — a rate limit with Retry-After, ``alreadyReplaced`` — with a fresh nonce from pebble.

    proxy = start_acme_proxy(pebble, profiles={"classic": "90 days"})
    AcmeConfig(directory=proxy.directory_url, verify=str(pebble.ca_file), ...)
    proxy.orders[-1]["profile"]
    proxy.stop()
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

HOST = "127.0.0.1"
ARI_PATH = "/renewal-info/"
Refusal = tuple[int, str, str, dict]  # HTTP status, ACME problem type (short), detail, extra headers


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: "AcmeProxy"):
        self.proxy = proxy
        super().__init__((HOST, 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _reply(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, method: str, body: bytes | None) -> tuple[int, bytes, dict]:
        proxy = self.server.proxy
        connection = http.client.HTTPSConnection(proxy.upstream_host, proxy.upstream_port, context=proxy.upstream_tls,
                                                 timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            connection.request(method, self.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def do_HEAD(self):  # noqa: N802
        status, body, headers = self._forward("HEAD", None)
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("connection", "transfer-encoding"):
                self.send_header(name, value)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        proxy = self.server.proxy
        path = self.path.split("?", 1)[0]
        if path.startswith(ARI_PATH):
            cert_id = path[len(ARI_PATH):]
            with proxy.lock:
                proxy.renewal_info_asked.append(cert_id)
                window = proxy.windows.get(cert_id)
            if window is None:
                return self._reply(404, b'{"type": "urn:ietf:params:acme:error:malformed", "detail": "unknown"}',
                                   {"Content-Type": "application/problem+json"})
            body = {"suggestedWindow": {"start": window[0].isoformat().replace("+00:00", "Z"),
                                        "end": window[1].isoformat().replace("+00:00", "Z")}}
            return self._reply(200, json.dumps(body).encode(), {"Content-Type": "application/json",
                                                                "Retry-After": "21600"})
        status, body, headers = self._forward("GET", None)
        if path == proxy.directory_path and status == 200:
            directory = json.loads(body)
            proxy.new_order_path = urlsplit(directory["newOrder"]).path
            proxy.new_nonce_path = urlsplit(directory["newNonce"]).path
            directory["renewalInfo"] = f"https://{self.headers['Host']}{ARI_PATH}"
            if proxy.profiles is not None:
                directory.setdefault("meta", {})["profiles"] = dict(proxy.profiles)
            body = json.dumps(directory).encode()
        self._reply(status, body, headers)

    def do_POST(self):  # noqa: N802
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] == proxy.new_order_path:
            payload = json.loads(_b64decode(json.loads(body)["payload"]))
            with proxy.lock:
                proxy.orders.append(payload)
            refusal = proxy.refuse_order(payload) if proxy.refuse_order else None
            if refusal is not None:
                status, problem, detail, extra = refusal
                nonce = self._fresh_nonce()
                document = {"type": f"urn:ietf:params:acme:error:{problem}", "detail": detail, "status": status}
                return self._reply(status, json.dumps(document).encode(),
                                   {"Content-Type": "application/problem+json", "Replay-Nonce": nonce, **extra})
        status, answer, headers = self._forward("POST", body)
        self._reply(status, answer, headers)

    def _fresh_nonce(self) -> str:
        proxy = self.server.proxy
        connection = http.client.HTTPSConnection(proxy.upstream_host, proxy.upstream_port, context=proxy.upstream_tls,
                                                 timeout=30)
        try:
            connection.request("HEAD", proxy.new_nonce_path)
            response = connection.getresponse()
            response.read()
            return response.getheader("Replay-Nonce")
        finally:
            connection.close()


@dataclass
class AcmeProxy:
    upstream_host: str
    upstream_port: int
    upstream_tls: ssl.SSLContext
    directory_path: str
    profiles: dict[str, str] | None = None
    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    refuse_order: Callable[[dict], Refusal | None] | None = None
    orders: list[dict] = field(default_factory=list)
    renewal_info_asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    new_order_path: str = "/order-plz"
    new_nonce_path: str = "/nonce-plz"
    server: _Server | None = None
    port: int = 0

    @property
    def directory_url(self) -> str:
        return f"https://{HOST}:{self.port}{self.directory_path}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def start_acme_proxy(pebble, *, profiles: dict[str, str] | None = None,
                     refuse_order: Callable[[dict], Refusal | None] | None = None) -> AcmeProxy:
    """A proxy for ``pebble`` (a servers.pebble.RunningPebble), serving HTTPS with pebble's own TLS certificate
    (valid for 127.0.0.1, so clients keep trusting ``pebble.ca_file``)."""
    upstream = urlsplit(pebble.directory_url)
    proxy = AcmeProxy(upstream.hostname, upstream.port, ssl.create_default_context(cafile=str(pebble.ca_file)),
                      upstream.path, profiles, refuse_order=refuse_order)
    server = _Server(proxy)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(pebble.workdir / "tls" / "cert.pem", pebble.workdir / "tls" / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    proxy.server, proxy.port = server, server.server_address[1]
    threading.Thread(target=server.serve_forever, name="acme-proxy", daemon=True).start()
    return proxy
