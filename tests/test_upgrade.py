"""Upgrades keep state: a state directory written by an earlier release opens with the current code.

Each tests/data/upgrade-<version>/ was made by that release's command line
(tests/data/make_upgrade_state.py): users, a reseller with the privilege and an account,
tokens (one revoked), installs, a rollback, a reset, a maintenance run, the discovery index
and the panel's session secret. expected.json records what that release reported.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from support.releases import RELEASES
from svcssl.app import create_app
from svcssl.operations.context import open_context
from svcssl.operations.users import authenticate
from svcssl.settings import load_settings
from svcssl.store.schema import MIGRATIONS


def test_there_is_a_state_directory_from_a_release():
    assert RELEASES, "tests/data/upgrade-*/ is missing: run tests/data/make_upgrade_state.py"


def live_files(state: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted((state / "live").rglob("*")) if p.is_file()}


def test_the_current_code_opens_an_old_state_directory_and_keeps_everything(old_state, run_cli):
    target, expected = old_state
    config = target / "svcssl.toml"
    state = target / "state"
    before = live_files(state)

    listing = run_cli("list", "--json", "--no-probe", config=config)
    assert listing.code == 0, listing.err
    assert "Traceback" not in listing.err
    services = {s["service"]: s for s in json.loads(listing.out)}
    for name, old in expected["services"].items():
        assert services[name]["fingerprint"] == old["fingerprint"], name
        assert services[name]["active_fingerprint"] == old["fingerprint"], name
        assert services[name]["certificate_info"]["domains"] == old["domains"], name
        details = run_cli("details", name, "--json", config=config)
        assert details.code == 0, details.err
        history = [{k: h[k] for k in ("fingerprint", "action", "actor", "installed_at", "rolled_back_at", "active")}
                   for h in json.loads(details.out)["history"]]
        assert history == old["history"], name
    # the first command of the new code neither adopted nor reset anything: the daemons' files are untouched
    assert live_files(state) == before

    db = sqlite3.connect(state / "svcssl.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        users = [dict(zip(("name", "role", "service_ssl"), row))
                 for row in db.execute("SELECT name, role, service_ssl FROM users ORDER BY name")]
        assert users == expected["users"]
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] >= expected["audit_rows"]
        assert db.execute("SELECT count(*) FROM maintenance_runs").fetchone()[0] == expected["maintenance_runs"]
    finally:
        db.close()

    tokens = run_cli("token", "list", "--json", config=config)
    assert tokens.code == 0, tokens.err
    assert {t["name"]: (t["user"], t["created_at"], t["expires_at"], t["state"]) for t in json.loads(tokens.out)} == {
        t["name"]: (t["user"], t["created_at"], t["expires_at"], t["state"]) for t in expected["token_list"]}

    runs = run_cli("maintenance", "status", "--json", config=config)
    assert runs.code == 0, runs.err
    assert len(json.loads(runs.out)["runs"]) == expected["maintenance_runs"]

    accounts = run_cli("browse", "accounts", "--json", config=config)
    assert accounts.code == 0, accounts.err
    listing = json.loads(accounts.out)["accounts"]
    assert [(a["account"], a["owner"]) for a in listing] == [("bobsite", "bob")]


def test_old_passwords_tokens_and_session_secret_still_work(old_state):
    target, expected = old_state
    settings = load_settings(target / "svcssl.toml")
    secret_before = (target / "state" / "session_secret").read_bytes()

    ctx = open_context(settings)
    try:
        for name, password in expected["passwords"].items():
            assert authenticate(ctx, name, password, "127.0.0.1").name == name
    finally:
        ctx.store.close()

    app = create_app(settings, live_check_ttl=0)
    assert app.config["SECRET_KEY"] == secret_before  # browser sessions signed before the upgrade stay valid
    client = app.test_client()
    for name, token in expected["tokens"].items():
        answer = client.get("/json-api/fetch_service_ssl_components?api.version=1",
                            headers={"Authorization": f"whm {token['user']}:{token['secret']}"})
        if token.get("revoked"):
            assert answer.status_code == 401, name
            assert answer.json["metadata"]["result"] == 0
            continue
        assert answer.status_code == 200, name
        assert answer.json["metadata"]["result"] == 1, answer.json
        served = {s["service"]: s["certificate_info"]["domains"] for s in answer.json["data"]["services"]}
        assert {n: served[n] for n in expected["services"]} == {n: s["domains"] for n, s in expected["services"].items()}


def test_an_upgraded_state_directory_takes_new_installs_and_rolls_back_to_old_ones(old_state, run_cli):
    target, expected = old_state
    config = target / "svcssl.toml"
    reset = run_cli("reset", "exim", config=config)
    assert reset.code == 0, reset.err
    back = run_cli("rollback", "exim", config=config)
    assert back.code == 0, back.err
    listing = {s["service"]: s for s in json.loads(run_cli("list", "--json", "--no-probe", config=config).out)}
    assert listing["exim"]["fingerprint"] == expected["services"]["exim"]["fingerprint"]
