"""Trust codes on the web surfaces (issue 24): the table, Details, the Home banner, the install form's confirmation
and the API, for a certificate from a private CA whose root is not in [trust] ca_file."""

from __future__ import annotations

import io

from support import pki
from support.config import tree_state
from support.panel import csrf_token
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token

PAGE = "/scripts2/manageservicecrts"
HOST = "mail.example.com"


def unknown_ca():
    root_key, int_key = pki.ec_key(800), pki.ec_key(801)
    root = pki.make_ca("Stranger Root CA", root_key)
    intermediate = pki.make_ca("Stranger Issuing CA", int_key, (root, root_key))
    key = pki.rsa_key(80)
    leaf = pki.make_leaf([HOST], key, intermediate, int_key)
    return leaf, key, intermediate


def post_install(client, services, crt: bytes, key: bytes, cabundle: bytes, **extra):
    page = client.get(PAGE + "/install")
    data = {"csrf_token": csrf_token(page.text), "services": list(services), "crt": crt.decode(),
            "key": key.decode(), "cabundle": cabundle.decode(), **extra}
    return client.post(PAGE + "/install", data=data, content_type="multipart/form-data", follow_redirects=True)


def test_the_form_installs_an_untrusted_certificate_only_when_confirmed(root, panel):
    leaf, key, intermediate = unknown_ca()
    before = tree_state(panel.etc)
    response = post_install(root, ["dovecot"], pki.pem(leaf), pki.key_pem(key), pki.pem(intermediate))
    assert response.status_code == 400
    text = response.text
    assert "Stranger Root CA" in text and "Install it anyway" in text and 'id="allow_untrusted"' in text
    assert "PRIVATE KEY" not in text
    assert tree_state(panel.etc) == before
    response = post_install(root, ["dovecot"], pki.pem(leaf), pki.key_pem(key), pki.pem(intermediate),
                            allow_untrusted="y")
    assert response.status_code == 200 and 'class="outcome ok"' in response.text
    assert "would replace this certificate because it is not trusted" in response.text
    # the table, Details and the Home banner say the same
    table = root.get(PAGE).text
    assert 'data-code="untrusted"' in table and "not trusted" in table
    details = root.get(PAGE + "/details/dovecot").text
    assert 'data-verdict="replace"' in details and 'data-code="untrusted"' in details
    home = root.get("/scripts/audit").text  # the banner is on every page root sees
    assert "Clients do not trust the SSL certificate of \u201cdovecot\u201d" in home


def test_the_api_installs_an_untrusted_certificate_and_returns_the_warning(app, panel, client):
    leaf, key, intermediate = unknown_ca()
    ctx = open_context(panel.settings)
    _, token = create_token(ctx, "root", "trust-token", actor="test")
    response = client.post("/json-api/install_service_ssl_certificate", headers={"Authorization": f"whm root:{token}"},
                           data={"api.version": "1", "service": "exim", "crt": pki.pem(leaf).decode(),
                                 "key": pki.key_pem(key).decode(), "cabundle": pki.pem(intermediate).decode()})
    body = response.get_json()
    assert body["metadata"]["result"] == 1, body
    warnings = body["metadata"]["output"]["warnings"]
    assert any("not trusted" in w and "Stranger Root CA" in w for w in warnings), warnings
    listed = client.get("/json-api/fetch_service_ssl_components?api.version=1",
                        headers={"Authorization": f"whm root:{token}"}).get_json()
    exim = next(s for s in listed["data"]["services"] if s["service"] == "exim")
    assert exim["assessment"]["verdict"] == "replace"
    assert [r["code"] for r in exim["assessment"]["reasons"]] == ["untrusted"]


def test_autofill_warns_before_installing_a_certificate_clients_will_not_trust(root, panel):
    leaf, key, intermediate = unknown_ca()
    page = root.get(PAGE + "/install")
    response = root.post(PAGE + "/install", data={"csrf_token": csrf_token(page.text), "action": "autofill",
                                                  "crt": pki.pem(leaf).decode(),
                                                  "cabundle": pki.pem(intermediate).decode()},
                         content_type="multipart/form-data")
    assert response.status_code == 200
    assert 'data-verdict="replace"' in response.text
    assert "would replace this certificate because it is not trusted" in response.text
    assert "Stranger Issuing CA" in response.text  # its issuer: not on this server, not an anchor
