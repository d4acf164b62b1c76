"""The ACME client against the real pebble (Debian package), with real HTTP-01 validation. No mocks of the CA."""

from __future__ import annotations

import base64
import json
import logging
import socket
import stat
import threading
import time
from datetime import datetime, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from support.config import require_binaries
from servers.pebble import DNS_HOOK, free_port, start_pebble
from svcssl.acme import AcmeConfig, AcmeError, IssuedCertificate, order_certificate, renewal_window
from svcssl.acme import http01
from svcssl.acme.client import (ACCOUNT_FILE, ACCOUNT_KEY_FILE, PENDING_FILE, PENDING_KEY_FILE, account_dir,
                                parse_rfc3339)

EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # pebble's example key


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    http01_port = free_port()
    running = start_pebble(tmp_path_factory.mktemp("pebble"), http01_port)
    yield running
    running.stop()


def make_config(pebble, **overrides) -> AcmeConfig:
    values = dict(directory=pebble.directory_url, email="hostmaster@example.test", verify=str(pebble.ca_file),
                  key_type="ecdsa-p256", http01_listen=f"127.0.0.1:{pebble.http01_port}")
    values.update(overrides)
    return AcmeConfig(**values)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def nothing_listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def check_issued(pebble, issued: IssuedCertificate, names: list[str]) -> x509.Certificate:
    certs = x509.load_pem_x509_certificates(issued.fullchain_pem)
    assert len(certs) >= 2, "the full chain holds the leaf and pebble's intermediate"
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    intermediate = x509.load_pem_x509_certificate(pebble.intermediates_pem())
    root = x509.load_pem_x509_certificate(pebble.roots_pem())
    assert certs[1] == intermediate
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert issued.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"PRIVATE KEY" not in repr(issued).encode()
    return leaf


def test_standalone_order_issues_a_certificate_that_chains_to_pebble(pebble, tmp_path):
    state = tmp_path / "state"
    started = time.monotonic()
    issued = order_certificate(make_config(pebble), ["mail.example.test"], state, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 15
    check_issued(pebble, issued, ["mail.example.test"])
    assert issued.account_uri.startswith(pebble.directory_url.rsplit("/", 1)[0])

    folder = account_dir(state, pebble.directory_url)
    assert mode(state / "acme") == 0o700 and mode(folder) == 0o700
    assert mode(folder / ACCOUNT_KEY_FILE) == 0o600
    assert mode(folder / ACCOUNT_FILE) == 0o600
    account = json.loads((folder / ACCOUNT_FILE).read_text())
    assert account["uri"] == issued.account_uri and account["directory"] == pebble.directory_url
    assert account["contact"] == ["mailto:hostmaster@example.test"]
    assert b"PRIVATE KEY" not in (folder / ACCOUNT_FILE).read_bytes()
    assert not (folder / PENDING_FILE).exists() and not (folder / PENDING_KEY_FILE).exists()
    assert nothing_listens(pebble.http01_port), "the HTTP-01 listener is bound only while validating"


def test_second_order_reuses_the_account_and_makes_a_new_key(pebble, tmp_path):
    state = tmp_path / "state"
    config = make_config(pebble, key_type="rsa-2048")
    first = order_certificate(config, ["mail.example.test", "imap.example.test"], state, timeout=30)
    account_key = (account_dir(state, pebble.directory_url) / ACCOUNT_KEY_FILE).read_bytes()
    second = order_certificate(config, ["mail.example.test", "imap.example.test"], state, timeout=30)
    assert second.account_uri == first.account_uri
    assert (account_dir(state, pebble.directory_url) / ACCOUNT_KEY_FILE).read_bytes() == account_key
    assert second.key_pem != first.key_pem
    leaf = check_issued(pebble, second, ["mail.example.test", "imap.example.test"])
    assert leaf.public_key().key_size == 2048


def test_webroot_mode_serves_files_through_an_existing_web_server(pebble, tmp_path):
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / "index.html").write_text("hello")
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            seen.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", pebble.http01_port), partial(Handler, directory=str(webroot)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        config = make_config(pebble, http01_listen=None, webroot=webroot)
        issued = order_certificate(config, ["www.example.test"], tmp_path / "state", timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    check_issued(pebble, issued, ["www.example.test"])
    assert any(p.startswith("/.well-known/acme-challenge/") for p in seen), "pebble fetched the file"
    assert sorted(p.name for p in webroot.iterdir()) == ["index.html"], "challenge files and dirs removed"


def test_failed_validation_raises_the_cas_problem_and_drops_the_order(pebble, tmp_path):
    state = tmp_path / "state"
    # our listener is on another port: pebble finds nothing on its HTTP-01 port
    config = make_config(pebble, http01_listen=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(AcmeError) as caught:
        order_certificate(config, ["broken.example.test"], state, timeout=30)
    assert time.monotonic() - started < 15
    error = caught.value
    assert error.problem_type and "urn:ietf:params:acme:error" in error.problem_type
    assert error.code == "connection"
    assert error.detail.strip()
    assert "broken.example.test" in error.message and error.detail in error.message
    folder = account_dir(state, pebble.directory_url)
    assert not (folder / PENDING_FILE).exists() and not (folder / PENDING_KEY_FILE).exists()


def test_interrupted_order_is_resumed_with_the_same_key(pebble, tmp_path, monkeypatch, caplog):
    state = tmp_path / "state"
    config = make_config(pebble)
    folder = account_dir(state, pebble.directory_url)

    def crash(self):
        raise RuntimeError("simulated crash before the challenge was answered")

    with monkeypatch.context() as patch:
        patch.setattr(http01.StandaloneResponder, "__enter__", crash)
        with pytest.raises(RuntimeError):
            order_certificate(config, ["smtp.example.test"], state, timeout=30)
    pending = json.loads((folder / PENDING_FILE).read_text())
    assert pending["names"] == ["smtp.example.test"] and pending["order_url"].startswith("https://")
    assert mode(folder / PENDING_KEY_FILE) == 0o600 and mode(folder / PENDING_FILE) == 0o600
    pending_key = (folder / PENDING_KEY_FILE).read_bytes()

    with caplog.at_level(logging.INFO, logger="svcssl.acme"):
        issued = order_certificate(config, ["SMTP.example.test."], state, timeout=30)
    assert issued.key_pem == pending_key
    assert f"resuming ACME order {pending['order_url']}" in caplog.text
    assert "BEGIN" not in caplog.text, "no PEM in the log"
    check_issued(pebble, issued, ["smtp.example.test"])
    assert not (folder / PENDING_FILE).exists() and not (folder / PENDING_KEY_FILE).exists()


def test_pending_order_for_other_names_is_abandoned(pebble, tmp_path, monkeypatch):
    state = tmp_path / "state"
    config = make_config(pebble)
    folder = account_dir(state, pebble.directory_url)
    with monkeypatch.context() as patch:
        patch.setattr(http01.StandaloneResponder, "__enter__", lambda self: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            order_certificate(config, ["old.example.test"], state, timeout=30)
    old_key = (folder / PENDING_KEY_FILE).read_bytes()
    issued = order_certificate(config, ["new.example.test"], state, timeout=30)
    assert issued.key_pem != old_key
    check_issued(pebble, issued, ["new.example.test"])
    assert not (folder / PENDING_FILE).exists()


def test_account_unknown_to_the_ca_is_registered_again(pebble, tmp_path):
    state = tmp_path / "state"
    config = make_config(pebble)
    first = order_certificate(config, ["mail.example.test"], state, timeout=30)
    # a new key the CA has never seen: the stored account URL no longer belongs to it
    (account_dir(state, pebble.directory_url) / ACCOUNT_KEY_FILE).unlink()
    from svcssl.acme.client import _account_key  # creates and stores a fresh key
    _account_key(account_dir(state, pebble.directory_url), pebble.directory_url)
    second = order_certificate(config, ["mail.example.test"], state, timeout=30)
    assert second.account_uri != first.account_uri
    stored = json.loads((account_dir(state, pebble.directory_url) / ACCOUNT_FILE).read_text())
    assert stored["uri"] == second.account_uri


def test_untrusted_acme_server_certificate_is_a_clear_error(pebble, tmp_path):
    config = make_config(pebble, verify=True)  # the system store does not know pebble's TLS CA
    with pytest.raises(AcmeError) as caught:
        order_certificate(config, ["mail.example.test"], tmp_path / "state", timeout=30)
    assert "could not be verified" in caught.value.message
    assert caught.value.problem_type is None


def test_listener_that_cannot_bind_is_reported_and_the_order_kept(pebble, tmp_path):
    state = tmp_path / "state"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = make_config(pebble, http01_listen=f"127.0.0.1:{port}")
        with pytest.raises(AcmeError) as caught:
            order_certificate(config, ["busy.example.test"], state, timeout=30)
    assert f"cannot listen on 127.0.0.1:{port}" in caught.value.message
    assert (account_dir(state, pebble.directory_url) / PENDING_FILE).exists(), "kept for the next run"


def test_external_account_binding(tmp_path):
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    port = free_port()
    running = start_pebble(tmp_path / "pebble-eab", port, eab_keys={EAB_KID: EAB_HMAC})
    try:
        without = make_config(running)
        with pytest.raises(AcmeError) as caught:
            order_certificate(without, ["mail.example.test"], tmp_path / "state", timeout=30)
        assert "External Account Binding" in caught.value.message

        wrong = make_config(running, eab_kid=EAB_KID, eab_hmac_key="A" * 64)
        with pytest.raises(AcmeError) as caught:
            order_certificate(wrong, ["mail.example.test"], tmp_path / "state", timeout=30)
        assert caught.value.problem_type and caught.value.problem_type.startswith("urn:ietf:params:acme:error")

        config = make_config(running, eab_kid=EAB_KID, eab_hmac_key=EAB_HMAC)
        assert EAB_HMAC not in repr(config)
        issued = order_certificate(config, ["mail.example.test"], tmp_path / "state", timeout=30)
        check_issued(running, issued, ["mail.example.test"])
    finally:
        running.stop()


def test_renewal_window_is_none_without_ari(pebble, tmp_path):
    issued = order_certificate(make_config(pebble), ["ari.example.test"], tmp_path / "state", timeout=30)
    assert renewal_window(make_config(pebble), issued.fullchain_pem) is None


def test_rfc3339_times_with_nanoseconds():
    assert parse_rfc3339("2025-01-02T03:04:05.123456789Z") == datetime(2025, 1, 2, 3, 4, 5, 123456, timezone.utc)
    assert parse_rfc3339("2025-01-02T05:04:05+02:00") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def test_changed_email_updates_the_accounts_contact(pebble, tmp_path):
    state = tmp_path / "state"
    first = order_certificate(make_config(pebble), ["mail.example.test"], state, timeout=30)
    second = order_certificate(make_config(pebble, email="admin@example.test"), ["mail.example.test"], state,
                               timeout=30)
    assert second.account_uri == first.account_uri
    stored = json.loads((account_dir(state, pebble.directory_url) / ACCOUNT_FILE).read_text())
    assert stored["contact"] == ["mailto:admin@example.test"]


def test_renewal_window_reads_ari_where_the_ca_offers_it(pebble, tmp_path):
    """Pebble 2.4.0 has no ARI, so a tiny local server plays a CA directory that advertises renewalInfo."""
    issued = order_certificate(make_config(pebble), ["ari2.example.test"], tmp_path / "state", timeout=30)
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requested.append(self.path)
            if self.path == "/dir":
                body = {"newNonce": f"{base}/nonce", "renewalInfo": f"{base}/ari"}
            else:
                body = {"suggestedWindow": {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T12:00:00.5Z"}}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        window = renewal_window(make_config(pebble, directory=f"{base}/dir"), issued.fullchain_pem)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert window == (datetime(2030, 1, 1, tzinfo=timezone.utc),
                      datetime(2030, 1, 2, 12, 0, 0, 500000, tzinfo=timezone.utc))
    leaf = x509.load_pem_x509_certificates(issued.fullchain_pem)[0]
    aki, serial = requested[1].rsplit("/", 1)[1].split(".")
    key_id = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert base64.urlsafe_b64decode(aki + "=" * (-len(aki) % 4)) == key_id
    assert int.from_bytes(base64.urlsafe_b64decode(serial + "=" * (-len(serial) % 4)), "big") == leaf.serial_number


def test_dns01_through_a_hook_command(pebble, tmp_path):
    """The hook publishes the TXT record in the DNS server Pebble asks (challtestsrv), then removes it."""
    import sys
    hook = tmp_path / "hook.py"
    hook.write_text(DNS_HOOK.replace("sys.argv[4]", repr(pebble.challtestsrv_management_url))
                    .replace("sys.argv[5]", repr(str(tmp_path / "hook.log"))))
    config = make_config(pebble, dns01_hook=(sys.executable, str(hook)), http01_listen="127.0.0.1:1")
    issued = order_certificate(config, ["dns.example.test"], tmp_path / "state")
    check_issued(pebble, issued, ["dns.example.test"])
    assert (tmp_path / "hook.log").read_text().split("\n")[:2] == ["add _acme-challenge.dns.example.test",
                                                                    "remove _acme-challenge.dns.example.test"]


def test_a_failing_dns01_hook_is_an_acme_error_with_its_output(pebble, tmp_path):
    import sys
    failing = (sys.executable, "-c", "import sys; print('no credentials for the DNS provider'); sys.exit(3)")
    with pytest.raises(AcmeError, match="no credentials for the DNS provider"):
        order_certificate(make_config(pebble, dns01_hook=failing), ["dnsfail.example.test"], tmp_path / "state")
