"""Benchmark: what the fault handling of issue 23 costs.

Run by hand (not collected by pytest):

    .venv/bin/python bench/state.py --rows 50000

  * opening the state database and reading one service's active certificate, in the rollback journal
    mode svcssl now uses (a reader writes and creates nothing) against WAL (the baseline, the earlier
    mode): the median of many opens, and the ratio;
  * PRAGMA quick_check (run when `svcssl serve` starts) and a snapshot (SQLite's backup API) of a
    database holding ``--rows`` audit rows, against reading every row once (the baseline);
  * the deploy preflight (statvfs, immutable flags, free space per file system) for one service,
    against staging and swapping its files (the baseline: the cheapest deploy there is, no reload).

The last line is:  open ratio=… quick_check=… ms snapshot=… ms preflight=… µs (…x of a swap)
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svcssl.deploy.layout import TargetFile  # noqa: E402
from svcssl.deploy.preflight import check_deploy  # noqa: E402
from svcssl.fsutil import atomic_write  # noqa: E402
from svcssl.store import AuditEntry, Store  # noqa: E402


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="svcssl-bench-state-"))
    try:
        store = Store(root / "state")
        now = datetime.now(timezone.utc)
        store._db.execute("BEGIN")
        for i in range(args.rows):
            store.add_audit(AuditEntry(at=now, actor="bench", action="install", service="exim", detail=f"row {i}"))
        store._db.execute("COMMIT")
        database = store.layout.database
        wal = root / "wal.db"
        shutil.copy(database, wal)
        with sqlite3.connect(wal) as conn:
            conn.execute("PRAGMA journal_mode=WAL")

        def read(path: Path, wal_mode: bool):
            def action():
                conn = sqlite3.connect(path, timeout=30, isolation_level=None)
                if wal_mode:
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("SELECT * FROM service_history WHERE service = 'exim' ORDER BY id DESC LIMIT 1").fetchall()
                conn.execute("SELECT count(*) FROM users").fetchall()
                conn.close()
            return action

        rollback_ms = median_ms(read(database, False), args.repeat)
        wal_ms = median_ms(read(wal, True), args.repeat)
        print(f"open + read: rollback journal {rollback_ms:.3f} ms, WAL {wal_ms:.3f} ms "
              f"(ratio {rollback_ms / wal_ms:.2f})")

        scan_ms = median_ms(lambda: store._db.execute("SELECT * FROM audit").fetchall(), 5)
        quick_ms = median_ms(lambda: store._db.execute("PRAGMA quick_check").fetchall(), 5)
        snap_ms = median_ms(lambda: store.snapshot("run", datetime.now(timezone.utc)), 5)
        size = database.stat().st_size
        print(f"database {size / 1e6:.1f} MB ({args.rows} audit rows): read every row {scan_ms:.1f} ms, "
              f"quick_check {quick_ms:.1f} ms ({quick_ms / scan_ms:.2f}x), snapshot {snap_ms:.1f} ms "
              f"({snap_ms / scan_ms:.2f}x)")

        etc = root / "etc"
        etc.mkdir()
        files = (TargetFile(etc / "cert.pem", b"c" * 4000, 0o644, "cert"),
                 TargetFile(etc / "key.pem", b"k" * 1700, 0o600, "key"))
        for f in files:
            f.path.write_bytes(f.data)
        preflight_ms = median_ms(lambda: check_deploy(files, store.root, bundle_bytes=6000), args.repeat)
        swap_ms = median_ms(lambda: [atomic_write(f.path, f.data, f.mode) for f in files], 50)
        print(f"preflight {preflight_ms * 1000:.0f} µs, stage + swap of the same files {swap_ms * 1000:.0f} µs "
              f"(preflight = {preflight_ms / swap_ms:.2f}x a swap)")
        store.close()
        print(f"open ratio={rollback_ms / wal_ms:.2f} quick_check={quick_ms:.1f} ms snapshot={snap_ms:.1f} ms "
              f"preflight={preflight_ms * 1000:.0f} µs ({preflight_ms / swap_ms:.2f}x of a swap)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
