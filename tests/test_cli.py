"""The command line end to end: install, list, details, reset, rollback, failed reloads, first run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support import pki
from support.config import tree_state, write_config

HOST = "mail.example.com"


def listing(run_cli, config) -> dict[str, dict]:
    result = run_cli("list", "--json", config=config)
    assert result.code == 0, result.err
    return {row["service"]: row for row in json.loads(result.out)}


def write_bundle(tmp_path: Path, names=(HOST,), slot=10, name="bundle") -> tuple[Path, Path, Path, str]:
    ca = pki.pki()
    leaf, key = ca.leaf(list(names), key=pki.rsa_key(slot))
    cert_file = tmp_path / f"{name}.crt"
    key_file = tmp_path / f"{name}.key"
    chain_file = tmp_path / f"{name}.ca"
    cert_file.write_bytes(pki.pem(leaf))
    key_file.write_bytes(pki.key_pem(key))
    chain_file.write_bytes(pki.pem(ca.intermediate))
    from svcssl.x509.inspect import fingerprint
    return cert_file, key_file, chain_file, fingerprint(leaf)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_gives_every_service_a_self_signed_certificate(run_cli, simple_config, tmp_path):
    rows = listing(run_cli, simple_config)
    assert set(rows) == {"dovecot", "exim", "ftp"}
    for row in rows.values():
        info = row["certificate_info"]
        assert info["is_self_signed"] == 1
        assert info["domains"] == [HOST]
        assert info["key_algorithm"] == "rsaEncryption" and info["modulus_length"] == 2048
        assert row["fingerprint"] == row["active_fingerprint"]
    etc = tmp_path / "etc"
    assert mode(etc / "dovecot/private/key.pem") == 0o600
    assert mode(etc / "exim/exim.key") == 0o640
    assert mode(etc / "ftp/pure-ftpd.pem") == 0o600
    assert mode(tmp_path / "state") == 0o700
    # a second command changes nothing
    before = tree_state(etc)
    listing(run_cli, simple_config)
    assert tree_state(etc) == before


def test_first_run_adopts_a_usable_certificate_already_in_place(run_cli, tmp_path):
    cert_file, key_file, chain_file, fp = write_bundle(tmp_path)
    target = tmp_path / "etc/dovecot.pem"
    target.parent.mkdir()
    target.write_bytes(cert_file.read_bytes() + chain_file.read_bytes())
    (tmp_path / "etc/dovecot.key").write_bytes(key_file.read_bytes())
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "dovecot": {"kind": "dovecot", "cert_file": str(target), "key_file": str(tmp_path / "etc/dovecot.key")}})
    before = target.read_bytes()
    rows = listing(run_cli, config)
    assert rows["dovecot"]["fingerprint"] == fp == rows["dovecot"]["active_fingerprint"]
    assert target.read_bytes() == before


def test_install_to_two_services_then_rollback(run_cli, simple_config, tmp_path):
    before = listing(run_cli, simple_config)
    cert_file, key_file, chain_file, fp = write_bundle(tmp_path)
    result = run_cli("install", "dovecot", "exim", "--cert", str(cert_file), "--key", str(key_file),
                     "--cabundle", str(chain_file), config=simple_config)
    assert result.code == 0, result.err
    assert "Installed on dovecot" in result.out and "Installed on exim" in result.out

    etc = tmp_path / "etc"
    ca = pki.pki()
    expected_fullchain = cert_file.read_bytes() + pki.pem(ca.intermediate)
    assert (etc / "dovecot/cert.pem").read_bytes() == expected_fullchain
    assert (etc / "exim/exim.crt").read_bytes() == expected_fullchain
    assert b"PRIVATE KEY" in (etc / "exim/exim.key").read_bytes()
    assert mode(etc / "dovecot/private/key.pem") == 0o600
    assert mode(etc / "dovecot/cert.pem") == 0o644
    assert mode(etc / "exim/exim.key") == 0o640

    after = listing(run_cli, simple_config)
    assert after["dovecot"]["fingerprint"] == fp and after["exim"]["fingerprint"] == fp
    assert after["ftp"]["fingerprint"] == before["ftp"]["fingerprint"]
    assert after["dovecot"]["certificate_info"]["issuer.commonName"] == "Test Intermediate 0"
    assert after["dovecot"]["certificate_info"]["issuer.organizationName"] == "svcssl tests"
    assert after["dovecot"]["flags"] == []

    result = run_cli("rollback", "dovecot", config=simple_config)
    assert result.code == 0, result.err
    rolled = listing(run_cli, simple_config)
    assert rolled["dovecot"]["fingerprint"] == before["dovecot"]["fingerprint"]
    assert rolled["dovecot"]["active_fingerprint"] == before["dovecot"]["fingerprint"]
    assert rolled["exim"]["fingerprint"] == fp

    details = json.loads(run_cli("details", "dovecot", "--json", config=simple_config).out)
    actions = [(h["action"], h["fingerprint"], bool(h["rolled_back_at"]), h["active"]) for h in details["history"]]
    assert actions == [("install", fp, True, False), ("first-run", before["dovecot"]["fingerprint"], False, True)]
    # nothing earlier to go back to
    again = run_cli("rollback", "dovecot", config=simple_config)
    assert again.code == 2 and "no earlier certificate" in again.err


def test_combined_file_holds_key_leaf_and_chain(run_cli, simple_config, tmp_path):
    cert_file, key_file, chain_file, fp = write_bundle(tmp_path)
    bundle = tmp_path / "all-in-one.pem"  # the chain first and the key last: any order is fine
    bundle.write_bytes(chain_file.read_bytes() + b"\r\nsome text\r\n" + cert_file.read_bytes() + key_file.read_bytes())
    result = run_cli("install", "ftp", "--cert", str(bundle), config=simple_config)
    assert result.code == 0, result.err
    combined = (tmp_path / "etc/ftp/pure-ftpd.pem").read_bytes()
    assert combined.index(b"PRIVATE KEY") < combined.index(b"CERTIFICATE")
    assert combined.count(b"BEGIN CERTIFICATE") == 2
    assert listing(run_cli, simple_config)["ftp"]["fingerprint"] == fp


def test_pkcs12_with_password_file(run_cli, simple_config, tmp_path):
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.ec_key(5))
    p12 = tmp_path / "cert.p12"
    p12.write_bytes(pki.p12(leaf, key, [ca.intermediate], b"pa55"))
    password = tmp_path / "pw"
    password.write_text("pa55\n")
    result = run_cli("install", "exim", "--cert", str(p12), "--password-file", str(password), config=simple_config)
    assert result.code == 0, result.err
    info = listing(run_cli, simple_config)["exim"]["certificate_info"]
    assert info["key_algorithm"] == "id-ecPublicKey" and info["ecdsa_curve_name"] == "prime256v1"
    assert info["modulus"] is None and len(info["ecdsa_public"]) == 66


def test_reset_installs_a_new_self_signed_certificate(run_cli, simple_config, tmp_path):
    before = listing(run_cli, simple_config)["exim"]["fingerprint"]
    result = run_cli("reset", "exim", config=simple_config)
    assert result.code == 0, result.err
    row = listing(run_cli, simple_config)["exim"]
    assert row["fingerprint"] != before
    info = row["certificate_info"]
    assert info["is_self_signed"] == 1 and info["domains"] == [HOST]
    assert info["not_after"] - info["not_before"] == 365 * 86400
    assert info["signature_algorithm"] == "sha256WithRSAEncryption"


def test_reset_checks_every_service_name_before_changing_any(run_cli, simple_config):
    before = listing(run_cli, simple_config)["exim"]["fingerprint"]
    result = run_cli("reset", "exim", "postfix", config=simple_config)
    assert result.code == 2 and "Unknown service 'postfix'" in result.err
    assert listing(run_cli, simple_config)["exim"]["fingerprint"] == before


def test_failed_reload_leaves_old_files_byte_for_byte_and_exits_1(run_cli, tmp_path):
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "cert.pem"), "key_file": str(etc / "key.pem"),
                    "reload": [sys.executable, "-c", "import sys; print('doveadm: reload refused'); sys.exit(3)"]}})
    listing(run_cli, config)  # first run writes files without reloading
    before = tree_state(etc)
    active_before = listing(run_cli, config)["dovecot"]["active_fingerprint"]
    cert_file, key_file, chain_file, fp = write_bundle(tmp_path)
    result = run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file),
                     "--cabundle", str(chain_file), config=config)
    assert result.code == 1
    assert "reload" in result.err and "doveadm: reload refused" in result.err
    assert "previous certificate was put back" in result.err
    assert tree_state(etc) == before
    assert listing(run_cli, config)["dovecot"]["active_fingerprint"] == active_before
    assert not any((tmp_path / "state/journal").iterdir())


def test_failed_config_test_changes_nothing(run_cli, tmp_path):
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "exim": {"kind": "exim", "cert_file": str(etc / "cert.pem"), "key_file": str(etc / "key.pem"),
                 "config_test": ["false"]}})
    listing(run_cli, config)
    before = tree_state(etc)
    cert_file, key_file, chain_file, _ = write_bundle(tmp_path)
    result = run_cli("install", "exim", "--cert", str(cert_file), "--key", str(key_file),
                     "--cabundle", str(chain_file), config=config)
    assert result.code == 1 and "config_test" in result.err
    assert tree_state(etc) == before
    assert not [p for p in etc.iterdir() if p.name.startswith(".")]  # no staged temp files left


def test_details_shows_chain_and_history(run_cli, simple_config, tmp_path):
    cert_file, key_file, chain_file, fp = write_bundle(tmp_path)
    run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file), "--cabundle", str(chain_file),
            config=simple_config)
    text = run_cli("details", "dovecot", config=simple_config)
    assert text.code == 0
    assert fp in text.out and "Test Intermediate 0" in text.out and "History:" in text.out
    data = json.loads(run_cli("details", "dovecot", "--json", config=simple_config).out)
    assert [c["certificate_info"]["domains"] for c in data["chain"]] == [["test intermediate 0"]]
    assert data["history"][0]["active"] is True and data["history"][0]["fingerprint"] == fp


def test_human_list_shows_expiry_key_and_flags(run_cli, simple_config):
    result = run_cli("list", config=simple_config)
    assert result.code == 0
    assert "RSA, 2,048-bit" in result.out and "self-signed" in result.out and "(364 days)" in result.out


def test_embedded_default_works_without_a_config(tmp_path):
    """The console script on the embedded default: state in ./state, WHM's four services."""
    env = dict(os.environ)
    env.pop("SVCSSL_CONFIG", None)
    exe = Path(sys.executable).parent / "svcssl"
    proc = subprocess.run([str(exe), "list", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["service"] for r in rows] == ["cpanel", "dovecot", "exim", "ftp"]
    assert (tmp_path / "state/live/ftp/pure-ftpd.pem").is_file()
    assert (tmp_path / "state/live/cpanel/chain.pem").is_file()
    everything = json.loads(subprocess.run([str(exe), "list", "--json", "--all"], cwd=tmp_path, env=env,
                                           capture_output=True, text=True, timeout=60).stdout)
    apns = [r for r in everything if r["service"] == "mail_apns"][0]
    assert apns["enabled"] is False and apns["deprecated"] is True


def test_token_create_list_revoke(run_cli, simple_config, tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-password\n")
    assert run_cli("user", "add", "bob", "--role", "reseller", "--password-file", str(password),
                   config=simple_config).code == 0
    created = run_cli("token", "create", "bob", "--name", "hook", "--expires-days", "7", config=simple_config)
    assert created.code == 0
    secret = created.out.strip().splitlines()[-1]
    assert len(secret) == 32 and all(c.isupper() or c.isdigit() for c in secret)
    listed = json.loads(run_cli("token", "list", "--json", config=simple_config).out)
    assert [(t["name"], t["user"], t["state"]) for t in listed] == [("hook", "bob", "active")]
    assert secret not in run_cli("token", "list", config=simple_config).out
    assert run_cli("token", "revoke", "hook", config=simple_config).code == 0
    assert json.loads(run_cli("token", "list", "--json", config=simple_config).out)[0]["state"] == "revoked"
    missing = run_cli("token", "revoke", "nope", config=simple_config)
    assert missing.code == 2 and "no API token named 'nope'" in missing.err
    assert run_cli("token", "create", "nobody", config=simple_config).code == 2


def test_odd_files_never_hang_or_trace(run_cli, simple_config, tmp_path):
    import os
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for args in (["install", "ftp", "--cert", str(fifo)], ["install", "ftp", "--cert", str(tmp_path)],
                 ["user", "add", "x", "--password-file", str(fifo)]):
        result = run_cli(*args, config=simple_config)
        assert result.code == 2 and "cannot read" in result.err and "Traceback" not in result.err, args
    zero = run_cli("list", config=Path("/dev/zero"))
    assert zero.code == 2 and "configuration" in zero.err
    assert run_cli("list", config=fifo).code == 2
    with pytest.raises(SystemExit) as caught:
        run_cli("maintenance", "status", "--limit", "99999999999999999999999", config=simple_config)
    assert caught.value.code == 2


def test_check_finds_drift_without_a_probe(run_cli, simple_config, tmp_path):
    """Files replaced behind svcssl's back: `check` exits 1 with state drift and all three fingerprints,
    even for a service that has no probe; the table's flags say the same."""
    assert run_cli("check", config=simple_config).code == 0
    before = json.loads(run_cli("check", "--json", config=simple_config).out)
    assert {row["state"] for row in before} == {"not probed"}
    ca = pki.pki()
    leaf, key = ca.leaf(["mail.example.com"], key=pki.rsa_key(47))
    (tmp_path / "etc/exim/exim.crt").write_bytes(pki.pem(leaf, ca.intermediate))
    (tmp_path / "etc/exim/exim.key").write_bytes(pki.key_pem(key))
    result = run_cli("check", "--json", config=simple_config)
    assert result.code == 1
    rows = {row["service"]: row for row in json.loads(result.out)}
    exim = rows["exim"]
    assert exim["state"] == "drift" and exim["probe"] is None and exim["served_fingerprint"] is None
    assert exim["installed_fingerprint"] == pki.fingerprint_of(leaf) != exim["active_fingerprint"]
    assert exim["active_fingerprint"] == before[1]["installed_fingerprint"]
    assert rows["dovecot"]["state"] == "not probed"
    human = run_cli("check", config=simple_config)
    assert human.code == 1 and "drift (the files hold" in human.out
    listed = {row["service"]: row for row in json.loads(run_cli("list", "--json", config=simple_config).out)}
    assert listed["exim"]["drift"] is True and "files changed outside svcssl" in listed["exim"]["flags"]
    assert listed["dovecot"]["drift"] is False


def test_a_sha1_leaf_with_its_real_ca_bundle_is_refused_as_weak_not_as_unchained(run_cli, simple_config, tmp_path):
    leaf, key, ca = pki.real_sha1_leaf("mail.example.com")
    cert_file, chain_file = tmp_path / "sha1.pem", tmp_path / "sha1-ca.pem"
    cert_file.write_bytes(pki.pem(leaf) + pki.key_pem(key))
    chain_file.write_bytes(pki.pem(ca))
    assert run_cli("list", config=simple_config).code == 0  # the first command puts the self-signed ones in place
    before = tree_state(tmp_path / "etc")
    result = run_cli("install", "exim", "--cert", str(cert_file), "--cabundle", str(chain_file), config=simple_config)
    assert result.code == 2 and "Traceback" not in result.err
    assert "weak signature algorithm (sha1WithRSAEncryption)" in result.err
    assert "does not chain" not in result.err and "Unrelated" not in result.err
    assert tree_state(tmp_path / "etc") == before
