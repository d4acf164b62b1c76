"""Real Dovecot, Exim and pure-ftpd on loopback: svcssl says "installed" only when the port serves it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import pki
from support.config import require_binaries, write_config
from servers import daemons
from svcssl.deploy.probe import fetch_served_certificate
from svcssl.settings import parse_probe

HOST = "mail.example.com"
INSTALL = "bash scripts/test.sh"


@pytest.fixture(autouse=True)
def _daemons_present():
    missing = daemons.missing_daemon_binaries()
    if missing:
        require_binaries(*missing, install=INSTALL)


@dataclass
class Setup:
    name: str
    config: Path
    daemon: daemons.RunningDaemon
    files: dict


def served(daemon: daemons.RunningDaemon, probe: str | None = None) -> str:
    return fetch_served_certificate(parse_probe(probe or daemon.probe), 5.0).fingerprint


def listing(run_cli, config) -> dict[str, dict]:
    result = run_cli("list", "--json", config=config)
    assert result.code == 0, result.err
    return {row["service"]: row for row in json.loads(result.out)}


def _service_table(kind: str, etc: Path) -> dict:
    if kind == "dovecot":
        return {"kind": "dovecot", "cert_file": str(etc / "dovecot.pem"), "key_file": str(etc / "private/dovecot.key")}
    if kind == "exim":
        return {"kind": "exim", "cert_file": str(etc / "exim.crt"), "key_file": str(etc / "exim.key"),
                "owner": "root", "group": "Debian-exim", "key_mode": "0640", "cert_mode": "0644"}
    return {"kind": "pure-ftpd", "combined_file": str(etc / "pure-ftpd.pem")}


def _start(kind: str, workdir: Path, table: dict) -> daemons.RunningDaemon:
    if kind == "dovecot":
        return daemons.start_dovecot(workdir, Path(table["cert_file"]), Path(table["key_file"]))
    if kind == "exim":
        return daemons.start_exim(workdir, Path(table["cert_file"]), Path(table["key_file"]))
    return daemons.start_pure_ftpd(workdir, Path(table["combined_file"]))


def make_setup(run_cli, tmp_path: Path, kind: str, *, reload: list[str] | None = None) -> Setup:
    """First run writes a self-signed certificate; the daemon starts on it; then svcssl learns how to reload it."""
    etc = tmp_path / "etc"
    table = _service_table(kind, etc)
    config = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services={kind: table})
    assert run_cli("list", "--no-probe", config=config).code == 0
    daemon = _start(kind, tmp_path / "run", table)
    table = dict(table, reload=reload if reload is not None else daemon.reload, config_test=daemon.config_test,
                 probe=daemon.probe)
    write_config(config, hostname=HOST, state_dir=tmp_path / "state", services={kind: table})
    return Setup(kind, config, daemon, table)


@pytest.fixture(params=["dovecot", "exim", "pure-ftpd"])
def setup(request, run_cli, tmp_path):
    s = make_setup(run_cli, tmp_path, request.param)
    yield s
    s.daemon.stop()


def write_bundle(tmp_path: Path, slot: int, key=None) -> tuple[Path, str]:
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=key or pki.rsa_key(slot))
    path = tmp_path / f"bundle{slot}.pem"
    path.write_bytes(pki.pem(leaf, ca.intermediate) + pki.key_pem(key))
    from svcssl.x509.inspect import fingerprint
    return path, fingerprint(leaf)


def test_install_twice_reset_and_rollback_are_served(setup, run_cli, tmp_path):
    name, config, daemon = setup.name, setup.config, setup.daemon
    first = listing(run_cli, config)[name]
    assert first["live"]["state"] == "match"
    assert served(daemon) == first["fingerprint"]

    bundle_a, fp_a = write_bundle(tmp_path, 40)
    result = run_cli("install", name, "--cert", str(bundle_a), config=config)
    assert result.code == 0, result.err
    assert "serves it" in result.out
    assert served(daemon) == fp_a
    row = listing(run_cli, config)[name]
    assert row["fingerprint"] == fp_a and row["live"] == {"state": "match", "probe": daemon.probe,
                                                          "served_fingerprint": fp_a, "active_fingerprint": fp_a,
                                                          "detail": "serves the installed certificate"}

    bundle_b, fp_b = write_bundle(tmp_path, 41, key=pki.ec_key(41))
    assert run_cli("install", name, "--cert", str(bundle_b), config=config).code == 0
    assert served(daemon) == fp_b == listing(run_cli, config)[name]["fingerprint"]
    if daemon.pop3_probe:  # Dovecot's POP3 listener gets it as well
        assert served(daemon, daemon.pop3_probe) == fp_b

    assert run_cli("reset", name, config=config).code == 0
    reset_fp = listing(run_cli, config)[name]["fingerprint"]
    assert reset_fp not in (fp_a, fp_b) and served(daemon) == reset_fp

    assert run_cli("rollback", name, config=config).code == 0
    assert served(daemon) == fp_b == listing(run_cli, config)[name]["fingerprint"]
    assert run_cli("check", config=config).code == 0


def test_mismatched_key_never_reaches_the_daemon(setup, run_cli, tmp_path):
    before = served(setup.daemon)
    ca = pki.pki()
    leaf, _ = ca.leaf([HOST], key=pki.rsa_key(42))
    cert, wrong_key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(pki.pem(leaf))
    wrong_key.write_bytes(pki.key_pem(pki.rsa_key(43)))
    result = run_cli("install", setup.name, "--cert", str(cert), "--key", str(wrong_key), config=setup.config)
    assert result.code == 2 and "does not match" in result.err
    assert served(setup.daemon) == before
    assert setup.daemon.pid() is not None


def test_failing_reload_is_rolled_back_and_the_old_certificate_still_served(setup, run_cli, tmp_path):
    before = served(setup.daemon)
    files_before = {p: Path(p).read_bytes() for k, p in setup.files.items() if k.endswith("_file")}
    failing = [sys.executable, "-c", "import sys; print('reload: cannot open configuration'); sys.exit(89)"]
    table = dict(setup.files, reload=failing)
    write_config(setup.config, hostname=HOST, state_dir=tmp_path / "state", services={setup.name: table})
    bundle, fp = write_bundle(tmp_path, 44)
    result = run_cli("install", setup.name, "--cert", str(bundle), config=setup.config)
    assert result.code == 1
    assert "FAILED at reload" in result.err and "cannot open configuration" in result.err
    assert {p: Path(p).read_bytes() for p in files_before} == files_before
    assert served(setup.daemon) == before
    assert listing(run_cli, setup.config)[setup.name]["live"]["state"] == "match"


def test_a_reload_that_does_nothing_is_caught_by_the_probe(run_cli, tmp_path):
    """Files swapped but the daemon never told (Dovecot keeps serving the old one): rolled back, not 'installed'."""
    s = make_setup(run_cli, tmp_path, "dovecot", reload=["true"])
    try:
        text = s.config.read_text().replace("probe_timeout = 5", "probe_timeout = 2")
        s.config.write_text(text)
        before = served(s.daemon)
        bundle, fp = write_bundle(tmp_path, 45)
        result = run_cli("install", "dovecot", "--cert", str(bundle), config=s.config)
        assert result.code == 1 and "FAILED at probe" in result.err
        assert served(s.daemon) == before
        assert listing(run_cli, s.config)["dovecot"]["fingerprint"] == before
    finally:
        s.daemon.stop()


def test_check_tells_a_drifted_service_from_a_matching_one(run_cli, tmp_path):
    s = make_setup(run_cli, tmp_path, "dovecot")
    try:
        assert run_cli("check", config=s.config).code == 0
        # someone replaces the files by hand and forgets the reload
        ca = pki.pki()
        leaf, key = ca.leaf([HOST], key=pki.rsa_key(46))
        Path(s.files["cert_file"]).write_bytes(pki.pem(leaf))
        Path(s.files["key_file"]).write_bytes(pki.key_pem(key))
        result = run_cli("check", "--json", config=s.config)
        assert result.code == 1
        (row,) = json.loads(result.out)
        # three fingerprints: svcssl's (still served: no reload), the files' (changed by hand), the port's
        assert row["state"] == "drift" and row["installed_fingerprint"] == pki.fingerprint_of(leaf)
        assert row["served_fingerprint"] == row["active_fingerprint"] != row["installed_fingerprint"]
        assert "changed outside svcssl" in row["detail"] and "has not reloaded" in row["detail"]
        human = run_cli("check", config=s.config)
        assert human.code == 1 and "drift" in human.out
        listed = run_cli("list", config=s.config)
        assert "served certificate differs from installed" in listed.out and "files changed outside svcssl" in listed.out
        s.daemon.stop()
        result = run_cli("check", "--json", config=s.config)
        assert result.code == 1 and json.loads(result.out)[0]["state"] == "drift"
        assert "the port:" in json.loads(result.out)[0]["detail"]
    finally:
        s.daemon.stop()
