"""End to end: Debian's Chromium, driven by Playwright, against a real `svcssl serve` over HTTPS.

Each test starts its own `svcssl serve` process on a free loopback port (state under tmp_path)
and stops it by PID. Screenshots go to $SVCSSL_SCREENSHOTS (else the test's tmp_path). With
SVCSSL_UPDATE_DOCS=1 the service-table screenshot is also written to docs/ (a tracked file: not
rewritten on every run).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time
from datetime import datetime

import pytest

from servers.ports import free_port
from support.browser import PAGE, ca_bundle, install_directly, log_in, no_private_key, row
from support.config import write_config
from support.panel import ALICE_PASSWORD, HOST, ROOT_PASSWORD
from support.process import REPO
from support.wait import wait_until
from svcssl.x509.inspect import fingerprint

SERVICES = ("cpanel", "dovecot", "exim", "ftp")
FIRST_START = re.compile(r"First start: log in as root with the password (\S+)")


# --- the server -------------------------------------------------------------------------------


@pytest.fixture
def server(panel, start_panel):
    return start_panel(panel.config)


# --- helpers ----------------------------------------------------------------------------------


def expiry_of(page, service: str) -> str:
    return row(page, service).locator(".expiry .date").inner_text().strip()


def day(cert) -> str:
    return f"{cert.not_valid_after_utc:%Y-%m-%d}"


# --- the scenarios ----------------------------------------------------------------------------


def test_first_start_password_printed_on_an_empty_state_logs_in(tmp_path, start_panel, context, shots):
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services={
        "cpanel": {"kind": "panel", "cert_file": str(etc / "panel/cert.pem"), "key_file": str(etc / "panel/key.pem")},
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"),
                    "key_file": str(etc / "dovecot/key.pem")},
        "exim": {"kind": "exim", "cert_file": str(etc / "exim/exim.crt"), "key_file": str(etc / "exim/exim.key")},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
    })
    server = start_panel(config)
    match = FIRST_START.search(server.output())
    assert match, server.output()
    page = context.new_page()
    log_in(page, server, "root", match.group(1))
    assert page.get_by_role("heading", name="Manage Service SSL Certificates").is_visible()
    assert page.locator("tbody tr[data-service]").count() == 4
    shots(page, "first-start-table")


def test_root_sees_the_four_services_and_their_expiry(server, context, shots):
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    assert page.url.endswith(PAGE)
    table = page.get_by_role("table")
    for heading in ("Service", "Certificate Domains", "Expiration", "Key Type", "Status", "Actions"):
        assert table.get_by_role("columnheader", name=heading, exact=True).is_visible()
    names = page.locator("tbody tr[data-service] .svc-name").all_inner_texts()
    assert names == list(SERVICES)
    today = datetime.now().date()
    for service in SERVICES:
        expiry = datetime.strptime(expiry_of(page, service), "%Y-%m-%d").date()
        assert 360 <= (expiry - today).days <= 366, service  # the first-start self-signed certificates
        assert "expires in" in row(page, service).locator(".expiry .days").inner_text()
        assert HOST in row(page, service).locator(".domains").inner_text()
        assert "self-signed" in row(page, service).locator(".flags").inner_text()
    assert page.get_by_role("link", name="Manage Service SSL Certificates").is_visible()
    no_private_key(page)
    shots(page, "service-table")


def test_install_a_pasted_certificate_on_dovecot(server, context, shots):
    leaf, crt, key, chain = ca_bundle(20)
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    before = {s: expiry_of(page, s) for s in SERVICES}
    page.get_by_role("link", name="Install a New Certificate").click()
    assert page.get_by_role("heading", name="Install a New Certificate").is_visible()
    page.get_by_role("checkbox", name=re.compile(r"^dovecot\b")).check()
    page.fill("#crt", crt)
    page.fill("#key", key)
    page.fill("#cabundle", chain)
    shots(page, "install-form")
    page.get_by_role("button", name="Install").click()
    page.wait_for_load_state()

    assert page.get_by_role("heading", name="Results").is_visible()
    outcome = page.locator('.outcome[data-service="dovecot"]')
    assert "ok" in outcome.get_attribute("class")
    assert page.locator(".outcome").count() == 1
    assert page.locator(".new-expiry").inner_text() == day(leaf)
    assert fingerprint(leaf) in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Restart the panel").count() == 0  # not the panel's certificate
    no_private_key(page)
    shots(page, "install-results")

    page.get_by_role("link", name="Back to Manage Service SSL Certificates").click()
    assert expiry_of(page, "dovecot") == day(leaf) != before["dovecot"]
    assert "self-signed" not in row(page, "dovecot").locator(".flags").inner_text()
    for service in ("cpanel", "exim", "ftp"):
        assert expiry_of(page, service) == before[service]
    no_private_key(page)
    shots(page, "table-after-install")
    if os.environ.get("SVCSSL_UPDATE_DOCS"):
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        page.screenshot(path=str(docs / "screenshot-service-table.png"), full_page=True)


def test_reset_asks_for_confirmation_then_exim_is_self_signed(panel, start_panel, context, shots):
    leaf = install_directly(panel, ["exim"], 21)
    server = start_panel(panel.config)
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    assert expiry_of(page, "exim") == day(leaf)
    assert "self-signed" not in row(page, "exim").locator(".flags").inner_text()

    row(page, "exim").get_by_role("link", name="Reset Certificate").click()
    assert page.get_by_role("heading", name="Reset the certificate of “exim”?").is_visible()
    assert "Clients will not trust a self-signed certificate" in page.locator(".warning").inner_text()
    shots(page, "reset-confirm")
    page.get_by_role("button", name="Reset Certificate").click()
    page.wait_for_load_state()

    assert page.get_by_role("heading", name="Results").is_visible()
    assert "ok" in page.locator('.outcome[data-service="exim"]').get_attribute("class")
    assert "self-signed" in page.locator(".warning").first.inner_text()
    shots(page, "reset-results")
    page.get_by_role("link", name="Back to Manage Service SSL Certificates").click()
    flags = row(page, "exim").locator(".flags").inner_text()
    assert "self-signed" in flags
    assert expiry_of(page, "exim") != day(leaf)
    assert row(page, "exim").locator(".domains").inner_text().strip() == HOST


def test_apply_the_dovecot_certificate_to_ftp_without_showing_the_key(panel, start_panel, context, shots):
    leaf = install_directly(panel, ["dovecot"], 22)
    server = start_panel(panel.config)
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    assert expiry_of(page, "ftp") != day(leaf)
    no_private_key(page)

    row(page, "dovecot").get_by_role("link", name="Apply Certificate to Another Service").click()
    assert page.get_by_role("heading", name="Apply the Certificate of “dovecot” to Another Service").is_visible()
    assert page.get_by_role("navigation", name="Breadcrumb").inner_text().endswith("Apply Certificate to Another Service")
    assert "BEGIN CERTIFICATE" in page.input_value("#crt")
    assert page.input_value("#key") == ""  # the key goes by reference, never through the browser
    assert page.locator("#key-ref-note").is_visible()
    no_private_key(page)
    page.get_by_role("checkbox", name=re.compile(r"^ftp\b")).check()
    shots(page, "apply-form")
    page.get_by_role("button", name="Install").click()
    page.wait_for_load_state()

    assert page.get_by_role("heading", name="Results").is_visible()
    assert "ok" in page.locator('.outcome[data-service="ftp"]').get_attribute("class")
    no_private_key(page)
    page.get_by_role("link", name="Back to Manage Service SSL Certificates").click()
    assert expiry_of(page, "ftp") == expiry_of(page, "dovecot") == day(leaf)
    domains = row(page, "ftp").locator(".domains").inner_text()
    assert domains == row(page, "dovecot").locator(".domains").inner_text() and HOST in domains
    no_private_key(page)


def test_reseller_without_the_privilege_gets_no_link_and_403(server, context, shots):
    page = context.new_page()
    log_in(page, server, "alice", ALICE_PASSWORD)
    assert page.get_by_role("heading", name="Home").is_visible()
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Manage Service SSL Certificates").count() == 0
    assert page.get_by_role("link", name="Manage Service SSL Certificates").count() == 0
    assert "alice (reseller)" in page.locator(".who").inner_text()
    response = page.goto(server.url + PAGE)
    assert response.status == 403
    assert page.get_by_role("heading", name="Access denied").is_visible()
    assert "do not have the privilege" in page.locator("main").inner_text()
    assert page.locator("table").count() == 0
    shots(page, "reseller-403")


def test_login_with_the_keyboard_only(server, context, shots):
    page = context.new_page()
    page.goto(server.url + "/login")
    page.bring_to_front()
    if page.evaluate("document.activeElement.id") != "username":  # autofocus; else Tab to it
        for _ in range(5):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "username":
                break
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type("root")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(ROOT_PASSWORD)
    shots(page, "login-keyboard")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert page.url.endswith(PAGE)
    assert page.get_by_role("heading", name="Manage Service SSL Certificates").is_visible()


def test_install_on_the_panel_serves_it_to_new_connections_then_restart(server, browser, context, shots):
    leaf, crt, key, chain = ca_bundle(23)
    old = server.served_fingerprint()
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    page.get_by_role("link", name="Install a New Certificate").click()
    page.get_by_role("checkbox", name=re.compile(r"^cpanel\b")).check()
    page.fill("#crt", crt)
    page.fill("#key", key)
    page.fill("#cabundle", chain)
    page.get_by_role("button", name="Install").click()
    page.wait_for_load_state()
    assert "ok" in page.locator('.outcome[data-service="cpanel"]').get_attribute("class")
    restart = page.get_by_role("button", name="Restart the panel")
    assert restart.is_visible()
    shots(page, "panel-install-results")

    # A new page over a new connection (a fresh context has its own connection pool) gets the new certificate.
    wait_until(lambda: server.served_fingerprint() == fingerprint(leaf))  # it checks its files every 0.25 s
    fresh = browser.new_context(ignore_https_errors=True, storage_state=context.storage_state())
    failed: list[str] = []
    try:
        second = fresh.new_page()
        second.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
        response = second.goto(server.url + PAGE)
        assert response.status == 200
        assert expiry_of(second, "cpanel") == day(leaf)
        security = response.security_details()
        assert security["subjectName"] == HOST and security["issuer"] == "Test Intermediate 0", security
        second.wait_for_load_state("networkidle")
        assert failed == []
    finally:
        fresh.close()
    assert server.served_fingerprint() == fingerprint(leaf) != old

    # Restart the panel: the same process re-executes itself and serves again.
    restart.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Restarting the panel").is_visible()
    server.wait_until_serving(starts=2)
    assert server.proc.poll() is None  # same PID (exec), still running
    from playwright.sync_api import Error as PlaywrightError

    response = None
    for _ in range(40):
        try:
            response = page.goto(server.url + PAGE)
        except PlaywrightError:  # connection refused while it comes back
            response = None
        if response is not None and response.status == 200:
            break
        time.sleep(0.25)
    assert response is not None and response.status == 200, "the panel did not come back after the restart"
    assert page.url.endswith(PAGE)  # the session survives the restart
    assert expiry_of(page, "cpanel") == day(leaf)
    assert server.served_fingerprint() == fingerprint(leaf)
    assert "First start" not in server.output()
    shots(page, "after-restart")


def test_restart_lets_the_request_in_flight_finish_before_it_re_executes(tmp_path, monkeypatch):
    """No browser: PanelServer in this process, os.execv replaced, a slow request in flight during the restart."""
    import http.client
    import threading

    from svcssl.web import server as panel_server

    leaf, crt, key, _ = ca_bundle(24)
    (tmp_path / "cert.pem").write_text(crt)
    (tmp_path / "key.pem").write_text(key)
    port = free_port()
    panel = panel_server.PanelServer(f"127.0.0.1:{port}", panel_server.PanelCertificate(tmp_path / "cert.pem",
                                                                                        tmp_path / "key.pem"))
    events: list[str] = []
    replies: list = []

    class Executed(Exception):
        pass

    def fake_execv(*args):
        events.append("execv")
        raise Executed

    def app(environ, start_response):
        time.sleep(1.0)
        events.append("slow request done")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"finished"]

    def client():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                                 context=ssl._create_unverified_context())
        try:
            connection.request("GET", "/slow")
            threading.Timer(0.2, panel.request_restart).start()
            response = connection.getresponse()
            replies.append((response.status, response.read()))
        except Exception as exc:  # noqa: BLE001
            replies.append(repr(exc))

    monkeypatch.setattr(os, "execv", fake_execv)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        with pytest.raises(Executed):
            panel.run(app)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    worker.join(10)
    assert events == ["slow request done", "execv"]
    assert replies == [(200, b"finished")]
