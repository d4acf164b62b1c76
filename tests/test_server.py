"""`svcssl serve` under slow, idle and greedy clients, and its restart, against a real process on loopback.

Other clients come from other loopback addresses (127.0.0.N: the client socket is bound before
connect()); the legitimate one is 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import resource
import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from support.panel import ROOT_PASSWORD, csrf_token
from svcssl.web.server import Limits
from svcssl.x509.inspect import fingerprint
from support.browser import install_directly
from support.process import REPO, PanelProcess
from support.wait import wait_until

PAGE = "/scripts2/manageservicecrts"
LIMITS = Limits()
TLS = ssl._create_unverified_context()  # the panel's certificate is self-signed


class Serve(PanelProcess):
    """PanelProcess in a chosen working directory."""

    def __init__(self, config: Path, log: Path, cwd: Path = REPO, preexec_fn=None):
        super().__init__(config, log)
        self.cwd = cwd
        self.preexec_fn = preexec_fn

    def start(self) -> "Serve":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "svcssl.cli", "--config", str(self.config), "serve",
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=self.preexec_fn)
        self.wait_until_serving(starts=1)
        return self


@pytest.fixture
def serve(panel, tmp_path):
    started: list[Serve] = []

    def start(cwd: Path = REPO, preexec_fn=None) -> Serve:
        server = Serve(panel.config, tmp_path / f"serve-{len(started)}.log", cwd, preexec_fn).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def connect_from(address: str, port: int, payload: bytes = b"") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    if payload:
        sock.sendall(payload)
    return sock


def client_hello_head() -> bytes:
    """The first half of a real TLS ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = TLS.wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    return hello[: len(hello) // 2]


def load_login(port: int, source: str = "127.0.0.1", timeout: float = 10) -> tuple[int, float]:
    """GET /login on a new connection from `source`: status and seconds."""
    start = time.monotonic()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=TLS, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", "/login")
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - start
    finally:
        conn.close()


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), or None if still open after `within`."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(4096):
                return time.monotonic() - start
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return time.monotonic() - start
    except (TimeoutError, socket.timeout):
        return None


def is_closed(sock: socket.socket) -> bool:
    """Has the server closed `sock`? (without waiting)"""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def test_idle_and_stalled_clients_from_other_addresses_do_not_stall_a_login_page(serve):
    server = serve()
    hello = client_hello_head()
    held = [connect_from(f"127.0.0.{2 + i % 5}", server.port) for i in range(20)]  # idle TCP, nothing sent
    held += [connect_from(f"127.0.0.{7 + i % 5}", server.port, hello) for i in range(10)]  # stalled ClientHello
    try:
        for _ in range(5):
            status, seconds = load_login(server.port)
            assert status == 200
            assert seconds < 3, f"a login page took {seconds:.1f} s while idle clients were connected"
    finally:
        for sock in held:
            sock.close()


def test_the_per_address_cap_closes_extra_connections_from_one_address_and_serves_another(serve):
    server = serve()
    greedy = "127.0.0.40"
    held = [connect_from(greedy, server.port) for _ in range(LIMITS.per_address + 8)]
    try:
        deadline = time.monotonic() + 3  # well within the handshake deadline that closes the rest
        while len(closed := [sock for sock in held if is_closed(sock)]) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(closed) == 8, f"{len(closed)} of {len(held)} connections from one address were closed"
        # the greedy address is at its cap: a new connection from it is refused, another address is served
        with pytest.raises(OSError):
            load_login(server.port, source=greedy, timeout=3)
        status, seconds = load_login(server.port, source="127.0.0.41")
        assert status == 200 and seconds < 3
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: load_login(server.port, source=greedy, timeout=3)[0] == 200)  # the server sees them go
    assert load_login(server.port, source=greedy)[0] == 200


def test_deadlines_close_silent_and_trickling_connections(serve):
    server = serve()
    silent_tcp = connect_from("127.0.0.50", server.port)  # connects, never starts TLS
    raw = connect_from("127.0.0.51", server.port)
    silent_tls = TLS.wrap_socket(raw)  # handshakes, then sends nothing
    trickle_raw = connect_from("127.0.0.52", server.port)
    trickle = TLS.wrap_socket(trickle_raw)  # a request head one byte at a time (slowloris)
    start = time.monotonic()
    try:
        trickle.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed_at = {}
        while time.monotonic() - start < LIMITS.head_timeout + 5 and len(closed_at) < 3:
            try:
                trickle.sendall(b"a")
            except OSError:
                closed_at.setdefault("trickle", time.monotonic() - start)
            for name, sock in (("tcp", silent_tcp), ("tls", silent_tls), ("trickle", trickle)):
                if name not in closed_at and closed_by_server(sock, within=0.25) is not None:
                    closed_at[name] = time.monotonic() - start
        assert LIMITS.handshake_timeout - 1 < closed_at.get("tcp", 99) < LIMITS.handshake_timeout + 2, closed_at
        assert LIMITS.head_timeout - 1 < closed_at.get("tls", 99) < LIMITS.head_timeout + 3, closed_at
        assert closed_at.get("trickle", 99) < LIMITS.head_timeout + 3, closed_at
    finally:
        for sock in (silent_tcp, silent_tls, trickle):
            sock.close()
    assert load_login(server.port)[0] == 200


def test_a_new_panel_certificate_goes_to_new_connections_and_an_open_one_keeps_working(serve, panel):
    server = serve()
    old = server.served_fingerprint()
    kept = http.client.HTTPSConnection("127.0.0.1", server.port, context=TLS, timeout=10)
    kept.request("GET", "/login")
    first = kept.getresponse()
    first.read()
    assert first.status == 200
    leaf = install_directly(panel, ["cpanel"], 31)
    wait_until(lambda: server.served_fingerprint() == fingerprint(leaf))  # it checks its files every 0.25 s
    assert server.served_fingerprint() == fingerprint(leaf) != old
    kept.request("GET", "/login")  # the same keep-alive connection, on the old certificate
    second = kept.getresponse()
    second.read()
    assert second.status == 200
    assert hashlib.sha256(kept.sock.getpeercert(binary_form=True)).hexdigest() == old
    kept.close()


def log_in_as_root(session: requests.Session, url: str) -> str:
    """Log in; returns a CSRF token of the session."""
    page = session.get(url + "/login", verify=False, timeout=10)
    response = session.post(url + "/login", data={"username": "root", "password": ROOT_PASSWORD,
                                                  "csrf_token": csrf_token(page.text)},
                            headers={"Referer": url + "/login"}, verify=False, timeout=10, allow_redirects=False)
    assert response.status_code == 302, response.text
    return csrf_token(session.get(url + PAGE, verify=False, timeout=10).text)


def test_restart_ignores_a_svcssl_package_in_the_working_directory_and_comes_back(serve, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    server = serve(cwd=workdir)
    pid = server.proc.pid
    # planted after the start, as an attacker (or a checkout of another version) would
    marker = tmp_path / "planted-code-ran"
    (workdir / "svcssl").mkdir()
    (workdir / "svcssl" / "__init__.py").write_text(
        f"import pathlib, sys\npathlib.Path({str(marker)!r}).write_text('ran')\nsys.exit(3)\n")
    (workdir / "svcssl" / "cli.py").write_text("")

    session = requests.Session()
    session.trust_env = False
    token = log_in_as_root(session, server.url)
    response = session.post(server.url + "/scripts2/restart_panel", data={"csrf_token": token},
                            headers={"Referer": server.url + PAGE}, verify=False, timeout=10)
    assert response.status_code == 200 and "Restarting the panel" in response.text

    # while it restarts, clients wait in the listen backlog: never refused
    outcomes = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            outcomes.append(load_login(server.port, timeout=20)[0])
        except OSError as exc:
            outcomes.append(type(exc).__name__)
        time.sleep(0.1)
    assert not marker.exists(), "the restart ran the svcssl package planted in the working directory"
    server.wait_until_serving(starts=2)
    assert server.proc.poll() is None and server.proc.pid == pid  # the same process, re-executed
    assert outcomes and set(outcomes) == {200}, outcomes
    assert session.get(server.url + PAGE, verify=False, timeout=10).status_code == 200  # the session survives


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes over a new TLS connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, TLS.wrap_socket(raw) as tls:
        tls.sendall(data)
        answer = b""
        try:
            while chunk := tls.recv(65536):
                answer += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
        return answer


def test_malformed_oversized_and_too_large_requests_get_a_clear_status_never_a_500(serve):
    server = serve()
    started = time.monotonic()
    assert exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    huge_head = b"GET /login HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert exchange(server.port, huge_head).startswith(b"HTTP/1.1 431 ")
    # a body far over the app's cap: refused at once in the app's own words, the body never read
    answer = exchange(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                                   b"\r\nContent-Length: 100000000\r\n\r\nusername=root")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"The request is too large" in answer and b"Connection: close" in answer
    assert time.monotonic() - started < 5
    assert load_login(server.port)[0] == 200


def test_the_panel_raises_its_open_file_limit_to_the_hard_limit(serve):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = serve(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    soft_now, hard_now = next(line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files"))
    assert soft_now == hard_now == str(hard), limits
    assert load_login(server.port)[0] == 200


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def test_ambiguous_framing_is_refused_and_the_connection_closed(serve):
    """RFC 9112: what h11 would take but a proxy in front could read otherwise (request smuggling)."""
    server = serve()
    port = server.port
    # both Content-Length and Transfer-Encoding: 400, and nothing after it is read (exchange ends: closed)
    both = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /login HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = exchange(port, both)
    assert status_of(answer) == 400 and answer.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in answer
    # obs-fold, bare LF, bare CR, a control character in a value
    assert status_of(exchange(port, b"GET /login HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")) == 400
    assert status_of(exchange(port, b"GET /login HTTP/1.1\nHost: x\n\n")) == 400
    assert status_of(exchange(port, b"GET /login HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")) == 400
    assert status_of(exchange(port, b"GET /login HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n")) == 400
    # other HTTP versions: 505, closed
    answer = exchange(port, b"GET /login HTTP/2.0\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 505 and b"Connection: close" in answer
    assert status_of(exchange(port, b"GET /login HTTP/0.9\r\nHost: x\r\n\r\n")) == 505
    # a bad head pipelined behind a good one: the first is answered, the second refused
    answer = exchange(port, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\nGET /login HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 400 Bad request: obsolete" in answer, answer[-300:]
    # good requests still pass, pipelined, with a body, HTTP/1.0
    answer = exchange(port, b"GET /login HTTP/1.1\r\nHost: x\r\n\r\nGET /login HTTP/1.0\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert load_login(port)[0] == 200


def test_redirects_never_echo_the_host_header(serve):
    server = serve()
    answer = exchange(server.port, b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert status_of(answer) in (301, 302, 303, 307, 308)
    location = next(line for line in answer.split(b"\r\n") if line.lower().startswith(b"location:"))
    assert b"evil.example" not in location and location.split(b":", 1)[1].strip().startswith(b"/"), location


def s_client(port: int, *options: str) -> bool:
    """Does a real `openssl s_client` with these options finish a handshake with the panel?"""
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *options],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and "Protocol version" in result.stderr + result.stdout


def test_tls_follows_mozillas_intermediate_profile(serve):
    port = serve().port
    # refused: a CBC suite, RSA key exchange, secp521r1, X448, TLS 1.1 and 1.0
    assert not s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384")
    assert not s_client(port, "-tls1_2", "-cipher", "AES128-GCM-SHA256")
    assert not s_client(port, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256")
    assert not s_client(port, "-groups", "secp521r1")
    assert not s_client(port, "-groups", "X448")
    assert not s_client(port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert not s_client(port, "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    # accepted: the profile's suites and groups, TLS 1.2 and 1.3
    assert s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305")
    for group in ("X25519", "P-256", "P-384"):
        assert s_client(port, "-tls1_3", "-groups", group), group
    # the client's preference wins (server cipher preference off)
    result = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", "-tls1_2", "-cipher",
                             "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert "ECDHE-RSA-CHACHA20-POLY1305" in result.stderr + result.stdout


# --- issue 18: memory and slow bodies ----------------------------------------------------------

def tls_to(port: int, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return TLS.wrap_socket(raw)


def answer_of(tls: ssl.SSLSocket) -> bytes:
    answer = b""
    try:
        while chunk := tls.recv(65536):
            answer += chunk
    except (ConnectionResetError, ssl.SSLError, TimeoutError, socket.timeout):
        pass
    return answer


def test_without_a_session_a_body_is_capped_small_and_chunked_framing_counts(serve):
    server = serve()
    # a declared body over 64 KiB: refused at once, the body never read
    answer = exchange(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                                   b"\r\nContent-Length: 200000\r\n\r\nusername=root")
    assert status_of(answer) == 413 and b"signed-in session" in answer and b"Connection: close" in answer
    # one-byte chunks cost the server far more than their bytes: refused after a few
    chunks = b"1\r\na\r\n" * 100
    answer = exchange(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
                      b"0\r\n\r\n")
    assert status_of(answer) == 400 and b"pieces of 1 bytes" in answer, answer[:300]
    # 100-byte chunks: 8,000 body bytes, far under the cap, but in 80 chunks: refused too
    chunks = b"64\r\n" + b"a" * 100 + b"\r\n"
    answer = exchange(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                      chunks * 80 + b"0\r\n\r\n")
    assert status_of(answer) == 400
    # a chunked login form in a few large chunks is read
    form = b"username=root&password=x" + b"&pad=" + b"p" * 20_000
    answer = exchange(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n" +
                      f"{len(form):x}\r\n".encode() + form + b"\r\n0\r\n\r\n")
    assert status_of(answer) == 400 and b"CSRF" in answer  # read whole and answered by the app (no token)
    # a real login form still fits
    assert load_login(server.port)[0] == 200


def test_a_trickled_body_is_dropped_after_the_grace_period(serve):
    server = serve()
    tls = tls_to(server.port, "127.0.0.7")
    tls.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 60000\r\n\r\nusername=")
    answer = b""
    for _ in range(60):  # one byte a second: far under 1 KiB/s
        try:
            tls.sendall(b"a")
        except (OSError, ssl.SSLError):
            break
        tls.settimeout(1)
        try:
            answer += tls.recv(65536)
        except (TimeoutError, socket.timeout):
            continue
        except (OSError, ssl.SSLError):
            break
        if answer:
            break
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    tls.close()


def test_a_signed_in_upload_goes_to_a_private_temporary_file_in_the_state_directory(serve, panel):
    server = serve()
    session = requests.Session()
    log_in_as_root(session, server.url)
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    tls = tls_to(server.port)
    size = 4 * 1024 * 1024
    tls.sendall(f"POST /scripts2/manageservicecrts/install HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n".encode())
    tls.sendall(b"x" * (3 * 1024 * 1024))
    spool = (panel.settings.server.state_dir / "tmp").resolve()

    def spooled() -> list[int]:
        modes = []
        for fd in Path(f"/proc/{server.proc.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(spool) + "/"):
                modes.append(os.stat(fd).st_mode & 0o777)
        return modes

    assert wait_until(lambda: spooled(), timeout=20), "no temporary file for the upload"
    assert set(spooled()) == {0o600}
    assert spool.stat().st_mode & 0o777 == 0o700 and list(spool.iterdir()) == []  # unlinked: nothing left behind
    tls.sendall(b"x" * (size - 3 * 1024 * 1024))
    assert answer_of(tls).startswith(b"HTTP/1.1 ")
    tls.close()
    assert wait_until(lambda: not spooled(), timeout=20), "the temporary file was not closed"


def test_a_client_hello_sent_in_two_halves_still_handshakes(serve):
    """The front waits for the whole first record (no TLS state before): a slow but honest client gets in."""
    server = serve()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = TLS.wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    raw.sendall(hello[:3])
    time.sleep(0.3)
    raw.sendall(hello[3:40])
    time.sleep(0.3)
    raw.sendall(hello[40:])
    while True:
        data = raw.recv(65536)
        assert data, "closed during the handshake"
        incoming.write(data)
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if pending := outgoing.read():
                raw.sendall(pending)
    raw.sendall(outgoing.read())
    tls.write(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw.sendall(outgoing.read())
    answer = b""
    while not answer.startswith(b"HTTP/1.1 200"):
        data = raw.recv(65536)
        assert data
        incoming.write(data)
        try:
            answer += tls.read(65536)
        except ssl.SSLWantReadError:
            pass
    raw.close()
    # half a ClientHello and a close: the connection is let go
    assert closed_by_server(connect_from("127.0.0.9", server.port, client_hello_head()), within=10) is not None


def test_a_client_that_keeps_sending_broken_requests_is_shut_out_for_a_while_and_no_one_else(serve):
    server = serve()
    for _ in range(20):
        with tls_to(server.port, "127.0.0.11") as tls:
            tls.sendall(b"GET /login HTTP/2.0\r\nHost: x\r\n\r\n")
            assert answer_of(tls).startswith(b"HTTP/1.1 505 ")
    with pytest.raises((ssl.SSLError, OSError)):
        tls_to(server.port, "127.0.0.11").sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
    assert load_login(server.port, "127.0.0.12")[0] == 200


def test_a_client_that_does_not_read_its_pipelined_answers_stops_being_served_and_no_one_waits(serve):
    """Issue 18, item 4: 3,000 pipelined requests whose answers are never read. The server answers only as far
    as its bounded output buffer takes (then waits for the reader, and closes after its write deadline), while
    another client's pages keep coming; the greedy connection gets far fewer than 3,000 answers."""
    server = serve()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a reader that takes little (before connect)
    raw.bind(("127.0.0.7", 0))
    raw.settimeout(30)
    raw.connect(("127.0.0.1", server.port))
    greedy = TLS.wrap_socket(raw)
    greedy.settimeout(5)
    try:  # the server stops reading requests once its answers back up: sending may block, and that is the point
        greedy.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n" * 3000)
    except (TimeoutError, socket.timeout):
        pass
    statuses = [load_login(server.port)[0] for _ in range(10)]  # another client meanwhile
    assert statuses == [200] * 10
    time.sleep(LIMITS.write_timeout + 5)  # past the write deadline, still without reading
    greedy.settimeout(10)
    answered = answer_of(greedy).count(b"HTTP/1.1 200")
    assert answered < 3000, answered
    assert load_login(server.port)[0] == 200
