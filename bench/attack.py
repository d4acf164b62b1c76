"""Benchmark: the panel under the attacks of issue 18, without any account, while root uses it.

Run by hand (not collected by pytest):

    .venv/bin/python bench/attack.py                   # all three attacks
    .venv/bin/python bench/attack.py --only bodies     # or: forms, hellos, pipeline

It starts `svcssl serve` on a free loopback port (bench/panel.py's throw-away config), logs in as
root, and keeps loading the service page on root's keep-alive connection (5 a second) through:

  * bodies:   512 unauthenticated TLS connections (from 127.0.3.1-127.0.3.16) each sending an
              endless chunked body of one-byte chunks to POST /login, reconnecting when cut off,
              for --seconds; then all close, and the server's memory is read 30 s later;
  * forms:    512 unauthenticated keep-alive connections (from 127.0.6.1-127.0.6.16) posting 60 KB
              login forms (under the 64 KiB cap: the app reads and refuses them), for --seconds;
  * hellos:   2,000 connections (from 127.0.4.1-127.0.4.40) holding half a TLS ClientHello,
              re-opened when the server drops them, for --seconds;
  * pipeline: 512 TLS connections each sending 200 pipelined GET /login at once, reading the answers.

It prints the server's resident memory (VmRSS: at the start, peak during, 30 s after) and the p95 of
root's page during each attack. Targets (issue 18): bodies and forms < 300 MB peak and < 150 MB 30 s after;
hellos < 150 MB; root's page p95 < 300 ms throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from panel import (PAGE, REPO, TLS, free_port, log_in, prepare_state, rss_mb, wait_until_serving,  # noqa: E402
                   write_config)


class Prober(threading.Thread):
    """root's browser: the service page on a keep-alive connection, 5 times a second; latencies by phase."""

    def __init__(self, port: int, cookie: str):
        super().__init__(daemon=True)
        self.port, self.cookie = port, cookie
        self.phase = "idle"
        self.samples: dict[str, list[float]] = {}
        self.failures: dict[str, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        conn = None
        while not self.done.is_set():
            phase = self.phase
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=TLS, timeout=30)
                conn.request("GET", PAGE, headers={"Cookie": self.cookie})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok, conn = False, None
            elapsed = time.perf_counter() - start
            if ok:
                self.samples.setdefault(phase, []).append(elapsed)
            else:
                self.failures[phase] = self.failures.get(phase, 0) + 1
            time.sleep(max(0.0, 0.2 - elapsed))

    def p95(self, phase: str) -> str:
        values = sorted(self.samples.get(phase, []))
        if not values:
            return "no sample"
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        return (f"p50 {statistics.median(values) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, max {values[-1] * 1e3:.0f} ms "
                f"({len(values)} loads, {self.failures.get(phase, 0)} failed)")

    def p95_ms(self, phase: str) -> float:
        values = sorted(self.samples.get(phase, []))
        return values[min(len(values) - 1, int(len(values) * 0.95))] * 1e3 if values else float("inf")


class Peak(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.2)


def body_sender(port: int, source: str, until: float, counters: dict) -> None:
    """One attacker: an endless chunked body of one-byte chunks; a new connection whenever cut off."""
    chunk = b"1\r\na\r\n" * 2048
    while time.monotonic() < until:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
            tls = TLS.wrap_socket(raw, server_hostname="mail.example.com")
        except (OSError, ssl.SSLError):
            counters["refused"] += 1
            time.sleep(0.2)
            continue
        counters["connections"] += 1
        try:
            tls.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
            while time.monotonic() < until:
                tls.sendall(chunk)
        except (OSError, ssl.SSLError):
            pass
        finally:
            tls.close()


def bodies(port: int, seconds: float) -> dict:
    counters = {"connections": 0, "refused": 0}
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=body_sender, args=(port, f"127.0.3.{i % 16 + 1}", until, counters), daemon=True)
               for i in range(512)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counters


def form_sender(port: int, source: str, until: float, counters: dict) -> None:
    """One attacker: 60 KB login forms (under the 64 KiB cap, so the app reads them), on keep-alive."""
    body = b"username=root&password=" + b"p" * 60_000
    request = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    while time.monotonic() < until:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
            tls = TLS.wrap_socket(raw, server_hostname="mail.example.com")
        except (OSError, ssl.SSLError):
            counters["refused"] += 1
            time.sleep(0.2)
            continue
        counters["connections"] += 1
        try:
            response = http.client.HTTPResponse(tls)
            while time.monotonic() < until:
                tls.sendall(request)
                response = http.client.HTTPResponse(tls)
                response.begin()
                response.read()
                counters["answers"] += 1
                if response.will_close:
                    break
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass
        finally:
            tls.close()


def forms(port: int, seconds: float) -> dict:
    counters = {"connections": 0, "refused": 0, "answers": 0}
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=form_sender, args=(port, f"127.0.6.{i % 16 + 1}", until, counters), daemon=True)
               for i in range(512)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counters


def half_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = TLS.wrap_bio(incoming, outgoing, server_hostname="mail.example.com")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    return hello[: len(hello) // 2]


async def hello_holder(port: int, source: str, data: bytes, until: float, counters: dict) -> None:
    loop = asyncio.get_running_loop()
    while time.monotonic() < until:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.bind((source, 0))
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, data)
            counters["held"] += 1
            remaining = until - time.monotonic()
            if remaining > 0:
                try:
                    await asyncio.wait_for(loop.sock_recv(sock, 1), remaining)  # until the server lets go
                except (asyncio.TimeoutError, ConnectionError):
                    pass
        except OSError:
            counters["refused"] += 1
            await asyncio.sleep(0.2)
        finally:
            sock.close()


async def hellos(port: int, seconds: float) -> dict:
    counters = {"held": 0, "refused": 0}
    data = half_hello()
    until = time.monotonic() + seconds
    await asyncio.gather(*(hello_holder(port, f"127.0.4.{i % 40 + 1}", data, until, counters) for i in range(2000)))
    return counters


async def pipeliner(port: int, source: str, count: int, counters: dict) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=TLS, local_addr=(source, 0),
                                                       server_hostname="mail.example.com")
    except (OSError, ssl.SSLError):
        counters["refused"] += 1
        return
    try:
        writer.write(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        await writer.drain()
        tail = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            counters["answers"] += (tail + data).count(b"HTTP/1.1 ") - tail.count(b"HTTP/1.1 ")
            tail = data[-8:]
    except (OSError, ssl.SSLError, ConnectionError):
        pass
    finally:
        writer.transport.abort()


async def pipeline(port: int, seconds: float) -> dict:
    counters = {"answers": 0, "refused": 0}
    tasks = [asyncio.ensure_future(pipeliner(port, f"127.0.5.{i % 16 + 1}", 200, counters)) for i in range(512)]
    await asyncio.wait(tasks, timeout=seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("bodies", "forms", "hellos", "pipeline"))
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each attack (default 20)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    directory = Path(tempfile.mkdtemp(prefix="svcssl-attack-"))
    config = write_config(directory, 4)
    prepare_state(config)
    port = free_port()
    log = directory / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve",
                                 "--listen", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)
    results: list[tuple[str, bool]] = []
    try:
        wait_until_serving(proc, port, log)
        cookie = log_in(port)
        prober = Prober(port, cookie)
        prober.start()
        time.sleep(3)
        start_rss = rss_mb(proc.pid)
        print(f"svcssl serve on 127.0.0.1:{port}: VmRSS {start_rss:.1f} MB at the start; root's page idle: "
              f"{prober.p95('idle')}")
        if args.only in (None, "bodies"):
            peak = Peak(proc.pid)
            peak.start()
            prober.phase = "bodies"
            counters = bodies(port, args.seconds)
            peak.done.set()
            prober.phase = "after bodies"
            time.sleep(30)
            after = rss_mb(proc.pid)
            print(f"bodies: 512 unauthenticated connections sending endless chunked bodies for {args.seconds:.0f} s "
                  f"({counters['connections']} connections made, {counters['refused']} refused)")
            print(f"  VmRSS peak {peak.peak:.1f} MB (target < 300: {'met' if peak.peak < 300 else 'NOT met'}), "
                  f"30 s after {after:.1f} MB (target < 150: {'met' if after < 150 else 'NOT met'}; "
                  f"{after - start_rss:+.1f} MB from the start)")
            print(f"  root's page during: {prober.p95('bodies')}")
            results += [("bodies peak", peak.peak < 300), ("bodies after", after < 150),
                        ("bodies p95", prober.p95_ms("bodies") < 300)]
        if args.only in (None, "forms"):
            peak = Peak(proc.pid)
            peak.start()
            prober.phase = "forms"
            counters = forms(port, args.seconds)
            peak.done.set()
            prober.phase = "after forms"
            time.sleep(30)
            after = rss_mb(proc.pid)
            print(f"forms: 512 unauthenticated keep-alive connections posting 60 KB login forms for {args.seconds:.0f} s "
                  f"({counters['connections']} connections, {counters['answers']} answers, {counters['refused']} refused)")
            print(f"  VmRSS peak {peak.peak:.1f} MB (target < 300: {'met' if peak.peak < 300 else 'NOT met'}), "
                  f"30 s after {after:.1f} MB (target < 150: {'met' if after < 150 else 'NOT met'}; "
                  f"{after - start_rss:+.1f} MB from the start)")
            print(f"  root's page during: {prober.p95('forms')}")
            results += [("forms peak", peak.peak < 300), ("forms after", after < 150),
                        ("forms p95", prober.p95_ms("forms") < 300)]
        if args.only in (None, "hellos"):
            peak = Peak(proc.pid)
            peak.start()
            prober.phase = "hellos"
            counters = asyncio.run(hellos(port, args.seconds))
            peak.done.set()
            prober.phase = "after hellos"
            print(f"hellos: 2,000 half ClientHellos held for {args.seconds:.0f} s ({counters['held']} sent, "
                  f"{counters['refused']} refused)")
            print(f"  VmRSS peak {peak.peak:.1f} MB (target < 150: {'met' if peak.peak < 150 else 'NOT met'})")
            print(f"  root's page during: {prober.p95('hellos')}")
            results += [("hellos peak", peak.peak < 150), ("hellos p95", prober.p95_ms("hellos") < 300)]
        if args.only in (None, "pipeline"):
            peak = Peak(proc.pid)
            peak.start()
            prober.phase = "pipeline"
            started = time.monotonic()
            counters = asyncio.run(pipeline(port, max(args.seconds, 60.0)))
            took = time.monotonic() - started
            peak.done.set()
            prober.phase = "after pipeline"
            print(f"pipeline: 512 connections x 200 pipelined GET /login: {counters['answers']:,} answers in "
                  f"{took:.1f} s ({counters['refused']} connections refused); VmRSS peak {peak.peak:.1f} MB")
            print(f"  root's page during: {prober.p95('pipeline')}")
            results.append(("pipeline p95", prober.p95_ms("pipeline") < 300))
        time.sleep(2)
        prober.done.set()
        print(f"VmRSS at the end: {rss_mb(proc.pid):.1f} MB")
        print("targets: " + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in results))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
