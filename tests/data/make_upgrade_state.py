"""Write tests/data/upgrade-<version>/: a state directory made by this release through its command line.

Run once per release, from the checkout of that release, and commit the result:

    .venv/bin/python tests/data/make_upgrade_state.py

tests/test_upgrade.py opens every such directory with the current code. What the release wrote is
recorded beside it in expected.json (history, users, tokens and their secrets, the schema version),
so the test can check that an upgrade keeps all of it. The certificates are long-lived (until
2045) so the fixture does not expire; every secret in it is a test secret.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # a script, not under pytest: tests/ for the support package
sys.path.insert(0, str(HERE.parent.parent))

from svcssl import __version__  # noqa: E402
from support.pki import key_pem, make_ca, make_leaf, pem, ec_key, rsa_key  # noqa: E402

NOT_AFTER = datetime(2045, 1, 1, tzinfo=timezone.utc)
PASSWORDS = {"root": "root-password-1", "alice": "alice-password-1", "bob": "bob-password-1"}

CONFIG = """\
# The configuration the fixture was made with: the embedded services (files under state/live/),
# a state directory and one hosting account beside this file, no network.
[server]
hostname = "mail.example.com"
main_ip = "127.0.0.1"
state_dir = "state"
listen = "127.0.0.1:2087"

[certificates]
self_signed_days = 3650

[accounts]
home_root = "../homes"

[dns]
nameservers = ["127.0.0.1:9"]
timeout = 1
"""


def run(config: Path, *args: str) -> str:
    """One `svcssl` command in its own process, as an administrator runs it."""
    done = subprocess.run([sys.executable, "-m", "svcssl.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)
    if done.returncode not in (0, 1) or (done.returncode == 1 and args[:2] != ("maintenance", "run")):
        raise SystemExit(f"svcssl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def serve_once(config: Path) -> None:
    """Start `svcssl serve` (it writes the panel's session secret), load the login page, stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "svcssl.cli", "--config", str(config), "serve",
                               "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=context, timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("svcssl serve did not answer")
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)


def record_modes(target: Path) -> dict[str, str]:
    """Git keeps no modes but the executable bit: the test puts these back after copying."""
    return {str(p.relative_to(target)): oct(p.stat().st_mode & 0o7777)
            for p in sorted([target / "state", *(target / "state").rglob("*")])}


def main() -> None:
    target = HERE / f"upgrade-{__version__}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    config = target / "svcssl.toml"
    config.write_text(CONFIG)
    work = target / "inputs"  # the inputs, removed at the end: only the state directory is the fixture
    work.mkdir()

    root_key = ec_key(900, "p384")
    root = make_ca("Upgrade Test Root", root_key, org="svcssl upgrade fixture", days=365 * 30)
    inter_key = ec_key(901)
    inter = make_ca("Upgrade Test Intermediate", inter_key, (root, root_key), org="svcssl upgrade fixture", days=365 * 25)
    first_key, second_key = rsa_key(902), ec_key(903)
    first = make_leaf(["mail.example.com", "imap.example.com"], first_key, inter, inter_key, not_after=NOT_AFTER)
    second = make_leaf(["mail.example.com", "smtp.example.com"], second_key, inter, inter_key, not_after=NOT_AFTER)
    for name, data in (("first.pem", pem(first)), ("first.key", key_pem(first_key)),
                       ("second.pem", pem(second)), ("second.key", key_pem(second_key)), ("chain.pem", pem(inter))):
        (work / name).write_bytes(data)
    ssl = target / "homes" / "bobsite" / "ssl"  # a hosting account with one certificate in its SSL storage
    (ssl / "certs").mkdir(parents=True)
    (ssl / "keys").mkdir()
    (ssl / "certs" / "bobsite.crt").write_bytes(pem(first))
    (ssl / "keys" / "bobsite.key").write_bytes(key_pem(first_key))
    for user, password in PASSWORDS.items():
        (work / f"{user}.password").write_text(password + "\n")

    run(config, "list", "--no-probe")  # the first run: a self-signed certificate for every service
    run(config, "user", "add", "root", "--role", "root", "--password-file", str(work / "root.password"))
    run(config, "user", "add", "alice", "--role", "reseller", "--password-file", str(work / "alice.password"))
    run(config, "user", "add", "bob", "--role", "reseller", "--password-file", str(work / "bob.password"))
    run(config, "reseller", "grant", "bob")
    run(config, "reseller", "assign", "bob", "bobsite")
    tokens = {}
    for user, name, extra in (("root", "deploy", ()), ("bob", "bob-hook", ("--expires-days", "3650")),
                              ("root", "retired", ())):
        tokens[name] = {"user": user, "secret": run(config, "token", "create", user, "--name", name, *extra).splitlines()[-1]}
    run(config, "token", "revoke", "retired")
    tokens["retired"]["revoked"] = True

    run(config, "install", "dovecot", "exim", "--cert", str(work / "first.pem"), "--key", str(work / "first.key"),
        "--cabundle", str(work / "chain.pem"))
    run(config, "install", "dovecot", "--cert", str(work / "second.pem"), "--key", str(work / "second.key"),
        "--cabundle", str(work / "chain.pem"))
    run(config, "rollback", "dovecot")
    run(config, "reset", "ftp")
    run(config, "maintenance", "run", "--dry-run")
    run(config, "discovery", "refresh")
    serve_once(config)

    details = {name: json.loads(run(config, "details", name, "--json"))
               for name in ("cpanel", "dovecot", "exim", "ftp")}
    token_list = json.loads(run(config, "token", "list", "--json"))
    db = sqlite3.connect(target / "state" / "svcssl.db")
    schema_version = db.execute("PRAGMA user_version").fetchone()[0]
    users = [dict(zip(("name", "role", "service_ssl"), row))
             for row in db.execute("SELECT name, role, service_ssl FROM users ORDER BY name")]
    audit_rows = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    runs = db.execute("SELECT count(*) FROM maintenance_runs").fetchone()[0]
    db.close()
    expected = {
        "version": __version__,
        "schema_version": schema_version,
        "passwords": PASSWORDS,
        "users": users,
        "tokens": tokens,
        "token_list": token_list,
        "audit_rows": audit_rows,
        "maintenance_runs": runs,
        "services": {name: {"fingerprint": d["fingerprint"], "domains": d["certificate_info"]["domains"],
                            "history": [{k: h[k] for k in ("fingerprint", "action", "actor", "installed_at",
                                                             "rolled_back_at", "active")} for h in d["history"]]}
                     for name, d in details.items()},
    }
    expected["modes"] = record_modes(target)
    (target / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    shutil.rmtree(work)
    for leftover in (target / "state").rglob("*"):
        if leftover.name.endswith(("-wal", "-shm")):
            raise SystemExit(f"the database was not closed cleanly: {leftover}")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
