"""Browse, Use Certificate, Autofill and account assignment: the operations per role, and the command line."""

from __future__ import annotations

import json
import os

import pytest

from support import pki
from support.config import tree_state
from support.discovery import issue, lets_encrypt, make_world
from svcssl.errors import AccessDeniedError, InputError
from svcssl.operations import browse
from svcssl.operations.accounts import assign_accounts, unassign_accounts
from svcssl.operations.autofill import (account_certificate_by_id, autofill_certificate, autofill_domain, load_key,
                                        private_key_pem, use_certificate, vhost_choices)
from svcssl.operations.context import open_context
from svcssl.operations.users import get_user
from svcssl.x509.inspect import fingerprint, spki_sha256


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


@pytest.fixture
def ctx(world):
    context = open_context(world.panel.settings)
    yield context
    context.store.close()


def user(ctx, name):
    return get_user(ctx, name)


# --- who sees what ---------------------------------------------------------------------------------------


def test_root_sees_every_account_a_reseller_only_its_own(ctx):
    root, bob, alice = user(ctx, "root"), user(ctx, "bob"), user(ctx, "alice")
    assert [a.name for a in browse.list_accounts(ctx, root).accounts] == ["carol", "dave", "erin"]
    listing = browse.list_accounts(ctx, bob)
    assert [(a.name, a.owner) for a in listing.accounts] == [("carol", "bob")] and listing.total == 1
    assert [a.name for a in browse.list_accounts(ctx, root, prefix="d").accounts] == ["dave"]
    assert browse.account_certificates(ctx, bob, "carol").certificates
    for name in ("dave", "nobody", "../carol", ""):
        with pytest.raises(InputError, match="among the accounts you may browse"):
            browse.account_certificates(ctx, bob, name)
    with pytest.raises(InputError):
        browse.account_certificates(ctx, root, "nobody")
    with pytest.raises(AccessDeniedError):
        browse.list_accounts(ctx, alice)
    with pytest.raises(AccessDeniedError, match="Only root"):
        browse.list_vhosts(ctx, bob)


def test_an_accounts_storage_with_every_kind_of_file(ctx, world):
    listing = browse.account_certificates(ctx, user(ctx, "root"), "carol")
    by_id = {c.id: c for c in listing.certificates}
    assert set(by_id) == {"shop_example_com", "selfsigned", "hex-636166e9"}  # b"caf\xe9" is not UTF-8
    shop = by_id["shop_example_com"]
    leaf, key = world.certs["shop"]
    assert shop.domains == ("shop.example.com", "www.shop.example.com") and shop.fingerprint == fingerprint(leaf)
    assert shop.issuer_label == "Test Intermediate 0, svcssl tests" and shop.has_key and not shop.is_self_signed
    assert shop.reference == f"account:carol:{fingerprint(leaf)}"
    assert by_id["selfsigned"].is_self_signed and by_id["hex-636166e9"].path.endswith("caf\\xe9.crt")
    problems = {os.path.basename(p.path): p.message for p in listing.problems}
    assert "truncated" in problems["broken.crt"]
    assert problems["passwd.crt"] == "a symbolic link: links in an account's SSL storage are not followed"
    assert [os.path.basename(p) for p in listing.keys_without_certificate] == ["orphan.key"]


def test_apache_virtual_hosts(ctx, world):
    listing = browse.list_vhosts(ctx, user(ctx, "root"))
    assert listing.config_file == str(world.apache_config)
    by_name = {v.servername: v for v in listing.vhosts}
    assert set(by_name) == {None, "www.store.example"}
    store = by_name["www.store.example"]
    assert store.domains == ("www.store.example", "store.example") and store.user == "dave"
    assert store.certificate.fingerprint == fingerprint(world.certs["store"][0]) and store.certificate.has_key
    assert store.chain_path.endswith("store-chain.pem") and listing.problems == ()


# --- Autofill and Use Certificate ------------------------------------------------------------------------


def test_autofill_finds_the_key_and_builds_the_bundle(ctx, world):
    leaf, key = world.certs["shop"]
    choice = autofill_certificate(ctx, user(ctx, "root"), pki.pem(leaf))
    assert choice.missing == ()
    assert choice.key.store == "account" and choice.key.owner == "carol" and choice.key.id == "shop_example_com"
    assert choice.key.reference == f"account:carol:{spki_sha256(leaf.public_key())}"
    assert choice.cabundle_pem == pki.pem(pki.pki().intermediate).decode()  # leaf's issuer first, root left out
    assert "PRIVATE KEY" not in repr(choice)
    assert load_key(ctx, user(ctx, "bob"), choice.key.reference).private_numbers() == key.private_numbers()
    assert private_key_pem(ctx, user(ctx, "root"), choice.key.reference).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_reseller_finds_only_keys_in_its_own_accounts(ctx, world):
    dave_leaf, _ = world.certs["dave"]
    bob = user(ctx, "bob")
    choice = autofill_certificate(ctx, bob, pki.pem(dave_leaf))
    assert choice.key is None
    assert choice.missing == ("No private key in the storage you may see matches this certificate: paste its private key.",)
    root_choice = autofill_certificate(ctx, user(ctx, "root"), pki.pem(dave_leaf))
    assert root_choice.key.owner == "dave"
    with pytest.raises(InputError, match="not available to you"):
        load_key(ctx, bob, root_choice.key.reference)  # a reference made for root, replayed by bob
    apache = use_certificate(ctx, user(ctx, "root"), f"apache::{fingerprint(world.certs['store'][0])}")
    assert apache.key.store == "apache"
    with pytest.raises(InputError, match="not available to you"):
        load_key(ctx, bob, apache.key.reference)
    with pytest.raises(AccessDeniedError):
        use_certificate(ctx, bob, f"apache::{fingerprint(world.certs['store'][0])}")
    with pytest.raises(AccessDeniedError):
        use_certificate(ctx, bob, f"account:dave:{fingerprint(dave_leaf)}")


def test_missing_pieces_are_named(ctx, world):
    erin, _ = world.certs["erin"]
    choice = autofill_certificate(ctx, user(ctx, "root"), pki.pem(erin))
    assert choice.key is not None and choice.cabundle_pem == ""
    assert choice.missing == ("Issuer R11, Let's Encrypt not found: paste the CA bundle your CA gave you.",)
    stranger, _ = issue(["stranger.example"], 49, lets_encrypt())
    choice = autofill_certificate(ctx, user(ctx, "root"), pki.pem(stranger))
    assert choice.missing == ("No private key on this server matches this certificate: paste its private key.",
                              "Issuer R11, Let's Encrypt not found: paste the CA bundle your CA gave you.")
    with_chain = autofill_certificate(ctx, user(ctx, "root"), pki.pem(stranger, lets_encrypt().intermediate))
    assert with_chain.missing == ("No private key on this server matches this certificate: paste its private key.",)
    assert with_chain.chain[0].subject_cn == "R11"


def test_use_certificate_takes_the_chain_from_the_file_or_the_vhost(ctx, world):
    root = user(ctx, "root")
    dave = use_certificate(ctx, root, f"account:dave:{fingerprint(world.certs['dave'][0])}")
    assert dave.cabundle_pem == pki.pem(pki.pki().intermediate).decode() and dave.key.owner == "dave"
    assert dave.origin.startswith("the SSL storage of account dave")
    store = use_certificate(ctx, root, f"apache::{fingerprint(world.certs['store'][0])}")
    assert store.cabundle_pem == pki.pem(pki.pki().intermediate).decode() and store.missing == ()
    self_signed = use_certificate(ctx, root, f"account:carol:{fingerprint(world.certs['selfsigned'][0])}")
    assert self_signed.cabundle_pem == "" and self_signed.missing == () and "self-signed" in self_signed.notes[0]


def test_files_changed_since_the_index_are_noticed(ctx, world):
    root = user(ctx, "root")
    leaf, _ = world.certs["shop"]
    choice = autofill_certificate(ctx, root, pki.pem(leaf))
    (world.home / "carol/ssl/keys/shop_example_com.key").write_bytes(pki.key_pem(pki.ec_key(90)))
    with pytest.raises(InputError, match="no longer where it was found"):
        load_key(ctx, root, choice.key.reference)
    (world.home / "carol/ssl/certs/shop_example_com.crt").unlink()
    with pytest.raises(InputError, match="no longer where it was found"):
        use_certificate(ctx, root, f"account:carol:{fingerprint(leaf)}")
    assert autofill_certificate(ctx, root, pki.pem(leaf)).key is None  # the index still names it; the file says no


@pytest.mark.parametrize("reference", ["", "account:carol", "account::" + "0" * 64, "apache:carol:" + "0" * 64,
                                       "account:Carol:" + "0" * 64, "cabundle::" + "0" * 64, "account:carol:xyz",
                                       "account:carol:" + "0" * 63 + "g"])
def test_malformed_references_are_refused(ctx, reference):
    with pytest.raises(InputError, match="not valid: browse again"):
        use_certificate(ctx, user(ctx, "root"), reference)
    with pytest.raises(InputError, match="not valid: browse again"):
        load_key(ctx, user(ctx, "root"), reference)


def test_whm_lookups_by_id_domain_and_vhost(ctx, world):
    root, bob = user(ctx, "root"), user(ctx, "bob")
    shop = account_certificate_by_id(ctx, bob, "carol", "shop_example_com")
    assert shop.key.owner == "carol"
    with pytest.raises(InputError, match="no certificate with the id"):
        account_certificate_by_id(ctx, bob, "carol", "nope")
    assert autofill_domain(ctx, root, "WWW.Shop.Example.com.").info.fingerprint == fingerprint(world.certs["shop"][0])
    assert autofill_domain(ctx, root, "store.example").key.store == "apache"
    with pytest.raises(InputError, match="No certificate for store.example"):
        autofill_domain(ctx, bob, "store.example")
    with pytest.raises(InputError, match="Give a domain name"):
        autofill_domain(ctx, root, "a b")
    components = {c.servername: c for c in vhost_choices(ctx, root)}
    assert components["www.store.example"].choice.key.store == "apache"
    all_certificates = browse.list_certificates(ctx, bob)
    assert {c.owner for c in all_certificates} == {"carol"}
    assert {c.owner for c in browse.list_certificates(ctx, root)} == {"carol", "dave", "erin"}


def test_bad_certificate_input_for_autofill(ctx):
    root = user(ctx, "root")
    for data, message in ((b"", "Paste a certificate"), (b"garbage", "could not be read|not a certificate|neither"),
                          (pki.key_pem(pki.ec_key(91)), "holds a private key, not a certificate"),
                          (b"A" * (2 * 1024 * 1024), "larger than")):
        with pytest.raises(InputError, match=message):
            autofill_certificate(ctx, root, data)


# --- account assignment ---------------------------------------------------------------------------------


def test_assigning_accounts_all_or_nothing(ctx, world):
    before = ctx.store.account_owners()
    with pytest.raises(InputError, match="No such account under .*: nobody"):
        assign_accounts(ctx, "bob", ["dave", "nobody"], actor="test")
    with pytest.raises(InputError, match="Not an account name"):
        assign_accounts(ctx, "bob", ["dave", "../etc"], actor="test")
    with pytest.raises(InputError, match="root sees every account"):
        assign_accounts(ctx, "root", ["dave"], actor="test")
    with pytest.raises(InputError, match="There is no user named 'zed'"):
        assign_accounts(ctx, "zed", ["dave"], actor="test")
    with pytest.raises(InputError, match="alice does not own: carol"):
        unassign_accounts(ctx, "alice", ["carol"], actor="test")
    assert ctx.store.account_owners() == before
    moved = assign_accounts(ctx, "alice", ["carol", "dave"], actor="test")
    assert moved.moved_from == (("carol", "bob"),) and ctx.store.accounts_of("alice") == ["carol", "dave"]
    assert browse.list_accounts(ctx, user(ctx, "bob")).accounts == ()
    unassign_accounts(ctx, "alice", ["dave"], actor="test")
    assert ctx.store.account_owners() == {"carol": "alice"}
    assert "carol → alice (was bob)" in [e.detail for e in ctx.store.audit_entries()]


# --- the refresh ------------------------------------------------------------------------------------------


def test_refresh_is_incremental_and_apache_is_parsed_again_only_on_change(ctx, world, monkeypatch):
    from svcssl.discovery import apache as apache_module

    parses = []
    original = browse.read_apache_config
    monkeypatch.setattr(browse, "read_apache_config", lambda *a, **k: parses.append(1) or original(*a, **k))
    report = browse.refresh_index(ctx)
    assert report.parsed == 0 and report.removed == 0 and report.unchanged > 10 and parses == []
    assert browse.refresh_index(ctx, if_older_than=60) is None  # fresh enough: skipped
    (world.apache_config.parent / "sites-available/store.conf").write_text(
        (world.apache_config.parent / "sites-available/store.conf").read_text().replace("ServerAlias store.example", "ServerAlias shop2.example"))
    report = browse.refresh_index(ctx)
    assert parses == [1]
    names = {v.servername for v in browse.list_vhosts(ctx, user(ctx, "root")).vhosts}
    assert names == {None, "www.store.example"}
    assert any("shop2.example" in v.domains for v in browse.list_vhosts(ctx, user(ctx, "root")).vhosts)
    assert apache_module.inputs_unchanged({str(world.apache_config): "f:0:0:0:0"}) is False


def test_a_refresh_never_changes_the_files_it_reads(ctx, world):
    before = tree_state(world.home)
    browse.refresh_index(ctx)
    autofill_certificate(ctx, user(ctx, "root"), pki.pem(world.certs["shop"][0]))
    assert tree_state(world.home) == before


# --- the command line ----------------------------------------------------------------------------------


def test_cli_browse_autofill_assign_refresh(world, run_cli, tmp_path):
    config = world.panel.config
    result = run_cli("browse", "accounts", "--json", config=config)
    assert result.code == 0, result.err
    data = {a["account"]: a for a in json.loads(result.out)["accounts"]}
    assert set(data) == {"carol", "dave", "erin"}
    shop = next(c for c in data["carol"]["certificates"] if c["id"] == "shop_example_com")
    assert shop["has_key"] and shop["domains"] == ["shop.example.com", "www.shop.example.com"]
    assert shop["issuer.organizationName"] == "svcssl tests" and shop["key_algorithm"] == "id-ecPublicKey"
    assert any("symbolic link" in p["problem"] for p in data["carol"]["problems"])

    result = run_cli("browse", "accounts", "--user", "dave", config=config)
    assert result.code == 0 and "mail.example.net" in result.out and "carol" not in result.out
    result = run_cli("browse", "accounts", "--user", "nobody", config=config)
    assert result.code == 2 and "There is no account 'nobody'" in result.err

    result = run_cli("browse", "apache", "--json", config=config)
    assert result.code == 0, result.err
    vhosts = {v["servername"]: v for v in json.loads(result.out)["vhosts"]}
    assert vhosts["www.store.example"]["certificate"]["has_key"] and vhosts["www.store.example"]["user"] == "dave"
    result = run_cli("browse", "apache", config=config)
    assert "www.store.example" in result.out and "ssl-cert-snakeoil.pem" in result.out

    cert = tmp_path / "shop.crt"
    cert.write_bytes(pki.pem(world.certs["shop"][0]))
    result = run_cli("autofill", "--cert", str(cert), "--json", config=config)
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["key_origin"] == str(world.home / "carol/ssl/keys/shop_example_com.key")
    assert out["cabundle"] == pki.pem(pki.pki().intermediate).decode() and out["missing"] == []
    assert "PRIVATE KEY" not in result.out
    erin = tmp_path / "erin.crt"
    erin.write_bytes(pki.pem(world.certs["erin"][0]))
    result = run_cli("autofill", "--cert", str(erin), config=config)
    assert result.code == 1 and "Missing:      Issuer R11, Let's Encrypt not found" in result.out
    result = run_cli("autofill", "--cert", str(world.home / "carol/ssl/keys/orphan.key"), config=config)
    assert result.code == 2 and "private key, not a certificate" in result.err
    result = run_cli("autofill", "--cert", str(tmp_path / "missing.crt"), config=config)
    assert result.code == 2 and "cannot read" in result.err

    result = run_cli("reseller", "assign", "alice", "dave", "erin", config=config)
    assert result.code == 0 and "Reseller 'alice' now owns: dave, erin." in result.out
    result = run_cli("reseller", "assign", "alice", "nobody", config=config)
    assert result.code == 2 and "No such account" in result.err
    result = run_cli("reseller", "unassign", "alice", "erin", config=config)
    assert result.code == 0 and "no longer owns: erin" in result.out

    result = run_cli("discovery", "refresh", "--json", config=config)
    assert result.code == 0 and json.loads(result.out)["parsed"] == 0


def test_the_account_a_choice_belongs_to(ctx, world):
    root = user(ctx, "root")
    assert use_certificate(ctx, root, f"apache::{fingerprint(world.certs['store'][0])}").account == "dave"
    assert autofill_certificate(ctx, root, pki.pem(world.certs["shop"][0])).account == "carol"
    assert autofill_certificate(ctx, root, pki.pem(world.certs["snakeoil"][0])).account is None


def test_apache_files_that_cannot_be_used_are_shown_per_vhost(ctx, world):
    ssl = world.apache_config.parent.parent / "ssl"
    (ssl / "store.pem").unlink()
    (ssl / "store.pem").mkdir()  # a directory where the certificate file should be
    (ssl / "ssl-cert-snakeoil.pem").unlink()
    os.symlink(ssl / "nowhere.pem", ssl / "ssl-cert-snakeoil.pem")  # a dangling link
    browse.refresh_index(ctx)
    by_name = {v.servername: v for v in browse.list_vhosts(ctx, user(ctx, "root")).vhosts}
    assert by_name["www.store.example"].certificate is None
    assert by_name["www.store.example"].problem == "not a regular file"
    assert by_name[None].problem == "cannot read: No such file or directory"
    problems = browse.list_vhosts(ctx, user(ctx, "root")).problems
    assert any("store.pem: not a regular file" in p for p in problems)
