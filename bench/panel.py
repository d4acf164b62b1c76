"""Benchmark: the Manage Service SSL Certificates page vs a bare route, on a real `svcssl serve`.

Run by hand (not collected by pytest):

    .venv/bin/python bench/panel.py                 # 4 generic services + cpanel
    .venv/bin/python bench/panel.py --services 20 --threads 8
    .venv/bin/python bench/panel.py --profile       # also: where the page's time goes (cProfile, in-process)

It builds a throw-away config (N file-only `generic` services plus the `cpanel` panel service, no
`probe`, so the page does no live TLS probe), starts `svcssl serve` on a free loopback port, logs in
as root over HTTPS and, with a few client threads each on its own keep-alive connection, measures
requests per second of

  * GET /scripts2/manageservicecrts   (the page: reads every certificate file, renders the table)
  * GET /static/svcssl.css            (baseline: the app has no bare route; this one goes through the
                                       same Flask app, session load and security headers, but reads
                                       one static file and renders nothing)

then prints the ratio and the server's resident memory (VmRSS) after the page's requests.
Targets: page >= 0.5x the baseline's rate, under 100 MB resident.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import os
import pstats
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from svcssl.operations.context import open_context  # noqa: E402
from svcssl.operations.firstrun import ensure_certificates  # noqa: E402
from svcssl.operations.users import create_user  # noqa: E402
from svcssl.settings import load_settings  # noqa: E402

PAGE = "/scripts2/manageservicecrts"
BASELINE = "/static/svcssl.css"
LOGIN = "/login"  # for reference: a small rendered page (template, CSRF token, session write)
PASSWORD = "bench-password-1"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def write_config(directory: Path, services: int) -> Path:
    etc = directory / "etc"
    lines = ["[server]", 'hostname = "mail.example.com"', f'state_dir = "{directory / "state"}"', "",
             "[services.cpanel]", 'kind = "panel"', f'cert_file = "{etc}/panel/cert.pem"',
             f'key_file = "{etc}/panel/key.pem"', f'chain_file = "{etc}/panel/chain.pem"', ""]
    for i in range(1, services + 1):
        name = f"svc{i:02d}"
        lines += [f"[services.{name}]", 'kind = "generic"', f'description = "Generic service {i}"',
                  f'cert_file = "{etc}/{name}/cert.pem"', f'key_file = "{etc}/{name}/key.pem"', ""]
    config = directory / "svcssl.toml"
    config.write_text("\n".join(lines))
    return config


def prepare_state(config: Path) -> None:
    """Self-signed certificates for every service (as a first start makes) and a root user."""
    ctx = open_context(load_settings(config))
    try:
        ensure_certificates(ctx)
        create_user(ctx, "root", "root", PASSWORD, actor="bench")
    finally:
        ctx.store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TLS = ssl._create_unverified_context()  # the panel's certificate is self-signed


def connect(port: int) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", port, context=TLS, timeout=30)


def cookie_of(response: http.client.HTTPResponse) -> str | None:
    for header, value in response.getheaders():
        if header.lower() == "set-cookie" and value.startswith("__Host-svcssl_session="):
            return value.split(";", 1)[0]
    return None


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"svcssl serve exited ({proc.returncode}):\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, TLS.wrap_socket(raw):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"svcssl serve did not come up:\n{log.read_text(errors='replace')}")


def log_in(port: int) -> str:
    conn = connect(port)
    conn.request("GET", "/login")
    response = conn.getresponse()
    html = response.read().decode()
    cookie = cookie_of(response)
    token = CSRF.search(html).group(1)
    body = urlencode({"csrf_token": token, "username": "root", "password": PASSWORD})
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
        "Referer": f"https://127.0.0.1:{port}/login"})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 302:
        sys.exit(f"login failed: HTTP {response.status}")
    return cookie_of(response) or cookie


def hammer(port: int, cookie: str, path: str, total: int, threads: int) -> float:
    """`total` GETs of `path` over `threads` keep-alive connections; returns requests per second."""
    per_thread = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def work(count: int) -> None:
        conn = connect(port)
        conn.connect()
        barrier.wait()
        for _ in range(count):
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"{path}: HTTP {response.status}")
                return
        conn.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in per_thread]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        sys.exit(errors[0])
    return total / elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def profile_page(config: Path, requests: int) -> None:
    """The page through Flask's test client under cProfile: the app's own cost, without TLS or the HTTP server."""
    from svcssl.app import create_app

    app = create_app(load_settings(config))
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = "https://localhost/"
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    client.post("/login", data={"username": "root", "password": PASSWORD, "csrf_token": token})
    assert client.get(PAGE).status_code == 200
    start = time.perf_counter()
    for _ in range(50):
        client.get(BASELINE).close()
    base = (time.perf_counter() - start) / 50
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(requests):
        client.get(PAGE)
    profiler.disable()
    elapsed = (time.perf_counter() - start) / requests
    print(f"\nin-process (test client): page {elapsed * 1e3:.2f} ms/request under cProfile, "
          f"baseline {base * 1e3:.2f} ms/request without")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"svcssl|jinja2/environment|cryptography|sqlite", 30)
    print(out.getvalue())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=4, help="generic file-only services besides cpanel (default 4)")
    parser.add_argument("--requests", type=int, default=1000, help="requests per measurement (default 1000)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each route, best kept (default 2)")
    parser.add_argument("--profile", action="store_true", help="also profile the page in-process with cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="svcssl-bench-"))
    config = write_config(directory, args.services)
    prepare_state(config)
    port = free_port()
    log = directory / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve",
                                 "--listen", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_until_serving(proc, port, log)
        cookie = log_in(port)
        rss_start = rss_mb(proc.pid)
        hammer(port, cookie, PAGE, 100, args.threads)  # warm-up: imports, template compilation, thread stores
        hammer(port, cookie, BASELINE, 100, args.threads)
        page_rates, base_rates, login_rates = [], [], []
        rss_after_page = 0.0
        for _ in range(args.rounds):
            base_rates.append(hammer(port, cookie, BASELINE, args.requests, args.threads))
            page_rates.append(hammer(port, cookie, PAGE, args.requests, args.threads))
            rss_after_page = max(rss_after_page, rss_mb(proc.pid))
            login_rates.append(hammer(port, cookie, LOGIN, args.requests // 2, args.threads))
        page, base = max(page_rates), max(base_rates)
        print(f"svcssl serve: {args.services} generic services + cpanel, {args.threads} client threads, "
              f"{args.requests} requests per run, best of {args.rounds}, {os.cpu_count()} CPUs")
        print(f"  GET {PAGE:<30} {page:8.1f} req/s  ({', '.join(f'{r:.0f}' for r in page_rates)})")
        print(f"  GET {BASELINE:<30} {base:8.1f} req/s  ({', '.join(f'{r:.0f}' for r in base_rates)})  [baseline]")
        print(f"  GET {LOGIN:<30} {max(login_rates):8.1f} req/s  "
              f"({', '.join(f'{r:.0f}' for r in login_rates)})  [for reference: a small rendered page]")
        ratio = page / base
        print(f"  ratio page/baseline: {ratio:.2f}x  (target >= 0.5x: {'met' if ratio >= 0.5 else 'NOT met'})")
        print(f"  server VmRSS: {rss_start:.1f} MB after login, {rss_after_page:.1f} MB after "
              f"{args.rounds * args.requests + 100} page requests (target < 100 MB: "
              f"{'met' if rss_after_page < 100 else 'NOT met'})")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if args.profile:
        profile_page(config, 300)
    if args.keep:
        print(f"state kept in {directory}")
    else:
        import shutil
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
