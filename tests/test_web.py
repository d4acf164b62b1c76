"""The web panel through Flask's test client: every route per role, CSRF, every bad input, the flows."""

from __future__ import annotations

import io
import re
import time
from urllib.parse import quote
from datetime import timedelta

import pytest
from markupsafe import escape

from support import pki
from support.config import tree_state
from support.bad_input import CASES  # the same bad inputs as the command line
from support.panel import ALICE_PASSWORD, BOB_PASSWORD, HOST, ROOT_PASSWORD, csrf_token, make_panel
from support.web import login, new_client
from svcssl.app import create_app
from svcssl.operations.context import open_context
from svcssl.operations.inventory import list_services
from svcssl.x509.inspect import fingerprint

PAGE = "/scripts2/manageservicecrts"


def fingerprints(panel) -> dict[str, str]:
    ctx = open_context(panel.settings)
    return {s.service.name: s.fingerprint for s in list_services(ctx)}


def bundle(slot=10, names=(HOST,), **kwargs):
    ca = pki.pki()
    leaf, key = ca.leaf(list(names), key=pki.rsa_key(slot), **kwargs)
    return leaf, key, pki.pem(leaf), pki.key_pem(key), pki.pem(ca.intermediate)


def install(client, services, crt=b"", key=b"", cabundle=b"", password="", files=False, **extra):
    page = client.get(PAGE + "/install")
    data = {"csrf_token": csrf_token(page.text), "services": list(services), "password": password, **extra}
    if files:
        data.update(crt_file=(io.BytesIO(crt), "cert.bin"), key_file=(io.BytesIO(key), "key.bin"),
                    cabundle_file=(io.BytesIO(cabundle), "ca.bin"))
    else:
        data.update(crt=crt.decode("latin-1"), key=key.decode("latin-1"), cabundle=cabundle.decode("latin-1"))
    # Post/Redirect/Get: a success answers 303 to its result page, which the client follows
    return client.post(PAGE + "/install", data=data, content_type="multipart/form-data", follow_redirects=True)


# --- login, sessions, headers ------------------------------------------------------------------


def test_anonymous_is_sent_to_login(app):
    client = new_client(app)
    for path in ("/", PAGE, PAGE + "/install", PAGE + "/details/dovecot", "/scripts/resellers", "/scripts/audit"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login"), path
    assert client.post(PAGE + "/reset/dovecot").status_code in (302, 400)


def test_login_sets_a_strict_cookie_and_headers(app):
    client = new_client(app)
    page = client.get("/login")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    response = client.post("/login", data={"username": "root", "password": ROOT_PASSWORD,
                                           "csrf_token": csrf_token(page.text)})
    assert response.status_code == 302 and response.location == "/"
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/").location == PAGE
    secure = client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")


def test_wrong_password_then_throttled(app):
    client = new_client(app)
    for _ in range(4):
        response = login(client, "root", "wrong-password")
        assert response.status_code == 401 and "user name or password is wrong" in response.text
    response = login(client, "root", "wrong-password")
    assert response.status_code == 429 and "Too many failed logins" in response.text
    # even the right password waits now
    response = login(client, "root", ROOT_PASSWORD)
    assert response.status_code == 429


def test_login_without_csrf_token_is_refused(app):
    client = new_client(app)
    response = client.post("/login", data={"username": "root", "password": ROOT_PASSWORD})
    assert response.status_code == 400


def test_logout_ends_the_session(root):
    page = root.get(PAGE)
    assert root.post("/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 302
    assert root.get(PAGE).status_code == 302


def test_password_change_ends_open_sessions(root, panel):
    from svcssl.operations.users import set_password
    set_password(open_context(panel.settings), "root", "another-password", actor="test")
    assert root.get(PAGE).status_code == 302


# --- roles ------------------------------------------------------------------------------------


SERVICE_ROUTES = [("GET", PAGE), ("GET", PAGE + "/install"), ("GET", PAGE + "/reset/dovecot"),
                  ("GET", PAGE + "/details/dovecot"), ("GET", PAGE + "/install?apply_from=dovecot")]
ROOT_ROUTES = [("GET", "/scripts/resellers"), ("GET", "/scripts/audit")]


def test_reseller_without_privilege_gets_403_everywhere_and_no_link(alice):
    for method, path in SERVICE_ROUTES + ROOT_ROUTES:
        assert alice.open(path, method=method).status_code == 403, path
    home = alice.get("/")
    assert home.status_code == 200
    assert "Manage Service SSL Certificates" not in home.text
    for path in (PAGE + "/install", PAGE + "/reset/dovecot", PAGE + "/rollback/dovecot", "/scripts2/restart_panel"):
        assert alice.post(path, data={"csrf_token": csrf_token(home.text)}).status_code == 403, path


def test_reseller_with_privilege_uses_the_page_but_not_root_pages(bob):
    for method, path in SERVICE_ROUTES:
        assert bob.open(path, method=method).status_code == 200, path
    for method, path in ROOT_ROUTES:
        assert bob.open(path, method=method).status_code == 403, path
    assert "Resellers" not in bob.get(PAGE).text


def test_root_sees_everything(root):
    for method, path in SERVICE_ROUTES + ROOT_ROUTES:
        assert root.open(path, method=method).status_code == 200, path


def test_root_grants_and_revokes_the_privilege(root, app):
    page = root.get("/scripts/resellers")
    assert 'data-reseller="alice"' in page.text
    token = csrf_token(page.text)
    assert root.post("/scripts/resellers/alice/grant", data={"csrf_token": token}).status_code == 302
    alice = new_client(app)
    login(alice, "alice", ALICE_PASSWORD)
    assert alice.get(PAGE).status_code == 200
    assert root.post("/scripts/resellers/alice/revoke", data={"csrf_token": token}).status_code == 302
    assert alice.get(PAGE).status_code == 403
    assert root.post("/scripts/resellers/nobody/grant", data={"csrf_token": token}).status_code == 404
    assert root.post("/scripts/resellers/alice/grant", data={}).status_code == 400


# --- the table ------------------------------------------------------------------------------


def test_table_has_every_column_flag_and_timeline(root, panel):
    page = root.get(PAGE)
    assert page.status_code == 200
    html = page.text
    for heading in ("Service", "Certificate Domains", "Expiration", "Key Type", "Status", "Lifetime", "Actions"):
        assert f">{heading}</th>" in html
    assert "Home</a> » <span>Service Configuration</span> » <span aria-current=\"page\">Manage Service SSL Certificates" in html
    for service in ("cpanel", "dovecot", "exim", "ftp"):
        assert f'data-service="{service}"' in html
    assert html.count("RSA, 2,048-bit") == 4 and "self-signed" in html
    assert html.count('<svg class="timeline"') == 4
    assert "Reset Certificate" in html and "Certificate Details" in html and "Apply Certificate to Another Service" in html
    assert "PRIVATE KEY" not in html


def test_expiring_certificate_shows_the_banner_on_every_root_page(root, panel, tmp_path):
    leaf, key, crt, key_pem, chain = bundle(slot=13, not_before=pki.NOW - timedelta(days=80),  # long-lived: under
                                            not_after=pki.NOW + timedelta(days=10))  # expiry_days is news
    assert install(root, ["exim"], crt, key_pem, chain).status_code == 200
    for path in (PAGE, "/scripts/audit", "/scripts/resellers"):
        html = root.get(path).text
        assert "banner-expiring" in html and "“exim” expires in" in html, path
    assert "expiry-expiring" in root.get(PAGE).text


# --- install -----------------------------------------------------------------------------


def test_install_pasted_certificate_on_two_services(root, panel):
    before = fingerprints(panel)
    leaf, key, crt, key_pem, chain = bundle()
    response = install(root, ["dovecot", "ftp"], crt, key_pem, chain)
    assert response.status_code == 200
    assert response.text.count('class="outcome ok"') == 2
    assert f"expires <strong class=\"new-expiry\">{leaf.not_valid_after_utc:%Y-%m-%d}</strong>" in response.text
    assert "PRIVATE KEY" not in response.text
    after = fingerprints(panel)
    assert after["dovecot"] == after["ftp"] == fingerprint(leaf)
    assert after["exim"] == before["exim"]
    assert "Restart the panel" not in response.text
    audit = root.get("/scripts/audit").text
    assert "root (web" in audit and fingerprint(leaf)[:16] in audit


def test_install_upload_pkcs12(root, panel):
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.ec_key(7))
    response = install(root, ["exim"], pki.p12(leaf, key, [ca.intermediate], b"pw"), b"", b"", password="pw", files=True)
    assert response.status_code == 200, response.text
    assert fingerprints(panel)["exim"] == fingerprint(leaf)


def test_installing_on_the_panel_offers_a_restart(root, panel):
    leaf, key, crt, key_pem, chain = bundle(slot=14)
    response = install(root, ["cpanel"], crt, key_pem, chain)
    assert response.status_code == 200 and "Restart the panel" in response.text
    restart = root.post("/scripts2/restart_panel", data={"csrf_token": csrf_token(response.text)})
    assert restart.status_code == 302  # not under `svcssl serve` here: explained, not a 500
    assert "not running under" in root.get(PAGE).text


def test_warnings_do_not_refuse(root, panel):
    leaf, key, crt, key_pem, chain = bundle(slot=15, names=("other.example.net",))
    response = install(root, ["dovecot"], crt, key_pem, chain)
    assert response.status_code == 200 and "does not cover the hostname mail.example.com" in response.text


@pytest.mark.parametrize("case", list(CASES))
def test_every_bad_input_through_the_form(case, root, panel):
    files, message = CASES[case]
    etc_before = tree_state(panel.etc)
    bundles_before = tree_state(panel.state / "bundles")
    response = install(root, ["dovecot", "ftp"], files["cert"] or b"", files["key"] or b"", files["cabundle"] or b"",
                       password=(files["password"] or b"").decode(), files=True)
    assert response.status_code == 400, response.text[:500]
    if case == "empty file":
        message = "Paste a certificate or choose a certificate file"
    assert str(escape(message)) in response.text
    assert 'class="field-error"' in response.text or 'class="error"' in response.text
    assert tree_state(panel.etc) == etc_before
    assert tree_state(panel.state / "bundles") == bundles_before


def test_pasted_bad_input_keeps_the_form_and_marks_the_field(root, panel):
    leaf, key, crt, key_pem, chain = bundle()
    response = install(root, ["dovecot"], crt, pki.key_pem(pki.rsa_key(11)), chain)
    assert response.status_code == 400
    assert re.search(r'<p class="field-error" id="key-error">The private key does not match', response.text)
    assert "BEGIN CERTIFICATE" in response.text  # the pasted certificate is kept


def test_no_service_ticked_and_unknown_service(root, panel):
    leaf, key, crt, key_pem, chain = bundle()
    before = tree_state(panel.etc)
    response = install(root, [], crt, key_pem, chain)
    assert response.status_code == 400 and "You must provide a service." in response.text
    response = install(root, ["postfix"], crt, key_pem, chain)
    assert response.status_code == 400 and "Unknown service &#39;postfix&#39;" in response.text
    assert tree_state(panel.etc) == before


def test_csrf_refused_and_nothing_changed(root, panel):
    leaf, key, crt, key_pem, chain = bundle()
    before = tree_state(panel.etc)
    response = root.post(PAGE + "/install", data={"services": ["dovecot"], "crt": crt.decode(), "key": key_pem.decode()})
    assert response.status_code == 400 and "CSRF" in response.text
    response = root.post(PAGE + "/reset/dovecot", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert tree_state(panel.etc) == before


def test_oversized_request_gets_a_clear_message(root, panel):
    before = tree_state(panel.etc)
    page = root.get(PAGE + "/install")
    response = root.post(PAGE + "/install", data={"csrf_token": csrf_token(page.text), "services": ["dovecot"],
                                                  "crt_file": (io.BytesIO(b"A" * (17 * 1024 * 1024)), "big.pem")},
                         content_type="multipart/form-data")
    assert response.status_code == 413 and "too large" in response.text
    assert tree_state(panel.etc) == before


# --- reset, details, rollback, apply ---------------------------------------------------------


def test_reset_asks_first_then_installs_self_signed(root, panel):
    before = fingerprints(panel)["exim"]
    confirm = root.get(PAGE + "/reset/exim")
    assert confirm.status_code == 200
    assert "Clients will not trust a self-signed certificate" in confirm.text
    assert fingerprints(panel)["exim"] == before  # the GET changes nothing
    response = root.post(PAGE + "/reset/exim", data={"csrf_token": csrf_token(confirm.text)}, follow_redirects=True)
    assert response.status_code == 200 and 'class="outcome ok"' in response.text
    assert fingerprints(panel)["exim"] != before
    assert root.get(PAGE + "/reset/nope").status_code == 404


def test_details_history_and_roll_back_to_this(root, panel):
    first = fingerprints(panel)["dovecot"]
    leaf1, _, crt1, key1, chain = bundle(slot=16)
    leaf2, _, crt2, key2, _ = bundle(slot=17)
    install(root, ["dovecot"], crt1, key1, chain)
    install(root, ["dovecot"], crt2, key2, chain)
    page = root.get(PAGE + "/details/dovecot")
    assert page.status_code == 200
    html = page.text
    assert fingerprint(leaf2) in html and "Test Intermediate 0" in html and "SHA-256 fingerprint" in html
    assert html.count("Roll back to this") == 2 and "PRIVATE KEY" not in html
    confirm = root.get(PAGE + f"/rollback/dovecot?fingerprint={first}")  # what changes: both fingerprints, nothing done yet
    assert confirm.status_code == 200 and first in confirm.text and fingerprint(leaf2) in confirm.text
    assert fingerprints(panel)["dovecot"] == fingerprint(leaf2)
    assert root.get(PAGE + "/rollback/dovecot?fingerprint=" + "0" * 64).status_code == 404
    response = root.post(PAGE + "/rollback/dovecot", data={"csrf_token": csrf_token(html), "fingerprint": first},
                         follow_redirects=True)
    assert response.status_code == 200 and 'class="outcome ok"' in response.text
    assert fingerprints(panel)["dovecot"] == first
    assert root.get(PAGE + "/details/nope").status_code == 404
    bad = root.post(PAGE + "/rollback/dovecot", data={"csrf_token": csrf_token(html), "fingerprint": "0" * 64})
    assert bad.status_code == 302 and "not an earlier certificate" in root.get(PAGE + "/details/dovecot").text


def test_apply_certificate_to_another_service_passes_the_key_by_reference(root, panel):
    leaf, _, crt, key_pem, chain = bundle(slot=18)
    install(root, ["dovecot"], crt, key_pem, chain)
    page = root.get(PAGE + "/install?apply_from=dovecot")
    assert page.status_code == 200
    html = page.text
    assert "BEGIN CERTIFICATE" in html and "PRIVATE KEY" not in html
    ref = re.search(r'name="key_ref" type="hidden" value="([0-9a-f]{64})"', html) or \
        re.search(r'id="key_ref" name="key_ref" type="hidden" value="([0-9a-f]{64})"', html)
    assert ref and ref.group(1) == fingerprint(leaf)
    form_cert = re.search(r'<textarea[^>]*id="crt"[^>]*>\s*(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)',
                          html, re.S).group(1)
    response = root.post(PAGE + "/install", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(html), "services": ["exim", "ftp"], "crt": form_cert, "key": "", "cabundle": chain.decode(),
        "key_ref": ref.group(1), "apply_from": "dovecot"}, follow_redirects=True)
    assert response.status_code == 200, response.text
    after = fingerprints(panel)
    assert after["exim"] == after["ftp"] == fingerprint(leaf)
    # a reference to a key that was never installed is refused
    other, _, other_crt, _, _ = bundle(slot=19)
    refused = install(root, ["exim"], other_crt, b"", chain, key_ref=fingerprint(other))
    assert refused.status_code == 400 and "referenced private key is not available" in refused.text


def test_apns_row_is_labelled_and_takes_pkcs12_only(tmp_path):
    panel = make_panel(tmp_path, apns=True)
    app = create_app(panel.settings, live_check_ttl=0)
    client = new_client(app)
    login(client, "root", ROOT_PASSWORD)
    html = client.get(PAGE).text
    assert 'data-service="mail_apns"' in html and "Apple ended the legacy APNs interface in November 2020" in html
    leaf, key, crt, key_pem, chain = bundle()
    before = tree_state(panel.etc)
    response = install(client, ["mail_apns"], crt, key_pem, chain)
    assert response.status_code == 400 and "accepts only a PKCS#12" in response.text
    assert tree_state(panel.etc) == before


def test_maintenance_page_run_now_and_touch_files(tmp_path):
    # DNS answers from nowhere (a closed port): the run reports that no order is possible, quickly
    panel = make_panel(tmp_path, extra='[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 0.3\n')
    (panel.state / "disable_auto_hostname_certificate").touch()
    app = create_app(panel.settings, live_check_ttl=0)
    client = new_client(app)
    login(client, "root", ROOT_PASSWORD)
    page = client.get("/scripts2/maintenance")
    assert page.status_code == 200
    assert 'data-touch="disable_auto_hostname_certificate"' in page.text
    assert re.search(r'Automatic hostname certificates: <span class="switch-state">off</span>', page.text)
    assert re.search(r"Touch file <code>disable_auto_hostname_certificate</code>: present", page.text)
    assert re.search(r'Automatic certificate management: <span class="switch-state">on</span>', page.text)
    assert "No run yet." in page.text
    assert client.post("/scripts2/maintenance/run", data={"csrf_token": csrf_token(page.text)}).status_code == 303
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = client.get("/scripts2/maintenance")
        if "No run yet." not in page.text and "in progress" not in page.text:
            break
        assert 'http-equiv="refresh"' in page.text  # live progress without JavaScript
        time.sleep(0.2)
    html = page.text
    assert "— panel —" in html and "self-signed" in html
    assert "no hostname certificate: disable_auto_hostname_certificate is present" in html
    bob = new_client(app)
    login(bob, "bob", BOB_PASSWORD)
    assert bob.get("/scripts2/maintenance").status_code == 403


def test_tokens_page_creates_shows_once_and_revokes(root, app, panel):
    page = root.get("/scripts/tokens")
    assert page.status_code == 200 and "No tokens yet." in page.text
    created = root.post("/scripts/tokens", data={"csrf_token": csrf_token(page.text), "user": "bob",
                                                 "name": "deploy-hook", "expires_days": "30"})
    assert created.status_code == 303  # Post/Redirect/Get: a reload of the result is a GET
    shown = root.get(created.headers["Location"])
    secret = re.search(r'<code class="token" id="new-token">([A-Z0-9]{32})</code>', shown.text).group(1)
    assert secret not in root.get(created.headers["Location"]).text  # shown exactly once: a reload shows no secret
    listing = root.get("/scripts/tokens").text
    assert 'data-token="deploy-hook"' in listing and secret not in listing  # only on its result page
    from svcssl.operations.tokens import authenticate_token
    user, info = authenticate_token(open_context(panel.settings), "bob", secret)
    assert user.name == "bob" and info.expires_at is not None
    bad = root.post("/scripts/tokens", data={"csrf_token": csrf_token(listing), "user": "bob", "name": "no spaces!"})
    assert bad.status_code == 400 and "A token name is" in bad.text
    confirm = root.get("/scripts/tokens/deploy-hook/revoke")  # a page that says what will change, nothing revoked yet
    assert confirm.status_code == 200 and "Revoke the API token “deploy-hook”?" in confirm.text and secret not in confirm.text
    assert ">revoked<" not in root.get("/scripts/tokens").text
    assert root.get("/scripts/tokens/no-such/revoke").status_code == 404
    assert root.post("/scripts/tokens/deploy-hook/revoke", data={"csrf_token": csrf_token(confirm.text)}).status_code == 302
    assert ">revoked<" in root.get("/scripts/tokens").text
    bob = new_client(app)
    login(bob, "bob", BOB_PASSWORD)
    assert bob.get("/scripts/tokens").status_code == 403


@pytest.mark.parametrize("target", ["/\t/evil.com", "//evil.com", "/\\evil.com", "https://evil.com/", "/\n",
                                    "/\r\nSet-Cookie: x=1"])
def test_login_next_never_leaves_the_site(app, target):
    client = new_client(app)
    page = client.get("/login")
    response = client.post("/login?next=" + quote(target, safe=""), data={
        "username": "root", "password": ROOT_PASSWORD, "csrf_token": csrf_token(page.text)})
    assert response.status_code == 302 and response.location == "/"


def test_a_key_pasted_in_the_ca_bundle_is_not_sent_back(root, panel):
    leaf, key, crt, key_pem, chain = bundle()
    response = install(root, ["ftp"], crt, key_pem, chain + key_pem)
    assert response.status_code == 400 and "PRIVATE KEY" not in response.text


def test_failed_logins_for_made_up_names_are_throttled_per_address_and_kept_out_of_the_audit_page(app, root):
    client = new_client(app)
    statuses = [login(client, f"nobody{i}", "wrong-password").status_code for i in range(21)]
    assert statuses[:19] == [401] * 19 and statuses[-1] == 429
    audit = root.get("/scripts/audit").text
    assert "nobody" not in audit
    elsewhere = new_client(app)
    elsewhere.environ_base["REMOTE_ADDR"] = "127.0.0.2"  # this address is not locked out
    assert login(elsewhere, "root", "wrong-password").status_code == 401
    assert "nobody" not in root.get("/scripts/audit").text
    assert ">failed<" in root.get("/scripts/audit?logins=1").text


def test_token_expiry_out_of_range_is_a_400(root):
    page = root.get("/scripts/tokens")
    response = root.post("/scripts/tokens", data={"csrf_token": csrf_token(page.text), "user": "bob",
                                                  "expires_days": "9" * 400})
    assert response.status_code == 400 and "Between 1 and 3650 days." in response.text
    response = root.post("/scripts/tokens", data={"csrf_token": csrf_token(page.text), "user": "bob",
                                                  "expires_days": "9999"})
    assert response.status_code == 400 and "1 to 3650 days" in response.text


def test_pages_are_not_cached_but_static_files_may_be(root):
    assert root.get(PAGE).headers["Cache-Control"] == "no-store"
    assert "no-store" not in root.get("/static/svcssl.css").headers.get("Cache-Control", "")


def test_only_root_restarts_the_panel(bob):
    page = bob.get(PAGE)
    assert bob.post("/scripts2/restart_panel", data={"csrf_token": csrf_token(page.text)}).status_code == 403
