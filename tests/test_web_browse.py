"""Browse Account, Browse Apache, Use Certificate and Autofill through the panel (Flask test client), per role."""

from __future__ import annotations

import re
from html import unescape

import pytest

from support import pki
from support.config import tree_state
from support.discovery import installed, issue, lets_encrypt, make_world
from support.panel import BOB_PASSWORD, csrf_token
from svcssl.operations.context import open_context
from svcssl.x509.inspect import fingerprint, spki_sha256
from support.web import login, new_client

PAGE = "/scripts2/manageservicecrts"
BROWSE = PAGE + "/browse"


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


@pytest.fixture
def panel(world):
    """The panel of the discovery world: conftest's `app`, `root`, `alice` and `bob` serve it."""
    return world.panel


def client_for(app, name, password):
    client = new_client(app)
    assert login(client, name, password).status_code == 302
    return client


def field(html: str, name: str) -> str:
    textarea = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    if textarea:
        return unescape(textarea.group(1)).strip()
    hidden = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', html) or \
        re.search(rf'<input[^>]*value="([^"]*)"[^>]*name="{name}"', html)
    return unescape(hidden.group(1)) if hidden else ""


def post_install(client, data: dict, page: str | None = None):
    page = page or client.get(PAGE + "/install").text
    response = client.post(PAGE + "/install", data={"csrf_token": csrf_token(page), **data},
                           content_type="multipart/form-data")
    if response.status_code == 303 and "/results/" in response.location:  # Post/Redirect/Get: show the result
        return client.get(response.location)
    return response


# --- roles ------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(app):
    client = new_client(app)
    for path in (BROWSE + "/account", BROWSE + "/account?user=carol", BROWSE + "/apache",
                 PAGE + "/install?use=account:carol:" + "0" * 64):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login"), path


def test_reseller_without_the_privilege_gets_403(alice, world):
    shop = fingerprint(world.certs["shop"][0])
    for path in (BROWSE + "/account", BROWSE + "/account?user=carol", BROWSE + "/apache",
                 PAGE + f"/install?use=account:carol:{shop}"):
        assert alice.get(path).status_code == 403, path
    home = alice.get("/").text
    assert alice.post(BROWSE + "/refresh", data={"csrf_token": csrf_token(home)}).status_code == 403


def test_reseller_with_the_privilege_browses_only_its_accounts(bob, world):
    page = bob.get(BROWSE + "/account")
    assert page.status_code == 200
    assert 'data-account="carol"' in page.text and 'data-account="dave"' not in page.text
    assert "only the accounts root assigned to you" in page.text
    assert 'id="refresh-index"' not in page.text  # root's button
    listing = bob.get(BROWSE + "/account?user=carol&service=dovecot")
    assert listing.status_code == 200
    assert 'data-certificate="shop_example_com"' in listing.text and "shop.example.com" in listing.text
    assert "self-signed" in listing.text and "Test Intermediate 0, svcssl tests" in listing.text
    assert "links in an account&#39;s SSL storage are not followed" in listing.text
    assert "orphan.key" in listing.text and "PRIVATE KEY" not in listing.text
    use = f"use=account:carol:{fingerprint(world.certs['shop'][0])}&amp;service=dovecot"
    assert use in listing.text
    other = bob.get(BROWSE + "/account?user=dave")
    assert other.status_code == 404 and "There is no account &#39;dave&#39; among the accounts you may browse" in other.text
    assert "mail.example.net" not in other.text
    assert bob.get(BROWSE + "/apache").status_code == 403
    form = bob.get(PAGE + "/install").text
    assert 'id="browse-account"' in form and 'id="browse-apache"' not in form and 'id="autofill"' in form


def test_root_browses_every_account_and_apache(root, world):
    page = root.get(BROWSE + "/account")
    for account in ("carol", "dave", "erin"):
        assert f'data-account="{account}"' in page.text
    assert "(reseller bob)" in page.text and 'id="refresh-index"' in page.text
    assert 'data-account="dave"' not in root.get(BROWSE + "/account?q=c").text
    assert "mail.example.net" in root.get(BROWSE + "/account?user=dave").text
    apache = root.get(BROWSE + "/apache?service=exim")
    assert apache.status_code == 200
    assert 'data-vhost="www.store.example"' in apache.text and "(default server)" in apache.text
    assert "snake.example.org" in apache.text and "user dave" in apache.text
    assert f"use=apache::{fingerprint(world.certs['store'][0])}&amp;service=exim" in apache.text
    assert "PRIVATE KEY" not in apache.text


# --- Use Certificate -------------------------------------------------------------------------------------


def test_use_certificate_fills_the_form_and_installs_with_the_key_by_reference(bob, world):
    leaf, key = world.certs["shop"]
    before = installed(world)
    form = bob.get(PAGE + f"/install?use=account:carol:{fingerprint(leaf)}&service=dovecot")
    assert form.status_code == 200
    html = form.text
    assert "PRIVATE KEY" not in html
    assert field(html, "crt") == pki.pem(leaf).decode().strip()
    assert field(html, "cabundle") == pki.pem(pki.pki().intermediate).decode().strip()
    assert field(html, "key_source") == f"account:carol:{spki_sha256(leaf.public_key())}"
    assert field(html, "key") == ""
    assert 'id="key-source-note"' in html and "the SSL storage of account carol" in html
    assert re.search(r'value="dovecot"\s+checked', html)
    response = post_install(bob, {"services": ["dovecot"], "crt": field(html, "crt"), "key": "",
                                  "cabundle": field(html, "cabundle"), "key_source": field(html, "key_source")}, html)
    assert response.status_code == 200, response.text
    assert 'class="outcome ok"' in response.text and "PRIVATE KEY" not in response.text
    after = installed(world)
    assert after["dovecot"] == fingerprint(leaf) and after["exim"] == before["exim"]


def test_root_uses_an_apache_certificate(root, world):
    leaf, _ = world.certs["store"]
    html = root.get(PAGE + f"/install?use=apache::{fingerprint(leaf)}").text
    assert field(html, "key_source").startswith("apache::") and "PRIVATE KEY" not in html
    response = post_install(root, {"services": ["exim"], "crt": field(html, "crt"), "cabundle": field(html, "cabundle"),
                                   "key_source": field(html, "key_source")}, html)
    assert response.status_code == 200 and installed(world)["exim"] == fingerprint(leaf)


def test_references_are_checked_again_when_they_come_back(bob, root, world):
    store_leaf, _ = world.certs["store"]
    dave_leaf, _ = world.certs["dave"]
    assert bob.get(PAGE + f"/install?use=apache::{fingerprint(store_leaf)}").status_code == 403
    assert bob.get(PAGE + f"/install?use=account:dave:{fingerprint(dave_leaf)}").status_code == 403
    bad = bob.get(PAGE + "/install?use=nonsense")
    assert bad.status_code == 400 and "The reference is not valid: browse again." in bad.text
    gone = bob.get(PAGE + "/install?use=account:carol:" + "0" * 64)
    assert gone.status_code == 400 and "no longer where it was found" in gone.text
    # bob sends the form back with a key reference he was never given
    etc = tree_state(world.panel.etc)
    for reference in (f"account:dave:{spki_sha256(dave_leaf.public_key())}",
                      f"apache::{spki_sha256(store_leaf.public_key())}", "garbage"):
        leaf = dave_leaf if reference.startswith("account") else store_leaf
        response = post_install(bob, {"services": ["dovecot"], "crt": pki.pem(leaf).decode(),
                                      "cabundle": pki.pem(pki.pki().intermediate).decode(), "key_source": reference})
        assert response.status_code == 400, reference
        assert "not available to you" in response.text or "not valid" in response.text
    assert tree_state(world.panel.etc) == etc


# --- Autofill and the browse buttons ----------------------------------------------------------------------


def test_autofill_by_certificate(root, world):
    leaf, _ = world.certs["shop"]
    response = post_install(root, {"action": "autofill", "services": ["ftp"], "crt": pki.pem(leaf).decode(),
                                   "key": pki.key_pem(pki.ec_key(92)).decode()})
    assert response.status_code == 200
    html = response.text
    assert "PRIVATE KEY" not in html  # not even the key that was pasted
    assert 'id="key-cleared-note"' in html
    assert field(html, "key_source") == f"account:carol:{spki_sha256(leaf.public_key())}"
    assert field(html, "cabundle") == pki.pem(pki.pki().intermediate).decode().strip()
    assert "found in the SSL storage of account carol" in html and re.search(r'value="ftp"\s+checked', html)
    response = post_install(root, {"services": ["ftp"], "crt": field(html, "crt"), "cabundle": field(html, "cabundle"),
                                   "key_source": field(html, "key_source")}, html)
    assert response.status_code == 200 and installed(world)["ftp"] == fingerprint(leaf)


def test_autofill_says_what_is_missing(root, bob, world):
    erin, _ = world.certs["erin"]
    html = post_install(root, {"action": "autofill", "crt": pki.pem(erin).decode()}).text
    assert "Issuer R11, Let&#39;s Encrypt not found: paste the CA bundle your CA gave you." in html
    stranger, _ = issue(["stranger.example"], 93, lets_encrypt())
    html = post_install(root, {"action": "autofill", "crt": pki.pem(stranger).decode()}).text
    assert "No private key on this server matches this certificate" in html
    html = post_install(bob, {"action": "autofill", "crt": pki.pem(world.certs["dave"][0]).decode()}).text
    assert "No private key in the storage you may see matches this certificate" in html
    assert field(html, "key_source") == ""


@pytest.mark.parametrize("crt, message", [
    ("", "Paste a certificate or choose a certificate file, then Autofill."),
    ("not a certificate", "The certificate"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n", "truncated"),
])
def test_autofill_bad_input_is_400_and_changes_nothing(root, world, crt, message):
    before = tree_state(world.panel.etc)
    state = tree_state(world.panel.state / "bundles")
    response = post_install(root, {"action": "autofill", "crt": crt})
    assert response.status_code == 400 and message in unescape(response.text)
    assert tree_state(world.panel.etc) == before and tree_state(world.panel.state / "bundles") == state


def test_a_key_pasted_in_the_certificate_field_is_not_sent_back(root, world):
    leaf, key = world.certs["shop"]
    response = post_install(root, {"services": [], "crt": (pki.pem(leaf) + pki.key_pem(key)).decode()})
    assert response.status_code == 400 and "You must provide a service." in response.text
    assert "PRIVATE KEY" not in response.text and "BEGIN CERTIFICATE" in response.text


def test_browse_buttons_keep_the_ticked_services(root, bob):
    response = post_install(root, {"action": "browse_account", "services": ["dovecot", "exim"], "crt": "x"})
    assert response.status_code == 303 and response.location.endswith("/browse/account?service=dovecot&service=exim")
    response = post_install(root, {"action": "browse_apache", "services": ["ftp"]})
    assert response.status_code == 303 and response.location.endswith("/browse/apache?service=ftp")
    assert post_install(bob, {"action": "browse_apache"}).status_code == 303  # the page itself answers 403
    assert bob.get(BROWSE + "/apache").status_code == 403
    no_csrf = root.post(PAGE + "/install", data={"action": "browse_account"})
    assert no_csrf.status_code == 400


def test_refresh_button_runs_in_the_background(root, world, app):
    page = root.get(BROWSE + "/account")
    (world.home / "dave/ssl/certs/new.crt").write_bytes(pki.pem(issue(["new.example"], 94)[0]))
    response = root.post(BROWSE + "/refresh", data={"csrf_token": csrf_token(page.text),
                                                     "next": BROWSE + "/account?user=dave"})
    assert response.status_code == 303 and response.location.endswith("/browse/account?user=dave")
    refresher = app.extensions["svcssl"].extra["job:index refresh"]
    import time
    deadline = time.monotonic() + 10
    while refresher.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "new.example" in root.get(BROWSE + "/account?user=dave").text
    evil = root.post(BROWSE + "/refresh", data={"csrf_token": csrf_token(page.text), "next": "https://evil.example/"})
    assert evil.location.endswith(BROWSE + "/account")
    assert root.post(BROWSE + "/refresh", data={}).status_code == 400


# --- Resellers: account assignment -----------------------------------------------------------------------------


def test_root_assigns_and_takes_back_accounts(root, app, world):
    page = root.get("/scripts/resellers")
    assert re.search(r'data-reseller="bob".*?data-account="carol"', page.text, re.S)
    token = csrf_token(page.text)
    response = root.post("/scripts/resellers/alice/accounts/assign", data={"csrf_token": token, "accounts": "dave, erin"})
    assert response.status_code == 303
    page = root.get("/scripts/resellers")
    assert "alice now owns dave, erin." in page.text
    bad = root.post("/scripts/resellers/alice/accounts/assign", data={"csrf_token": token, "accounts": "dave nobody"})
    assert bad.status_code == 400 and "No such account under" in bad.text and 'value="dave nobody"' in bad.text
    assert root.post("/scripts/resellers/zed/accounts/assign", data={"csrf_token": token, "accounts": "dave"}).status_code == 404
    assert root.post("/scripts/resellers/root/accounts/assign", data={"csrf_token": token, "accounts": "dave"}).status_code == 404
    assert root.post("/scripts/resellers/alice/accounts/assign", data={"accounts": "dave"}).status_code == 400
    response = root.post("/scripts/resellers/alice/accounts/unassign", data={"csrf_token": token, "accounts": "erin"})
    assert response.status_code == 303
    ctx = open_context(world.panel.settings)
    try:
        assert ctx.store.account_owners() == {"carol": "bob", "dave": "alice"}
    finally:
        ctx.store.close()
    bob = client_for(app, "bob", BOB_PASSWORD)
    own_token = csrf_token(bob.get(PAGE).text)
    assert bob.post("/scripts/resellers/bob/accounts/assign",
                    data={"csrf_token": own_token, "accounts": "dave"}).status_code == 403


def test_browse_and_autofill_agree_a_lone_key_is_usable(world, root):
    """Issue 22: a key with no certificate in its account is not listed as unusable: Autofill uses it when its
    certificate is pasted, and Browse says exactly that."""
    from support.discovery import write_account
    leaf, key = issue(["lone.example.org"], 61)
    write_account(world.home, "erin",
                  keys={"autofill_host.key": pki.key_pem(key)})
    from svcssl.operations.browse import refresh_index
    ctx = open_context(world.panel.settings)
    refresh_index(ctx)
    ctx.store.close()
    page = unescape(root.get(BROWSE + "/account?user=erin").text)
    problems = page.split('id="problems-title"')[1].split("</section>")[0] if 'id="problems-title"' in page else ""
    assert "autofill_host.key" not in problems
    lone = page.split('id="lone-keys"')[1].split("</section>")[0]
    assert "autofill_host.key" in lone and "Autofill by certificate" in lone
    filled = post_install(root, {"crt": pki.pem(leaf).decode(), "action": "autofill"})
    assert "autofill_host.key" in unescape(filled.text) and "PRIVATE KEY" not in filled.text
