"""The WHM API 1 compatible JSON API over real HTTPS against `svcssl serve` on loopback."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
import urllib3

from support import pki
from support.config import require_binaries, tree_state
from support.panel import BOB_PASSWORD, HOST, make_panel
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token, revoke_token
from support.api import Api, ok, on, open_login_link, refused
from support.bad_input import CASES
from support.process import PanelProcess

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

INFO_FIELDS = {"domains", "not_before", "not_after", "is_self_signed", "key_algorithm", "modulus", "modulus_length",
               "ecdsa_curve_name", "ecdsa_public", "issuer.commonName", "issuer.organizationName", "issuer_text",
               "signature_algorithm"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("api")
    panel = make_panel(tmp_path)
    ctx = open_context(panel.settings)
    tokens = {user: create_token(ctx, user, f"{user}-token", actor="test")[1] for user in ("root", "alice", "bob")}
    _, revoked = create_token(ctx, "root", "revoked-token", actor="test")
    revoke_token(ctx, "revoked-token", actor="test")
    past = open_context(panel.settings, clock=lambda: pki.NOW - timedelta(days=3))
    _, expired = create_token(past, "root", "expired-token", 1, actor="test")
    process = PanelProcess(panel.config, tmp_path / "serve.log").start()
    yield {"panel": panel, "url": process.url, "tokens": tokens, "revoked": revoked, "expired": expired,
           "process": process}
    process.proc.terminate()
    process.proc.wait(15)


@pytest.fixture(scope="module")
def root(server):
    return Api(server["url"], "root", server["tokens"]["root"])


def bundle(slot: int, names=(HOST,), key=None):
    ca = pki.pki()
    leaf, key = ca.leaf(list(names), key=key or pki.rsa_key(slot))
    return leaf, pki.pem(leaf).decode(), pki.key_pem(key).decode(), pki.pem(ca.intermediate).decode()


def test_fetch_service_ssl_components_fields(server, root):
    body = ok(root.call("fetch_service_ssl_components"))
    assert body["metadata"]["command"] == "fetch_service_ssl_components"
    services = body["data"]["services"]
    assert [s["service"] for s in services] == ["cpanel", "dovecot", "exim", "ftp"]
    for s in services:
        assert set(s) == {"service", "certificate", "key", "cabundle", "certificate_info", "assessment"}
        assert s["assessment"]["verdict"] == "replace" and s["assessment"]["reasons"][0]["code"] == "self-signed"
        assert s["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY" in s["key"]
        assert s["cabundle"] == ""  # self-signed: no CA bundle
        info = s["certificate_info"]
        assert set(info) == INFO_FIELDS
        assert info["domains"] == [HOST] and info["is_self_signed"] == 1
        assert isinstance(info["not_before"], int) and isinstance(info["not_after"], int)
        assert info["key_algorithm"] == "rsaEncryption" and info["modulus_length"] == 2048
        assert all(c in "0123456789abcdef" for c in info["modulus"])
        assert info["ecdsa_curve_name"] is None and info["ecdsa_public"] is None
        assert info["issuer.commonName"] == HOST and info["issuer_text"] == f"commonName\n{HOST}\n"
        assert info["signature_algorithm"] == "sha256WithRSAEncryption"
    ctx = open_context(server["panel"].settings)
    assert any(e.action == "api fetch_service_ssl_components" and "root-token" in e.actor
               for e in ctx.store.audit_entries())


def test_install_post_and_get_then_fetch(server, root):
    leaf, crt, key, cabundle = bundle(60)
    body = ok(root.call("install_service_ssl_certificate", "POST", service="dovecot", crt=crt, key=key,
                        cabundle=cabundle))
    data = body["data"]
    assert set(data) == {"service", "service_description", "certificate", "certificate_info", "assessment"}
    assert data["assessment"] == {"verdict": "ok", "reasons": [{"code": "ok", "message": "It passes every check (89 days left)."}]}
    assert data["service"] == "dovecot" and data["certificate"] == crt
    assert data["certificate_info"]["issuer.commonName"] == "Test Intermediate 0"
    assert data["certificate_info"]["issuer.organizationName"] == "svcssl tests"
    assert data["certificate_info"]["is_self_signed"] == 0
    fetched = {s["service"]: s for s in ok(root.call("fetch_service_ssl_components"))["data"]["services"]}
    assert fetched["dovecot"]["certificate"] == crt and fetched["dovecot"]["cabundle"] == cabundle
    assert fetched["dovecot"]["key"] == key
    # GET with the query string, an ECDSA key, and a name that does not cover the hostname: a warning
    leaf, crt, key, cabundle = bundle(61, names=("other.example.net",), key=pki.ec_key(61))
    body = ok(root.call("install_service_ssl_certificate", service="exim", crt=crt, key=key, cabundle=cabundle))
    info = body["data"]["certificate_info"]
    assert info["key_algorithm"] == "id-ecPublicKey" and info["ecdsa_curve_name"] == "prime256v1"
    assert info["modulus"] is None and info["modulus_length"] is None and len(info["ecdsa_public"]) == 66
    assert any("does not cover the hostname" in w for w in body["metadata"]["output"]["warnings"])
    entries = open_context(server["panel"].settings).store.audit_entries()
    assert any(e.action == "install" and e.service == "exim" and "API token root-token" in e.actor for e in entries)


def test_pem_with_unencoded_plus_signs_still_installs(server, root):
    """A client that forgot to URI-encode '+' sends spaces; they are put back."""
    leaf, crt, key, cabundle = bundle(62)
    raw = "&".join(f"{k}={v}" for k, v in (("api.version", "1"), ("service", "ftp"), ("crt", crt), ("key", key)))
    response = requests.post(f"{server['url']}/json-api/install_service_ssl_certificate", data=raw,
                             headers={**root.headers, "Content-Type": "application/x-www-form-urlencoded"},
                             verify=False, timeout=60)
    ok(response)


def test_reset(server, root):
    body = ok(root.call("reset_service_ssl_certificate", "POST", service="ftp"))
    assert body["data"]["service"] == "ftp" and body["data"]["certificate_info"]["is_self_signed"] == 1
    assert body["data"]["service_description"]


def test_filters_and_batch(server, root):
    body = ok(root.call("fetch_service_ssl_components", **{
        "api.filter.enable": "1", "api.filter.a.field": "service", "api.filter.a.type": "eq",
        "api.filter.a.arg0": "exim"}))
    assert [s["service"] for s in body["data"]["services"]] == ["exim"]
    body = ok(root.call("fetch_service_ssl_components", **{
        "api.filter.enable": "1", "api.filter.a.field": "service", "api.filter.a.type": "begins",
        "api.filter.a.arg0": "c"}))
    assert [s["service"] for s in body["data"]["services"]] == ["cpanel"]
    response = requests.get(f"{server['url']}/json-api/batch", headers=root.headers, verify=False, timeout=60, params=[
        ("api.version", "1"),
        ("command", "fetch_service_ssl_components?api.filter.enable=1&api.filter.x.field=service"
                    "&api.filter.x.arg0=dovecot&api.filter.x.type=eq"),
        ("command", "reset_service_ssl_certificate?service=cpanel"),
        ("command", "reset_service_ssl_certificate?service=nope"),
    ])
    body = response.json()
    assert body["metadata"]["command"] == "batch" and body["metadata"]["result"] == 0
    results = body["data"]["result"]
    assert [r["metadata"]["command"] for r in results] == ["fetch_service_ssl_components",
                                                           "reset_service_ssl_certificate",
                                                           "reset_service_ssl_certificate"]
    assert [r["metadata"]["result"] for r in results] == [1, 1, 0]
    assert [s["service"] for s in results[0]["data"]["services"]] == ["dovecot"]
    assert "Unknown service 'nope'" in results[2]["metadata"]["reason"]


def test_authentication(server, root):
    url = server["url"]
    assert "Authentication required" in refused(root.call("fetch_service_ssl_components", headers={}), 401)
    assert refused(root.call("fetch_service_ssl_components", headers={"Authorization": "whm root"}), 401)
    assert refused(root.call("fetch_service_ssl_components", headers={"Authorization": "whm root:WRONGTOKEN"}), 401)
    assert refused(root.call("fetch_service_ssl_components", headers={"Authorization": "Bearer x"}), 401)
    assert refused(root.call("fetch_service_ssl_components", headers={"Authorization": "Basic !!!"}), 401)
    assert "revoked" in refused(root.call("fetch_service_ssl_components",
                                          headers={"Authorization": f"whm root:{server['revoked']}"}), 401)
    assert "expired" in refused(root.call("fetch_service_ssl_components",
                                          headers={"Authorization": f"WHM root:{server['expired']}"}), 401)
    # someone else's token under root's name
    assert refused(root.call("fetch_service_ssl_components",
                             headers={"Authorization": f"whm root:{server['tokens']['bob']}"}), 401)
    basic = base64.b64encode(f"bob:{BOB_PASSWORD}".encode()).decode()
    ok(root.call("fetch_service_ssl_components", headers={"Authorization": f"Basic {basic}"}))
    # the scheme word is case-insensitive, and the session prefix form works with a token
    ok(requests.get(f"{url}/cpsess1234567890/json-api/fetch_service_ssl_components?api.version=1",
                    headers={"Authorization": f"WHM root:{server['tokens']['root']}"}, verify=False, timeout=30))


def test_roles(server):
    alice = Api(server["url"], "alice", server["tokens"]["alice"])
    reason = refused(alice.call("fetch_service_ssl_components"), 403)
    assert "privilege" in reason
    assert refused(alice.call("reset_service_ssl_certificate", "POST", service="ftp"), 403)
    bob = Api(server["url"], "bob", server["tokens"]["bob"])
    ok(bob.call("fetch_service_ssl_components"))
    assert refused(bob.call("create_user_session", user="root", service="whostmgrd"), 403)


def test_create_user_session_and_the_browser_prefix(server, root):
    body = ok(root.call("create_user_session", user="root", service="whostmgrd"))
    data = body["data"]
    assert data["cp_security_token"].startswith("/cpsess") and data["session"]
    port = server["url"].rsplit(":", 1)[1]
    # the link names the configured hostname, whatever Host header the API call carried
    assert data["url"].startswith(f"https://{HOST}:{port}" + data["cp_security_token"] + "/login/?session=")
    forged = ok(root.call("create_user_session", user="root", service="whostmgrd",
                          headers={**root.headers, "Host": "evil.example"}))
    assert "evil.example" not in forged["data"]["url"]
    browser = requests.Session()
    confirmed = open_login_link(browser, server["url"], data["url"])
    assert confirmed.status_code == 302
    landing = browser.get(server["url"] + confirmed.headers["Location"], timeout=30, verify=False)
    assert landing.status_code == 200 and "Manage Service SSL Certificates" in landing.text
    assert browser.get(on(server["url"], data["url"]), timeout=30, verify=False).status_code == 401  # one-time
    prefix = data["cp_security_token"]
    cookie_call = browser.get(f"{server['url']}{prefix}/json-api/fetch_service_ssl_components?api.version=1",
                              timeout=30, verify=False)
    assert cookie_call.json()["metadata"]["result"] == 1
    # the cookie alone, without the session's prefix, is refused
    assert browser.get(f"{server['url']}/json-api/fetch_service_ssl_components?api.version=1",
                       timeout=30, verify=False).status_code == 401
    assert browser.get(f"{server['url']}/cpsess999/json-api/fetch_service_ssl_components?api.version=1",
                       timeout=30, verify=False).status_code == 401
    # the same token header works under that prefix
    ok(root.call("fetch_service_ssl_components", prefix=prefix))


def test_contract_errors(server, root):
    response = requests.get(f"{server['url']}/json-api/fetch_service_ssl_components", headers=root.headers,
                            verify=False, timeout=30)
    assert "api.version=1" in refused(response)
    assert "Unknown app (“no_such_function”)" in refused(root.call("no_such_function"))
    assert refused(root.call("reset_service_ssl_certificate", "POST")) == "You must provide a service."
    reason = refused(root.call("reset_service_ssl_certificate", "POST", service="postfix"))
    assert "postfix" in reason and "cpanel, dovecot, exim, ftp" in reason
    assert "certificate (crt)" in refused(root.call("install_service_ssl_certificate", "POST", service="exim"))
    assert "filter type" in refused(root.call("fetch_service_ssl_components", **{
        "api.filter.enable": "1", "api.filter.a.field": "service", "api.filter.a.type": "regex",
        "api.filter.a.arg0": "x"}))


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][0]["cert"] and b"-----BEGIN" in CASES[c][0]["cert"][:64]
                                  or c in ("10 MB file",)])
def test_bad_certificate_input_changes_nothing(case, server, root):
    files, message = CASES[case]
    if files["password"]:  # WHM's install takes no passphrase: an encrypted key is refused as such
        message = "The private key is encrypted: give its passphrase."
    panel = server["panel"]
    before = tree_state(panel.etc)
    params = {"service": "dovecot", "crt": files["cert"].decode("latin-1")}
    if files["key"]:
        params["key"] = files["key"].decode("latin-1")
    if files["cabundle"]:
        params["cabundle"] = files["cabundle"].decode("latin-1")
    reason = refused(root.call("install_service_ssl_certificate", "POST", **params))
    assert message.split(" (")[0] in reason, (case, reason)
    assert tree_state(panel.etc) == before


def test_curl_lines_from_the_whm_documentation(server):
    """The documented calls, with only the host and token changed."""
    require_binaries("curl", install="apt-get install curl")
    token = server["tokens"]["root"]
    host = server["url"]
    header = f"Authorization: whm root:{token}"
    fetch = subprocess.run(["curl", "-sk", "-H", header,
                            f"{host}/json-api/fetch_service_ssl_components?api.version=1"],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(fetch.stdout)["metadata"]["result"] == 1
    leaf, crt, key, cabundle = bundle(63)
    install = subprocess.run(["curl", "-sk", "-H", header,
                              f"{host}/json-api/install_service_ssl_certificate?api.version=1&service=exim"
                              f"&crt={quote(crt, safe='')}&key={quote(key, safe='')}&cabundle={quote(cabundle, safe='')}"],
                             capture_output=True, text=True, timeout=60)
    assert json.loads(install.stdout)["metadata"]["result"] == 1, install.stdout
    reset = subprocess.run(["curl", "-sk", "-H", header,
                            f"{host}/json-api/reset_service_ssl_certificate?api.version=1&service=exim"],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(reset.stdout)["data"]["certificate_info"]["is_self_signed"] == 1


def test_certbot_deploy_hook_installs_the_renewed_certificate(server, tmp_path):
    require_binaries("curl", install="apt-get install curl")
    leaf, crt, key, cabundle = bundle(64)
    lineage = tmp_path / "live" / HOST
    lineage.mkdir(parents=True)
    (lineage / "cert.pem").write_text(crt)
    (lineage / "privkey.pem").write_text(key)
    (lineage / "chain.pem").write_text(cabundle)
    from support.config import REPO_ROOT
    env = {"PATH": "/usr/bin:/bin", "SVCSSL_URL": server["url"], "SVCSSL_USER": "root",
           "SVCSSL_TOKEN": server["tokens"]["root"], "SVCSSL_SERVICES": "dovecot exim", "SVCSSL_INSECURE": "1",
           "RENEWED_LINEAGE": str(lineage)}
    proc = subprocess.run(["bash", str(REPO_ROOT / "contrib/certbot-deploy-hook.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installed on dovecot" in proc.stdout and "installed on exim" in proc.stdout
    fetched = {s["service"]: s for s in ok(Api(server["url"], "root", server["tokens"]["root"])
                                           .call("fetch_service_ssl_components"))["data"]["services"]}
    assert fetched["dovecot"]["certificate"] == crt and fetched["exim"]["certificate"] == crt
    env["SVCSSL_SERVICES"] = "postfix"
    bad = subprocess.run(["bash", str(REPO_ROOT / "contrib/certbot-deploy-hook.sh")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and "Unknown service" in bad.stderr


def test_nested_dotted_filter_and_no_caching(server, root):
    response = root.call("fetch_service_ssl_components", **{
        "api.filter.enable": "1", "api.filter.a.field": "certificate_info.issuer.commonName",
        "api.filter.a.type": "contains", "api.filter.a.arg0": "Test Intermediate"})
    body = ok(response)
    assert response.headers["Cache-Control"] == "no-store"  # it carries private keys
    assert body["data"]["services"] and all(s["certificate_info"]["issuer.commonName"] == "Test Intermediate 0"
                                            for s in body["data"]["services"])
