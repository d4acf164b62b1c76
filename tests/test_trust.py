"""Trust as clients see it (issue 24): real CA hierarchies made here, judged by svcssl and by `openssl verify`.

Every case states the code and verdict svcssl gives (``svcssl list --json``, the run's dry report) and compares
the underlying fact — is there a path to an anchor with the files' chain, and with every intermediate svcssl can
find — with ``openssl verify -purpose sslserver -CAfile <anchors> -untrusted <intermediates>``.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from support.config import require_binaries, tree_state, write_config
from support.pki import ec_key, key_pem, pem
from svcssl.operations.context import open_context
from svcssl.settings import load_settings

NOW = datetime.now(timezone.utc)
HOST = "mail.example.com"


# --- hierarchies ---------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Corp"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, key, issuer: tuple[x509.Certificate, object] | None = None, *, path_length: int | None = None,
            permitted: list[str] | None = None, not_before: datetime | None = None,
            not_after: datetime | None = None, subject_key=None, eku: list | None = None) -> x509.Certificate:
    """A CA certificate with the extensions a real CA gives (KeyUsage, SKI, AKI); ``issuer`` None: self-signed."""
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    public = (subject_key or key).public_key()
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer_cert.subject if issuer_cert else _name(cn)).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - timedelta(days=60))
               .not_valid_after(not_after or NOW + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
    signer_public = issuer_cert.public_key() if issuer_cert else public
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_public), critical=False)
    if permitted:
        builder = builder.add_extension(x509.NameConstraints([x509.DNSName(n) for n in permitted], None), critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_leaf(issuer: tuple[x509.Certificate, object], key, names=(HOST,), *, aia: str | None = None) -> x509.Certificate:
    issuer_cert, issuer_key = issuer
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .issuer_name(issuer_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=80))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                              critical=False))
    if aia:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Hierarchy:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: object


def corp(slot: int = 0, *, aia: str | None = None, **intermediate_options) -> Hierarchy:
    root_key, int_key, leaf_key = ec_key(500 + slot), ec_key(510 + slot), ec_key(520 + slot)
    root = make_ca(f"Corp Root CA {slot}", root_key)
    intermediate = make_ca(f"Corp Issuing CA {slot}", int_key, (root, root_key), **intermediate_options)
    leaf = make_leaf((intermediate, int_key), leaf_key, aia=aia)
    return Hierarchy(root, intermediate, leaf, leaf_key)


# --- svcssl and the oracle ---------------------------------------------------------------------------


@dataclass
class Setup:
    config: Path
    anchors: Path
    cert_file: Path
    key_file: Path
    cadir: Path


@pytest.fixture(scope="module")
def dns_server():
    from servers.dns import start_dns_server
    server = start_dns_server({HOST: {"A": ["127.0.0.1"]}})
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _dns(dns_server):
    global NAMESERVER
    NAMESERVER = dns_server.nameserver


NAMESERVER = ""


def setup(tmp_path: Path, leaf: x509.Certificate, key, chain=(), *, anchors=(), cadir=(), extra: str = "",
          service: dict | None = None) -> Setup:
    etc = tmp_path / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = etc / "cert.pem", etc / "key.pem"
    cert_file.write_bytes(pem(leaf, *chain))
    key_file.write_bytes(key_pem(key))
    key_file.chmod(0o600)
    anchors_file = tmp_path / "anchors.pem"
    anchors_file.write_bytes(pem(*anchors))
    directory = tmp_path / "cas"
    directory.mkdir(exist_ok=True)
    for index, cert in enumerate(cadir):
        (directory / f"ca{index}.pem").write_bytes(pem(cert))
    table = {"kind": "dovecot", "cert_file": str(cert_file), "key_file": str(key_file), **(service or {})}
    config = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state",
                          services={"dovecot": table}, trust=False, extra=f"""
[trust]
system_store = true
ca_file = "{anchors_file}"

[cabundles]
dirs = ["{directory}"]
{extra}
[dns]
nameservers = ["{NAMESERVER}"]
timeout = 2
""")
    config.write_text(config.read_text().replace(f'hostname = "{HOST}"', f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"'))
    return Setup(config, anchors_file, cert_file, key_file, directory)


def openssl_verify(tmp_path: Path, leaf: x509.Certificate, anchors, intermediates) -> bool:
    """`openssl verify -purpose sslserver`: what a client on this machine concludes (with only these anchors)."""
    require_binaries("openssl", install="apt-get install openssl")
    work = tmp_path / "oracle"
    work.mkdir(exist_ok=True)
    (work / "anchors.pem").write_bytes(pem(*anchors))
    (work / "leaf.pem").write_bytes(pem(leaf))
    argv = ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(work / "anchors.pem")]
    if intermediates:
        (work / "untrusted.pem").write_bytes(pem(*intermediates))
        argv += ["-untrusted", str(work / "untrusted.pem")]
    result = subprocess.run([*argv, str(work / "leaf.pem")], capture_output=True, text=True, timeout=30)
    return result.returncode == 0


def listed(run_cli, config: Path) -> dict:
    result = run_cli("list", "--json", "--no-probe", config=config)
    assert result.code == 0, result.err
    (entry,) = json.loads(result.out)
    return entry["assessment"]


def dry_run(run_cli, config: Path) -> dict:
    result = run_cli("maintenance", "run", "--dry-run", "--json", config=config)
    report = json.loads(result.out)
    (service,) = report["services"]
    return service


def codes(assessment: dict) -> list[str]:
    return [r["code"] for r in assessment["reasons"]]


# --- the cases ---------------------------------------------------------------------------------------


def test_a_chain_to_a_root_in_ca_file_is_trusted(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    assert openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "ok", assessment
    assert dry_run(run_cli, s.config)["verdict"] == "ok"


def test_the_same_chain_without_its_root_in_the_trust_store_is_untrusted_and_replaced(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[])
    assert not openssl_verify(tmp_path, pki.leaf, [], [pki.intermediate])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [])  # (the oracle needs the intermediate too)
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "replace" and codes(assessment) == ["untrusted"], assessment
    message = assessment["reasons"][0]["message"]
    assert "\u201cCorp Issuing CA 0\u201d chains to \u201cCorp Root CA 0\u201d" in message
    assert "not in this server's trust store" in message and "[trust] ca_file" in message
    planned = dry_run(run_cli, s.config)
    assert planned["verdict"] == "untrusted" and planned["outcome"] == "planned"


def test_a_root_shipped_in_the_chain_file_is_never_an_anchor(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate, pki.root], anchors=[])
    assert not openssl_verify(tmp_path, pki.leaf, [], [pki.intermediate, pki.root])
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_a_missing_intermediate_found_in_a_ca_directory_is_an_incomplete_chain_to_repair(tmp_path, run_cli):
    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [], anchors=[pki.root], cadir=[pki.intermediate])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [])  # what the files give clients
    assert openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])  # with what svcssl found
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "repair" and codes(assessment) == ["incomplete-chain"], assessment
    message = assessment["reasons"][0]["message"]
    assert "\u201cCorp Issuing CA 1\u201d" in message and str(s.cadir) in message
    planned = dry_run(run_cli, s.config)
    assert planned["verdict"] == "incomplete-chain" and planned["action"].startswith("would complete the chain")
    result = run_cli("maintenance", "run", "--dry-run", "--json", config=s.config)
    assert "dovecot would have its chain completed (dry run)" in json.loads(result.out)["summary"]


def test_a_missing_intermediate_found_nowhere_is_untrusted(tmp_path, run_cli):
    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [], anchors=[pki.root])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [])
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "replace" and codes(assessment) == ["untrusted"], assessment
    assert "\u201cCorp Issuing CA 1\u201d" in assessment["reasons"][0]["message"]


def test_a_caissuers_url_on_loopback_is_never_fetched(tmp_path, run_cli):
    """The intermediate is served over HTTP on 127.0.0.1 and named by the leaf's caIssuers URL: svcssl refuses to
    reach its own network, so it stays missing (untrusted), as the README's security section promises."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from servers.http import start_http_server  # a real local HTTP server

    http = start_http_server()
    try:
        h = corp(2, aia=http.url("/issuer.der"))
        http.set_route("/issuer.der", "application/pkix-cert", h.intermediate.public_bytes(Encoding.DER))
        s = setup(tmp_path, h.leaf, h.leaf_key, [], anchors=[h.root])
        s.config.write_text(s.config.read_text().replace("[cabundles]\n", "[cabundles]\naia_fetch = true\n"))
        assert not openssl_verify(tmp_path, h.leaf, [h.root], [])
        assessment = listed(run_cli, s.config)
        assert codes(assessment) == ["untrusted"], assessment
        result = run_cli("maintenance", "run", "--dry-run", "--json", config=s.config)
        assert json.loads(result.out)["services"][0]["verdict"] == "untrusted"
        assert http.requests == 0  # never reached: loopback is this server's own network
    finally:
        http.stop()


def test_an_expired_intermediate_is_untrusted(tmp_path, run_cli):
    pki = corp(3, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=2))
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "replace" and codes(assessment) == ["untrusted"], assessment
    assert "\u201cCorp Issuing CA 3\u201d, which expired on" in assessment["reasons"][0]["message"]


def test_a_cross_signed_intermediate_with_an_expired_and_a_current_root_is_trusted(tmp_path, run_cli):
    """leaf → Issuing → New Root (self-signed anchor), and New Root cross-signed by Old Root (expired anchor):
    clients that take the current root trust it; the expired cross-sign must not spoil it."""
    old_key, new_key, int_key, leaf_key = ec_key(530), ec_key(531), ec_key(532), ec_key(533)
    old_root = make_ca("Corp Old Root", old_key, not_before=NOW - timedelta(days=4000),
                       not_after=NOW - timedelta(days=5))
    new_root = make_ca("Corp New Root", new_key)
    cross = make_ca("Corp New Root", old_key, (old_root, old_key), subject_key=new_key,
                    not_before=NOW - timedelta(days=400), not_after=NOW + timedelta(days=400))
    issuing = make_ca("Corp Issuing CA X", int_key, (new_root, new_key))
    leaf = make_leaf((issuing, int_key), leaf_key)
    s = setup(tmp_path, leaf, leaf_key, [issuing, cross], anchors=[old_root, new_root])
    assert openssl_verify(tmp_path, leaf, [old_root, new_root], [issuing, cross])
    assert listed(run_cli, s.config)["verdict"] == "ok"
    # only the expired root trusted: no client path
    s2 = setup(tmp_path / "old-only", leaf, leaf_key, [issuing, cross], anchors=[old_root])
    assert not openssl_verify(tmp_path / "old-only", leaf, [old_root], [issuing, cross])
    assert codes(listed(run_cli, s2.config)) == ["untrusted"]


def test_a_leaf_outside_its_issuers_name_constraints_is_untrusted(tmp_path, run_cli):
    pki = corp(4, permitted=["example.org"])
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_a_path_longer_than_a_path_length_constraint_allows_is_untrusted(tmp_path, run_cli):
    root_key, a_key, b_key, leaf_key = ec_key(540), ec_key(541), ec_key(542), ec_key(543)
    root = make_ca("Corp PL Root", root_key)
    a = make_ca("Corp PL Policy CA", a_key, (root, root_key), path_length=0)
    b = make_ca("Corp PL Issuing CA", b_key, (a, a_key))
    leaf = make_leaf((b, b_key), leaf_key)
    s = setup(tmp_path, leaf, leaf_key, [b, a], anchors=[root])
    assert not openssl_verify(tmp_path, leaf, [root], [b, a])
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_an_intermediate_whose_eku_excludes_server_auth_is_untrusted(tmp_path, run_cli):
    pki = corp(5, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_a_self_signed_certificate_keeps_only_its_own_code(tmp_path, run_cli, simple_config):
    result = run_cli("list", "--json", "--no-probe", config=simple_config)
    for entry in json.loads(result.out):
        assert "self-signed" in codes(entry["assessment"]) and "untrusted" not in codes(entry["assessment"])


# --- install -------------------------------------------------------------------------------------------


def test_install_refuses_an_untrusted_certificate_without_the_flag_and_changes_nothing(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    other = corp(6)
    (tmp_path / "new.pem").write_bytes(pem(other.leaf))
    (tmp_path / "new.key").write_bytes(key_pem(other.leaf_key))
    (tmp_path / "ca.pem").write_bytes(pem(other.intermediate))
    before = tree_state(tmp_path / "etc")
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "new.pem"), "--key", str(tmp_path / "new.key"),
                     "--cabundle", str(tmp_path / "ca.pem"), config=s.config)
    assert result.code == 2, result
    assert "--allow-untrusted" in result.err and "not in this server's trust store" in result.err
    assert "Nothing was changed" in result.err
    assert tree_state(tmp_path / "etc") == before
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "new.pem"), "--key", str(tmp_path / "new.key"),
                     "--cabundle", str(tmp_path / "ca.pem"), "--allow-untrusted", config=s.config)
    assert result.code == 0, result
    assert "would replace this certificate because it is not trusted" in result.err
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_install_completes_a_bundle_that_lacks_its_intermediate(tmp_path, run_cli):
    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root], cadir=[pki.intermediate])
    fresh = make_leaf((pki.intermediate, ec_key(511)), ec_key(550))
    (tmp_path / "new.pem").write_bytes(pem(fresh))
    (tmp_path / "new.key").write_bytes(key_pem(ec_key(550)))
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "new.pem"), "--key", str(tmp_path / "new.key"),
                     config=s.config)
    assert result.code == 0, result
    assert f"Added the intermediate \u201cCorp Issuing CA 1\u201d from the CA directory {s.cadir}" in result.err
    assert s.cert_file.read_bytes() == pem(fresh, pki.intermediate)
    assert listed(run_cli, s.config)["verdict"] == "ok"
    assert openssl_verify(tmp_path, fresh, [pki.root], list(x509.load_pem_x509_certificates(
        s.cert_file.read_bytes()))[1:])


# --- the maintenance run repairs; the port then serves the full chain ------------------------------------


def test_the_run_repairs_an_incomplete_chain_and_the_port_then_serves_it(tmp_path, run_cli):
    from servers import daemons
    from svcssl.maintenance.run import run_maintenance

    if daemons.missing_daemon_binaries():
        require_binaries(*daemons.missing_daemon_binaries(), install="bash scripts/test.sh")
    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [], anchors=[pki.root], cadir=[pki.intermediate])
    dovecot = daemons.start_dovecot(tmp_path / "run", s.cert_file, s.key_file)
    try:
        text = s.config.read_text().replace('kind = "dovecot"', f'kind = "dovecot"\nreload = {json.dumps(dovecot.reload)}'
                                            f'\nprobe = "{dovecot.probe}"')
        s.config.write_text(text)
        check = run_cli("check", "--json", config=s.config)
        assert check.code == 1
        (live,) = json.loads(check.out)
        assert live["state"] == "served-chain", live
        assert str(dovecot.port) in live["detail"] and "\u201cCorp Issuing CA 1\u201d" in live["detail"]
        listing = listed(run_cli, s.config)
        assert listing["verdict"] == "repair" and codes(listing) == ["incomplete-chain"]

        ctx = open_context(load_settings(s.config))
        report = run_maintenance(ctx)
        (service,) = report.services
        assert service.verdict == "incomplete-chain" and service.outcome == "ok", service
        assert service.action.startswith("chain completed")
        assert service.fingerprint_before == service.fingerprint_after  # the same certificate: nothing ordered
        assert report.order is None
        assert [a.action for a in ctx.store.audit_entries(10) if a.service == "dovecot"][0] == "chain completed"
        assert s.cert_file.read_bytes() == pem(pki.leaf, pki.intermediate)
        check = run_cli("check", "--json", config=s.config)
        assert check.code == 0, check.out
        assert json.loads(check.out)[0]["state"] == "match"
        assert listed(run_cli, s.config)["verdict"] == "ok"
    finally:
        dovecot.stop()


def test_a_daemon_pointed_at_the_leaf_only_file_is_a_served_chain_problem(tmp_path, run_cli):
    from servers import daemons

    if daemons.missing_daemon_binaries():
        require_binaries(*daemons.missing_daemon_binaries(), install="bash scripts/test.sh")
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    leaf_only = tmp_path / "etc" / "leaf-only.pem"
    leaf_only.write_bytes(pem(pki.leaf))
    dovecot = daemons.start_dovecot(tmp_path / "run", leaf_only, s.key_file)
    try:
        text = s.config.read_text().replace('kind = "dovecot"', f'kind = "dovecot"\nprobe = "{dovecot.probe}"')
        s.config.write_text(text)
        check = run_cli("check", config=s.config)
        assert check.code == 1
        assert "served-chain" in check.out and f"{dovecot.port}" in check.out and "Corp Issuing CA 0" in check.out
        result = run_cli("list", "--json", config=s.config)
        (entry,) = json.loads(result.out)
        assert entry["assessment"]["verdict"] == "attention"
        assert codes(entry["assessment"]) == ["served-chain"]
        assert entry["live"]["state"] == "served-chain"
        details = run_cli("details", "dovecot", config=s.config).out
        assert "Assessment:   attention" in details
        assert f"The port {dovecot.probe} serves it without the intermediate \u201cCorp Issuing CA 0\u201d" in details
        # the oracle: what the port sends does not verify, the files' chain does
        assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [])
        assert openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])
    finally:
        dovecot.stop()


def test_a_missing_intermediate_found_only_over_aia_on_a_public_address(tmp_path):
    """The caIssuers server must be on a public address (loopback and private ones are never fetched): it runs at
    1.2.3.4 inside a network namespace of its own (`unshare -n`), with svcssl; nothing leaves the namespace."""
    import sys
    from cryptography.hazmat.primitives.serialization import Encoding

    require_binaries("unshare", "ip", install="apt-get install util-linux iproute2")
    h = corp(7, aia="http://1.2.3.4:8080/issuer.der")
    site = tmp_path / "site"
    site.mkdir()
    (site / "issuer.der").write_bytes(h.intermediate.public_bytes(Encoding.DER))
    s = setup(tmp_path, h.leaf, h.leaf_key, [], anchors=[h.root])
    s.config.write_text(s.config.read_text().replace("[cabundles]\n", "[cabundles]\naia_fetch = true\n"))
    fresh_key = ec_key(560)
    fresh = make_leaf((h.intermediate, ec_key(517)), fresh_key, aia="http://1.2.3.4:8080/issuer.der")
    (tmp_path / "new.pem").write_bytes(pem(fresh))
    (tmp_path / "new.key").write_bytes(key_pem(fresh_key))
    svcssl = f"{sys.executable} -m svcssl.cli --config {s.config}"
    script = f"""set -e
ip addr add 1.2.3.4/32 dev lo; ip link set lo up
{sys.executable} -m http.server 8080 --bind 1.2.3.4 --directory {site} >/dev/null 2>&1 &
server=$!
for i in $(seq 50); do {sys.executable} -c "import socket; socket.create_connection(('1.2.3.4', 8080), 1)" 2>/dev/null && break; sleep 0.1; done
{svcssl} list --json --no-probe > {tmp_path}/list.json
{svcssl} install dovecot --cert {tmp_path}/new.pem --key {tmp_path}/new.key 2> {tmp_path}/install.err
kill $server
"""
    result = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr + (tmp_path / "install.err").read_text()
    (entry,) = json.loads((tmp_path / "list.json").read_text())
    assessment = entry["assessment"]
    assert assessment["verdict"] == "repair" and codes(assessment) == ["incomplete-chain"], assessment
    assert "caIssuers URL http://1.2.3.4:8080/issuer.der" in assessment["reasons"][0]["message"]
    assert not openssl_verify(tmp_path, h.leaf, [h.root], [])
    assert openssl_verify(tmp_path, h.leaf, [h.root], [h.intermediate])
    err = (tmp_path / "install.err").read_text()
    assert ("Added the intermediate \u201cCorp Issuing CA 7\u201d from its caIssuers URL "
            "http://1.2.3.4:8080/issuer.der") in err, err
    assert s.cert_file.read_bytes() == pem(fresh, h.intermediate)


def test_a_ca_file_that_cannot_be_used_is_named_in_the_message(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    s.anchors.write_bytes(b"this is not a certificate\n")
    assessment = listed(run_cli, s.config)
    assert codes(assessment) == ["untrusted"]
    assert f"[trust] ca_file {s.anchors} cannot be used" in assessment["reasons"][0]["message"]


def test_only_disable_service_certificate_management_holds_a_repair_back(tmp_path, run_cli):
    from svcssl.statedir import NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT

    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [], anchors=[pki.root], cadir=[pki.intermediate])
    listed(run_cli, s.config)  # the state directory exists
    state = tmp_path / "state"
    (state / NO_HOSTNAME_CERTIFICATE).write_bytes(b"")
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "repair", assessment  # a repair orders nothing
    (state / NO_MANAGEMENT).write_bytes(b"")
    assessment = listed(run_cli, s.config)
    assert assessment["verdict"] == "attention" and codes(assessment) == ["incomplete-chain", "left-alone"]


def test_an_issuer_named_right_whose_key_did_not_sign_the_leaf_is_untrusted(tmp_path, run_cli):
    pki = corp(0)
    impostor = make_ca("Corp Issuing CA 0", ec_key(570), (pki.root, ec_key(500)))  # same name, another key
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    assert listed(run_cli, s.config)["verdict"] == "ok"  # (the first start adopts the files as they are)
    s.cert_file.write_bytes(pem(pki.leaf, impostor))  # changed behind svcssl's back
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [impostor])
    assert codes(listed(run_cli, s.config)) == ["untrusted"]


def test_an_intermediate_already_on_the_server_completes_another_services_chain(tmp_path, run_cli):
    """exim's files hold leaf + intermediate; dovecot's only its leaf: the index (what Autofill uses) finds it."""
    pki = corp(1)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [], anchors=[pki.root])
    other_key = ec_key(580)
    other = make_leaf((pki.intermediate, ec_key(511)), other_key)
    (tmp_path / "etc" / "exim.crt").write_bytes(pem(other, pki.intermediate))
    (tmp_path / "etc" / "exim.key").write_bytes(key_pem(other_key))
    (tmp_path / "etc" / "exim.key").chmod(0o600)
    s.config.write_text(s.config.read_text().replace("[trust]", f"""[services.exim]
kind = "exim"
cert_file = "{tmp_path / 'etc' / 'exim.crt'}"
key_file = "{tmp_path / 'etc' / 'exim.key'}"

[trust]"""))
    assert run_cli("discovery", "refresh", config=s.config).code == 0
    result = run_cli("list", "--json", "--no-probe", config=s.config)
    entries = {e["service"]: e["assessment"] for e in json.loads(result.out)}
    assert entries["exim"]["verdict"] == "ok", entries["exim"]
    assert entries["dovecot"]["verdict"] == "repair" and codes(entries["dovecot"]) == ["incomplete-chain"]
    assert "the certificates on this server" in entries["dovecot"]["reasons"][0]["message"]
    assert not openssl_verify(tmp_path, pki.leaf, [pki.root], [])
    assert openssl_verify(tmp_path, pki.leaf, [pki.root], [pki.intermediate])


def test_a_self_signed_certificate_installs_with_its_warning_and_no_flag(tmp_path, run_cli):
    pki = corp(0)
    s = setup(tmp_path, pki.leaf, pki.leaf_key, [pki.intermediate], anchors=[pki.root])
    from svcssl.x509.generate import make_self_signed
    key = ec_key(590)
    own = make_self_signed(HOST, key, NOW)  # what Reset makes
    (tmp_path / "own.pem").write_bytes(pem(own))
    (tmp_path / "own.key").write_bytes(key_pem(key))
    result = run_cli("install", "dovecot", "--cert", str(tmp_path / "own.pem"), "--key", str(tmp_path / "own.key"),
                     config=s.config)
    assert result.code == 0, result.err
    assert "self-signed" in result.err and "--allow-untrusted" not in result.err
    assert codes(listed(run_cli, s.config)) == ["self-signed"]
