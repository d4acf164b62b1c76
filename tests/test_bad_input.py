"""Every bad input: a clear message, exit code 2, and not one byte or mode changed on disk."""

from __future__ import annotations

import pytest

from support import pki
from support.config import tree_state

from support.bad_input import CASES, _leaf


@pytest.fixture
def prepared(run_cli, simple_config, tmp_path):
    assert run_cli("list", config=simple_config).code == 0  # first run done before the snapshot
    return simple_config


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_and_changes_nothing(case, run_cli, prepared, tmp_path):
    files, message = CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = ["install", "dovecot", "ftp"]
    for name, flag in (("cert", "--cert"), ("key", "--key"), ("cabundle", "--cabundle"), ("password", "--password-file")):
        if files[name] is not None:
            (inputs / name).write_bytes(files[name])
            args += [flag, str(inputs / name)]
    etc_before = tree_state(tmp_path / "etc")
    bundles_before = tree_state(tmp_path / "state/bundles")
    history_before = run_cli("details", "dovecot", "--json", config=prepared).out

    result = run_cli(*args, config=prepared)

    assert result.code == 2, (result.out, result.err)
    assert message in result.err
    assert "Traceback" not in result.err
    assert tree_state(tmp_path / "etc") == etc_before
    assert tree_state(tmp_path / "state/bundles") == bundles_before
    assert run_cli("details", "dovecot", "--json", config=prepared).out == history_before


def test_unknown_service_lists_the_valid_ones(run_cli, prepared, tmp_path):
    leaf, key = _leaf()
    (tmp_path / "c.pem").write_bytes(pki.pem(leaf) + pki.key_pem(key))
    before = tree_state(tmp_path / "etc")
    result = run_cli("install", "dovecot", "postfix", "--cert", str(tmp_path / "c.pem"), config=prepared)
    assert result.code == 2
    assert "Unknown service 'postfix'" in result.err and "dovecot, exim, ftp" in result.err
    assert tree_state(tmp_path / "etc") == before
    assert run_cli("reset", "nope", config=prepared).code == 2


def test_missing_input_file_is_an_input_error(run_cli, prepared, tmp_path):
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "missing.pem"), config=prepared)
    assert result.code == 2 and "cannot read" in result.err


def test_pem_certificates_for_the_apns_service_are_refused(run_cli, tmp_path):
    from support.config import write_config
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "mail_apns": {"kind": "apns", "enabled": True, "combined_file": str(tmp_path / "etc/apns.pem")}})
    run_cli("list", config=config)
    before = tree_state(tmp_path / "etc")
    leaf, key = _leaf()
    (tmp_path / "c.pem").write_bytes(pki.pem(leaf) + pki.key_pem(key))
    result = run_cli("install", "mail_apns", "--cert", str(tmp_path / "c.pem"), config=config)
    assert result.code == 2 and "accepts only a PKCS#12" in result.err
    assert tree_state(tmp_path / "etc") == before
    (tmp_path / "c.p12").write_bytes(pki.p12(leaf, key, password=b"pw"))
    (tmp_path / "pw").write_bytes(b"pw")
    ok = run_cli("install", "mail_apns", "--cert", str(tmp_path / "c.p12"), "--password-file", str(tmp_path / "pw"),
                 config=config)
    assert ok.code == 0, ok.err


def test_bad_configuration_names_the_key(run_cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nhostnme = "x"\n')
    result = run_cli("list", config=bad)
    assert result.code == 2 and "'server.hostnme'" in result.err
    bad.write_text('[services.dovecot]\nkind = "dovecot"\ncert_file = "a"\nkey_file = "b"\nkey_mode = 600\n')
    result = run_cli("list", config=bad)
    assert result.code == 2 and "'services.dovecot.key_mode' must be a string" in result.err
    assert not (tmp_path / "state").exists()
