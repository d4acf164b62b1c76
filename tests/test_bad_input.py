"""Every bad input: a clear message, exit code 2, and not one byte or mode changed on disk."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

import pki
from conftest import tree_state

HOST = "mail.example.com"


def _csr() -> bytes:
    from cryptography.hazmat.primitives import serialization
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
           .sign(pki.rsa_key(10), hashes.SHA256()))
    return req.public_bytes(serialization.Encoding.PEM)


def _crl() -> bytes:
    from cryptography.hazmat.primitives import serialization
    ca = pki.pki()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.intermediate.subject)
           .last_update(pki.NOW).next_update(pki.NOW + timedelta(days=7))
           .sign(ca.intermediate_key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


def _leaf(**kwargs):
    return pki.pki().leaf([HOST], key=pki.rsa_key(10), **kwargs)


def _files(**overrides):
    leaf, key = _leaf()
    files = {"cert": pki.pem(leaf), "key": pki.key_pem(key), "cabundle": None, "password": None}
    files.update(overrides)
    return files


CASES = {
    "empty file": (_files(cert=b""), "certificate is empty"),
    "random bytes": (_files(cert=os.urandom(2048).replace(b"-", b"_")), "not a certificate"),
    "private key as certificate": (_files(cert=pki.key_pem(pki.rsa_key(10))), "holds a private key, not a certificate"),
    "truncated PEM": (_files(cert=pki.pem(_leaf()[0])[:-200]), "truncated"),
    "CSR": (_files(cert=_csr()), "certificate signing request"),
    "CRL": (_files(cert=_crl()), "certificate revocation list"),
    "malformed SAN": (_files(cert=pki.malformed_san_certificate()), "subject alternative name extension cannot be decoded"),
    "key does not match": (_files(key=pki.key_pem(pki.rsa_key(11))), "does not match the certificate"),
    "encrypted key without passphrase": (_files(key=pki.key_pem(pki.rsa_key(10), b"hunter2")), "encrypted: give its passphrase"),
    "encrypted key wrong passphrase": (_files(key=pki.key_pem(pki.rsa_key(10), b"hunter2"), password=b"wrong"),
                                       "passphrase does not decrypt"),
    "encrypted traditional key wrong passphrase": (
        _files(key=pki.key_pem(pki.rsa_key(10), b"hunter2", traditional=True), password=b"wrong"), "passphrase does not decrypt"),
    "PKCS#12 wrong password": (_files(cert=pki.p12(*_leaf(), password=b"right"), key=None, password=b"wrong"),
                               "PKCS#12 password is wrong"),
    "PKCS#12 without password": (_files(cert=pki.p12(*_leaf(), password=b"right"), key=None),
                                 "protected by a password"),
    "CA bundle does not chain": (_files(cabundle=pki.pem(pki.pki(1).intermediate)), "does not chain to the certificate"),
    "CA bundle with an unrelated extra": (_files(cabundle=pki.pem(pki.pki().intermediate, pki.pki(1).root)),
                                          "not part of this certificate's chain"),
    "10 MB file": (_files(cert=b"A" * (10 * 1024 * 1024)), "larger than the"),
    "expired certificate": (_files(cert=pki.pem(_leaf(not_before=pki.NOW - timedelta(days=100),
                                                      not_after=pki.NOW - timedelta(days=1))[0])), "expired on"),
    "not yet valid": (_files(cert=pki.pem(_leaf(not_before=pki.NOW + timedelta(days=2))[0])), "not valid yet"),
    "SHA-1 signature": (_files(cert=pki.pem(pki.sha1_signed_leaf([HOST], pki.rsa_key(10)))), "weak signature algorithm (sha1WithRSAEncryption)"),
    "RSA-1024 key": (_files(cert=pki.pem(pki.pki().leaf([HOST], key=pki.rsa_key(12, 1024))[0]),
                            key=pki.key_pem(pki.rsa_key(12, 1024))), "RSA 1024-bit"),
    "no key at all": (_files(key=None), "No private key was given"),
    "certificate given as key": (_files(key=pki.pem(_leaf()[0])), "holds a certificate, not a private key"),
}


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
    from conftest import write_config
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
