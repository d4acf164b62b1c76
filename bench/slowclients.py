"""Benchmark: does a flood of idle and stalled connections slow down a legitimate user of the panel?

Run by hand (not collected by pytest):

    .venv/bin/python bench/slowclients.py                  # 300 idle + 50 stalled handshakes
    .venv/bin/python bench/slowclients.py --ramp           # also: how many idle connections it holds
    .venv/bin/python bench/slowclients.py --attach PORT --pid PID   # a server started by other means

It builds a throw-away config (the `cpanel` panel service only), starts `svcssl serve` on a free
loopback port and measures, from 127.0.0.1, 30 loads of the login page (a rendered page: template,
CSRF token, session), each on a new connection with a new TLS handshake:

  * unloaded: nothing else connected;
  * loaded: while 300 idle TCP connections (connected, nothing sent) and 50 connections that sent
    the first half of a TLS ClientHello and then stall are held open, from the source addresses
    127.0.0.2-127.0.0.30 (each client socket is bound before connect(); 127/8 is loopback).

The two alternate in --rounds rounds (default 3), so that a change in the machine's own load hits
both alike. It prints p50/p95/max of both, the ratio of the loaded p95 to the unloaded one, the legitimate
connections refused or timed out, and the server's resident memory (VmRSS) under load.
Targets: loaded p95 <= 300 ms (goal: <= 2x unloaded), no refused or timed-out legitimate
connection, under 150 MB resident.

With --ramp it then opens ever more idle connections (20 per source address from 127.0.1.1 on,
so that the per-address cap is not what stops them) and measures 10 loads at each step, until a
load fails, the p95 passes 300 ms, or --ramp-max is reached.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from panel import REPO, TLS, free_port, prepare_state, rss_mb, wait_until_serving, write_config  # noqa: E402

PAGE = "/login"
TARGET_P95 = 0.300
TARGET_RSS = 150.0
LOAD_TIMEOUT = 10.0  # seconds a legitimate load may take before it counts as timed out


def client_hello_head() -> bytes:
    """The first half of a real TLS ClientHello (what a stalled or hostile client sends)."""
    context = ssl._create_unverified_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[: len(hello) // 2]


def open_connection(port: int, source: str, payload: bytes = b"") -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(2.0)
        sock.connect(("127.0.0.1", port))
        if payload:
            sock.sendall(payload)
        return sock
    except OSError:
        sock.close()
        return None


def open_many(port: int, sources: list[str], payload: bytes = b"") -> tuple[list[socket.socket], int]:
    """One connection per entry of `sources`, opened in parallel; returns the open ones and the failures."""
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda source: open_connection(port, source, payload), sources))
    opened = [sock for sock in results if sock is not None]
    return opened, len(results) - len(opened)


def still_open(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has not closed (a closed one reads EOF or an error at once)."""
    count = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            count += sock.recv(1) != b""  # data: still open (it sent something)
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def load_page(port: int) -> float | str:
    """One GET of the page on a new connection from 127.0.0.1: seconds, or why it failed."""
    start = time.perf_counter()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=TLS, timeout=LOAD_TIMEOUT,
                                       source_address=("127.0.0.1", 0))
    try:
        conn.request("GET", PAGE)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            return f"HTTP {response.status}"
        return time.perf_counter() - start
    except (socket.timeout, TimeoutError):
        return "timed out"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def measure(port: int, loads: int, max_failures: int = 3) -> tuple[list[float], list[str]]:
    times: list[float] = []
    failures: list[str] = []
    for _ in range(loads):
        result = load_page(port)
        if isinstance(result, str):
            failures.append(result)
            if len(failures) >= max_failures:
                break
        else:
            times.append(result)
    return times, failures


def p95(times: list[float]) -> float:
    if not times:
        return float("inf")
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def describe(label: str, times: list[float], failures: list[str]) -> str:
    if not times:
        return f"  {label:<9} no load succeeded; failures: {failures}"
    text = (f"  {label:<9} p50 {statistics.median(times) * 1e3:7.1f} ms   p95 {p95(times) * 1e3:7.1f} ms   "
            f"max {max(times) * 1e3:7.1f} ms   ({len(times)} ok")
    return text + (f", {len(failures)} failed: {sorted(set(failures))})" if failures else ")")


def slow_sources(count: int) -> list[str]:
    """127.0.0.2 .. 127.0.0.30, round robin."""
    return [f"127.0.0.{2 + i % 29}" for i in range(count)]


def ramp(port: int, pid: int | None, maximum: int) -> None:
    print(f"\nramp: idle TCP connections, 20 per source address from 127.0.1.1 on, 10 loads per step")
    held: list[socket.socket] = []
    step, address = 250, 0
    try:
        while len(held) < maximum:
            want = min(step, maximum - len(held))
            sources = []
            for _ in range(want):
                sources.append(f"127.0.{1 + address // 5000}.{1 + (address // 20) % 250}")
                address += 1
            opened, failed = open_many(port, sources)
            held += opened
            times, failures = measure(port, 10, max_failures=1)
            open_now = still_open(held)
            rss = f", server {rss_mb(pid):.0f} MB" if pid else ""
            print(f"  {len(held):6d} opened ({failed} failed to connect), {open_now:6d} still open: "
                  f"p95 {p95(times) * 1e3:7.1f} ms{', FAILED: ' + failures[0] if failures else ''}{rss}")
            if failures or p95(times) > TARGET_P95 or failed:
                print(f"  -> a legitimate client suffers from about {open_now} idle connections held")
                return
            step = min(step * 2, 2000)
        print(f"  -> no harm up to {maximum} idle connections opened (--ramp-max)")
    finally:
        for sock in held:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=300, help="idle TCP connections (default 300)")
    parser.add_argument("--stalled", type=int, default=50, help="stalled partial ClientHellos (default 50)")
    parser.add_argument("--loads", type=int, default=30, help="page loads per measurement (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of unloaded and loaded (default 3)")
    parser.add_argument("--ramp", action="store_true", help="then: how many idle connections does it hold?")
    parser.add_argument("--ramp-max", type=int, default=15000, help="stop the ramp there (default 15000)")
    parser.add_argument("--attach", type=int, metavar="PORT", help="measure a server already listening there")
    parser.add_argument("--pid", type=int, help="with --attach: the server's PID, for its memory")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the bench itself holds many sockets

    proc = None
    directory = Path(tempfile.mkdtemp(prefix="svcssl-bench-"))
    if args.attach:
        port, pid = args.attach, args.pid
    else:
        config = write_config(directory, 0)
        prepare_state(config)
        port = free_port()
        log = directory / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve",
                                     "--listen", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=REPO)
        pid = proc.pid
    held: list[socket.socket] = []
    try:
        if proc is not None:
            wait_until_serving(proc, port, log)
        measure(port, 5)  # warm-up: imports, template compilation
        # rounds of (unloaded, loaded) so that a change in the machine's own load hits both alike
        base_times, base_failures, load_times, load_failures = [], [], [], []
        per_round = [args.loads // args.rounds + (1 if i < args.loads % args.rounds else 0) for i in range(args.rounds)]
        hello = client_hello_head()
        for count in per_round:
            for sock in held:
                sock.close()
            time.sleep(0.2)
            times, failures = measure(port, count)
            base_times += times
            base_failures += failures
            started = time.perf_counter()
            idle, idle_failed = open_many(port, slow_sources(args.idle))
            stalled, stalled_failed = open_many(port, slow_sources(args.stalled), hello)
            held = idle + stalled
            opened_in = time.perf_counter() - started
            times, failures = measure(port, count)
            load_times += times
            load_failures += failures
        rss = rss_mb(pid) if pid else float("nan")
        idle_open, stalled_open = still_open(idle), still_open(stalled)

        print(f"svcssl serve on 127.0.0.1:{port}, {os.cpu_count()} CPUs; {args.loads} loads of GET {PAGE}, "
              f"each on a new TLS connection from 127.0.0.1")
        print(f"  slow clients from 127.0.0.2-30, opened anew before each of {args.rounds} loaded rounds (the "
              f"unloaded rounds alternate with them): {len(idle)} idle TCP connections ({idle_failed} failed to "
              f"connect), {len(stalled)} stalled ClientHellos ({stalled_failed} failed), opened in {opened_in:.1f} s; "
              f"still open after the last loaded round: {idle_open} idle, {stalled_open} stalled")
        print(describe("unloaded", base_times, base_failures))
        print(describe("loaded", load_times, load_failures))
        base, loaded = p95(base_times), p95(load_times)
        ratio = loaded / base if base_times and load_times else float("inf")
        ok_p95 = loaded <= TARGET_P95
        ok_failures = not load_failures and len(load_times) == args.loads
        print(f"  ratio loaded/unloaded p95: {ratio:.2f}x  (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
        print(f"  loaded p95 <= {TARGET_P95 * 1e3:.0f} ms: {'met' if ok_p95 else 'NOT met'}; "
              f"no refused or timed-out load: {'met' if ok_failures else 'NOT met'}")
        print(f"  server VmRSS under load: {rss:.1f} MB (target <= {TARGET_RSS:.0f} MB: "
              f"{'met' if rss <= TARGET_RSS else 'NOT met'})")
        for sock in held:
            sock.close()
        held = []
        if args.ramp:
            time.sleep(0.5)
            ramp(port, pid, args.ramp_max)
    finally:
        for sock in held:
            sock.close()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        import shutil
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
