"""Issue 11: parsing never crashes. Mutated DER of valid certificates (the version field, duplicated
extensions, x400Address / ediPartyName / otherName names, truncated lengths, wrong tags, huge lengths and
random bytes) through every input path: the x509 core, the command line, the web form, the API, the files
of accounts' SSL storage and the files Apache's configuration names. Every input is either read or refused
with a clear message (exit 2 / 400 / an "unusable file" entry), never a traceback, never a 500, and nothing
changes on disk."""

from __future__ import annotations

import io
import os

import pytest

from support import der_mutations
from support import pki
from support.config import tree_state
from support.discovery import make_world
from support.panel import HOST, ROOT_PASSWORD, csrf_token
from svcssl.app import create_app
from svcssl.errors import InputError
from svcssl.operations import browse
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token
from svcssl.operations.users import get_user
from svcssl.x509.inspect import describe
from svcssl.x509.parse import parse_file, read_certificate_input, read_certificates, read_private_key

PAGE = "/scripts2/manageservicecrts"


def _leaf():
    ca = pki.pki()
    return ca.leaf([HOST, "imap." + HOST.split(".", 1)[1]], key=pki.rsa_key(10), crl_url="http://crl.example/i.crl",
                   ocsp_url="http://ocsp.example"), ca


def all_mutations(random_count: int = 300):
    (leaf, _), ca = _leaf()
    cases = der_mutations.mutations(pki.der(leaf), random_count=random_count)
    cases += [("intermediate " + name, data)
              for name, data in der_mutations.mutations(pki.der(ca.intermediate), random_count=60, seed=5)]
    return cases


def sample_mutations():
    """A few of every kind, for the paths that cost a request or a command each."""
    cases = all_mutations(random_count=8)
    wanted = ("version", "duplicated", "SAN", "truncated at 4", "truncated at 10", "huge length at 0",
              "huge length at 4", "tag 0x5 at 4", "random")
    return [(name, data) for name, data in cases if name.startswith(wanted)]


def _read_or_refuse(read, data):
    """``read(data)`` either succeeds (and its certificates can be described) or raises an InputError."""
    try:
        result = read(data)
    except InputError as exc:
        assert exc.message and "Traceback" not in exc.message
        return exc.message
    for cert in getattr(result, "certificates", result if isinstance(result, tuple) else ()):
        describe(cert)
    return None


def test_every_mutation_is_read_or_refused_by_the_x509_core():
    refused = 0
    for name, data in all_mutations():
        for form in (data, pki.pem_from_der(data)):
            if _read_or_refuse(lambda d: read_certificate_input(d, validate_keys=False), form) is not None:
                refused += 1
            _read_or_refuse(read_certificates, form)
            parsed = parse_file(form)  # the index: never raises, says what it cannot use
            assert parsed.certificates or parsed.problem, name
    assert refused > 100  # the mutations are real: most are refused


@pytest.mark.parametrize("label, fragment", [
    ("version 5", "X.509 version number 5"),
    ("duplicated extension", "more than once"),
    ("SAN x400Address", "x400Address or ediPartyName"),
    ("SAN ediPartyName", "x400Address or ediPartyName"),
])
def test_the_messages_say_what_is_wrong(label, fragment):
    data = dict(all_mutations(random_count=0))[label]
    with pytest.raises(InputError) as caught:
        read_certificate_input(pki.pem_from_der(data))
    assert fragment in caught.value.message and caught.value.message.endswith(".")


def test_mutated_keys_csrs_and_pkcs12_are_refused_cleanly():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    import random

    key = pki.ec_key(7)
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    (leaf, leaf_key), ca = _leaf()
    p12 = pki.p12(leaf, leaf_key, [ca.intermediate], password=b"secret")
    rng = random.Random(3)
    for original in (key_der, csr, p12):
        for _ in range(150):
            data = bytearray(original)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
            _read_or_refuse(lambda d: read_private_key(d), data)
            _read_or_refuse(lambda d: read_certificate_input(d, b"secret", validate_keys=False), data)
        for at in range(1, len(original), max(1, len(original) // 25)):
            _read_or_refuse(lambda d: read_private_key(d), original[:at])
            _read_or_refuse(lambda d: read_certificate_input(d, b"secret", validate_keys=False), original[:at])


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


def test_command_line_install_exits_2_and_changes_nothing(world, run_cli, tmp_path):
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(pki.key_pem(pki.rsa_key(10)))
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(pki.pem(pki.pki().intermediate))  # the real issuer: a changed leaf no longer chains
    for name, data in sample_mutations():
        for form, suffix in ((data, "der"), (pki.pem_from_der(data), "pem")):
            cert_file = tmp_path / f"fuzz.{suffix}"
            cert_file.write_bytes(form)
            before = tree_state(world.panel.etc)
            result = run_cli("install", "exim", "--cert", str(cert_file), "--key", str(key_file),
                             "--cabundle", str(chain_file), config=world.panel.config)
            assert "Traceback" not in result.err, (name, result.err)
            assert result.code == 2, (name, result.code, result.out, result.err)
            assert result.err.strip(), name
            assert tree_state(world.panel.etc) == before, name


def _app(world):
    app = create_app(world.panel.settings, live_check_ttl=0)
    app.config["TESTING"] = True
    return app


def test_web_form_answers_400_with_a_message_never_500(world):
    client = _app(world).test_client()
    client.environ_base["HTTP_REFERER"] = "https://localhost/"
    page = client.get("/login")
    assert client.post("/login", data={"username": "root", "password": ROOT_PASSWORD,
                                       "csrf_token": csrf_token(page.text)}).status_code == 302
    key = pki.key_pem(pki.rsa_key(10))
    before = tree_state(world.panel.etc)
    for name, data in sample_mutations():
        page = client.get(PAGE + "/install")
        response = client.post(PAGE + "/install", data={
            "csrf_token": csrf_token(page.text), "services": ["exim"], "password": "",
            "crt_file": (io.BytesIO(data), "fuzz.der"), "key_file": (io.BytesIO(key), "key.pem"),
            "cabundle_file": (io.BytesIO(pki.pem(pki.pki().intermediate)), "ca.pem")},
            content_type="multipart/form-data")
        assert response.status_code == 400, (name, response.status_code)
        assert 'class="error' in response.text or "field-error" in response.text or "errors" in response.text, name
        assert "Something went wrong" not in response.text
    assert tree_state(world.panel.etc) == before


def test_api_install_answers_with_a_reason_never_500(world):
    ctx = open_context(world.panel.settings)
    _, secret = create_token(ctx, "root", "fuzz", None, actor="test")
    ctx.store.close()
    client = _app(world).test_client()
    headers = {"Authorization": f"whm root:{secret}"}
    key = pki.key_pem(pki.rsa_key(10)).decode()
    before = tree_state(world.panel.etc)
    for name, data in sample_mutations():
        response = client.post("/json-api/install_service_ssl_certificate?api.version=1", headers=headers,
                               data={"service": "exim", "crt": pki.pem_from_der(data).decode(), "key": key,
                                     "cabundle": pki.pem(pki.pki().intermediate).decode()})
        assert response.status_code in (200, 400), (name, response.status_code)
        body = response.get_json()
        assert body["metadata"]["result"] == 0 and body["metadata"]["reason"], name
        assert "Something went wrong" not in body["metadata"]["reason"]
    assert tree_state(world.panel.etc) == before


def test_account_storage_and_apache_files_become_unusable_file_entries(world):
    ctx = open_context(world.panel.settings)
    try:
        root = get_user(ctx, "root")
        certs_dir = world.home / "carol/ssl/certs"
        cases = sample_mutations()
        for number, (name, data) in enumerate(cases):
            (certs_dir / f"fuzz{number}.crt").write_bytes(pki.pem_from_der(data) if number % 2 else data)
        browse.refresh_index(ctx)
        listing = browse.account_certificates(ctx, root, "carol")
        problems = {os.path.basename(p.path) for p in listing.problems}
        for number, (name, _) in enumerate(cases):
            assert f"fuzz{number}.crt" in problems or any(c.path.endswith(f"fuzz{number}.crt")
                                                          for c in listing.certificates), name
        assert len(problems & {f"fuzz{n}.crt" for n in range(len(cases))}) >= len(cases) // 2
        ssl = world.apache_config.parent.parent / "ssl"
        unusable = 0
        for name, data in cases[:12]:
            (ssl / "store.pem").write_bytes(pki.pem_from_der(data))
            browse.refresh_index(ctx)
            vhosts = {v.servername: v for v in browse.list_vhosts(ctx, root).vhosts}
            store = vhosts["www.store.example"]
            if store.certificate is None:  # refused: the vhost says why
                assert store.problem and "Traceback" not in store.problem, name
                unusable += 1
        assert unusable >= 8
    finally:
        ctx.store.close()
