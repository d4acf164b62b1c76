"""A damaged state database has a way back: damage is found and said with the command that fixes it,
snapshots are consistent copies (0600, inside the state directory), and `svcssl state restore` puts
one back, after which passwords and tokens made before the snapshot work and a later install shows
as a change made outside svcssl. Uses the state directory an earlier release wrote (old_state)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from servers.ports import free_port
from support import pki
from support.config import write_anchors
from support.process import REPO
from svcssl.app import create_app
from svcssl.operations.context import open_context
from svcssl.operations.users import authenticate
from svcssl.settings import load_settings

HOST = "mail.example.com"
SNAPSHOT_LINE = re.compile(r"^(svcssl-\d{8}T\d{6}Z-upgrade\.db)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+before a schema "
                           r"upgrade", re.M)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def live(state: Path) -> dict[str, str]:
    return {str(p.relative_to(state)): sha256(p) for p in sorted((state / "live").rglob("*")) if p.is_file()}


def install_later_certificate(run_cli, config: Path, tmp_path: Path) -> str:
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(12))
    crt, key_file = tmp_path / "later.crt", tmp_path / "later.key"
    crt.write_bytes(pki.pem(leaf) + pki.pem(ca.intermediate))
    key_file.write_bytes(pki.key_pem(key))
    if "[trust]" not in config.read_text():  # the tests' private CA is a trust anchor (issue 24)
        anchors = write_anchors(tmp_path / "anchors.pem")
        config.write_text(config.read_text() + f'\n[trust]\nca_file = "{anchors}"\n')
    result = run_cli("install", "exim", "--cert", str(crt), "--key", str(key_file), config=config)
    assert result.code == 0, result.err
    from svcssl.x509.inspect import fingerprint
    return fingerprint(leaf)


def truncate(database: Path) -> None:
    size = database.stat().st_size
    with open(database, "r+b") as handle:
        handle.truncate(size // 2)


def overwrite_page(database: Path, page: int) -> None:
    """Write garbage over one page (1-based) of the database, as a bad block would."""
    page_size = int.from_bytes(database.read_bytes()[16:18], "big")
    with open(database, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(bytes(range(256)) * (page_size // 256))


def serve_exits(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve", "--listen",
                           f"127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_upgrade_takes_a_snapshot_damage_is_said_and_restore_is_the_way_back(old_state, run_cli, tmp_path):
    target, expected = old_state
    config = target / "svcssl.toml"
    state = target / "state"
    database = state / "svcssl.db"

    # the first command of this release upgrades the schema, after a snapshot of the old database
    assert run_cli("list", "--no-probe", config=config).code == 0
    snapshots = run_cli("state", "snapshots", config=config)
    assert snapshots.code == 0, snapshots.err
    match = SNAPSHOT_LINE.search(snapshots.out)
    assert match, snapshots.out
    snapshot = state / "snapshots" / match.group(1)
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "snapshots").stat().st_mode) == 0o700
    copy = sqlite3.connect(f"{snapshot.as_uri()}?mode=ro", uri=True)
    try:  # a consistent copy: SQLite's own check passes, the old schema and every user are in it
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA user_version").fetchone()[0] == expected["schema_version"]
        assert copy.execute("SELECT count(*) FROM users").fetchone()[0] == len(expected["users"])
    finally:
        copy.close()
    assert run_cli("state", "check", config=config).code == 0

    # a certificate installed after the snapshot
    later = install_later_certificate(run_cli, config, tmp_path)
    running = create_app(load_settings(config), live_check_ttl=0).test_client()  # a panel running throughout
    deploy = expected["tokens"]["deploy"]
    api_call = ("/json-api/fetch_service_ssl_components?api.version=1",
                {"Authorization": f"whm {deploy['user']}:{deploy['secret']}"})
    assert running.get(api_call[0], headers=api_call[1]).status_code == 200

    # damage: a truncated database. Every command says what is wrong and what fixes it; no traceback.
    truncate(database)
    damaged_bytes = sha256(database)
    files_before = live(state)
    for argv in (("list", "--no-probe"), ("details", "exim"), ("reset", "exim")):
        result = run_cli(*argv, config=config)
        assert result.code == 1, (argv, result.err)
        assert f"The state database {database} is damaged" in result.err
        assert "Run `svcssl state restore`" in result.err
        assert "Traceback" not in result.err
    assert live(state) == files_before
    checked = run_cli("state", "check", config=config)
    assert checked.code == 1 and "DAMAGED" in checked.out and "svcssl state restore" in checked.out
    assert run_cli("state", "snapshots", config=config).code == 0  # works on a damaged database
    answer = running.get(api_call[0], headers=api_call[1])
    assert answer.status_code == 503 and "is damaged" in answer.json["metadata"]["reason"]

    # the way back: one command
    restored = run_cli("state", "restore", config=config)
    assert restored.code == 0, restored.err
    assert f"from {snapshot.name}" in restored.out
    assert [p.name for p in (state / "snapshots").iterdir()] == [snapshot.name]  # not copied again on upgrading
    aside = [p for p in state.iterdir() if p.name.startswith("svcssl.db.damaged-")]
    assert len(aside) == 1 and sha256(aside[0]) == damaged_bytes  # moved aside, never deleted
    assert "Changed after the snapshot (shown as changed outside svcssl): exim" in restored.out
    assert run_cli("state", "check", config=config).code == 0
    assert live(state) == files_before  # the restore wrote no service file
    assert running.get(api_call[0], headers=api_call[1]).status_code == 200  # the running panel reopened it

    rows = {r["service"]: r for r in json.loads(run_cli("list", "--json", "--no-probe", config=config).out)}
    assert rows["exim"]["fingerprint"] == later and rows["exim"]["drift"] is True
    assert "files changed outside svcssl" in rows["exim"]["flags"]
    for name, old in expected["services"].items():
        assert rows[name]["active_fingerprint"] == old["fingerprint"], name

    # users log in with their passwords; tokens made before the snapshot work, the revoked one does not
    settings = load_settings(config)
    ctx = open_context(settings)
    try:
        for name, password in expected["passwords"].items():
            assert authenticate(ctx, name, password, "127.0.0.1").name == name
        assert any(e.action == "state restore" for e in ctx.store.audit_entries(10))
    finally:
        ctx.store.close()
    client = create_app(settings, live_check_ttl=0).test_client()
    for name, token in expected["tokens"].items():
        answer = client.get("/json-api/fetch_service_ssl_components?api.version=1",
                            headers={"Authorization": f"whm {token['user']}:{token['secret']}"})
        assert answer.status_code == (401 if token.get("revoked") else 200), name


def test_an_overwritten_page_is_found_by_the_checks_and_serve_refuses_to_start(old_state, run_cli):
    target, expected = old_state
    config = target / "svcssl.toml"
    database = target / "state" / "svcssl.db"
    assert run_cli("list", "--no-probe", config=config).code == 0
    pages = database.stat().st_size // int.from_bytes(database.read_bytes()[16:18], "big")
    overwrite_page(database, pages // 2)
    files_before = live(target / "state")

    checked = run_cli("state", "check", config=config)
    assert checked.code == 1, checked.out
    assert f"{database}: DAMAGED" in checked.out
    started = serve_exits(config)
    assert started.returncode == 1, started.stdout + started.stderr
    assert f"The state database {database} is damaged" in started.stderr
    assert "svcssl state restore" in started.stderr and "Traceback" not in started.stderr
    assert live(target / "state") == files_before

    restored = run_cli("state", "restore", config=config)
    assert restored.code == 0, restored.err
    assert run_cli("state", "check", config=config).code == 0
    assert run_cli("list", "--no-probe", config=config).code == 0
    assert live(target / "state") == files_before


def test_restore_refuses_a_damaged_snapshot_and_an_unknown_name(old_state, run_cli):
    target, _ = old_state
    config = target / "svcssl.toml"
    database = target / "state" / "svcssl.db"
    assert run_cli("list", "--no-probe", config=config).code == 0
    before = sha256(database)
    unknown = run_cli("state", "restore", "svcssl-nothing.db", config=config)
    assert unknown.code == 2 and "There is no snapshot named 'svcssl-nothing.db'" in unknown.err
    (snapshot,) = (target / "state" / "snapshots").iterdir()
    truncate(snapshot)
    refused = run_cli("state", "restore", config=config)
    assert refused.code == 1 and f"The snapshot {snapshot} is damaged too" in refused.err
    assert sha256(database) == before  # nothing was moved or replaced
    assert not [p for p in database.parent.iterdir() if ".damaged-" in p.name or p.name.startswith(".svcssl-restore")]


def test_snapshots_keep_the_newest_as_configured(tmp_path, run_cli):
    from datetime import datetime, timedelta, timezone

    from svcssl.store import Store

    store = Store(tmp_path / "state", keep_snapshots=2)
    try:
        start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        taken = [store.snapshot("run", start + timedelta(days=day)).name for day in range(3)]
        same_second = store.snapshot("run", start + timedelta(days=2)).name  # never overwrites one
    finally:
        store.close()
    names = sorted(p.name for p in (tmp_path / "state" / "snapshots").iterdir())
    assert names == sorted([taken[2], same_second]) and same_second != taken[2]
    assert all(stat.S_IMODE((tmp_path / "state" / "snapshots" / n).stat().st_mode) == 0o600 for n in names)


def test_a_commit_interrupted_by_a_crash_is_rolled_back_not_called_damage(panel, run_cli):
    """A process killed in the middle of a large write (its pages already spilled into the file) leaves a hot
    journal: the next command rolls it back, as SQLite does, and nothing is reported damaged."""
    database = panel.state / "svcssl.db"
    before = run_cli("list", "--json", "--no-probe", config=panel.config).out
    crash = (f"import os, sqlite3\n"
             f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
             f"c.execute('PRAGMA cache_size=5'); c.execute('BEGIN IMMEDIATE')\n"
             f"for i in range(3000):\n"
             f"    c.execute(\"INSERT INTO audit (at, actor, action, outcome, detail) VALUES (0, 'x', 'y', 'ok', ?)\","
             f" ('z' * 400,))\n"
             f"os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", crash]).returncode == 9
    journal = database.with_name("svcssl.db-journal")
    assert journal.stat().st_size > 0  # hot: the file holds pages of a transaction that never committed
    checked = run_cli("state", "check", config=panel.config)
    assert checked.code == 0, checked.out
    assert run_cli("list", "--json", "--no-probe", config=panel.config).out == before
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM audit WHERE actor = 'x'").fetchone()[0] == 0
