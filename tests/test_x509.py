"""The pure X.509 core: reading every input form, describing certificates, chains, generation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from support import pki
from svcssl.errors import CertificateParseError, ChainError, KeyMismatchError, PasswordError
from svcssl.x509 import assemble_bundle
from svcssl.x509.generate import generate_private_key, make_self_signed
from svcssl.x509.inspect import describe, fingerprint
from svcssl.x509.parse import read_certificate_input, read_certificates, read_private_key
from svcssl.x509.validate import covers_hostname, key_matches, name_covers, order_chain, weak_reasons

HOST = "mail.example.com"


@pytest.fixture(scope="module")
def chain():
    ca = pki.pki()
    leaf, key = ca.leaf([HOST, "imap.example.com"], key=pki.rsa_key(10),
                        crl_url="http://crl.example/int.crl", ocsp_url="http://ocsp.example")
    return ca, leaf, key


def test_pem_with_crlf_bom_and_text_around_in_any_order(chain):
    ca, leaf, key = chain
    text = (b"\xef\xbb\xbfBag Attributes\r\n    friendlyName: test\r\n"
            + pki.key_pem(key).replace(b"\n", b"\r\n")
            + b"subject=/CN=intermediate\r\n" + pki.pem(ca.intermediate).replace(b"\n", b"\r\n")
            + b"\r\n" + pki.pem(leaf).replace(b"\n", b"\r\n") + b"trailing words")
    parsed = read_certificate_input(text)
    assert [fingerprint(c) for c in parsed.certificates] == [fingerprint(ca.intermediate), fingerprint(leaf)]
    bundle = assemble_bundle(parsed.certificates, parsed.keys)
    assert bundle.leaf == leaf and bundle.chain == (ca.intermediate,)


def test_der_certificate(chain):
    _, leaf, _ = chain
    assert read_certificate_input(pki.der(leaf)).certificates == (leaf,)


def test_pkcs12_with_password_carries_key_and_chain(chain):
    ca, leaf, key = chain
    parsed = read_certificate_input(pki.p12(leaf, key, [ca.intermediate], b"pw"), b"pw")
    assert parsed.from_pkcs12 and parsed.certificates[0] == leaf and len(parsed.keys) == 1
    with pytest.raises(PasswordError):
        read_certificate_input(pki.p12(leaf, key, [], b"pw"), b"nope")
    unprotected = read_certificate_input(pki.p12(leaf, key, [], None))
    assert unprotected.certificates == (leaf,)


@pytest.mark.parametrize("traditional", [False, True])
def test_keys_pkcs8_and_traditional_plain_and_encrypted(chain, traditional):
    _, leaf, key = chain
    plain = read_private_key(pki.key_pem(key, traditional=traditional))
    assert key_matches(leaf, plain)
    encrypted = pki.key_pem(key, b"pass phrase", traditional=traditional)
    assert key_matches(leaf, read_private_key(encrypted, b"pass phrase"))
    with pytest.raises(PasswordError, match="encrypted: give its passphrase"):
        read_private_key(encrypted)
    with pytest.raises(PasswordError, match="does not decrypt"):
        read_private_key(encrypted, b"wrong")
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert key_matches(leaf, read_private_key(der_key))


def test_certificate_info_fields(chain):
    ca, leaf, _ = chain
    info = describe(leaf)
    assert info.domains == (HOST, "imap.example.com")
    assert info.key_label == "RSA, 2,048-bit" and info.key_algorithm == "rsaEncryption"
    assert info.modulus == format(leaf.public_key().public_numbers().n, "x")
    assert info.signature_algorithm == "ecdsa-with-SHA256" and info.signature_hash == "sha256"
    assert info.issuer == (("organizationName", "svcssl tests"), ("commonName", "Test Intermediate 0"))
    assert info.issuer_text == "organizationName\nsvcssl tests\ncommonName\nTest Intermediate 0\n"
    assert not info.is_self_signed and info.has_san and info.has_server_auth
    assert info.crl_urls == ("http://crl.example/int.crl",) and info.ocsp_urls == ("http://ocsp.example",)
    assert info.fingerprint == fingerprint(leaf) and len(info.fingerprint) == 64
    assert info.authority_key_id == describe(ca.intermediate).subject_key_id


def test_ecdsa_labels():
    ca = pki.pki()
    leaf, _ = ca.leaf([HOST], key=pki.ec_key(1))
    info = describe(leaf)
    assert info.key_label == "ECDSA, P-256 (prime256v1)"
    assert info.ecdsa_curve_name == "prime256v1" and info.ecdsa_public.startswith(("02", "03"))
    p384, _ = ca.leaf([HOST], key=pki.ec_key(2, "p384"))
    assert describe(p384).key_label == "ECDSA, P-384 (secp384r1)"


def test_chain_given_out_of_order_is_reordered_and_verified():
    ca = pki.pki(2)
    sub_key = pki.ec_key(300)
    sub = pki.make_ca("Sub CA", sub_key, (ca.intermediate, ca.intermediate_key))
    leaf = pki.make_leaf([HOST], pki.rsa_key(10), sub, sub_key)
    assert order_chain(leaf, [ca.root, ca.intermediate, sub]) == (sub, ca.intermediate, ca.root)
    assert order_chain(leaf, [sub, sub, ca.intermediate]) == (sub, ca.intermediate)
    with pytest.raises(ChainError, match="does not chain"):
        order_chain(leaf, [ca.intermediate])


def test_chain_with_forged_issuer_name_is_refused():
    """Same subject name as the real issuer, other key: the signature check catches it."""
    ca = pki.pki()
    forged = pki.make_ca("Test Intermediate 0", pki.ec_key(400), org="svcssl tests")
    leaf, _ = ca.leaf([HOST])
    with pytest.raises(ChainError):
        order_chain(leaf, [forged])


def test_wrong_key_refused(chain):
    _, leaf, _ = chain
    with pytest.raises(KeyMismatchError):
        assemble_bundle((leaf,), (pki.rsa_key(11),))


def test_weak_reasons():
    ca = pki.pki()
    weak_key, _ = ca.leaf([HOST], key=pki.rsa_key(12, 1024))
    assert weak_reasons(describe(weak_key)) == ("weak key (RSA 1024-bit, under 2048)",)
    sha1 = pki.sha1_signed_leaf([HOST], pki.rsa_key(10))
    assert weak_reasons(describe(sha1)) == ("weak signature algorithm (sha1WithRSAEncryption)",)


def test_malformed_extension_fails_cleanly_everywhere():
    data = pki.malformed_san_certificate()
    with pytest.raises(CertificateParseError, match="subject alternative name"):
        read_certificate_input(data)
    with pytest.raises(CertificateParseError, match="subject alternative name"):
        read_certificates(data)


def test_self_signed_as_whm_makes_it():
    for key_type, label in (("rsa-2048", "RSA, 2,048-bit"), ("ecdsa-p256", "ECDSA, P-256 (prime256v1)"),
                            ("ecdsa-p384", "ECDSA, P-384 (secp384r1)")):
        key = generate_private_key(key_type)
        info = describe(make_self_signed(HOST, key, pki.NOW, 365))
        assert info.key_label == label
        assert info.domains == (HOST,) and info.is_self_signed and info.has_server_auth
        assert info.not_after - info.not_before == timedelta(days=365)
        assert info.signature_hash == "sha256"


def test_hostname_matching():
    assert name_covers("*.example.com", "mail.example.com")
    assert not name_covers("*.example.com", "a.b.example.com")
    assert not name_covers("*.com", "example.com")
    assert name_covers("Mail.Example.com.", "mail.example.com")
    ca = pki.pki()
    leaf, _ = ca.leaf(["other.example.net"])
    assert not covers_hostname(describe(leaf), HOST)


# --- one truth about signatures, EKU and self-signed (issue 11) ------------------------------------------


def test_a_self_signed_sha1_certificate_is_self_signed_and_weak():
    cert, _ = pki.real_sha1_self_signed(HOST)
    info = describe(cert)
    assert info.signature_algorithm == "sha1WithRSAEncryption"
    assert info.is_self_signed
    assert weak_reasons(info) == ("weak signature algorithm (sha1WithRSAEncryption)",)


def test_a_certificate_without_eku_may_serve_tls_and_one_without_server_auth_may_not():
    """RFC 5280 §4.2.1.12: an absent EKU means any purpose; only a present EKU without serverAuth restricts."""
    ca = pki.pki()
    no_eku, _ = ca.leaf([HOST], server_auth=False)
    assert describe(no_eku).has_eku is False and describe(no_eku).has_server_auth is True
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    client_only = (cx509.CertificateBuilder().subject_name(no_eku.subject).issuer_name(ca.intermediate.subject)
                   .public_key(pki.rsa_key(10).public_key()).serial_number(7).not_valid_before(no_eku.not_valid_before_utc)
                   .not_valid_after(no_eku.not_valid_after_utc)
                   .add_extension(cx509.SubjectAlternativeName([cx509.DNSName(HOST)]), critical=False)
                   .add_extension(cx509.ExtendedKeyUsage([cx509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                   .sign(ca.intermediate_key, hashes.SHA256()))
    assert describe(client_only).has_eku is True and describe(client_only).has_server_auth is False


def test_a_sha1_leaf_with_its_real_ca_chains_and_is_refused_as_weak_not_as_unrelated():
    leaf, key, ca = pki.real_sha1_leaf(HOST)
    assert order_chain(leaf, [ca]) == (ca,)
    bundle = assemble_bundle((leaf,), (key,), (ca,))
    assert weak_reasons(bundle.info) == ("weak signature algorithm (sha1WithRSAEncryption)",)


def test_the_chain_check_tells_not_signed_by_this_issuer_from_unrelated():
    leaf, _, ca = pki.real_sha1_leaf(HOST)
    impostor = pki.make_ca("Legacy SHA-1 Signing CA", pki.rsa_key(43))  # same name, another key
    with pytest.raises(ChainError) as caught:
        order_chain(leaf, [impostor])
    assert "not signed by this issuer" in caught.value.message
    other = pki.pki(1).intermediate
    with pytest.raises(ChainError) as caught:
        order_chain(leaf, [other])
    assert "Unrelated" in caught.value.message and "not signed by this issuer" not in caught.value.message


def test_the_chain_check_names_an_unsupported_signature_algorithm():
    """A leaf whose signature algorithm cannot be checked at all (an unknown OID) is told apart."""
    ca = pki.pki()
    good, _ = ca.leaf([HOST])
    data = pki.der(good)
    ecdsa_sha256 = bytes.fromhex("06082a8648ce3d040302")
    assert data.count(ecdsa_sha256) == 2
    from cryptography import x509 as cx509
    odd = cx509.load_der_x509_certificate(data.replace(ecdsa_sha256, ecdsa_sha256[:-1] + b"\x7f"))
    with pytest.raises(ChainError) as caught:
        order_chain(odd, [ca.intermediate])
    assert "weak or unsupported algorithm" in caught.value.message
