"""Browse Account, Browse Apache and Autofill in Debian's Chromium against a real `svcssl serve` (no JavaScript of ours).

The browser, context, screenshots and server fixtures are test_browser's, imported rather than copied.
"""

from __future__ import annotations

import re

from support import pki
from support.discovery import installed, make_world
from support.panel import ROOT_PASSWORD
from svcssl.x509.inspect import fingerprint
from support.browser import log_in, no_private_key

PAGE = "/scripts2/manageservicecrts"


def install_and_check(page, service: str) -> None:
    page.get_by_role("button", name="Install", exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Results").is_visible(), page.locator("main").inner_text()
    assert "ok" in page.locator(f'.outcome[data-service="{service}"]').get_attribute("class")
    no_private_key(page)


def test_browse_account_browse_apache_and_autofill(tmp_path, start_panel, context, shots):  # noqa: F811
    world = make_world(tmp_path)
    server = start_panel(world.panel.config)
    page = context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda message: csp_errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    log_in(page, server, "root", ROOT_PASSWORD)

    # Browse Account, with the keyboard: type the account, Enter; focus Use Certificate, Enter
    page.get_by_role("link", name="Install a New Certificate").click()
    page.get_by_role("checkbox", name=re.compile(r"^dovecot\b")).check()
    page.get_by_role("button", name="Browse Account").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Browse Account").is_visible()
    assert page.locator('[data-account="dave"]').is_visible()
    page.get_by_label("Account (user name)").focus()
    page.keyboard.type("carol")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Certificates of “carol”").is_visible()
    row = page.locator('tr[data-certificate="shop_example_com"]')
    assert "shop.example.com" in row.inner_text() and "key present" in row.inner_text()
    assert "self-signed" in page.locator('tr[data-certificate="selfsigned"]').inner_text()
    assert "not followed" in page.locator(".problems").inner_text()
    shots(page, "browse-account")
    row.get_by_role("link", name="Use Certificate").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    shop, _ = world.certs["shop"]
    assert page.input_value("#crt").strip() == pki.pem(shop).decode().strip()
    assert page.input_value("#cabundle").strip() == pki.pem(pki.pki().intermediate).decode().strip()
    assert page.input_value("#key") == "" and page.locator("#key-source-note").is_visible()
    assert page.get_by_role("checkbox", name=re.compile(r"^dovecot\b")).is_checked()  # kept through the browse
    no_private_key(page)
    shots(page, "use-certificate-form")
    install_and_check(page, "dovecot")

    # Browse Apache
    page.goto(server.url + PAGE + "/install")
    page.get_by_role("checkbox", name=re.compile(r"^exim\b")).check()
    page.get_by_role("button", name="Browse Apache").click()
    page.wait_for_load_state()
    vhost = page.locator('tr[data-vhost="www.store.example"]')
    assert "store.example" in vhost.inner_text() and "user dave" in vhost.inner_text()
    shots(page, "browse-apache")
    vhost.get_by_role("link", name="Use Certificate").click()
    page.wait_for_load_state()
    assert "Apache" in page.locator("#choice").inner_text()
    assert page.get_by_role("checkbox", name=re.compile(r"^exim\b")).is_checked()
    install_and_check(page, "exim")

    # Autofill by certificate
    page.goto(server.url + PAGE + "/install")
    page.get_by_role("checkbox", name=re.compile(r"^ftp\b")).check()
    dave, _ = world.certs["dave"]
    page.fill("#crt", pki.pem(dave).decode())
    page.get_by_role("button", name="Autofill by certificate").click()
    page.wait_for_load_state()
    assert "the SSL storage of account dave" in page.locator("#choice-key").inner_text()
    assert "Test Intermediate 0" in page.locator("#choice-cabundle").inner_text()
    assert page.input_value("#cabundle").strip() == pki.pem(pki.pki().intermediate).decode().strip()
    no_private_key(page)
    shots(page, "autofill")
    install_and_check(page, "ftp")

    # and what is missing is said
    page.goto(server.url + PAGE + "/install")
    page.fill("#crt", pki.pem(world.certs["erin"][0]).decode())
    page.get_by_role("button", name="Autofill by certificate").click()
    page.wait_for_load_state()
    assert "Issuer R11, Let's Encrypt not found: paste the CA bundle your CA gave you." in \
        page.locator("#choice").inner_text()

    after = installed(world)
    assert after["dovecot"] == fingerprint(shop)
    assert after["exim"] == fingerprint(world.certs["store"][0])
    assert after["ftp"] == fingerprint(dave)
    assert csp_errors == []
