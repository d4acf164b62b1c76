"""[notify] with STARTTLS: a relay whose certificate comes from a private CA is checked against
[notify] ca_file; without it every mail fails, and the Maintenance page says so."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import ssl
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from support import pki
from support.panel import HOST, ROOT_PASSWORD, make_panel
from support.web import logged_in
from servers.dns import start_dns_server
from servers.pebble import free_port
from svcssl.app import create_app
from svcssl.mail import MailError, send_mail
from svcssl.maintenance.run import run_maintenance
from svcssl.operations.context import open_context
from svcssl.operations.install import install_certificate
from svcssl.settings import load_settings


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def tls_relay(tmp_path):
    """aiosmtpd on 127.0.0.1 offering STARTTLS with a certificate from the test PKI (a private CA)."""
    ca = pki.pki()
    key = pki.rsa_key(80)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "relay")]))
            .issuer_name(ca.intermediate.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(pki.NOW - timedelta(days=1)).not_valid_after(pki.NOW + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca.intermediate_key, hashes.SHA256()))
    (tmp_path / "relay.pem").write_bytes(pki.pem(cert, ca.intermediate))
    (tmp_path / "relay.key").write_bytes(pki.key_pem(key))
    (tmp_path / "private-ca.pem").write_bytes(pki.pem(ca.root))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "relay.pem", tmp_path / "relay.key")
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True)
    controller.start()
    yield inbox, controller.port, tmp_path / "private-ca.pem"
    controller.stop()


def _notify(port: int, ca_file=None) -> str:
    lines = ["[notify]", 'smtp_host = "127.0.0.1"', f"smtp_port = {port}", "starttls = true",
             'recipient = "admin@example.test"']
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    return "\n" + "\n".join(lines) + "\n"


def test_the_relay_is_checked_against_ca_file(tmp_path, tls_relay):
    inbox, port, ca_file = tls_relay
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with_ca = load_settings(make_panel(tmp_path / "a", extra=_notify(port, ca_file)).config)
    assert with_ca.notify.ca_file == ca_file
    send_mail(with_ca.notify, "hello", "body\n")
    assert [m["Subject"] for m in inbox.messages] == ["hello"]
    without = load_settings(make_panel(tmp_path / "b", extra=_notify(port)).config)
    with pytest.raises(MailError) as caught:
        send_mail(without.notify, "hello again", "body\n")
    assert "certificate verify failed" in caught.value.message
    assert len(inbox.messages) == 1


def test_a_failing_relay_shows_on_the_maintenance_page(tmp_path, tls_relay):
    _, port, _ = tls_relay
    dns = start_dns_server({HOST: {"A": ["127.0.0.1"]}})
    try:
        panel = make_panel(tmp_path, extra=_notify(port) + f'\n[dns]\nnameservers = ["{dns.nameserver}"]\ntimeout = 2\n')
        ctx = open_context(panel.settings)
        ca = pki.pki()
        leaf, key = ca.leaf([HOST], key=pki.rsa_key(81), not_before=pki.NOW - timedelta(days=80),
                            not_after=pki.NOW + timedelta(days=10, hours=1))
        install_certificate(ctx, ["exim"], pki.pem(leaf, ca.intermediate) + pki.key_pem(key), actor="test")
        report = run_maintenance(ctx)
        (notice,) = [n for n in report.notifications if "exim" in n["subject"]]
        assert notice["result"].startswith("failed:") and "certificate verify failed" in notice["result"]
        ctx.store.close()
        app = create_app(panel.settings, live_check_ttl=0)
        app.config["TESTING"] = True
        client = logged_in(app, "root", ROOT_PASSWORD)
        html = client.get("/scripts2/maintenance").text
        assert "Mail to the administrator failed" in html and "certificate verify failed" in html
        assert "ca_file" in html
    finally:
        dns.stop()
