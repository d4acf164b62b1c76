"""The WHM browse functions over HTTPS against `svcssl serve`: listcrts, fetchcrtinfo, fetch_ssl_vhosts,
fetch_vhost_ssl_components, fetchsslinfo — per role, with the accounts and Apache of discovery_support."""

from __future__ import annotations

import pytest

from support import pki
from support.discovery import make_world
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token
from support.api import Api, ok, refused
from support.process import PanelProcess

CRT_FIELDS = {"id", "domain", "domains", "friendly_name", "is_self_signed", "issuer.organizationName", "not_after",
              "key_algorithm", "modulus_length", "ecdsa_curve_name", "signature_algorithm"}


@pytest.fixture(scope="module")
def world_server(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("api-browse"))
    ctx = open_context(world.panel.settings)
    tokens = {user: create_token(ctx, user, f"{user}-browse", actor="test")[1] for user in ("root", "alice", "bob")}
    ctx.store.close()
    process = PanelProcess(world.panel.config, world.panel.state.parent / "serve.log").start()
    apis = {user: Api(process.url, user, token) for user, token in tokens.items()}
    yield world, apis
    process.proc.terminate()
    process.proc.wait(15)


def test_listcrts_root_sees_every_account_and_a_reseller_only_its_own(world_server):
    world, api = world_server
    rows = ok(api["root"].call("listcrts"))["data"]["crt"]
    assert {r["user"] for r in rows} >= {"carol", "dave", "erin"}
    for row in rows:
        assert CRT_FIELDS <= set(row)
        assert isinstance(row["not_after"], int) and row["is_self_signed"] in (0, 1)
    shop = next(r for r in rows if r["domain"] == "shop.example.com")
    assert shop["domains"] == ["shop.example.com", "www.shop.example.com"]
    assert shop["key_algorithm"] == "id-ecPublicKey" and shop["ecdsa_curve_name"] == "prime256v1"
    assert shop["modulus_length"] is None and shop["issuer.organizationName"] == "svcssl tests"
    carol_only = ok(api["root"].call("listcrts", user="carol"))["data"]["crt"]
    assert {r["user"] for r in carol_only} == {"carol"}
    bob_rows = ok(api["bob"].call("listcrts"))["data"]["crt"]
    assert {r["user"] for r in bob_rows} == {"carol"}
    # not bob's: answered as if it did not exist (no hint that it does)
    assert "no account 'dave' among the accounts you may browse" in refused(api["bob"].call("listcrts", user="dave"))
    refused(api["alice"].call("listcrts"), 403)


def test_fetchcrtinfo_returns_the_key_and_bundle(world_server):
    world, api = world_server
    rows = ok(api["bob"].call("listcrts", user="carol"))["data"]["crt"]
    shop = next(r for r in rows if r["domain"] == "shop.example.com")
    data = ok(api["bob"].call("fetchcrtinfo", id=shop["id"], user="carol"))["data"]
    assert set(data) == {"certificate", "key", "cabundle", "is_self_signed"}
    leaf, key = world.certs["shop"]
    assert data["certificate"] == pki.pem(leaf).decode()
    assert data["key"] == pki.key_pem(key).decode()
    assert data["cabundle"] == pki.pem(pki.pki().intermediate).decode() and data["is_self_signed"] == 0
    dave = next(r for r in ok(api["root"].call("listcrts", user="dave"))["data"]["crt"])
    assert "no account 'dave'" in refused(api["bob"].call("fetchcrtinfo", id=dave["id"], user="dave"))
    assert "no certificate with the id" in refused(api["root"].call("fetchcrtinfo", id="nope", user="carol"))
    entries = open_context(world.panel.settings).store.audit_entries()
    assert any(e.action == "api fetchcrtinfo" and "bob-browse" in e.actor for e in entries)


def test_apache_functions_are_root_only(world_server):
    world, api = world_server
    vhosts = ok(api["root"].call("fetch_ssl_vhosts"))["data"]["vhosts"]
    store = next(v for v in vhosts if v["servername"] == "www.store.example")
    assert store["domains"][:2] == ["www.store.example", "store.example"]
    assert store["crt"]["domains"] == ["www.store.example", "store.example"] and store["crt"]["id"]
    components = ok(api["root"].call("fetch_vhost_ssl_components", **{
        "api.filter.enable": "1", "api.filter.a.field": "servername", "api.filter.a.type": "eq",
        "api.filter.a.arg0": "www.store.example"}))["data"]["components"]
    (component,) = components
    assert set(component) == {"servername", "certificate", "certificate_id", "key", "key_id", "cabundle"}
    leaf, key = world.certs["store"]
    assert component["certificate"] == pki.pem(leaf).decode() and component["key"] == pki.key_pem(key).decode()
    assert component["cabundle"] == pki.pem(pki.pki().intermediate).decode()
    refused(api["bob"].call("fetch_ssl_vhosts"), 403)
    refused(api["bob"].call("fetch_vhost_ssl_components"), 403)


def test_fetchsslinfo_by_certificate_or_domain(world_server):
    world, api = world_server
    leaf, key = world.certs["shop"]
    data = ok(api["bob"].call("fetchsslinfo", "POST", crtdata=pki.pem(leaf).decode()))["data"]
    assert set(data) == {"crt", "key", "cab", "domain", "user", "crt_origin", "key_origin"}
    assert data["key"] == pki.key_pem(key).decode() and data["cab"] == pki.pem(pki.pki().intermediate).decode()
    assert data["user"] == "carol" and "carol" in data["key_origin"]
    by_domain = ok(api["root"].call("fetchsslinfo", domain="mail.example.net"))["data"]
    dave_leaf, dave_key = world.certs["dave"]
    assert by_domain["crt"] == pki.pem(dave_leaf).decode() and by_domain["user"] == "dave"
    assert refused(api["root"].call("fetchsslinfo")) == "No certificate data or domain supplied."
    erin_leaf, _ = world.certs["erin"]
    body = ok(api["bob"].call("fetchsslinfo", "POST", crtdata=pki.pem(erin_leaf).decode()))
    assert body["data"]["key"] == ""  # erin is not bob's: her key is not his to take
    assert body["metadata"]["output"]["warnings"]
