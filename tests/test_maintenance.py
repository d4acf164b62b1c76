"""The maintenance run with real parts: Pebble as the CA (real HTTP-01), a real DNS server, a real SMTP server,
a real Dovecot serving the result, CRLs over HTTP."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from support import pki
from support.config import require_binaries, write_config
from servers import daemons
from servers.dns import start_dns_server
from servers.http import start_http_server
from servers.pebble import DNS_HOOK, free_port, start_pebble
from servers.smtp import smtp_inbox
from svcssl.deploy.probe import fetch_served_certificate
from svcssl.errors import LockTimeoutError
from svcssl.maintenance.run import NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT, run_maintenance
from svcssl.maintenance.scheduler import start_scheduler
from svcssl.operations.context import open_context
from svcssl.operations.inventory import list_services
from svcssl.settings import load_settings, parse_probe
from svcssl.store.snapshots import list_snapshots
from svcssl.x509.inspect import describe, fingerprint

HOST = "mail.example.test"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    running = start_pebble(tmp_path_factory.mktemp("pebble"), free_port())
    yield running
    running.stop()


@pytest.fixture
def dns_server():
    server = start_dns_server({HOST: {"A": ["127.0.0.1"]}})
    yield server
    server.stop()


@pytest.fixture
def inbox():
    with smtp_inbox() as running:
        yield running, running.port


def make_config(tmp_path: Path, pebble, dns_server, smtp_port: int, *, http01_port: int | None = None,
                services: dict | None = None, trust_pebble: bool = True) -> Path:
    etc = tmp_path / "etc"
    services = services or {
        "cpanel": {"kind": "panel", "cert_file": str(etc / "panel/cert.pem"), "key_file": str(etc / "panel/key.pem")},
        "exim": {"kind": "exim", "cert_file": str(etc / "exim/exim.crt"), "key_file": str(etc / "exim/exim.key")},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
    }
    extra = f"""
[acme]
directory = "{pebble.directory_url}"
verify = "{pebble.ca_file}"
email = "hostmaster@example.test"
http01_listen = "127.0.0.1:{http01_port or pebble.http01_port}"
key_type = "ecdsa-p256"

[dns]
nameservers = ["{dns_server.nameserver}"]
timeout = 2

[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
recipient = "admin@example.test"
panel_url = "https://{HOST}:2087/scripts2/manageservicecrts"
"""
    text = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services=services,
                        anchors=[pebble.roots_pem()] if trust_pebble else []).read_text()
    text = text.replace(f'hostname = "{HOST}"', f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"')
    (tmp_path / "svcssl.toml").write_text(text + extra)
    return tmp_path / "svcssl.toml"


def context(config: Path, clock=None):
    settings = load_settings(config)
    ctx = open_context(settings, clock) if clock else open_context(settings)
    from svcssl.operations.firstrun import ensure_certificates
    ensure_certificates(ctx)
    return ctx


def fingerprints(ctx) -> dict[str, str]:
    return {s.service.name: s.fingerprint for s in list_services(ctx)}


def install_file_bundle(ctx, service: str, leaf, key, chain=()):
    from svcssl.operations.install import install_certificate
    crt = pki.pem(leaf, *chain) + pki.key_pem(key)
    prepared, outcomes = install_certificate(ctx, [service], crt, actor="test")
    assert outcomes[0].ok, outcomes[0].message


def test_one_run_gives_every_self_signed_service_a_ca_signed_hostname_certificate(pebble, dns_server, inbox, tmp_path):
    """Dovecot really serves it afterwards; a second run does nothing."""
    require_binaries(*daemons.missing_daemon_binaries(), install="bash scripts/test.sh") \
        if daemons.missing_daemon_binaries() else None
    etc = tmp_path / "etc"
    services = {
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot.pem"), "key_file": str(etc / "dovecot.key")},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
    }
    config = make_config(tmp_path, pebble, dns_server, inbox[1], services=services)
    ctx = context(config)  # first run: self-signed everywhere
    dovecot = daemons.start_dovecot(tmp_path / "run", etc / "dovecot.pem", etc / "dovecot.key")
    try:
        text = config.read_text().replace(
            'kind = "dovecot"',
            f'kind = "dovecot"\nreload = {json.dumps(dovecot.reload)}\nprobe = "{dovecot.probe}"')
        config.write_text(text)
        ctx = context(config)
        before = fingerprints(ctx)

        report = run_maintenance(ctx)

        assert report.ok, report.to_dict()
        assert report.order["ok"] is True
        by_service = {s.service: s for s in report.services}
        for name in ("dovecot", "ftp"):
            assert by_service[name].verdict == "self-signed"
            assert "self-signed" in by_service[name].reason
            assert by_service[name].action == "installed the hostname certificate"
        after = fingerprints(ctx)
        assert after["dovecot"] == after["ftp"] != before["dovecot"]
        served = fetch_served_certificate(parse_probe(dovecot.probe), 5).der
        assert fingerprint(x509.load_der_x509_certificate(served)) == after["dovecot"]
        leaf = x509.load_der_x509_certificate(served)
        intermediate = x509.load_pem_x509_certificate(pebble.intermediates_pem())
        leaf.verify_directly_issued_by(intermediate)
        assert describe(leaf).domains == (HOST,)

        second = run_maintenance(ctx)
        assert second.ok and second.order is None
        assert {s.service: s.action for s in second.services} == {"dovecot": "none", "ftp": "none"}
        assert fingerprints(ctx) == after
        assert inbox[0].messages == []  # nothing was expiring: no mail
        assert len(ctx.store.runs()) == 2
        # after each successful run a consistent snapshot of the database (0600), holding that run's report
        snapshots = list_snapshots(ctx.store.layout)
        assert [s.reason for s in snapshots] == ["run", "run"]
        assert {oct(s.path.stat().st_mode & 0o777) for s in snapshots} == {"0o600"}
        with closing(sqlite3.connect(f"{snapshots[0].path.as_uri()}?mode=ro", uri=True)) as newest:
            assert newest.execute("SELECT count(*) FROM maintenance_runs").fetchone()[0] == 2
    finally:
        dovecot.stop()


def test_cli_json_report_and_dry_run(pebble, dns_server, inbox, tmp_path, run_cli):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    etc = tmp_path / "etc"
    run_cli("list", "--no-probe", config=config)
    from support.config import tree_state
    before = tree_state(etc)
    dry = run_cli("maintenance", "run", "--dry-run", "--json", config=config)
    report = json.loads(dry.out)
    assert dry.code == 1 and report["dry_run"] and report["order"] == {"planned": True, "names": [HOST]}
    assert all(s["outcome"] == "planned" for s in report["services"])
    assert tree_state(etc) == before
    real = run_cli("maintenance", "run", config=config)
    assert real.code == 0, real.out + real.err
    assert "installed the hostname certificate" in real.out
    status = json.loads(run_cli("maintenance", "status", "--json", config=config).out)
    assert [r["dry_run"] for r in status["runs"]] == [False, True]


def test_touch_file_disable_service_certificate_management(pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(50), not_before=pki.NOW - timedelta(days=80),
                        not_after=pki.NOW + timedelta(days=1))
    install_file_bundle(ctx, "exim", leaf, key, [ca.intermediate])
    (tmp_path / "state" / NO_MANAGEMENT).touch()
    before = fingerprints(ctx)
    report = run_maintenance(ctx)
    assert report.touch_files[NO_MANAGEMENT] is True
    assert report.ok and report.order is None
    assert all("disable_service_certificate_management is present" in s.action
               for s in report.services if s.verdict != "ok")
    assert fingerprints(ctx) == before
    assert report.notifications == [] and inbox[0].messages == []


def test_touch_file_disable_auto_hostname_certificate_still_covers_expired(pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    ca = pki.pki()
    expired, key = ca.leaf([HOST], key=pki.rsa_key(51), not_before=pki.NOW - timedelta(days=90),
                           not_after=pki.NOW - timedelta(hours=2))
    # an expired certificate can only be put in place by hand: write the files directly
    service = ctx.settings.services["exim"]
    service.cert_file.write_bytes(pki.pem(expired, ca.intermediate))
    service.key_file.write_bytes(pki.key_pem(key))
    (tmp_path / "state" / NO_HOSTNAME_CERTIFICATE).touch()
    report = run_maintenance(ctx)
    by_service = {s.service: s for s in report.services}
    assert report.order is None
    assert by_service["exim"].verdict == "expired"
    assert by_service["exim"].action.startswith("installed a self-signed certificate")
    assert NO_HOSTNAME_CERTIFICATE in by_service["exim"].action
    assert by_service["ftp"].action == f"none (no hostname certificate: {NO_HOSTNAME_CERTIFICATE} is present)"
    now_installed = list_services(ctx)
    exim = [s for s in now_installed if s.service.name == "exim"][0]
    assert exim.info.is_self_signed and exim.info.not_after > pki.NOW
    assert report.ok  # left alone on purpose, as cPanel documents
    subjects = [m["Subject"] for m in inbox[0].messages]
    assert subjects == [f"[{HOST}] The SSL certificate of exim has expired"]


def test_failed_order_backs_off_mails_once_and_covers_the_expired_service(pebble, dns_server, inbox, tmp_path):
    """Validation refused (nothing answers HTTP-01 where Pebble looks): self-signed now, one mail, back-off."""
    config = make_config(tmp_path, pebble, dns_server, inbox[1], http01_port=free_port())
    ctx = context(config)
    ca = pki.pki()
    expired, key = ca.leaf([HOST], key=pki.rsa_key(52), not_before=pki.NOW - timedelta(days=90),
                           not_after=pki.NOW - timedelta(hours=2))
    service = ctx.settings.services["exim"]
    service.cert_file.write_bytes(pki.pem(expired, ca.intermediate))
    service.key_file.write_bytes(pki.key_pem(key))
    started = time.monotonic()
    report = run_maintenance(ctx)
    assert time.monotonic() - started < 60
    assert not report.ok and report.order["ok"] is False
    assert "urn:ietf:params:acme:error" in (report.order["problem"]["type"] or "")
    exim = {s.service: s for s in report.services}["exim"]
    assert exim.action.startswith("installed a self-signed certificate") and exim.outcome == "ok"
    subjects = sorted(m["Subject"] for m in inbox[0].messages)
    assert subjects == sorted([f"[{HOST}] Ordering the hostname certificate failed",
                               f"[{HOST}] The SSL certificate of exim has expired"])
    failure_mail = [m for m in inbox[0].messages if "Ordering" in m["Subject"]][0]
    body = failure_mail.get_payload(decode=True).decode()
    assert "The next attempt is not before" in body and "https://mail.example.test:2087/scripts2/manageservicecrts" in body
    backoff = ctx.store.order_backoff(HOST)
    assert backoff.failures == 1 and backoff.next_attempt_at - backoff.first_failed_at == timedelta(hours=1)

    second = run_maintenance(ctx)  # within the back-off: no order, no new mail
    assert second.order["skipped"] is True and "next attempt is not before" in second.order["message"]
    assert len(inbox[0].messages) == 2
    assert ctx.store.order_backoff(HOST).failures == 1


def test_expiry_mail_is_sent_once_with_the_facts(pebble, dns_server, inbox, tmp_path):
    """A certificate from another CA with 10 days left is not due (under 3 days), but the admin hears of it once."""
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(53), not_before=pki.NOW - timedelta(days=80),
                        not_after=pki.NOW + timedelta(days=10, hours=1))
    for name in ("cpanel", "exim", "ftp"):
        install_file_bundle(ctx, name, leaf, key, [ca.intermediate])
    report = run_maintenance(ctx)
    assert report.ok and report.order is None
    (message,) = inbox[0].messages  # one certificate, one mail, naming every service that carries it
    assert message["Subject"] == f"[{HOST}] The SSL certificate of cpanel, exim and ftp expires in 10 days"
    assert message["To"] == "admin@example.test"
    body = message.get_payload(decode=True).decode()
    for fact in ("“exim”", HOST, "expires in 10 days", "renew it with its CA", "Test Intermediate 0",
                 "https://mail.example.test:2087/"):
        assert fact in body, fact
    run_maintenance(ctx)
    assert len(inbox[0].messages) == 1  # once per certificate and threshold


def test_revoked_certificate_is_replaced(pebble, dns_server, inbox, tmp_path):
    """The CRL named by the certificate, served over HTTP and signed by its issuer, lists it."""
    from cryptography.hazmat.primitives import serialization
    ca = pki.pki()
    http = start_http_server({})
    try:
        leaf, key = ca.leaf([HOST], key=pki.rsa_key(54), crl_url=http.url("/int.crl"))
        crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.intermediate.subject)
               .last_update(pki.NOW - timedelta(hours=1)).next_update(pki.NOW + timedelta(days=1))
               .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(leaf.serial_number)
                                        .revocation_date(pki.NOW - timedelta(hours=1)).build())
               .sign(ca.intermediate_key, hashes.SHA256()))
        http.set_route("/int.crl", "application/pkix-crl", crl.public_bytes(serialization.Encoding.DER))
        config = make_config(tmp_path, pebble, dns_server, inbox[1])
        ctx = context(config)
        install_file_bundle(ctx, "exim", leaf, key, [ca.intermediate])
        report = run_maintenance(ctx)
        exim = {s.service: s for s in report.services}["exim"]
        assert exim.verdict == "revoked" and "revoked" in exim.reason
        assert exim.action == "installed the hostname certificate"
    finally:
        http.stop()


def test_caa_forbidding_or_hostname_elsewhere_blocks_the_order(pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    dns_server.set_zone({HOST: {"A": ["127.0.0.1"]}, "example.test": {"CAA": [(0, "issue", "digicert.com")]}})
    report = run_maintenance(ctx)
    assert report.order is None and not report.ok
    blocker = report.hostname["blocker"]
    assert "digicert.com" in blocker and 'example.test. 86400 IN CAA 0 issue "letsencrypt.org"' in blocker
    ftp = {s.service: s for s in report.services}["ftp"]
    assert ftp.action.startswith("none (no hostname certificate can be ordered")
    assert blocker.count("IN CAA") == 1 and "IN CAA" not in ftp.action  # the record to add, said once, not per row

    dns_server.set_zone({HOST: {"A": ["192.0.2.55"]}})
    report = run_maintenance(ctx)
    assert report.order is None and "192.0.2.55" in report.hostname["blocker"]
    assert {s.verdict for s in report.services} == {"self-signed"}


def test_one_run_at_a_time(pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    with ctx.store.lock("maintenance"):
        other = open_context(load_settings(config))
        with pytest.raises(LockTimeoutError, match="Another maintenance run is in progress"):
            run_maintenance(other)


def test_scheduler_runs_the_job_once_at_a_time(pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    text = config.read_text() + '\n[maintenance]\nschedule = "*/5 * * * *"\n'
    config.write_text(text)
    settings = load_settings(config)
    scheduler = start_scheduler(settings)
    try:
        job = scheduler.get_job("maintenance")
        assert job.max_instances == 1 and job.coalesce is True
        assert job.next_run_time is not None and job.next_run_time.minute % 5 == 0
        job.modify(next_run_time=pki.NOW)  # run it now, as the schedule would
        deadline = time.monotonic() + 60
        ctx = open_context(settings)
        while not ctx.store.runs() and time.monotonic() < deadline:
            time.sleep(0.2)
        runs = ctx.store.runs()
        assert runs and runs[0].trigger == "schedule"
    finally:
        scheduler.shutdown(wait=True)


def test_the_run_can_validate_over_dns01_through_the_configured_hook(pebble, dns_server, inbox, tmp_path):
    import sys
    hook = tmp_path / "hook.py"
    hook.write_text(DNS_HOOK.replace("sys.argv[4]", repr(pebble.challtestsrv_management_url))
                    .replace("sys.argv[5]", repr(str(tmp_path / "hook.log"))))
    # nothing answers HTTP-01 where Pebble would look: only DNS-01 can succeed
    config = make_config(tmp_path, pebble, dns_server, inbox[1], http01_port=free_port())
    config.write_text(config.read_text().replace(
        "[acme]\n", f"[acme]\ndns01_hook = {json.dumps([sys.executable, str(hook)])}\n"))
    ctx = context(config)
    report = run_maintenance(ctx)
    assert report.ok and report.order["ok"] is True, report.to_dict()
    assert "add _acme-challenge.mail.example.test" in (tmp_path / "hook.log").read_text()


def test_an_untrusted_certificate_is_replaced_with_the_hostname_certificate(pebble, dns_server, inbox, tmp_path):
    """A certificate from a private CA whose root is not a trust anchor (issue 24): cPanel's "invalid", replaced."""
    root_key, int_key = pki.ec_key(700), pki.ec_key(701)
    root = pki.make_ca("Unknown Corp Root", root_key)
    intermediate = pki.make_ca("Unknown Corp Issuing CA", int_key, (root, root_key))
    leaf = pki.make_leaf([HOST], pki.rsa_key(55), intermediate, int_key)
    config = make_config(tmp_path, pebble, dns_server, inbox[1])
    ctx = context(config)
    from svcssl.operations.install import install_certificate
    install_certificate(ctx, ["exim"], pki.pem(leaf, intermediate) + pki.key_pem(pki.rsa_key(55)), actor="test",
                        allow_untrusted=True)
    exim = {s.service.name: s for s in list_services(ctx)}["exim"]
    assert exim.assessment.verdict == "replace" and exim.assessment.codes == ("untrusted",)
    assert "\u201cUnknown Corp Root\u201d" in exim.assessment.message
    report = run_maintenance(ctx)
    done = {s.service: s for s in report.services}["exim"]
    assert done.verdict == "untrusted" and done.action == "installed the hostname certificate", done
    assert report.ok and report.order_untrusted == ""
    after = {s.service.name: s for s in list_services(ctx)}["exim"]
    assert after.assessment.verdict == "ok", after.assessment  # Pebble's root is in [trust] ca_file


def test_an_acme_ca_whose_root_is_not_trusted_is_a_configuration_error_mailed_once_never_a_loop(
        pebble, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, pebble, dns_server, inbox[1], trust_pebble=False)
    ctx = context(config)
    report = run_maintenance(ctx)
    assert report.order and report.order["ok"], report.order
    assert not report.ok
    assert report.order_untrusted.startswith("the ACME CA's root is not trusted: add it to [trust] ca_file")
    assert "configuration error" in report.summary
    mails = [m for m in inbox[0].messages if "not trusted" in m["Subject"]]
    assert len(mails) == 1 and "[trust] ca_file" in mails[0].get_content()
    statuses = list_services(ctx)
    assert all(s.assessment.codes[0] == "acme-root-untrusted" and s.assessment.verdict == "attention"
               for s in statuses), [s.assessment for s in statuses]
    again = run_maintenance(ctx)
    assert again.order is None  # kept: no second order
    assert all(s.verdict == "acme-root-untrusted" and s.action == "none" for s in again.services), again.services
    assert len([m for m in inbox[0].messages if "not trusted" in m["Subject"]]) == 1
