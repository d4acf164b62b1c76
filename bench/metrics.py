"""Benchmark: a Prometheus scrape of /metrics on a real `svcssl serve`, against a static file as baseline.

Run by hand (not collected by pytest):

    .venv/bin/python bench/metrics.py                    # 10 services, 500 scrapes
    .venv/bin/python bench/metrics.py --services 30 --scrapes 1000 --history 5000

It builds a throw-away config (the `cpanel` panel service plus N-1 file-only `generic` services, each with a
probe address where nothing listens, so every service has a last-probe record), a year of history
(daily maintenance runs, deploys and orders in the audit log, ``--history`` rows each), a metrics-only token,
starts `svcssl serve` on a free loopback port and, over one keep-alive HTTPS connection as Prometheus
uses, times

  * GET /metrics               with "Authorization: Bearer TOKEN"
  * GET /static/svcssl.css     (baseline: the same app, headers and TLS; reads one file, renders nothing)

and prints p50/p95/p99 of each and the ratio. Target: /metrics p95 under 20 ms with 10 services.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from panel import connect, free_port, wait_until_serving  # noqa: E402  (bench/panel.py)
from panel import write_config as panel_config  # noqa: E402

from svcssl.operations.context import open_context  # noqa: E402
from svcssl.operations.firstrun import ensure_certificates  # noqa: E402
from svcssl.operations.tokens import create_token  # noqa: E402
from svcssl.operations.users import create_user  # noqa: E402
from svcssl.settings import load_settings  # noqa: E402
from svcssl.store import AuditEntry  # noqa: E402

BASELINE = "/static/svcssl.css"
TARGET_P95_MS = 20.0


def write_config(directory: Path, services: int, closed_port: int) -> Path:
    """bench/panel.py's config (cpanel and generic services), each generic one probed where nothing listens."""
    config = panel_config(directory, services - 1)
    text = config.read_text().replace('kind = "generic"', f'kind = "generic"\nprobe = "tls://127.0.0.1:{closed_port}"')
    config.write_text(text + "\n[metrics]\nprobe_interval = 3600\n")
    return config


def prepare_state(config: Path, history: int) -> str:
    """Certificates (as a first start makes), a year of runs and audit entries; returns a metrics token."""
    ctx = open_context(load_settings(config))
    try:
        ensure_certificates(ctx)
        create_user(ctx, "root", "root", "bench-password-1", actor="bench")
        now = ctx.now()
        names = list(ctx.settings.services)
        for day in range(365):
            started = now - timedelta(days=365 - day)
            ctx.store.add_run(started, started + timedelta(seconds=3), "schedule", False, day % 7 != 0,
                              {"services": [], "summary": "bench"})
        for i in range(history):
            ctx.store.add_audit(AuditEntry(at=now, actor="bench", action="install", service=names[i % len(names)],
                                           old_fingerprint="0" * 64, new_fingerprint="1" * 64,
                                           outcome="ok" if i % 10 else "rolled back"))
            ctx.store.add_audit(AuditEntry(at=now, actor="bench", action="login", detail="noise"))
        _, token = create_token(ctx, "root", "prometheus", actor="bench", metrics_only=True)
        return token
    finally:
        ctx.store.close()


def timed(conn: http.client.HTTPSConnection, path: str, headers: dict, count: int) -> list[float]:
    """Milliseconds per GET of ``path`` over ``conn`` (kept alive)."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - start) * 1e3)
        if response.status != 200:
            sys.exit(f"{path}: HTTP {response.status}")
    return times


def percentiles(times: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(times, n=100)
    return statistics.median(times), cuts[94], cuts[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--history", type=int, default=2000, help="deploy (and as many other) audit entries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="svcssl-bench-metrics-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, args.services, free_port())
        token = prepare_state(config, args.history)
        port = free_port()
        log = directory / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve",
                                     "--listen", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_until_serving(proc, port, log)
            time.sleep(2)  # let the probe job record every port once
            conn = connect(port)
            bearer = {"Authorization": f"Bearer {token}"}
            timed(conn, "/metrics", bearer, 1)  # warm up both
            timed(conn, BASELINE, {}, 20)
            timed(conn, "/metrics", bearer, 20)
            conn.request("GET", "/metrics", headers=bearer)
            scrape = conn.getresponse().read().decode()
            series = sum(1 for line in scrape.splitlines() if line and not line.startswith("#"))
            metrics = timed(conn, "/metrics", bearer, args.scrapes)
            baseline = timed(conn, BASELINE, {}, args.scrapes)
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        m50, m95, m99 = percentiles(metrics)
        b50, b95, b99 = percentiles(baseline)
        print(f"{args.services} services, {series} series, {len(scrape):,} bytes per scrape, "
              f"{365} runs and {2 * args.history:,} audit entries in the store; {args.scrapes} requests each")
        print(f"  /metrics            p50 {m50:6.2f} ms  p95 {m95:6.2f} ms  p99 {m99:6.2f} ms")
        print(f"  {BASELINE:<20}p50 {b50:6.2f} ms  p95 {b95:6.2f} ms  p99 {b99:6.2f} ms")
        print(f"  ratio /metrics : baseline at p95 = {m95 / b95:.2f}x; target p95 < {TARGET_P95_MS:g} ms: "
              f"{'met' if m95 < TARGET_P95_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
