"""Issue 13 without a browser: the users CLI, result ids bound to their session, key + CSR, wording."""

from __future__ import annotations

import json
import re

from support.panel import csrf_token


def test_user_list_and_delete_on_the_command_line(run_cli, simple_config, tmp_path):
    password = tmp_path / "pw"
    password.write_text("a-long-password\n")
    assert run_cli("user", "add", "root", "--role", "root", "--password-file", str(password),
                   config=simple_config).code == 0
    assert run_cli("user", "add", "carol", "--role", "reseller", "--password-file", str(password),
                   config=simple_config).code == 0
    assert run_cli("token", "create", "carol", "--name", "carol-hook", config=simple_config).code == 0
    listed = json.loads(run_cli("user", "list", "--json", config=simple_config).out)
    assert {"name": "carol", "role": "reseller", "service_ssl": False} in listed
    assert "carol" in run_cli("user", "list", config=simple_config).out
    deleted = run_cli("user", "delete", "carol", config=simple_config)
    assert deleted.code == 0 and "tokens are revoked" in deleted.out
    assert "carol" not in [u["name"] for u in json.loads(run_cli("user", "list", "--json", config=simple_config).out)]
    assert json.loads(run_cli("token", "list", "--json", config=simple_config).out) == []
    missing = run_cli("user", "delete", "carol", config=simple_config)
    assert missing.code == 2 and "no user named 'carol'" in missing.err
    root = run_cli("user", "delete", "root", config=simple_config)
    assert root.code == 2 and "root cannot be deleted" in root.err


def test_users_page_refuses_bad_input_with_400_and_changes_nothing(root, bob, panel):
    page = root.get("/scripts/users")
    assert page.status_code == 200
    users_before = re.findall(r'data-user="([^"]+)"', page.text)
    for data, message in [({"username": "Bad Name!", "password": "long-enough-1", "confirm": "long-enough-1"},
                           "A user name is 1–32 characters"),
                          ({"username": "eve", "password": "short", "confirm": "short"}, "at least 8 characters"),
                          ({"username": "bob", "password": "long-enough-1", "confirm": "long-enough-1"}, "bob"),
                          ({"username": "eve", "password": "long-enough-1", "confirm": "other-one-22"},
                           "The two passwords differ."),
                          ({"username": "x" * 5000, "password": "long-enough-1", "confirm": "long-enough-1"},
                           "Field cannot be longer than 32 characters.")]:
        response = root.post("/scripts/users", data={"csrf_token": csrf_token(page.text), **data})
        assert response.status_code == 400 and message in response.text, (data["username"][:10], response.text[:300])
        assert "x" * 100 not in response.text
    assert re.findall(r'data-user="([^"]+)"', root.get("/scripts/users").text) == users_before
    assert root.post("/scripts/users/root/delete", data={"csrf_token": csrf_token(page.text)}).status_code == 400
    assert root.get("/scripts/users/nobody/delete").status_code == 404
    assert root.post("/scripts/users/nobody/password", data={"csrf_token": csrf_token(page.text)}).status_code == 404
    assert bob.get("/scripts/users").status_code == 403
    assert root.post("/scripts/users/bob/delete", data={"csrf_token": "forged"}).status_code == 400
    assert 'data-user="bob"' in root.get("/scripts/users").text


def test_csr_create_keeps_the_key_and_install_without_key_finds_it(run_cli, simple_config, tmp_path):
    import os
    import stat

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from support import pki

    made = run_cli("csr", "create", "--domains", "mail.example.com", "smtp.example.com", "--key-type", "ecdsa-p256",
                   config=simple_config)
    assert made.code == 0, made.err
    assert made.out.startswith("-----BEGIN CERTIFICATE REQUEST-----") and "PRIVATE KEY" not in made.out + made.err
    csr = x509.load_pem_x509_csr(made.out.encode())
    assert csr.is_signature_valid and isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["mail.example.com", "smtp.example.com"]
    keys = tmp_path / "state/keys"
    files = list(keys.glob("*.key"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert files[0].name in made.err  # says where the key is, never the key

    # the CA signs the CSR; install without --key finds the kept key (and the CA bundle given)
    ca = pki.pki()
    leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.intermediate.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(pki.NOW).not_valid_after(pki.NOW + __import__("datetime").timedelta(days=90))
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(ca.intermediate_key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))
    cert_file, chain_file = tmp_path / "signed.crt", tmp_path / "chain.pem"
    cert_file.write_bytes(pki.pem(leaf))
    chain_file.write_bytes(pki.pem(ca.intermediate))
    installed = run_cli("install", "dovecot", "--cert", str(cert_file), "--cabundle", str(chain_file),
                        config=simple_config)
    assert installed.code == 0, installed.err
    assert "svcssl's key store" in installed.err
    listing = {r["service"]: r for r in json.loads(run_cli("list", "--json", config=simple_config).out)}
    from svcssl.x509.inspect import fingerprint
    assert listing["dovecot"]["fingerprint"] == fingerprint(leaf)

    # bad input: a clear message, nothing written
    before = sorted(os.listdir(keys))
    for args, message in [(["--domains", "not a name!"], "is not a valid domain name"),
                          (["--domains", "localhost"], "only one label"),
                          (["--domains", "a.example.com", "bad-.example.com"], "is not a valid domain name")]:
        bad = run_cli("csr", "create", *args, config=simple_config)
        assert bad.code == 2 and message in bad.err, bad.err
    assert sorted(os.listdir(keys)) == before
    # a certificate whose key is nowhere: says to give --key
    other, _ = ca.leaf(["mail.example.com"], key=pki.rsa_key(47))
    cert_file.write_bytes(pki.pem(other))
    missing = run_cli("install", "dovecot", "--cert", str(cert_file), config=simple_config)
    assert missing.code == 2 and "give --key FILE" in missing.err


def test_cli_wording_install_result_key_hint_and_autofill_pem(run_cli, simple_config, tmp_path):
    from support import pki

    ca = pki.pki()
    leaf, key = ca.leaf(["mail.example.com"], key=pki.rsa_key(48))
    cert, chain, key_file = tmp_path / "c.pem", tmp_path / "ca.pem", tmp_path / "k.pem"
    cert.write_bytes(pki.pem(leaf))
    chain.write_bytes(pki.pem(ca.intermediate))
    key_file.write_bytes(pki.key_pem(key))
    done = run_cli("install", "dovecot", "--cert", str(cert), "--key", str(key_file), "--cabundle", str(chain),
                   config=simple_config)
    assert done.code == 0, done.err
    assert done.out.startswith("Installed on dovecot") and "Installed on dovecot: files written" not in done.out
    rolled = run_cli("rollback", "dovecot", config=simple_config)
    assert rolled.code == 0 and rolled.out.startswith("Rolled back dovecot") and "Installed" not in rolled.out
    # the combined file holds a certificate without its key: the command line says --key, not "paste"
    stranger, _ = ca.leaf(["mail.example.com"], key=pki.rsa_key(49))
    cert.write_bytes(pki.pem(stranger))
    missing = run_cli("install", "dovecot", "--cert", str(cert), config=simple_config)
    assert missing.code == 2 and "--key FILE" in missing.err and "paste" not in missing.err.lower()
    # autofill: a summary without PEM unless --pem
    cert.write_bytes(pki.pem(leaf))
    assert run_cli("install", "dovecot", "--cert", str(cert), "--key", str(key_file), "--cabundle", str(chain),
                   config=simple_config).code == 0
    run_cli("discovery", "refresh", config=simple_config)
    summary = run_cli("autofill", "--cert", str(cert), config=simple_config)
    assert "BEGIN CERTIFICATE" not in summary.out and "--pem" in summary.out
    with_pem = run_cli("autofill", "--cert", str(cert), "--pem", config=simple_config)
    assert "BEGIN CERTIFICATE" in with_pem.out and "PRIVATE KEY" not in with_pem.out


def test_apache_says_why_each_virtual_host_was_skipped(tmp_path):
    from svcssl.discovery.apache import read_apache_config

    conf = tmp_path / "httpd.conf"
    conf.write_text("<IfDefine WITH_SHOP>\n<VirtualHost *:443>\nSSLEngine on\n</VirtualHost>\n</IfDefine>\n"
                    "<IfModule ssl_module>\n<IfModule mime_module>\n<VirtualHost 192.0.2.1:443>\n</VirtualHost>\n"
                    "</IfModule>\n</IfModule>\n"
                    "<IfModule ssl_module>\n<VirtualHost *:80>\n</VirtualHost>\n</IfModule>\n")
    result = read_apache_config([conf])
    assert result.vhosts == () and result.problems == ()
    messages = [s.message for s in result.skipped]
    assert messages == [
        "<VirtualHost *:443> is skipped: it sits inside <IfDefine WITH_SHOP> (line 1), and WITH_SHOP is not defined "
        "(Define WITH_SHOP, or apache2 -D WITH_SHOP)",
        "<VirtualHost 192.0.2.1:443> is skipped: it sits inside <IfModule ssl_module> (line 6), and the module "
        "ssl_module is not loaded (no LoadModule for it; on Debian: a2enmod ssl)",
    ]  # a plain-HTTP virtual host is not worth a word


def test_csr_form_refuses_bad_input_with_400_and_writes_nothing(root, panel):
    page = root.get("/scripts2/manageservicecrts/csr")
    assert page.status_code == 200 and "mail.example.com" in page.text
    token = csrf_token(page.text)
    for data, message in [({"domains": "x" * 10_000_000, "key_type": "rsa-2048"}, "At most 100 names"),
                          ({"domains": "", "key_type": "rsa-2048"}, "Give at least one domain name."),
                          ({"domains": "a.example.com", "key_type": "dsa-512"}, "Not a valid choice"),
                          ({"domains": "not a domain!", "key_type": "rsa-2048"}, "is not a valid domain name"),
                          ({"domains": " ".join(f"h{i}.example.com" for i in range(101)), "key_type": "rsa-2048"},
                           "at most 100 domains")]:
        response = root.post("/scripts2/manageservicecrts/csr", data={"csrf_token": token, **data})
        assert response.status_code == 400 and message in response.text, (message, response.text[:500])
        assert "x" * 1000 not in response.text
    assert not (panel.state / "keys").exists() or not list((panel.state / "keys").iterdir())
    made = root.post("/scripts2/manageservicecrts/csr", data={"csrf_token": token, "domains": "mail.example.com",
                                                              "key_type": "rsa-2048"})
    assert made.status_code == 303
    shown = root.get(made.location).text
    assert "BEGIN CERTIFICATE REQUEST" in shown and "PRIVATE KEY" not in shown
