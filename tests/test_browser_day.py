"""The administrator's day (issue 13), in Debian's Chromium against a real `svcssl serve`.

At 1280×800 and 1920×1080: the table fits with its actions in view, form errors are summarised at
the top, results survive a reload (Post/Redirect/Get), Details, Maintenance, Users, key + CSR.
The browser, context, screenshots and server fixtures are test_browser's, imported rather than copied.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from support import pki
from support.panel import HOST, ROOT_PASSWORD, make_panel
from support.browser import PAGE, install_directly, log_in, no_private_key, row

VIEWPORTS = [pytest.param({"width": 1280, "height": 800}, id="1280x800"),
             pytest.param({"width": 1920, "height": 1080}, id="1920x1080")]


@pytest.fixture(params=VIEWPORTS)
def context(browser, request):  # noqa: F811 - every test here runs at both sizes
    ctx = browser.new_context(ignore_https_errors=True, viewport=request.param)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def panel(tmp_path):
    return make_panel(tmp_path, apns=True)


@pytest.fixture
def server(panel, start_panel):  # noqa: F811
    return start_panel(panel.config)


def root_page(context, server):
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    return page


def write_worst_certificate(panel) -> None:
    """exim's files replaced outside svcssl by an expired, SHA-1, RSA-1024, no-SAN certificate for another name."""
    key = pki.rsa_key(40, bits=1024)
    leaf = pki.sha1_signed_leaf(["a-very-long-host-name-that-is-not-this-server.legacy.example.org"], key)
    ca = pki.pki()
    expired, _ = ca.leaf(["an-expired-and-rather-long-name.example.net"], key=key, san=False,
                         not_before=pki.NOW - timedelta(days=400), not_after=pki.NOW - timedelta(days=3))
    (panel.etc / "exim/exim.crt").write_bytes(pki.pem(expired))
    (panel.etc / "exim/exim.key").write_bytes(pki.key_pem(key))
    (panel.etc / "ftp/pure-ftpd.pem").write_bytes(pki.key_pem(key) + pki.pem(leaf))


def assert_fits(page) -> None:
    """The page is no wider than the window and every row's actions are inside it."""
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    rows = page.locator("tbody tr[data-service]")
    assert rows.count() >= 4
    for i in range(rows.count()):
        tr = rows.nth(i)
        for name in ("Reset Certificate", "Certificate Details", "Apply Certificate to Another Service"):
            link = tr.get_by_role("link", name=name)
            assert link.is_visible(), (tr.get_attribute("data-service"), name)
            box = link.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (tr.get_attribute("data-service"), name, box)
        if tr.locator(".flag").count() <= 2:  # compact rows: one line of links, not a stack of buttons
            assert tr.bounding_box()["height"] < 110, tr.get_attribute("data-service")


# --- 1. the table fits ------------------------------------------------------------------------


def test_table_fits_with_the_worst_flags_and_actions_stay_on_screen(panel, start_panel, context, shots):  # noqa: F811
    write_worst_certificate(panel)
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + PAGE)
    flags = row(page, "exim").locator(".flags").inner_text()
    for flag in ("expired", "files changed outside svcssl", "weak key", "no subjectAltName"):
        assert flag in flags, flags
    assert "weak signature" in row(page, "ftp").locator(".flags").inner_text()
    shots(page, f"day-table-{page.viewport_size['width']}")
    assert_fits(page)
    # A narrow window: the table scrolls inside its own box, the actions stay on screen.
    page.set_viewport_size({"width": 700, "height": 800})
    for name in ("Reset Certificate", "Certificate Details"):
        box = row(page, "exim").get_by_role("link", name=name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 700, box


# --- 2. form errors are summarised at the top --------------------------------------------------


def snapshot(panel) -> dict:
    """Every file under etc/: bytes and mode (nothing may change after a refused form)."""
    return {p: (p.read_bytes(), p.stat().st_mode) for p in sorted(panel.etc.rglob("*")) if p.is_file()}


def test_failed_install_shows_a_focused_error_summary_linking_to_the_field(server, panel, context, shots):
    page = root_page(context, server)
    before = snapshot(panel)
    page.goto(server.url + PAGE + "/install")
    ca = pki.pki()
    leaf, _ = ca.leaf([HOST], key=pki.rsa_key(41))
    page.get_by_role("checkbox", name=re.compile(r"^dovecot\b")).check()
    page.fill("#crt", pki.pem(leaf).decode())
    page.fill("#key", pki.key_pem(pki.rsa_key(42)).decode())  # not the certificate's key
    page.get_by_role("button", name="Install", exact=True).click()
    summary = page.locator("#error-summary")
    assert summary.get_attribute("role") == "alert"
    assert page.evaluate("document.activeElement.id") == "error-summary"
    box = summary.bounding_box()
    assert 0 <= box["y"] and box["y"] + 40 <= page.viewport_size["height"]  # in view without scrolling
    link = summary.get_by_role("link", name=re.compile("private key does not match"))
    shots(page, f"day-error-summary-{page.viewport_size['width']}")
    link.click()
    assert page.evaluate("document.activeElement.id") == "key"
    assert snapshot(panel) == before
    no_private_key(page)


def test_the_certificate_chosen_card_stays_after_a_failed_post(server, panel, context):
    page = root_page(context, server)
    page.goto(server.url + PAGE + "/install")
    page.fill("#crt", (panel.etc / "dovecot/cert.pem").read_text())
    page.get_by_role("button", name="Autofill by certificate").click()
    assert "found in" in page.locator("#choice-key").inner_text()
    page.get_by_role("button", name="Install", exact=True).click()  # no service ticked
    assert page.locator("#error-summary").is_visible()
    assert "service" in page.locator("#error-summary").inner_text().lower()
    assert page.locator("#choice").is_visible()
    assert "found in" in page.locator("#choice-key").inner_text()
    no_private_key(page)


# --- 3. Post/Redirect/Get -------------------------------------------------------------------


def history_count(panel, service: str) -> int:
    from svcssl.operations.context import open_context
    ctx = open_context(panel.settings)
    try:
        return len(ctx.store.history(service))
    finally:
        ctx.store.close()


def test_reload_after_install_and_reset_shows_the_result_without_resubmitting(server, panel, context):
    page = root_page(context, server)
    page.goto(server.url + PAGE + "/install")
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(43))
    page.get_by_role("checkbox", name=re.compile(r"^dovecot\b")).check()
    page.fill("#crt", pki.pem(leaf).decode())
    page.fill("#key", pki.key_pem(key).decode())
    page.fill("#cabundle", pki.pem(ca.intermediate).decode())
    page.get_by_role("button", name="Install", exact=True).click()
    assert "/results/" in page.url
    text = page.locator('.outcome[data-service="dovecot"]').inner_text()
    assert text.startswith("Installed on dovecot") and "dovecot: Installed" not in text  # says what happened
    count = history_count(panel, "dovecot")
    page.reload()
    assert "/results/" in page.url
    assert page.locator('.outcome[data-service="dovecot"]').inner_text() == text
    assert history_count(panel, "dovecot") == count
    no_private_key(page)

    page.goto(server.url + PAGE + "/reset/exim")
    page.get_by_role("button", name="Reset Certificate").click()
    assert "/results/" in page.url
    assert page.locator('.outcome[data-service="exim"]').inner_text().startswith("Reset exim")
    count = history_count(panel, "exim")
    page.reload()
    assert page.locator('.outcome[data-service="exim"]').is_visible()
    assert history_count(panel, "exim") == count

    page.goto(server.url + PAGE + "/details/exim")
    page.get_by_role("button", name="Roll back to this").first.click()
    assert page.locator('.outcome[data-service="exim"]').inner_text().startswith("Rolled back exim")
    active, count = page.url, history_count(panel, "exim")
    page.reload()
    assert page.url == active and page.locator('.outcome[data-service="exim"]').inner_text().startswith("Rolled back")
    assert history_count(panel, "exim") == count  # the reload did not roll back again

    # another browser (another session) cannot read the result
    other = context.browser.new_context(ignore_https_errors=True)
    try:
        stranger = other.new_page()
        log_in(stranger, server, "root", ROOT_PASSWORD)
        response = stranger.goto(page.url)
        assert response.status == 404
    finally:
        other.close()


def test_reload_after_creating_a_token_shows_it_again_without_a_second_token(server, context):
    page = root_page(context, server)
    page.goto(server.url + "/scripts/tokens")
    page.fill("#name", "deploy")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text()
    page.reload()
    assert page.locator("#new-token").inner_text() == secret
    assert page.locator('tr[data-token="deploy"]').count() == 1


# --- 8. users -------------------------------------------------------------------------------


def test_root_creates_a_reseller_sets_its_password_and_deletes_it(server, panel, context, browser):  # noqa: F811
    page = root_page(context, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    assert page.get_by_role("heading", name="Users", exact=True).is_visible()
    assert page.locator('tr[data-user="root"]').is_visible() and page.locator('tr[data-user="bob"]').is_visible()
    # a mistake first: the two passwords differ
    page.fill("#username", "dave")
    page.fill("#password", "dave-password-1")
    page.fill("#confirm", "dave-password-2")
    page.get_by_role("button", name="Create reseller").click()
    assert "The two passwords differ." in page.locator("#error-summary").inner_text()
    assert page.locator('tr[data-user="dave"]').count() == 0
    page.fill("#password", "dave-password-1")
    page.fill("#confirm", "dave-password-1")
    page.get_by_role("button", name="Create reseller").click()
    assert "created" in page.locator(".flash").inner_text()
    page.reload()  # Post/Redirect/Get: nothing is created twice, no resubmission
    assert page.locator('tr[data-user="dave"]').count() == 1

    other = browser.new_context(ignore_https_errors=True)
    try:
        dave = other.new_page()
        log_in(dave, server, "dave", "dave-password-1")
        # root sets dave's password: dave's open session ends
        page.locator('tr[data-user="dave"]').get_by_role("link", name="Set the password of dave").click()
        page.fill("#password", "dave-password-9")
        page.fill("#confirm", "dave-password-9")
        page.get_by_role("button", name="Set password").click()
        assert "sessions have ended" in page.locator(".flash").inner_text()
        dave.goto(server.url + "/")
        assert "/login" in dave.url
        log_in(dave, server, "dave", "dave-password-9")
        # root deletes dave: logged out at once
        page.locator('tr[data-user="dave"]').get_by_role("link", name="Delete dave").click()
        assert page.get_by_role("heading", name="Delete the user “dave”?").is_visible()
        page.get_by_role("button", name="Delete dave").click()
        assert "deleted" in page.locator(".flash").inner_text()
        assert page.locator('tr[data-user="dave"]').count() == 0
        dave.goto(server.url + "/")
        assert "/login" in dave.url
        dave.fill("#username", "dave")
        dave.fill("#password", "dave-password-9")
        dave.get_by_role("button", name="Log in").click()
        assert "/login" in dave.url
    finally:
        other.close()
    assert page.locator('tr[data-user="root"]').get_by_role("link", name=re.compile("^Delete")).count() == 0


# --- 4. reset describes both certificates; 5. Details --------------------------------------------


def test_reset_confirmation_describes_the_current_and_the_new_certificate(tmp_path, start_panel, context):  # noqa: F811
    panel = make_panel(tmp_path, extra="[certificates]\nkey_type = \"ecdsa-p256\"\nself_signed_days = 30\n")
    install_directly(panel, ["dovecot"], 46)
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + PAGE)
    row(page, "dovecot").get_by_role("link", name="Reset Certificate").click()
    current = page.locator("#reset-current").inner_text()
    assert "issued by Test Intermediate 0" in current and "days left" in current and "RSA, 2,048-bit" in current
    assert "self-signed" not in current
    new = page.locator("#reset-new").inner_text()
    assert "ECDSA, P-256" in new and "valid 30 days" in new and HOST in new
    assert "RSA 2,048" not in new and "365" not in page.locator("main").inner_text()
    page.get_by_role("button", name="Reset Certificate").click()
    page.get_by_role("link", name="Back to Manage Service SSL Certificates").click()
    assert row(page, "dovecot").locator(".key").inner_text().startswith("ECDSA, P-256")


def test_details_says_expired_days_ago_and_offers_reset_apply_download(panel, start_panel, context):  # noqa: F811
    write_worst_certificate(panel)
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + PAGE)
    row(page, "exim").get_by_role("link", name="Certificate Details").click()
    assert re.fullmatch(r"expired \d+ days ago", page.locator("#days-left").inner_text()), page.locator("#days-left").inner_text()
    assert "-" not in page.locator("#days-left").inner_text()
    assert page.get_by_role("link", name="Reset Certificate").is_visible()
    assert page.get_by_role("link", name="Apply Certificate to Another Service").is_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download certificate (PEM)").click()
    body = open(download.value.path(), "rb").read()
    assert body == (panel.etc / "exim/exim.crt").read_bytes() and b"PRIVATE KEY" not in body
    assert download.value.suggested_filename == "exim-cert.pem"
    page.goto(server.url + PAGE + "/details/dovecot")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download full chain (PEM)").click()
    body = open(download.value.path(), "rb").read()
    assert body.count(b"BEGIN CERTIFICATE") >= 1 and b"PRIVATE KEY" not in body
    assert body == (panel.etc / "dovecot/cert.pem").read_bytes()
    # Reset from Details
    page.get_by_role("link", name="Reset Certificate").click()
    assert page.get_by_role("heading", name="Reset the certificate of “dovecot”?").is_visible()


# --- 6. Apply when the files were changed outside svcssl ---------------------------------------


def test_apply_after_files_changed_outside_svcssl_finds_the_key_or_says_why(panel, start_panel, context):  # noqa: F811
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(44))
    (panel.etc / "dovecot/cert.pem").write_bytes(pki.pem(leaf, ca.intermediate))
    (panel.etc / "dovecot/key.pem").write_bytes(pki.key_pem(key))
    other, _ = ca.leaf([HOST], key=pki.rsa_key(45))
    (panel.etc / "exim/exim.crt").write_bytes(pki.pem(other))  # its key is nowhere on the server
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + PAGE)
    assert "files changed outside svcssl" in row(page, "dovecot").locator(".flags").inner_text()
    row(page, "dovecot").get_by_role("link", name="Apply Certificate to Another Service").click()
    assert "changed outside svcssl" in page.locator("#apply-key-note").inner_text()
    page.get_by_role("checkbox", name=re.compile(r"^ftp\b")).check()
    page.get_by_role("button", name="Install", exact=True).click()
    assert "ok" in page.locator('.outcome[data-service="ftp"]').get_attribute("class")
    no_private_key(page)

    page.goto(server.url + PAGE)
    row(page, "exim").get_by_role("link", name="Apply Certificate to Another Service").click()
    problem = page.locator("#apply-key-problem").inner_text()
    assert "changed outside svcssl" in problem and "Paste the private key" in problem
    page.get_by_role("checkbox", name=re.compile(r"^ftp\b")).check()
    page.get_by_role("button", name="Install", exact=True).click()
    summary = page.locator("#error-summary").inner_text()
    assert "changed outside svcssl" in summary and "No private key was given" in summary


# --- 7. Maintenance: dry run, confirmed run, touch files, the hostname's problem on the main page ---------


@pytest.fixture
def dns_elsewhere():
    from servers.dns import start_dns_server
    server = start_dns_server({HOST: {"A": ["192.0.2.2"]}})  # the hostname resolves, but not to this server
    yield server
    server.stop()


def wait_for_run(page, server, dry: bool, timeout: float = 40.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(server.url + "/scripts2/maintenance")
        summary = page.locator("details.run summary").first
        if page.locator("ol.progress").count() == 0 and summary.count() and (
                ("(dry run)" in summary.inner_text()) == dry):
            return summary
        time.sleep(0.3)
    raise AssertionError(page.locator("main").inner_text())


def test_maintenance_dry_run_confirmed_run_touch_files_and_hostname_fix(tmp_path, start_panel, context,  # noqa: F811
                                                                        dns_elsewhere):
    panel = make_panel(tmp_path, extra=f'[dns]\nnameservers = ["{dns_elsewhere.nameserver}"]\ntimeout = 1\n')
    panel.config.write_text(panel.config.read_text().replace(f'hostname = "{HOST}"\n',
                                                             f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"\n', 1))
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + "/scripts2/maintenance")
    # touch files: switched from the page, with their meaning, audited
    item = page.locator('li[data-touch="disable_service_certificate_management"]')
    assert "no automatic replacement of any service certificate" in item.inner_text()
    item.get_by_role("button", name="Create disable_service_certificate_management").click()
    assert "is now present" in page.locator(".flash").inner_text()
    assert (panel.state / "disable_service_certificate_management").exists()
    assert page.locator('li[data-touch="disable_service_certificate_management"] strong').inner_text() == "present"
    page.reload()  # Post/Redirect/Get: no second change
    page.locator('li[data-touch="disable_service_certificate_management"]').get_by_role("button", name=re.compile(
        "^Remove")).click()
    assert not (panel.state / "disable_service_certificate_management").exists()
    page.goto(server.url + "/scripts/audit")
    audit = page.locator("main").inner_text()
    assert "touch file create" in audit and "touch file remove" in audit

    # dry run: shows what a run would do, changes nothing
    before = snapshot(panel)
    page.goto(server.url + "/scripts2/maintenance")
    page.get_by_role("button", name="Dry run").click()
    summary = wait_for_run(page, server, dry=True)
    run = page.locator("details.run").first
    text = run.inner_text()
    assert "does not resolve to this server" in text or "192.0.2.2" in text, text
    assert "Fix:" in text and "127.0.0.1" in text
    assert snapshot(panel) == before
    # the hostname's problem, with its fix, on the main page too
    page.goto(server.url + PAGE)
    problem = page.locator("#hostname-problem").inner_text()
    assert HOST in problem and "Fix:" in problem and "127.0.0.1" in problem

    # Run now asks first, saying what it will change
    page.goto(server.url + "/scripts2/maintenance")
    page.get_by_role("link", name="Run now…").click()
    assert page.get_by_role("heading", name="Run maintenance now?").is_visible()
    plan = page.locator("#run-plan").inner_text()
    assert HOST in plan and "What the last dry run planned" in plan and "self-signed" in plan
    assert snapshot(panel) == before  # asking changes nothing
    page.get_by_role("button", name="Run maintenance now").click()
    wait_for_run(page, server, dry=False)
    assert "— panel —" in page.locator("details.run summary").first.inner_text()


# --- 9. key + CSR from the Install page; Autofill finds the key when the certificate comes back --------------


def sign_csr(csr_pem: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca = pki.pki()
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.intermediate.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(pki.NOW - timedelta(hours=1)).not_valid_after(pki.NOW + timedelta(days=90))
            .add_extension(san, critical=False).sign(ca.intermediate_key, hashes.SHA256()))


def test_generate_key_and_csr_then_autofill_finds_the_key(server, panel, context):
    page = root_page(context, server)
    page.goto(server.url + PAGE + "/install")
    page.get_by_role("link", name="Generate a key and CSR").click()
    assert page.locator("#domains").input_value() == HOST
    # bad input first: a clear message, nothing written
    page.fill("#domains", "not a domain!")
    page.get_by_role("button", name="Generate key and CSR").click()
    assert "is not a valid domain name" in page.locator("#error-summary").inner_text()
    assert not (panel.state / "keys").exists() or not list((panel.state / "keys").glob("*.key"))
    page.fill("#domains", f"{HOST}\nsmtp.example.com")
    page.select_option("#key_type", "ecdsa-p256")
    page.get_by_role("button", name="Generate key and CSR").click()
    csr_pem = page.locator("#csr-pem").input_value()
    assert csr_pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    no_private_key(page)
    page.reload()  # Post/Redirect/Get: the same CSR, no second key
    assert page.locator("#csr-pem").input_value() == csr_pem
    keys = list((panel.state / "keys").glob("*.key"))
    assert len(keys) == 1 and (keys[0].stat().st_mode & 0o777) == 0o600

    leaf = sign_csr(csr_pem)
    page.get_by_role("link", name="Install a New Certificate").first.click()
    page.fill("#crt", pki.pem(leaf).decode())
    page.get_by_role("button", name="Autofill by certificate").click()
    assert "svcssl's key store" in page.locator("#choice-key").inner_text()
    page.fill("#cabundle", pki.pem(pki.pki().intermediate).decode())  # the CA's bundle: not on this server yet
    page.get_by_role("checkbox", name=re.compile(r"^exim\b")).check()
    page.get_by_role("button", name="Install", exact=True).click()
    assert "ok" in page.locator('.outcome[data-service="exim"]').get_attribute("class")
    no_private_key(page)
    page.goto(server.url + PAGE)
    assert "smtp.example.com" in row(page, "exim").locator(".domains").inner_text()
    assert row(page, "exim").locator(".key").inner_text().startswith("ECDSA, P-256")


# --- 11. Browse Apache says why a virtual host was skipped ---------------------------------------------


def test_browse_apache_explains_a_vhost_skipped_for_a_module_not_loaded(tmp_path, start_panel, context):  # noqa: F811
    from support.discovery import debian_apache
    ssl = tmp_path / "ssl"
    guarded = ("<IfModule ssl_module>\n<VirtualHost *:443>\nServerName shop.example.com\nSSLEngine on\n"
               f"SSLCertificateFile {ssl}/a.pem\n</VirtualHost>\n</IfModule>\n")
    config = debian_apache(tmp_path, ssl, modules=("mpm_event.load", "mime.load"), default_ssl=False,
                           sites={"shop.conf": guarded})
    panel = make_panel(tmp_path, extra=f'[apache]\nconfig_file = "{config}"\n')
    server = start_panel(panel.config)
    page = root_page(context, server)
    page.goto(server.url + PAGE + "/browse/apache")
    text = page.locator("#no-vhosts").inner_text()
    assert "No SSL virtual hosts found" not in text
    assert "<VirtualHost *:443> is skipped" in text and "ssl_module is not loaded" in text and "a2enmod ssl" in text


# --- 12. a browser refusing the self-signed panel certificate is not log noise ----------------------------


def test_a_browser_refusing_the_self_signed_certificate_logs_nothing(server, browser):  # noqa: F811
    strict = browser.new_context(ignore_https_errors=False)
    try:
        page = strict.new_page()
        with pytest.raises(Exception):
            page.goto(server.url + "/login", timeout=5000)
    finally:
        strict.close()
    import ssl
    import socket
    import time
    verifying = ssl.create_default_context()  # a client that checks the certificate sends a fatal alert
    verifying.check_hostname = False
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        with pytest.raises(ssl.SSLError):
            verifying.wrap_socket(raw)
    time.sleep(0.5)
    output = server.output()
    assert "peer dropped the TLS connection" not in output and "certificate unknown" not in output.lower(), output
    assert "panel: https://" in output  # the log is there, only the noise is gone
