"""svcssl.httpfetch: the one bounded HTTP client for CRLs, OCSP and caIssuers, against a real loopback server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from svcssl.httpfetch import FetchError, FetchPolicy, fetch


class _Hops(BaseHTTPRequestHandler):
    """/hop/N redirects to /hop/N-1; /hop/0 answers 'arrived'; /big sends 100 KB."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            if left:
                self.send_response(302)
                self.send_header("Location", f"/hop/{left - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"arrived"
        elif self.path == "/big":
            body = b"x" * 100_000
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hops)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_redirects_are_followed_up_to_the_policys_count(server):
    local = FetchPolicy(timeout=5, max_redirects=3, allow_local=True)
    assert fetch(f"{server}/hop/3", local) == b"arrived"
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetch(f"{server}/hop/4", local)
    with pytest.raises(FetchError, match="redirects are not followed"):
        fetch(f"{server}/hop/1", FetchPolicy(timeout=5, allow_local=True))


def test_local_addresses_size_and_schemes_are_refused(server, monkeypatch):
    with pytest.raises(FetchError, match="an address of this server's own network"):
        fetch(f"{server}/hop/0", FetchPolicy(timeout=5))  # loopback: refused unless allowed
    with pytest.raises(FetchError, match="over the 1,000-byte limit") as refused:
        fetch(f"{server}/big", FetchPolicy(timeout=5, max_bytes=1000, allow_local=True))
    assert refused.value.too_large
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"{server}/nothing", FetchPolicy(timeout=5, allow_local=True))
    with pytest.raises(FetchError, match="not an http or https URL"):
        fetch("file:///etc/shadow", FetchPolicy(timeout=5, allow_local=True))
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy that is not there is never used
    assert fetch(f"{server}/hop/0", FetchPolicy(timeout=5, allow_local=True)) == b"arrived"
