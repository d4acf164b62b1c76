"""The panel under attack (issue 10, items 3–10), each against a real `svcssl serve` on loopback:
parallel password guessing, a cookie replayed after logout, the API from another site, the session
cookie's prefix, hard links in an account's storage, a costly PKCS#12, a 10 MB paste, and what a
reseller sees of root's credentials."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from support import pki
from support.config import tree_state
from support.discovery import issue, make_world
from support.panel import ALICE_PASSWORD, BOB_PASSWORD, HOST, ROOT_PASSWORD, csrf_token, make_panel
from servers.http import start_http_server
from svcssl.discovery.cabundles import AiaFetcher, build_chain
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token
from svcssl.operations.users import delete_user, set_password
from support.api import Api, ok, on, open_login_link, refused
from support.process import PanelProcess

COOKIE = "__Host-svcssl_session"


def get(session: requests.Session, url: str, **kwargs) -> requests.Response:
    return session.get(url, verify=False, timeout=30, allow_redirects=False, **kwargs)


def post_form(session: requests.Session, base: str, path: str, page: str, data: dict, **kwargs) -> requests.Response:
    """POST a form the way a browser does: the page's CSRF token and a same-origin Referer."""
    token = csrf_token(get(session, base + page).text)
    return session.post(base + path, data={"csrf_token": token, **data}, verify=False, timeout=60,
                        allow_redirects=False, headers={"Referer": base + page}, **kwargs)


def browser_login(base: str, user: str, password: str) -> requests.Session:
    session = requests.Session()
    response = post_form(session, base, "/login", "/login", {"username": user, "password": password})
    assert response.status_code == 302, response.text[:500]
    return session


def signed_in(session_or_cookie, base: str) -> bool:
    """True when the session (or a bare cookie value) still opens the service page."""
    if isinstance(session_or_cookie, str):
        response = requests.get(base + "/scripts2/manageservicecrts", cookies={COOKIE: session_or_cookie},
                                verify=False, timeout=30, allow_redirects=False)
    else:
        response = get(session_or_cookie, base + "/scripts2/manageservicecrts")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    return False


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    panel = make_panel(tmp_path)
    ctx = open_context(panel.settings)
    tokens = {user: create_token(ctx, user, f"{user}-deploy", actor="test")[1] for user in ("root", "bob")}
    ctx.store.close()
    process = PanelProcess(panel.config, tmp_path / "serve.log").start()
    yield {"panel": panel, "url": process.url, "tokens": tokens, "process": process}
    process.stop()


def fingerprints(panel) -> dict[str, str]:
    from svcssl.operations.inventory import list_services
    ctx = open_context(panel.settings)
    try:
        return {s.service.name: s.fingerprint for s in list_services(ctx)}
    finally:
        ctx.store.close()


# --- 3: login throttling is one atomic step -------------------------------------------------------

def test_forty_parallel_wrong_passwords_get_at_most_five_password_checks(served):
    base = served["url"]
    sessions = []
    for _ in range(40):  # each with its own CSRF token, as forty browser tabs would have
        session = requests.Session()
        sessions.append((session, csrf_token(get(session, base + "/login").text)))
    barrier = threading.Barrier(40)

    def guess(pair):
        session, token = pair
        barrier.wait()
        return session.post(base + "/login", data={"csrf_token": token, "username": "alice", "password": "wrong-guess"},
                            headers={"Referer": base + "/login"}, verify=False, timeout=120,
                            allow_redirects=False).status_code

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(guess, sessions))
    assert statuses.count(401) + statuses.count(429) == 40, statuses
    # four plain refusals and the fifth check says the lock began; every other guess never reached scrypt
    assert statuses.count(401) <= 4 and statuses.count(429) >= 36, statuses
    # even the right password waits out the lock now
    response = post_form(requests.Session(), base, "/login", "/login", {"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 429 and "Too many failed logins" in response.text


# --- 4: logout, a password change and deleting the user end the session ---------------------------

def test_a_cookie_copied_before_logout_no_longer_works(served):
    base = served["url"]
    session = browser_login(base, "root", ROOT_PASSWORD)
    copied = session.cookies[COOKIE]
    assert signed_in(copied, base)
    assert post_form(session, base, "/logout", "/scripts2/manageservicecrts", {}).status_code == 302
    assert not signed_in(copied, base)
    assert not signed_in(session, base)
    again = browser_login(base, "root", ROOT_PASSWORD)  # logging in again works, with a new session
    assert signed_in(again, base) and again.cookies[COOKIE] != copied


def test_a_password_change_and_deleting_the_user_end_its_sessions(served, tmp_path):
    base, panel = served["url"], served["panel"]
    ctx = open_context(panel.settings)
    try:
        from svcssl.operations.users import create_user, set_service_ssl_privilege
        create_user(ctx, "carl", "reseller", "carl-password-1", actor="test")
        set_service_ssl_privilege(ctx, "carl", True, actor="test")
        _, token = create_token(ctx, "carl", "carl-token", actor="test")
        first = browser_login(base, "carl", "carl-password-1")
        assert signed_in(first, base)
        set_password(ctx, "carl", "carl-password-2", actor="test")
        assert not signed_in(first, base)
        second = browser_login(base, "carl", "carl-password-2")
        api = Api(base, "carl", token)
        ok(api.call("fetch_service_ssl_components"))
        delete_user(ctx, "carl", actor="test")
        assert not signed_in(second, base)
        assert refused(api.call("fetch_service_ssl_components"), 401)  # its tokens are revoked with it
    finally:
        ctx.store.close()


# --- 5: the JSON API refuses other sites' pages that carry a password or a session ----------------

def test_a_cross_site_basic_post_is_refused_and_changes_nothing(served):
    base, panel = served["url"], served["panel"]
    before = fingerprints(panel)
    state = tree_state(panel.etc)
    basic = {"Authorization": "Basic " + base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()}
    url = base + "/json-api/reset_service_ssl_certificate"
    for headers in ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "https://evil.example"},  # an older browser: Origin alone
                    {"Sec-Fetch-Site": "same-site"}):  # a sibling host's page
        response = requests.post(url, data={"api.version": "1", "service": "exim"}, headers={**basic, **headers},
                                 verify=False, timeout=60)
        assert "another site" in refused(response, 403)
    assert fingerprints(panel) == before and tree_state(panel.etc) == state
    # the same call from a script (no Origin, no Fetch Metadata), or from the panel's own page, works
    ok(requests.post(url, data={"api.version": "1", "service": "exim"}, headers=basic, verify=False, timeout=60))
    ok(requests.get(base + "/json-api/fetch_service_ssl_components?api.version=1&service=exim", verify=False,
                    headers={**basic, "Sec-Fetch-Site": "same-origin", "Origin": base}, timeout=60))
    # a token is not something a browser replays by itself: token calls are not refused
    token = {"Authorization": f"whm root:{served['tokens']['root']}"}
    ok(requests.get(base + "/json-api/fetch_service_ssl_components?api.version=1", verify=False,
                    headers={**token, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, timeout=60))


def test_a_cross_site_request_with_the_browser_session_is_refused(served):
    base = served["url"]
    browser = browser_login(base, "root", ROOT_PASSWORD)
    body = ok(Api(base, "root", served["tokens"]["root"]).call("create_user_session", user="root", service="whostmgrd"))
    assert open_login_link(browser, base, body["data"]["url"]).status_code == 302
    prefix = body["data"]["cp_security_token"]
    url = f"{base}{prefix}/json-api/fetch_service_ssl_components?api.version=1"
    assert "another site" in refused(browser.get(url, headers={"Sec-Fetch-Site": "cross-site"}, verify=False,
                                                 timeout=30), 403)
    ok(browser.get(url, headers={"Sec-Fetch-Site": "same-origin"}, verify=False, timeout=30))


def test_a_401_challenge_makes_no_browser_prompt_unless_basic_was_tried(served):
    url = served["url"] + "/json-api/fetch_service_ssl_components?api.version=1"
    plain = requests.get(url, verify=False, timeout=30)
    assert plain.status_code == 401 and plain.headers["WWW-Authenticate"] == 'whm realm="svcssl"'
    wrong = requests.get(url, auth=("nobody", "wrong-password"), verify=False, timeout=30)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic ")


# --- 6: the session cookie cannot be planted by a sibling host ------------------------------------

def test_the_session_cookie_has_the_host_prefix(served):
    base = served["url"]
    session = requests.Session()
    response = post_form(session, base, "/login", "/login", {"username": "bob", "password": BOB_PASSWORD})
    cookie = next(c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "="))
    attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    # a cookie without the prefix (as a sibling host could set for the parent domain) is not a session
    stolen = session.cookies[COOKIE]
    assert requests.get(base + "/scripts2/manageservicecrts", cookies={"svcssl_session": stolen}, verify=False,
                        timeout=30, allow_redirects=False).status_code == 302


# --- 9: a 10 MB paste is not echoed back -----------------------------------------------------------

def test_a_ten_megabyte_paste_gets_a_short_answer(served):
    base, panel = served["url"], served["panel"]
    session = browser_login(base, "root", ROOT_PASSWORD)
    state = tree_state(panel.etc)
    huge = "-----BEGIN CERTIFICATE-----\n" + "A" * (10 * 1024 * 1024) + "\n-----END CERTIFICATE-----\n"
    page = "/scripts2/manageservicecrts/install"
    response = post_form(session, base, page, page, {"services": "dovecot", "crt": huge, "key": "", "cabundle": ""})
    assert response.status_code in (400, 413)
    assert len(response.content) < 64 * 1024, len(response.content)
    assert "AAAAAAAAAAAAAAAA" not in response.text and "Traceback" not in response.text
    assert "1,048,576-byte limit" in response.text  # it says how large an input may be
    long_name = "x" * 100_000
    login = post_form(requests.Session(), base, "/login", "/login", {"username": long_name, "password": "p"})
    # over the 64 KiB a request may carry before sign-in: 413 from the server itself
    assert login.status_code == 413 and long_name[:1000] not in login.text and len(login.content) < 64 * 1024
    unknown = Api(base, "root", served["tokens"]["root"]).call("reset_service_ssl_certificate", "POST",
                                                                service="s" * 100_000)
    reason = refused(unknown)
    assert reason.startswith("Unknown service 'ssss") and len(reason) < 500
    assert tree_state(panel.etc) == state


# --- 8: a PKCS#12 that asks for millions of rounds is refused before any is run ---------------------

def p12_with_rounds(rounds: int, password: bytes = b"export-pw") -> bytes:
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(61))
    encryption = PrivateFormat.PKCS12.encryption_builder().kdf_rounds(rounds).build(password)
    return pkcs12.serialize_key_and_certificates(b"svcssl", key, leaf, [ca.intermediate], encryption)


def test_a_high_iteration_pkcs12_or_encrypted_key_is_refused_quickly(served, run_cli, tmp_path):
    base, panel = served["url"], served["panel"]
    state, before = tree_state(panel.etc), fingerprints(panel)
    costly = p12_with_rounds(5_000_000)
    session = browser_login(base, "root", ROOT_PASSWORD)
    page = "/scripts2/manageservicecrts/install"

    def upload(data: dict, files: dict) -> tuple[requests.Response, float]:
        token = csrf_token(get(session, base + page).text)
        started = time.monotonic()
        response = session.post(base + page, data={"csrf_token": token, **data}, files=files,
                                headers={"Referer": base + page}, verify=False, timeout=60, allow_redirects=False)
        return response, time.monotonic() - started

    response, seconds = upload({"services": "dovecot", "password": "export-pw"},
                               {"crt_file": ("costly.p12", costly, "application/x-pkcs12")})
    assert response.status_code == 400 and "5,000,000 key-derivation rounds" in response.text
    assert seconds < 2, seconds  # deriving 5,000,000 rounds takes several seconds per attempt
    # the same cost hidden in an encrypted private key (PKCS#8, PBES2) beside a PEM certificate
    leaf, key = pki.pki().leaf([HOST], key=pki.rsa_key(65))
    encrypted_key = subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes256", "-iter", "3000000",
                                    "-passout", "pass:key-pw"], input=pki.key_pem(key), capture_output=True,
                                   check=True).stdout
    response, seconds = upload({"services": "dovecot", "password": "key-pw", "crt": pki.pem(leaf).decode(),
                                "key": encrypted_key.decode()}, {})
    assert response.status_code == 400 and "3,000,000 key-derivation rounds" in response.text and seconds < 2
    # and on the command line: exit 2, nothing changed
    (tmp_path / "costly.p12").write_bytes(costly)
    (tmp_path / "pw").write_text("export-pw\n")
    started = time.monotonic()
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "costly.p12"), "--password-file",
                     str(tmp_path / "pw"), config=panel.config)
    assert result.code == 2 and "5,000,000 key-derivation rounds" in result.err and time.monotonic() - started < 2
    assert tree_state(panel.etc) == state and fingerprints(panel) == before
    # a real export at a high but sane count (100,000 rounds) still installs
    response, _ = upload({"services": "ftp", "password": "export-pw"},
                         {"crt_file": ("fine.p12", p12_with_rounds(100_000), "application/x-pkcs12")})
    assert response.status_code in (200, 303), response.text[:2000]
    assert fingerprints(panel)["ftp"] != before["ftp"]


# --- 10: a reseller sees who changed a certificate, not root's credentials -------------------------

def test_a_reseller_sees_only_root_in_the_history(served):
    base = served["url"]
    leaf, key = pki.pki().leaf([HOST], key=pki.rsa_key(62))
    ok(Api(base, "root", served["tokens"]["root"]).call(
        "install_service_ssl_certificate", "POST", service="exim", crt=pki.pem(leaf).decode(),
        key=pki.key_pem(key).decode(), cabundle=pki.pem(pki.pki().intermediate).decode()))
    details = base + "/scripts2/manageservicecrts/details/exim"
    as_root = get(browser_login(base, "root", ROOT_PASSWORD), details).text
    assert "API token root-deploy" in as_root and "127.0.0.1" in as_root
    as_bob = get(browser_login(base, "bob", BOB_PASSWORD), details)
    assert as_bob.status_code == 200
    assert "root-deploy" not in as_bob.text and "API token" not in as_bob.text and "127.0.0.1" not in as_bob.text
    assert "<td>root</td>" in as_bob.text


# --- 7: hard links and other users' files in an account's storage ---------------------------------

ACCOUNT_UID = 4242


@pytest.fixture(scope="module")
def hostile_world(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile-world")
    world = make_world(tmp_path)
    carol = world.home / "carol"
    for directory, dirs, files in os.walk(carol):  # carol's storage belongs to carol's user
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), ACCOUNT_UID, ACCOUNT_UID)
    os.chown(carol, ACCOUNT_UID, ACCOUNT_UID)
    # root's own certificate and key, outside any account (as a service's key would be)
    secret_leaf, secret_key = issue(["secret.example.com"], 63)
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "secret.key").write_bytes(pki.key_pem(secret_key))
    os.chmod(secret_dir / "secret.key", 0o600)
    # carol hard-links it into her storage (possible on any filesystem without protected_hardlinks)
    os.link(secret_dir / "secret.key", carol / "ssl/keys/secret.key")
    (carol / "ssl/certs/secret.crt").write_bytes(pki.pem(secret_leaf))
    os.chown(carol / "ssl/certs/secret.crt", ACCOUNT_UID, ACCOUNT_UID)
    # and a file that is simply someone else's (root's), not linked
    other_leaf, other_key = issue(["other.example.com"], 64)
    (carol / "ssl/certs/other.crt").write_bytes(pki.pem(other_leaf))
    os.chown(carol / "ssl/certs/other.crt", ACCOUNT_UID, ACCOUNT_UID)
    (carol / "ssl/keys/other.key").write_bytes(pki.key_pem(other_key))  # owned by root
    ctx = open_context(world.panel.settings)
    tokens = {user: create_token(ctx, user, f"{user}-links", actor="test")[1] for user in ("root", "bob")}
    ctx.store.close()
    process = PanelProcess(world.panel.config, tmp_path / "serve.log").start()
    yield world, {user: Api(process.url, user, token) for user, token in tokens.items()}, \
        {"secret": secret_leaf, "other": other_leaf, "shop": world.certs["shop"]}, process
    process.stop()


def test_a_hard_linked_key_is_not_offered_to_the_accounts_reseller(hostile_world):
    world, api, certs, process = hostile_world
    for user in ("bob", "root"):
        for name in ("secret", "other"):
            body = ok(api[user].call("fetchsslinfo", "POST", crtdata=pki.pem(certs[name]).decode()))
            assert not body["data"]["key"], (user, name, body["data"]["key_origin"])
    # carol's own key, in her own file, is still found
    shop_leaf, shop_key = certs["shop"]
    data = ok(api["bob"].call("fetchsslinfo", "POST", crtdata=pki.pem(shop_leaf).decode()))["data"]
    assert data["key"] == pki.key_pem(shop_key).decode()


def test_browse_lists_the_linked_and_foreign_files_as_unusable_with_the_reason(hostile_world, run_cli):
    world, api, certs, process = hostile_world
    session = browser_login(process.url, "bob", BOB_PASSWORD)
    page = get(session, process.url + "/scripts2/manageservicecrts/browse/account?user=carol")
    assert page.status_code == 200, page.text[:500]
    assert "secret.key" in page.text and "has 2 hard links" in page.text
    assert "other.key" in page.text and "not to the account&#39;s user" in page.text


# --- 10: the AIA download connects to the address it checked, without proxies, to a few URLs --------

def leaf_with_issuer_urls(urls: list[str], slot: int):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from support.discovery import lets_encrypt

    le = lets_encrypt()
    base, _ = issue(["aia.example"], slot, le)
    builder = x509.CertificateBuilder().subject_name(base.subject).issuer_name(base.issuer) \
        .public_key(base.public_key()).serial_number(base.serial_number) \
        .not_valid_before(base.not_valid_before_utc).not_valid_after(base.not_valid_after_utc) \
        .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url)) for url in urls]),
            critical=False)
    return builder.sign(le.intermediate_key, hashes.SHA256()), le


def test_the_aia_download_uses_the_checked_address_no_proxy_and_few_urls(monkeypatch):
    from support.discovery import lets_encrypt
    le = lets_encrypt()
    http = start_http_server({"/r11.der": ("application/pkix-cert", pki.der(le.intermediate))})
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def rebinding_dns(host, port, *args, **kwargs):
        if host == "issuer.test":  # first answer: this test's server; any later one: somewhere else
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # a proxy that is not there: must not be used
    try:
        leaf, _ = leaf_with_issuer_urls([f"http://issuer.test:{http.port}/r11.der"], 91)
        result = build_chain(leaf, lambda c: [], fetcher=AiaFetcher(timeout=2, allow_local=True))
        assert result.chain == (le.intermediate,), result.notes
        assert lookups == ["issuer.test"]  # resolved once; the connection went to that answer
        many, _ = leaf_with_issuer_urls([http.url(f"/missing-{n}.der") for n in range(6)], 92)
        result = build_chain(many, lambda c: [], fetcher=AiaFetcher(timeout=2, allow_local=True))
        assert result.missing and sum(http.hits[f"/missing-{n}.der"] for n in range(6)) == 2
    finally:
        http.stop()


# --- issue 18, item 3: every key derivation counted before any is run ------------------------------

def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    from cryptography.x509 import ObjectIdentifier
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: F401 - cryptography loaded
    arcs = [int(a) for a in ObjectIdentifier(dotted).dotted_string.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(chunk)
    return _tlv(0x06, body)


PBES2, PBKDF2, SCRYPT, AES256_CBC = "1.2.840.113549.1.5.13", "1.2.840.113549.1.5.12", "1.3.6.1.4.1.11591.4.11", \
    "2.16.840.1.101.3.4.1.42"
DATA, SHROUDED_BAG, SAFE_CONTENTS_BAG = "1.2.840.113549.1.7.1", "1.2.840.113549.1.12.10.1.2", "1.2.840.113549.1.12.10.1.6"


def _encrypted_key(kdf: bytes) -> bytes:
    """An EncryptedPrivateKeyInfo (PBES2 with this KDF); its ciphertext is never reached."""
    scheme = _seq(_oid(PBES2), _seq(kdf, _seq(_oid(AES256_CBC), _tlv(0x04, b"\0" * 16))))
    return _seq(scheme, _tlv(0x04, b"\x55" * 48))


def _scrypt(n: int, r: int, p: int) -> bytes:
    return _seq(_oid(SCRYPT), _seq(_tlv(0x04, b"salt" * 4), _int(n), _int(r), _int(p)))


def _pbkdf2(rounds: int) -> bytes:
    return _seq(_oid(PBKDF2), _seq(_tlv(0x04, b"salt" * 4), _int(rounds)))


def _pfx(bags: list[bytes], nest: int = 0) -> bytes:
    """A PFX whose authSafe holds these bags, `nest` safeContentsBags deep, plus a cheap MAC."""
    contents = b"".join(bags)
    for _ in range(nest):
        contents = _seq(_oid(SAFE_CONTENTS_BAG), _tlv(0xA0, _seq(contents)))
    safe = _seq(_oid(DATA), _tlv(0xA0, _tlv(0x04, _seq(contents))))
    auth_safe = _seq(_oid(DATA), _tlv(0xA0, _tlv(0x04, _seq(safe))))
    mac = _seq(_seq(_seq(_oid("1.3.14.3.2.26"), _tlv(0x05, b"")), _tlv(0x04, b"\0" * 20)), _tlv(0x04, b"s" * 8),
               _int(2048))
    return _seq(_int(3), auth_safe, mac)


def _shrouded(key: bytes) -> bytes:
    return _seq(_oid(SHROUDED_BAG), _tlv(0xA0, key))


def _encrypted_part(bags: list[bytes], password: bytes) -> bytes:
    """A ContentInfo of type encryptedData (PBES2, PBKDF2 2,048 rounds, AES-256-CBC) holding these bags."""
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt, iv = b"s" * 16, b"i" * 16
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, 2048).derive(password)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    blob = encryptor.update(padder.update(_seq(*bags)) + padder.finalize()) + encryptor.finalize()
    kdf = _seq(_oid(PBKDF2), _seq(_tlv(0x04, salt), _int(2048), _seq(_oid("1.2.840.113549.2.9"), _tlv(0x05, b""))))
    scheme = _seq(_oid(PBES2), _seq(kdf, _seq(_oid(AES256_CBC), _tlv(0x04, iv))))
    encrypted_data = _seq(_int(0), _seq(_oid(DATA), scheme, _tlv(0x80, blob)))
    return _seq(_oid("1.2.840.113549.1.7.6"), _tlv(0xA0, encrypted_data))


def test_a_costly_key_bag_hidden_inside_an_encrypted_part_is_stopped_by_the_cpu_limit():
    """Invisible before decryption: the child process that opens the file runs out of CPU time, and says so."""
    from svcssl.errors import InputError
    from svcssl.x509.parse import read_pkcs12

    hidden = _shrouded(_encrypted_key(_pbkdf2(30_000_000)))  # ~10 s of CPU if it were derived
    auth_safe = _seq(_oid(DATA), _tlv(0xA0, _tlv(0x04, _seq(_encrypted_part([hidden], b"pw")))))
    pfx = _seq(_int(3), auth_safe)  # no MAC: optional in PKCS#12
    with pytest.raises(InputError) as caught:
        read_pkcs12(pfx, b"pw")
    assert "more than 2 s of CPU to open" in caught.value.message, caught.value.message
    # an ordinary export still opens, and a wrong password is still called one
    leaf, key = pki.pki().leaf([HOST], key=pki.rsa_key(67))
    fine = pkcs12.serialize_key_and_certificates(b"x", key, leaf, None, __import__(
        "cryptography.hazmat.primitives.serialization", fromlist=["BestAvailableEncryption"]).BestAvailableEncryption(b"pw"))
    opened = read_pkcs12(fine, b"pw")
    assert opened.keys[0].private_numbers() == key.private_numbers() and opened.certificates[0] == leaf
    with pytest.raises(InputError) as caught:
        read_pkcs12(fine, b"nope")
    assert "password is wrong" in caught.value.message


def test_scrypt_nested_and_many_bags_are_counted_before_any_derivation():
    from svcssl.x509.parse import read_pkcs12, read_private_key
    from svcssl.errors import InputError

    def refusal(call) -> str:
        with pytest.raises(InputError) as caught:
            call()
        return caught.value.message

    # scrypt under PBES2, in a PKCS#12 and alone: named with its parameters, not "wrong password"
    costly = _scrypt(1 << 20, 8, 256)
    message = refusal(lambda: read_pkcs12(_pfx([_shrouded(_encrypted_key(costly))]), b"pw"))
    assert "scrypt N=2^20, r=8, p=256" in message and "exceeds the limit" in message, message
    pem = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + base64.encodebytes(_encrypted_key(costly)) + \
        b"-----END ENCRYPTED PRIVATE KEY-----\n"
    assert "scrypt N=2^20" in refusal(lambda: read_private_key(pem, b"pw"))
    # shrouded key bags nested in safeContentsBags, each under the per-derivation cap, too many together
    bags = [_shrouded(_encrypted_key(_pbkdf2(150_000))) for _ in range(5)]
    message = refusal(lambda: read_pkcs12(_pfx(bags, nest=6), b"pw"))
    assert "752,048 key-derivation rounds in all (6 derivations)" in message, message
    # a costly bag hidden behind more parts than the walker reads: refused, never half counted
    padding = [_seq(_int(1)) for _ in range(25_000)]
    message = refusal(lambda: read_pkcs12(_pfx(padding + [_shrouded(_encrypted_key(_pbkdf2(5_000_000)))]), b"pw"))
    assert "too many parts" in message, message
    # a real scrypt key at OpenSSL's defaults (N=2^14, r=8, p=1) opens; p=16 is refused with its figures
    leaf, key = pki.pki().leaf([HOST], key=pki.rsa_key(66))
    fine = subprocess.run(["openssl", "pkcs8", "-topk8", "-scrypt", "-passout", "pass:k"], input=pki.key_pem(key),
                          capture_output=True, check=True).stdout
    assert read_private_key(fine, b"k").private_numbers() == key.private_numbers()
    heavy = subprocess.run(["openssl", "pkcs8", "-topk8", "-scrypt", "-scrypt_p", "16", "-passout", "pass:k"],
                           input=pki.key_pem(key), capture_output=True, check=True).stdout
    assert "scrypt N=2^14, r=8, p=16" in refusal(lambda: read_private_key(heavy, b"k"))


# --- issue 18, item 6: a one-time login link never signs in on a GET -------------------------------

def test_a_login_link_opened_from_another_site_neither_signs_in_nor_ends_roots_session(served):
    import re

    base = served["url"]
    root_browser = browser_login(base, "root", ROOT_PASSWORD)
    link = on(base, ok(Api(base, "bob", served["tokens"]["bob"]).call("create_user_session", user="bob"))
              ["data"]["url"])
    cross_site = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Referer": "https://evil.example/"}
    # a cross-site navigation without the (SameSite=Strict) cookie: a self-reloading page, no cookie set
    bare = requests.get(link, headers=cross_site, verify=False, timeout=30, allow_redirects=False)
    assert bare.status_code == 200 and 'http-equiv="refresh"' in bare.text and "Set-Cookie" not in bare.headers
    # with root's cookie: the question, nothing more; root is still root and the link still unused
    page = get(root_browser, link, headers=cross_site)
    assert page.status_code == 200 and "Sign in as bob?" in page.text and "signed in as <strong>root" in page.text
    assert '<span class="who">root' in get(root_browser, base + "/scripts2/manageservicecrts").text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    # another site's form posting the page's fields: refused (Fetch Metadata), and without the page's cookie too
    forged = root_browser.post(link, data=fields, headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                               verify=False, timeout=30, allow_redirects=False)
    assert forged.status_code == 403 and "not confirmed" in forged.text
    stranger = requests.Session()
    stranger.cookies.update({COOKIE: root_browser.cookies[COOKIE]})
    assert stranger.post(link, data=fields, verify=False, timeout=30, allow_redirects=False).status_code == 403
    assert signed_in(root_browser, base)
    # confirmed from the panel's own page: bob, and the link is used up
    bob_browser = requests.Session()
    assert open_login_link(bob_browser, base, link).status_code == 302
    assert '<span class="who">bob' in bob_browser.get(base + "/", verify=False, timeout=30).text
    assert get(bob_browser, link).status_code == 401


# --- issue 18, item 2: IPv6 clients by network, a brake per account -------------------------------

def test_ipv6_clients_count_by_their_64_and_ipv4_by_address():
    from svcssl.operations.clients import client_group

    assert client_group("2001:db8:1:2::1") == client_group("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert client_group("2001:db8:1:3::1") != client_group("2001:db8:1:2::1")
    assert client_group("2001:db8:1:2::1", 48) == client_group("2001:db8:1:ff::1", 48) == "2001:db8:1::/48"
    assert client_group("::ffff:192.0.2.1") == "192.0.2.1" and client_group("192.0.2.1") != client_group("192.0.2.2")


def test_the_login_throttle_counts_a_whole_ipv6_64_and_the_account_brake_spares_a_known_device(tmp_path):
    from datetime import timedelta
    from svcssl.operations.users import LoginError, LoginThrottled, authenticate

    panel = make_panel(tmp_path)
    now = [pki.NOW]
    ctx = open_context(panel.settings, clock=lambda: now[0])
    # 20 wrong guesses from 20 addresses of one /64: the whole /64 is throttled, another /64 is not
    for n in range(20):
        with pytest.raises(LoginError):
            authenticate(ctx, f"nobody{n}", "wrong-password", f"2001:db8:aa:1::{n + 1:x}")
    with pytest.raises(LoginThrottled):
        authenticate(ctx, "root", ROOT_PASSWORD, "2001:db8:aa:1:9999::1")
    assert authenticate(ctx, "root", ROOT_PASSWORD, "2001:db8:aa:2::1").name == "root"
    # 10 failures for alice from 10 networks: the 11th attempt waits a minute, even with her password ...
    for n in range(10):
        with pytest.raises(LoginError) as failed:
            authenticate(ctx, "alice", "wrong-password", f"2001:db8:{n + 1:x}::1")
        assert not isinstance(failed.value, LoginThrottled) or n == 9
    with pytest.raises(LoginThrottled) as braked:
        authenticate(ctx, "alice", ALICE_PASSWORD, "198.51.100.7")
    assert 55 <= braked.value.retry_after <= 61
    # ... but not from her own browser (the signed known-device cookie of her last login)
    assert authenticate(ctx, "alice", ALICE_PASSWORD, "198.51.100.8", known_device=True).name == "alice"
    # the brake doubles with each further failure, capped at an hour
    for n in range(12):
        with pytest.raises(LoginThrottled) as braked:
            authenticate(ctx, "alice", "wrong-password", f"203.0.113.{n + 1}")
        now[0] += timedelta(seconds=braked.value.retry_after)
        with pytest.raises(LoginError):
            authenticate(ctx, "alice", "wrong-password", f"203.0.113.{n + 101}")
    with pytest.raises(LoginThrottled) as braked:
        authenticate(ctx, "alice", "wrong-password", "203.0.113.250")
    assert 3599 <= braked.value.retry_after <= 3601  # capped at an hour
    ctx.store.close()


def test_the_login_form_answers_429_with_retry_after_and_lets_the_known_browser_in(tmp_path):
    import http.client
    import re as regex

    from support.process import PanelProcess

    panel = make_panel(tmp_path)
    process = PanelProcess(panel.config, tmp_path / "serve.log").start()
    port = int(process.url.rsplit(":", 1)[1])
    tls = __import__("ssl")._create_unverified_context()

    def login(source: str, password: str, cookies: dict) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=30, source_address=(source, 0))
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request("GET", "/login", headers={"Cookie": header} if header else {})
        page = conn.getresponse()
        html = page.read().decode()
        for value in page.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
        token = regex.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
        body = f"csrf_token={token}&username=alice&password={password}"
        conn.request("POST", "/login", body=body, headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "Referer": process.url + "/login",
            "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return response

    try:
        known: dict = {}
        assert login("127.0.0.1", ALICE_PASSWORD, known).status == 302 and "__Host-svcssl_device" in known
        for n in range(10):
            assert login(f"127.0.1.{n + 1}", "wrong-password", {}).status == 401
        braked = login("127.0.2.1", ALICE_PASSWORD, {})
        assert braked.status == 429 and 1 <= int(braked.headers["Retry-After"]) <= 61
        assert login("127.0.2.2", ALICE_PASSWORD, {"__Host-svcssl_device": known["__Host-svcssl_device"]}).status == 302
    finally:
        process.stop()
