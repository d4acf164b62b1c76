"""DANE-safe mail, all real: a zone signed in the test (ldns-signzone) served by NSD, validated by Unbound (the
zone's DS is its trust anchor), svcssl's [dns] nameservers pointing at Unbound; Exim serving the certificate with
STARTTLS on loopback; Pebble issuing. TLSA records change by re-signing and reloading NSD (2-second TTLs).

Oracle: ``openssl s_client -starttls smtp -dane_tlsa_domain NAME -dane_tlsa_rrdata RECORD`` against the running
Exim: its verify return code must agree with svcssl's ``matches_current`` for every record, after every renewal
and rollover step. The clock (renewal is due, twice the TTL has passed) is the only thing moved.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import ssl
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from support import pki
from support.config import require_binaries, skip_or_fail, tree_state, write_config
from servers import daemons
from servers.dnssec import UNSIGNED_ZONE, missing_dnssec_binaries, start_dnssec
from servers.exim_reload import settle_reload
from servers.pebble import free_port, start_pebble
from svcssl.dane import record_for_key
from svcssl.maintenance.run import run_maintenance
from svcssl.operations.context import open_context
from svcssl.operations.dane import dane_status, start_rollover
from svcssl.operations.inventory import list_services
from svcssl.settings import load_settings

ZONE = "example.test"
HOST = f"mail.{ZONE}"
OWNER = f"_25._tcp.{HOST}"
LIFETIME = 600  # seconds: Pebble's certificate lifetime; renewal is due after half of it
STEP = timedelta(seconds=LIFETIME * 0.7)  # moves the clock past the renewal moment of the latest certificate


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/install.sh --test")
    running = start_pebble(tmp_path_factory.mktemp("pebble"), free_port(), env={"PEBBLE_WFE_NONCEREJECT": "0"},
                           validity_seconds=LIFETIME)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dnssec(tmp_path_factory):
    missing = missing_dnssec_binaries()
    if missing:
        skip_or_fail(f"missing {', '.join(missing)}: run `bash scripts/install.sh --test` (nsd, unbound, ldnsutils)")
    running = start_dnssec(tmp_path_factory.mktemp("dnssec"), ZONE, {"mail": [("A", "127.0.0.1")]})
    yield running
    running.stop()


class Clock:
    def __init__(self):
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@dataclass
class Mail:
    config: Path
    daemon: daemons.RunningDaemon
    clock: Clock
    dnssec: object
    etc: Path

    def ctx(self):
        return open_context(load_settings(self.config), self.clock)

    def publish(self, *records: str, unsigned: dict | None = None) -> None:
        entries = {"mail": [("A", "127.0.0.1")]}
        if records:
            entries["_25._tcp.mail"] = [("TLSA", r) for r in records]
        self.dnssec.set_records(entries, unsigned)

    def served(self):
        """The certificate Exim serves now (STARTTLS), parsed."""
        from cryptography import x509
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220")
            sock.sendall(b"EHLO test\r\n")
            while not reader.readline().startswith(b"250 "):
                pass
            sock.sendall(b"STARTTLS\r\n")
            assert reader.readline().startswith(b"220")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with context.wrap_socket(sock) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def _mail(tmp_path: Path, pebble, dnssec, run_cli, *, nameserver: str | None = None, names=(HOST,)) -> Mail:
    etc = tmp_path / "etc"
    table = {"kind": "exim", "cert_file": str(etc / "exim.crt"), "key_file": str(etc / "exim.key"), "owner": "root",
             "group": "Debian-exim", "key_mode": "0640", "cert_mode": "0644", "dane": True, "dane_names": list(names)}
    extra = f"""
[acme]
directory = "{pebble.directory_url}"
verify = "{pebble.ca_file}"
email = "hostmaster@{ZONE}"
http01_listen = "127.0.0.1:{pebble.http01_port}"
key_type = "ecdsa-p256"
caa_identities = ["pebble.test"]

[dns]
nameservers = ["{nameserver or dnssec.resolver}"]
timeout = 3
"""

    def write(services):
        path = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state",
                            services=services, anchors=[pebble.roots_pem()])
        text = path.read_text().replace(f'hostname = "{HOST}"', f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"')
        path.write_text(text + extra)
        return path

    config = write({"exim": table})
    assert run_cli("list", "--no-probe", config=config).code == 0  # the first command writes a self-signed one
    daemon = daemons.start_exim(tmp_path / "run", etc / "exim.crt", etc / "exim.key")
    write({"exim": dict(table, reload=settle_reload(daemon, etc / "exim.crt"), config_test=daemon.config_test,
                            probe=daemon.probe)})
    return Mail(config, daemon, Clock(), dnssec, etc)


@pytest.fixture
def mail(tmp_path, pebble, dnssec, run_cli):
    dnssec.set_records({"mail": [("A", "127.0.0.1")]})
    m = _mail(tmp_path, pebble, dnssec, run_cli)
    yield m
    m.daemon.stop()


def spki_hex(cert) -> str:
    return hashlib.sha256(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def openssl_dane(port: int, *records: str, name: str = HOST) -> int:
    """The verify return code of `openssl s_client` with DANE for ``records`` (0: a record matched)."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp", "-dane_tlsa_domain", name]
    for record in records:
        argv += ["-dane_tlsa_rrdata", record]
    proc = subprocess.run(argv, input=b"QUIT\r\n", capture_output=True, timeout=30, check=False)
    match = re.search(rb"Verify return code: (\d+)", proc.stdout)
    assert match, proc.stdout.decode(errors="replace")[-2000:] + proc.stderr.decode(errors="replace")[-2000:]
    return int(match.group(1))


def agree_with_openssl(m: Mail, ctx) -> dict:
    """svcssl's matches_current for each validated record == openssl's verdict for that record alone."""
    (finding,) = dane_status(ctx, "exim")
    (name,) = finding.names
    assert name.validated, name.lookup
    for match in name.records:
        code = openssl_dane(m.daemon.port, match.record.text)
        assert (code == 0) == match.matches_current, (match, code)
    return finding.to_dict()


def deployed(exim, m: Mail) -> str:
    """The whole story of a failed deploy (pytest would cut the report's repr short)."""
    reload_log = m.daemon.workdir / "log" / "reload.out"
    steps = reload_log.read_text() if reload_log.exists() else "(no reload yet)"
    return f"{exim.action}: {exim.detail}\n--- reload.out\n{steps}\n{m.daemon.log_tail(80)}"


def run(m: Mail):
    report = run_maintenance(m.ctx())
    (service,) = report.services
    return report, service


def test_a_pinned_key_is_kept_through_renewal_and_openssl_agrees(mail):
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    first = mail.served()
    pinned = f"3 1 1 {spki_hex(first)}"
    other = f"3 1 1 {secrets.token_hex(32)}"
    mail.publish(pinned, other)
    found = agree_with_openssl(mail, mail.ctx())
    assert {r["data"]: r["matches_current"] for r in found["names"][0]["records"]} == {
        pinned.split()[-1]: True, other.split()[-1]: False}

    mail.clock.offset += STEP  # the renewal is due
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    assert exim.fingerprint_after != exim.fingerprint_before
    assert "keeping its key" in report.order["key"]
    renewed = mail.served()
    assert renewed.serial_number != first.serial_number and spki_hex(renewed) == spki_hex(first)
    assert openssl_dane(mail.daemon.port, pinned) == 0
    agree_with_openssl(mail, mail.ctx())
    status = next(s for s in list_services(mail.ctx()) if s.service.name == "exim")
    assert "dane-mismatch" not in status.assessment.codes


def test_rollover_waits_for_the_published_next_key_then_switches_after_twice_the_ttl(mail, run_cli):
    run(mail)
    first = mail.served()
    current = f"3 1 1 {spki_hex(first)}"
    mail.publish(current)

    result = run_cli("dane", "rollover", "exim", config=mail.config)
    assert result.code == 0, result.err
    (next_line,) = [line.strip() for line in result.out.splitlines() if "IN TLSA" in line]
    assert next_line.startswith(f"{OWNER}. IN TLSA 3 1 1 ")
    next_record = next_line.split("IN TLSA ")[1]
    key_file = mail.config.parent / "state" / "dane" / "exim.next-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600 and "PRIVATE KEY" not in result.out + result.err

    # the next key is not published: the renewal keeps the current key
    mail.clock.offset = STEP
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    assert spki_hex(mail.served()) == spki_hex(first)
    assert report.dane["exim"]["rollover"] == {"state": "waiting", "next_record": next_line,
                                               "seen_validated_since": None, "old_record_removable": False}
    assert openssl_dane(mail.daemon.port, current) == 0

    # published beside the current one: seen validated (a minute later on the clock than the renewal below)
    mail.publish(current, next_record)
    mail.clock.offset = STEP + timedelta(seconds=60)
    (finding,) = dane_status(mail.ctx(), "exim")
    assert finding.rollover.state == "waiting" and finding.rollover.seen_validated_since is not None
    assert [m.matches_next for m in finding.names[0].records] == [r == next_record for r in (
        m.record.text for m in finding.names[0].records)]
    assert finding.rollover.ttl == mail.dnssec.ttl
    # a renewal before twice the TTL has passed since: no switch yet
    mail.clock.offset = STEP
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    assert "keeping its key" in report.order["key"], report.order
    assert spki_hex(mail.served()) == spki_hex(first) and report.dane["exim"]["rollover"]["state"] == "waiting"
    # the next renewal, twice the TTL later: the switch
    mail.clock.offset = STEP + timedelta(seconds=60 + 2 * mail.dnssec.ttl + 1)
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    assert "switching to the next key" in report.order["key"]
    (done,) = [n for n in report.notifications if n["key"].startswith("dane-rollover-done:exim:")]
    assert done["subject"].endswith("the old TLSA record may be removed") and current in done["key"]
    switched = mail.served()
    assert spki_hex(switched) == next_record.split()[-1]
    assert openssl_dane(mail.daemon.port, next_record) == 0
    assert openssl_dane(mail.daemon.port, current) != 0
    assert not key_file.exists()

    result = run_cli("dane", "status", "exim", "--json", config=mail.config)
    assert result.code == 0, result.err
    (service,) = json.loads(result.out)
    assert set(service) == {"service", "names", "rollover"} and service["service"] == "exim"
    (name,) = service["names"]
    assert set(name) == {"name", "validated", "records", "publish"} and name["validated"] is True
    assert all(set(r) == {"usage", "selector", "matching_type", "data", "matches_current", "matches_next"}
               for r in name["records"])
    assert {r["data"]: r["matches_current"] for r in name["records"]} == {
        current.split()[-1]: False, next_record.split()[-1]: True}
    assert name["publish"] == [f"{OWNER}. IN TLSA {next_record}"]
    rollover = service["rollover"]
    assert rollover["state"] == "done" and rollover["old_record_removable"] is True
    assert rollover["next_record"] == next_line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rollover["seen_validated_since"])
    text = run_cli("dane", "status", config=mail.config).out
    assert f"the old record may be removed now: {OWNER}. IN TLSA {current}" in text
    agree_with_openssl(mail, mail.ctx())


def test_unvalidated_records_are_reported_and_never_acted_on(tmp_path, pebble, dnssec, run_cli):
    dnssec.set_records({"mail": [("A", "127.0.0.1")]})
    # svcssl asks the authoritative server itself: an answer without the AD bit
    m = _mail(tmp_path, pebble, dnssec, run_cli, nameserver=dnssec.authoritative)
    try:
        run(m)
        first = m.served()
        m.publish(f"3 1 1 {spki_hex(first)}", f"3 1 1 {secrets.token_hex(32)}")
        m.clock.offset += STEP
        report, exim = run(m)
        assert exim.outcome == "ok", deployed(exim, m)
        assert spki_hex(m.served()) != spki_hex(first)  # not pinned: a new key
        assert report.order["key"] == "a new key"
        assert report.dane["exim"]["names"][0]["validated"] is False
        codes = [r["code"] for r in exim.assessment["reasons"]]
        assert "dane-unvalidated" in codes and "dane-mismatch" not in codes
        listed = {row["service"]: row for row in json.loads(run_cli("list", "--json", config=m.config).out)}
        reasons = listed["exim"]["assessment"]["reasons"]
        assert listed["exim"]["assessment"]["verdict"] == "ok"
        assert [r["code"] for r in reasons] == ["ok", "dane-unvalidated"]
        assert "no AD bit" in reasons[1]["message"]
    finally:
        m.daemon.stop()

    # an unsigned zone behind the validating resolver: present, not validated
    dnssec.set_records({"mail": [("A", "127.0.0.1")]}, {"mail": [("A", "127.0.0.1")],
                                                      "_25._tcp.mail": [("TLSA", f"3 1 1 {'ab' * 32}")]})
    config = tmp_path / "svcssl.toml"
    config.write_text(config.read_text().replace(dnssec.authoritative, dnssec.resolver).replace(
        f'dane_names = ["{HOST}"]', f'dane_names = ["mail.{UNSIGNED_ZONE}"]'))
    (finding,) = dane_status(open_context(load_settings(config)), "exim")
    assert finding.names[0].lookup.status == "unvalidated" and finding.unvalidated and not finding.mismatch


def test_a_dane_ta_record_on_the_issuing_ca_allows_a_new_key(mail, pebble):
    from cryptography import x509
    intermediate = x509.load_pem_x509_certificate(pebble.intermediates_pem())
    record = f"2 1 1 {spki_hex(intermediate)}"
    mail.publish(record)
    run(mail)
    first = mail.served()
    assert openssl_dane(mail.daemon.port, record) == 0
    mail.clock.offset += STEP
    report, exim = run(mail)
    assert exim.outcome == "ok", deployed(exim, mail)
    assert report.order["key"] == "a new key"
    assert spki_hex(mail.served()) != spki_hex(first)
    assert openssl_dane(mail.daemon.port, record) == 0
    found = agree_with_openssl(mail, mail.ctx())
    assert found["names"][0]["records"][0]["matches_current"] is True


def test_a_renewal_that_would_break_a_full_certificate_record_is_not_deployed(mail):
    run(mail)
    first = mail.served()
    record = f"3 0 1 {hashlib.sha256(first.public_bytes(Encoding.DER)).hexdigest()}"  # pins this very certificate
    mail.publish(record)
    mail.clock.offset += STEP
    report, exim = run(mail)
    assert exim.outcome == "failed" and exim.action == "not installed: it would break DANE"
    assert f"{OWNER}. IN TLSA 3 1 1 " in exim.detail and "svcssl dane rollover exim" in exim.detail
    assert mail.served().serial_number == first.serial_number
    assert openssl_dane(mail.daemon.port, record) == 0


def test_install_of_a_certificate_matching_no_validated_record_needs_the_flag(mail, run_cli, tmp_path):
    run(mail)
    first = mail.served()
    pinned = f"3 1 1 {spki_hex(first)}"
    mail.publish(pinned)
    assert run_cli("dane", "status", config=mail.config).code == 0  # looks them up and records them
    leaf, key = pki.pki(3).leaf([HOST], key=pki.ec_key(33))
    (tmp_path / "new.crt").write_bytes(pki.pem(leaf, pki.pki(3).intermediate))
    (tmp_path / "new.key").write_bytes(pki.key_pem(key))
    before = tree_state(mail.etc), tree_state(mail.config.parent / "state" / "bundles")
    result = run_cli("install", "exim", "--cert", str(tmp_path / "new.crt"), "--key", str(tmp_path / "new.key"),
                     config=mail.config)
    assert result.code == 2, result.out + result.err
    expected = f"{OWNER}. IN TLSA 3 1 1 {record_for_key(key.public_key()).data}"
    assert expected in result.err and "--allow-dane-mismatch" in result.err and "Nothing was changed" in result.err
    assert (tree_state(mail.etc), tree_state(mail.config.parent / "state" / "bundles")) == before
    assert mail.served().serial_number == first.serial_number

    result = run_cli("install", "exim", "--cert", str(tmp_path / "new.crt"), "--key", str(tmp_path / "new.key"),
                     "--allow-dane-mismatch", config=mail.config)
    assert result.code == 0, result.out + result.err
    assert mail.served().serial_number == leaf.serial_number
    assert openssl_dane(mail.daemon.port, pinned) != 0
    listed = {row["service"]: row for row in json.loads(run_cli("list", "--json", config=mail.config).out)}
    assessment = listed["exim"]["assessment"]
    assert assessment["verdict"] == "attention" and assessment["reasons"][0]["code"] == "dane-mismatch"
    assert expected in assessment["reasons"][0]["message"]


def test_details_show_the_records_the_button_starts_a_rollover_and_the_form_needs_the_checkbox(mail, tmp_path):
    from support.panel import ROOT_PASSWORD, csrf_token
    from support.web import logged_in
    from svcssl.app import create_app
    from svcssl.operations.users import create_user

    run(mail)
    first = mail.served()
    pinned = f"3 1 1 {spki_hex(first)}"
    mail.publish(pinned)
    run(mail)  # looks the records up and records them (nothing is due)
    create_user(mail.ctx(), "root", "root", ROOT_PASSWORD, actor="test")
    client = logged_in(create_app(load_settings(mail.config), live_check_ttl=0), "root", ROOT_PASSWORD)
    page = client.get("/scripts2/manageservicecrts/details/exim")
    assert page.status_code == 200
    html = page.text
    assert f"<code>{OWNER}.</code>: validated" in html and f"TLSA {pinned}" in html
    assert f"{OWNER}. IN TLSA {pinned}" in html and 'data-rollover="none"' in html

    answer = client.post("/scripts2/manageservicecrts/dane-rollover/exim", data={"csrf_token": csrf_token(html)},
                         follow_redirects=True)
    assert answer.status_code == 200 and "PRIVATE KEY" not in answer.text
    key_file = mail.config.parent / "state" / "dane" / "exim.next-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    from svcssl.x509.parse import read_private_key
    next_record = record_for_key(read_private_key(key_file.read_bytes()).public_key()).text
    assert f"Add this record beside the current one: {OWNER}. IN TLSA {next_record}" in answer.text
    assert 'data-rollover="waiting"' in answer.text and f"{OWNER}. IN TLSA {next_record}" in answer.text

    # the install form: a certificate whose key matches no validated record needs the checkbox
    leaf, key = pki.pki(3).leaf([HOST], key=pki.ec_key(34))
    form = client.get("/scripts2/manageservicecrts/install")
    data = {"csrf_token": csrf_token(form.text), "services": "exim", "action": "install",
            "crt": pki.pem(leaf, pki.pki(3).intermediate).decode(), "key": pki.key_pem(key).decode()}
    before = tree_state(mail.etc)
    refused = client.post("/scripts2/manageservicecrts/install", data=data)
    assert refused.status_code == 400 and 'id="dane-confirm"' in refused.text
    assert f"{OWNER}. IN TLSA {record_for_key(key.public_key()).text}" in refused.text
    assert tree_state(mail.etc) == before and mail.served().serial_number == first.serial_number
    data["csrf_token"] = csrf_token(refused.text)
    installed = client.post("/scripts2/manageservicecrts/install", data=dict(data, allow_dane_mismatch="y"),
                            follow_redirects=True)
    assert installed.status_code == 200, installed.text[-2000:]
    assert mail.served().serial_number == leaf.serial_number

    # the API installs and says so in its warnings, as WHM does
    from svcssl.operations.tokens import create_token
    _, secret = create_token(mail.ctx(), "root", actor="test")
    other, other_key = pki.pki(3).leaf([HOST], key=pki.ec_key(35))
    answer = client.post("/json-api/install_service_ssl_certificate", headers={"Authorization": f"whm root:{secret}"},
                         data={"api.version": "1", "service": "exim", "crt": pki.pem(other).decode(),
                               "key": pki.key_pem(other_key).decode(),
                               "cabundle": pki.pem(pki.pki(3).intermediate).decode()})
    body = answer.get_json()
    assert body["metadata"]["result"] == 1, body
    warnings = " ".join(body["metadata"]["output"]["warnings"]) if "output" in body["metadata"] else json.dumps(body)
    expected = f"{OWNER}. IN TLSA {record_for_key(other_key.public_key()).text}"
    assert expected in warnings
    assert mail.served().serial_number == other.serial_number

    # the run tells the administrator once (the table alone would say "attention" while mail queues up)
    from servers.smtp import smtp_inbox
    with smtp_inbox() as inbox:
        mail.config.write_text(mail.config.read_text() + f"""
[notify]
smtp_host = "127.0.0.1"
smtp_port = {inbox.port}
recipient = "admin@{ZONE}"
""")
        report, exim = run(mail)
        assert exim.outcome == "none" and exim.verdict == "dane-mismatch"
        (note,) = [n for n in report.notifications if n["key"].startswith("dane-mismatch:exim:")]
        assert note["result"] == "sent"
        (message,) = inbox.messages
        assert "DANE senders refuse mail to exim" in message["Subject"]
        assert expected in message.get_payload(decode=True).decode()
        report, _ = run(mail)
        assert [n["result"] for n in report.notifications if n["key"] == note["key"]] == ["already sent"]
        assert len(inbox.messages) == 1


def test_an_expired_certificate_a_pinning_record_matches_is_not_replaced_by_a_self_signed_one(mail, pebble):
    run(mail)
    first = mail.served()
    pinned = f"3 1 1 {spki_hex(first)}"
    mail.publish(pinned)
    # no CA can be reached now, and the certificate has expired on the clock
    mail.config.write_text(mail.config.read_text().replace(pebble.directory_url,
                                                           f"https://127.0.0.1:{free_port()}/dir"))
    mail.clock.offset = timedelta(seconds=LIFETIME + 60)
    report, exim = run(mail)
    assert report.order is not None and report.order["ok"] is False
    assert exim.outcome == "failed" and exim.action == "not replaced by a self-signed certificate: it would break DANE"
    assert "ignore expiry" in exim.detail
    assert mail.served().serial_number == first.serial_number
    assert openssl_dane(mail.daemon.port, pinned) == 0  # DANE-EE senders still deliver


def test_bad_dane_commands_are_refused_and_change_nothing(tmp_path, run_cli):
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services={
        "exim": {"kind": "exim", "cert_file": str(etc / "exim.crt"), "key_file": str(etc / "exim.key")},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "pure-ftpd.pem")}})
    assert run_cli("list", "--no-probe", config=config).code == 0
    before = tree_state(tmp_path)
    for args, words in ((("dane", "status", "ftp"), "DANE is off for ftp: set dane = true in [services.ftp]"),
                        (("dane", "rollover", "ftp"), "DANE is off for ftp"),
                        (("dane", "rollover", "nosuch"), "nosuch"),
                        (("dane", "status", "nosuch", "--json"), "nosuch")):
        result = run_cli(*args, config=config)
        assert result.code == 2 and words in result.err and "Traceback" not in result.err, (args, result)
    assert tree_state(tmp_path) == before
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace('kind = "exim"', 'kind = "exim"\ndane = "yes"'))
    result = run_cli("dane", "status", config=bad)
    assert result.code == 2 and "'services.exim.dane' must be true or false" in result.err
    bad.write_text(config.read_text().replace('kind = "exim"', 'kind = "exim"\ndane_names = ["mail example.com"]'))
    result = run_cli("dane", "status", config=bad)
    assert result.code == 2 and "'services.exim.dane_names' must list fully qualified host names" in result.err
