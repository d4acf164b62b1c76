"""Issue 11: one assessment, shown alike by `list --json`, `maintenance run --dry-run --json`, the table,
the banner, Details and the install form — for the certificates that used to get different answers."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest

from support import pki
from support.panel import HOST, ROOT_PASSWORD, csrf_token, make_panel
from support.web import logged_in
from servers.dns import start_dns_server
from svcssl.app import create_app
from svcssl.operations.assessment import NO_MANAGEMENT
from svcssl.operations.context import open_context
from svcssl.operations.install import prepare_bundle
from svcssl.settings import load_settings
from svcssl.x509.generate import make_self_signed
from svcssl.x509.inspect import fingerprint

NOW = pki.NOW
PAGE = "/scripts2/manageservicecrts"


def _certificates():
    ca = pki.pki()
    sha1_leaf, sha1_key, sha1_ca = pki.real_sha1_leaf(HOST)
    self_key = pki.rsa_key(70)
    return {
        "noeku": (*ca.leaf([HOST], key=pki.rsa_key(71), server_auth=False), [ca.intermediate]),
        "other9": (*ca.leaf([HOST], key=pki.rsa_key(72), not_before=NOW - timedelta(days=80),
                            not_after=NOW + timedelta(days=9, hours=12)), [ca.intermediate]),
        "own24": (*ca.leaf([HOST], key=pki.rsa_key(73), not_before=NOW - timedelta(days=66),
                           not_after=NOW + timedelta(days=24, hours=12)), [ca.intermediate]),
        "sha1": (sha1_leaf, sha1_key, [sha1_ca]),
        "rsa1024": (*ca.leaf([HOST], key=pki.rsa_key(12, 1024)), [ca.intermediate]),
        "selfsigned": (make_self_signed(HOST, self_key, NOW - timedelta(days=1), 365), self_key, []),
        "expired": (*ca.leaf([HOST], key=pki.rsa_key(74), not_before=NOW - timedelta(days=90),
                             not_after=NOW - timedelta(hours=2)), [ca.intermediate]),
        "sha1self": (*pki.real_sha1_self_signed(HOST), []),
    }


EXPECTED = {  # service: (verdict, first reason code)
    "noeku": ("ok", "ok"),
    "other9": ("renew-soon", "expires-soon"),
    "own24": ("renew-soon", "expiring"),
    "sha1": ("replace", "weak-signature"),
    "rsa1024": ("replace", "weak-key"),
    "selfsigned": ("replace", "self-signed"),
    "expired": ("replace", "expired"),
    "sha1self": ("replace", "weak-signature"),
}


@pytest.fixture
def dns_server():
    server = start_dns_server({HOST: {"A": ["127.0.0.1"]}})
    yield server
    server.stop()


@pytest.fixture
def panel(tmp_path, dns_server):
    etc = tmp_path / "etc"
    certificates = _certificates()
    extra_services = {name: {"kind": "exim", "cert_file": str(etc / name / "cert.pem"),
                             "key_file": str(etc / name / "key.pem")} for name in certificates}
    panel = make_panel(tmp_path, extra_services=extra_services,
                       extra=f'\n[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 2\n')
    text = panel.config.read_text().replace(f'hostname = "{HOST}"', f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"')
    panel.config.write_text(text)
    panel.settings = load_settings(panel.config)
    ctx = open_context(panel.settings)
    for name, (leaf, key, chain) in certificates.items():
        # written by hand (weak and expired certificates cannot be installed through svcssl)
        (etc / name / "cert.pem").write_bytes(pki.pem(leaf, *chain))
        (etc / name / "key.pem").write_bytes(pki.key_pem(key))
    ctx.store.record_acme_certificate(fingerprint(certificates["own24"][0]), "https://acme.example/dir", NOW)
    ctx.store.close()
    return panel


def _list(run_cli, config) -> dict[str, dict]:
    result = run_cli("list", "--json", "--no-probe", config=config)
    assert result.code == 0, result.err
    return {row["service"]: row for row in json.loads(result.out)}


def _dry_run(run_cli, config) -> dict[str, dict]:
    result = run_cli("maintenance", "run", "--dry-run", "--json", config=config)
    assert "Traceback" not in result.err
    return {s["service"]: s for s in json.loads(result.out)["services"]}


def _client(panel):
    app = create_app(panel.settings, live_check_ttl=0)
    app.config["TESTING"] = True
    return logged_in(app, "root", ROOT_PASSWORD)


def _table(client) -> dict[str, dict]:
    """Each row's verdict and reasons, as the service table shows them."""
    text = client.get(PAGE).text
    rows = {}
    for match in re.finditer(r'<tr id="service-([a-z0-9_]+)".*?</tr>', text, re.S):
        row = match.group(0)
        verdict = re.search(r'class="flags" data-verdict="([a-z-]+)"', row).group(1)
        reasons = [{"code": c, "message": html.unescape(m)}
                   for c, m in re.findall(r'<li data-code="([a-z-]+)">(.*?)</li>', row, re.S)]
        expiry = re.search(r'class="expiry expiry-([a-z]+)"', row)
        rows[match.group(1)] = {"verdict": verdict, "reasons": reasons, "expiry": expiry.group(1) if expiry else None}
    return rows


def test_list_and_the_dry_run_give_equal_assessments(run_cli, panel):
    listed = _list(run_cli, panel.config)
    planned = _dry_run(run_cli, panel.config)
    listed_again = _list(run_cli, panel.config)  # after the run has recorded its facts
    for name, (verdict, code) in EXPECTED.items():
        assessment = listed[name]["assessment"]
        assert (assessment["verdict"], assessment["reasons"][0]["code"]) == (verdict, code), (name, assessment)
        assert planned[name]["assessment"] == assessment, name
        assert listed_again[name]["assessment"] == assessment, name
        for reason in assessment["reasons"]:
            assert reason["message"][0].isupper() and reason["message"].endswith("."), reason
    for name in ("cpanel", "dovecot", "exim", "ftp"):
        assert planned[name]["assessment"] == listed[name]["assessment"]
    # the self-signed SHA-1 certificate is both weak and self-signed
    assert [r["code"] for r in listed["sha1self"]["assessment"]["reasons"]][:2] == ["weak-signature", "self-signed"]
    assert "self-signed" in listed["sha1self"]["flags"]
    # the run acts on what is due, and only on that
    assert planned["noeku"]["action"] == "none" and planned["other9"]["action"] == "none"
    assert planned["own24"]["outcome"] == "planned" and planned["selfsigned"]["outcome"] == "planned"


def test_the_table_banner_and_details_show_the_same_assessment(run_cli, panel):
    listed = _list(run_cli, panel.config)
    client = _client(panel)
    table = _table(client)
    for name in EXPECTED:
        assessment = listed[name]["assessment"]
        assert table[name]["verdict"] == assessment["verdict"], name
        if assessment["verdict"] != "ok":
            assert table[name]["reasons"] == assessment["reasons"], name
    assert table["noeku"]["expiry"] == "ok"  # no EKU: OK everywhere
    assert table["other9"]["expiry"] == "expiring" and table["own24"]["expiry"] == "expiring"
    assert table["expired"]["expiry"] == "expired"
    page = client.get(PAGE).text
    assert "under 25 days" not in page or "under 25 days" in page.split('class="legend"')[1]  # no constant of its own
    banner = re.findall(r'<div class="banner banner-([a-z]+)">⚠ (.*?)</div>', page, re.S)
    banner_text = " ".join(html.unescape(t) for _, t in banner)
    assert "“other9” expires in 9 days" in banner_text and re.search(r"“expired” expired \d+ (days?|hours?) ago, on ", banner_text)
    assert "“noeku”" not in banner_text and "“selfsigned”" not in banner_text
    details = html.unescape(client.get(PAGE + "/details/sha1").text)
    for reason in listed["sha1"]["assessment"]["reasons"]:
        assert reason["message"] in details


def test_install_warns_exactly_when_the_run_would_replace(panel):
    ctx = open_context(panel.settings)
    ca = pki.pki()
    no_eku, key = ca.leaf([HOST], key=pki.rsa_key(71), server_auth=False)
    prepared = prepare_bundle(ctx, pki.pem(no_eku, ca.intermediate) + pki.key_pem(key))
    assert prepared.warnings == () and prepared.assessment.verdict == "ok"
    other, key = ca.leaf(["other.example.net"], key=pki.rsa_key(75))
    prepared = prepare_bundle(ctx, pki.pem(other, ca.intermediate) + pki.key_pem(key))
    assert prepared.assessment.verdict == "replace"
    assert prepared.warnings == ("The maintenance run would replace this certificate because it does not cover the "
                                 f"hostname {HOST} (it covers other.example.net).",)
    soon, key = ca.leaf([HOST], key=pki.rsa_key(72), not_before=NOW - timedelta(days=80),
                        not_after=NOW + timedelta(days=9, hours=12))
    prepared = prepare_bundle(ctx, pki.pem(soon, ca.intermediate) + pki.key_pem(key))
    assert prepared.assessment.verdict == "renew-soon" and "expires in 9 days" in prepared.warnings[0]


def test_a_touch_file_is_never_reported_as_fine(run_cli, panel):
    (panel.state / NO_MANAGEMENT).touch()
    listed = _list(run_cli, panel.config)
    assert listed["selfsigned"]["assessment"]["verdict"] == "attention"
    assert listed["selfsigned"]["assessment"]["reasons"][-1]["code"] == "left-alone"
    assert listed["noeku"]["assessment"]["verdict"] == "ok"
    result = run_cli("maintenance", "run", config=panel.config)
    assert "every service is fine" not in result.out
    assert f"needs attention" in result.out and NO_MANAGEMENT in result.out
    planned = _dry_run(run_cli, panel.config)
    assert planned["selfsigned"]["assessment"] == listed["selfsigned"]["assessment"]
    assert planned["selfsigned"]["action"] == f"none: {NO_MANAGEMENT} is present"


def test_dns_facts_from_the_run_reach_every_surface(run_cli, panel, dns_server):
    """The hostname moved to another address: the run finds out, and list and the table say the same afterwards."""
    dns_server.set_zone({HOST: {"A": ["192.0.2.7"]}})
    planned = _dry_run(run_cli, panel.config)
    listed = _list(run_cli, panel.config)
    assessment = planned["noeku"]["assessment"]
    assert assessment["verdict"] == "replace" and assessment["reasons"][0]["code"] == "not-for-this-server"
    assert "192.0.2.7" in assessment["reasons"][0]["message"]
    for name in EXPECTED:
        assert listed[name]["assessment"] == planned[name]["assessment"], name
    table = _table(_client(panel))
    assert table["noeku"]["verdict"] == "replace" and table["noeku"]["reasons"] == assessment["reasons"]


def test_ocsp_is_asked_once_per_certificate_per_run(run_cli, tmp_path, dns_server):
    """Three services share one certificate that names an OCSP responder: one OCSP request per run."""
    from servers.http import start_http_server

    http = start_http_server({})
    try:
        http.set_post_handler("/ocsp", lambda body: ("application/ocsp-response", b"not an OCSP response"))
        ca = pki.pki()
        leaf, key = ca.leaf([HOST], key=pki.rsa_key(76), ocsp_url=http.url("/ocsp"))
        etc = tmp_path / "etc"
        shared = {f"mail{n}": {"kind": "exim", "cert_file": str(etc / f"mail{n}/cert.pem"),
                               "key_file": str(etc / f"mail{n}/key.pem")} for n in range(3)}
        panel = make_panel(tmp_path, extra_services=shared,
                           extra=f'\n[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 2\n')
        for name in shared:
            (etc / name / "cert.pem").write_bytes(pki.pem(leaf, ca.intermediate))
            (etc / name / "key.pem").write_bytes(pki.key_pem(key))
        planned = _dry_run(run_cli, panel.config)
        assert http.hits["/ocsp"] == 1
        assert len({json.dumps(planned[name]["assessment"]) for name in shared}) == 1  # one truth for the three
        _dry_run(run_cli, panel.config)
        assert http.hits["/ocsp"] == 2  # once more for the second run, not three times
    finally:
        http.stop()


def test_the_install_form_says_before_installing_what_the_run_would_do(panel):
    client = _client(panel)
    ca = pki.pki()
    other, _ = ca.leaf(["other.example.net"], key=pki.rsa_key(75))
    page = client.get(PAGE + "/install")
    response = client.post(PAGE + "/install", data={
        "csrf_token": csrf_token(page.text), "services": ["exim"], "action": "autofill",
        "crt": pki.pem(other).decode(), "key": "", "cabundle": "", "password": ""}, content_type="multipart/form-data")
    text = html.unescape(response.text)
    assert 'data-verdict="replace"' in text
    assert (f"The maintenance run would replace this certificate because it does not cover the hostname {HOST} "
            "(it covers other.example.net).") in text
    assert open_context(panel.settings).store.active("exim").action != "install"  # nothing was installed


def test_the_table_and_details_show_drift(panel):
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(77))
    (panel.etc / "exim/exim.crt").write_bytes(pki.pem(leaf, ca.intermediate))  # behind svcssl's back
    (panel.etc / "exim/exim.key").write_bytes(pki.key_pem(key))
    client = _client(panel)
    row = re.search(r'<tr id="service-exim".*?</tr>', client.get(PAGE).text, re.S).group(0)
    assert "files changed outside svcssl" in row
    details = html.unescape(client.get(PAGE + "/details/exim").text)
    assert "they were changed outside svcssl" in details


def test_a_blocked_order_is_said_once_and_never_promised(run_cli, panel, dns_server):
    """Issue 22: with CAA forbidding our CA, no page says "renews it now"; the dry run says `blocked` for what
    needs an order (a self-signed stop-gap for the expired one is still `planned`); the CAA record to add is
    said once above the table, not per row; the report doubles no word."""
    ca = pki.pki()
    due_leaf, due_key = ca.leaf([HOST], key=pki.rsa_key(73), not_before=NOW - timedelta(days=80),
                                not_after=NOW + timedelta(days=10, hours=12))
    (panel.etc / "own24" / "cert.pem").write_bytes(pki.pem(due_leaf, ca.intermediate))
    (panel.etc / "own24" / "key.pem").write_bytes(pki.key_pem(due_key))
    ctx = open_context(panel.settings)
    ctx.store.record_acme_certificate(fingerprint(due_leaf), "https://acme.example/dir", NOW)
    ctx.store.close()
    dns_server.set_zone({HOST: {"A": ["127.0.0.1"]}, "example.com": {"CAA": [(0, "issue", "digicert.com")]}})
    planned = _dry_run(run_cli, panel.config)
    assert planned["own24"]["outcome"] == "blocked" and planned["selfsigned"]["outcome"] == "blocked"
    assert planned["expired"]["outcome"] == "planned" and "self-signed" in planned["expired"]["action"]
    assert all("IN CAA" not in s["action"] for s in planned.values())
    client = _client(panel)
    page = html.unescape(client.get(PAGE).text)
    assert "renews it now" not in page
    assert page.count('IN CAA 0 issue "letsencrypt.org"') == 1  # above the table, once
    banner = " ".join(re.findall(r'<div class="banner banner-[a-z]+">⚠ (.*?)</div>', page, re.S))
    assert "“own24” expires in 10 days" in banner and "cannot renew it" in banner
    report = html.unescape(client.get("/scripts2/maintenance").text)
    assert "(dry run) (dry run)" not in report and "ok (ok)" not in report
    assert report.count("needs attention") <= 2 and "cannot get a new certificate" in report
    text = run_cli("maintenance", "run", "--dry-run", config=panel.config).out
    assert "renews it now" not in text.replace("renews it now.", "") or "cannot" in text
    assert text.count('IN CAA 0 issue "letsencrypt.org"') == 1, text


def test_a_reseller_with_the_privilege_sees_the_banners(panel):
    app = create_app(panel.settings, live_check_ttl=0)
    app.config["TESTING"] = True
    from support.panel import ALICE_PASSWORD, BOB_PASSWORD
    bob = logged_in(app, "bob", BOB_PASSWORD)
    page = html.unescape(bob.get(PAGE).text)
    assert "“expired” expired" in page and "“other9” expires in 9 days" in page
    alice = logged_in(app, "alice", ALICE_PASSWORD)  # no privilege: no service page, no banners
    assert "“expired” expired" not in html.unescape(alice.get("/").text)
