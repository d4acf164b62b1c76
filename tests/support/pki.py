"""Test PKIs built with `cryptography`: root → intermediate → leaf, and every broken variant.

Keys are generated once per process and reused (RSA generation is slow).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(timezone.utc)


@functools.lru_cache(maxsize=None)
def rsa_key(slot: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.lru_cache(maxsize=None)
def ec_key(slot: int = 0, curve: str = "p256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "p256" else ec.SECP384R1())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(cn: str, key, issuer: tuple[x509.Certificate, object] | None = None, *, org: str = "Test PKI",
            days: int = 3650) -> x509.Certificate:
    subject = _name(cn, org)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_leaf(names: list[str], key, issuer_cert: x509.Certificate, issuer_key, *,
              not_before: datetime | None = None, not_after: datetime | None = None,
              hash_algorithm=None, san: bool = True, server_auth: bool = True,
              crl_url: str | None = None, ocsp_url: str | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    if server_auth:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if crl_url:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    return builder.sign(issuer_key, hash_algorithm or hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key, password: bytes | None = None, traditional: bool = False) -> bytes:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if traditional else serialization.PrivateFormat.PKCS8
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def p12(cert, key, cas=(), password: bytes | None = b"secret") -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(b"test", key, cert, list(cas) or None, enc)


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    root_key: object
    intermediate: x509.Certificate
    intermediate_key: object

    def leaf(self, names: list[str], key=None, **kwargs) -> tuple[x509.Certificate, object]:
        key = key or rsa_key(10)
        return make_leaf(names, key, self.intermediate, self.intermediate_key, **kwargs), key


@functools.lru_cache(maxsize=None)
def pki(slot: int = 0) -> Pki:
    root_key = ec_key(100 + slot, "p384")
    root = make_ca(f"Test Root {slot}", root_key, org="svcssl tests")
    intermediate_key = ec_key(200 + slot)
    intermediate = make_ca(f"Test Intermediate {slot}", intermediate_key, (root, root_key), org="svcssl tests")
    return Pki(root, root_key, intermediate, intermediate_key)


def malformed_san_certificate() -> bytes:
    """A certificate whose SAN extension value is not a GeneralNames sequence (parses lazily, fails on read)."""
    good = make_leaf(["broken.example.com"], rsa_key(11), pki().intermediate, pki().intermediate_key)
    data = bytearray(der(good))
    # The SAN extension: OID 2.5.29.17 (06 03 55 1d 11) then OCTET STRING { SEQUENCE { [2] dNSName ... } }
    at = bytes(data).index(bytes.fromhex("0603551d11"))
    # Skip OID (5 bytes) and the OCTET STRING tag/len (2 bytes); turn the inner SEQUENCE tag 0x30 into INTEGER 0x02.
    inner = at + 5 + 2
    assert data[inner] == 0x30, "unexpected SAN encoding"
    data[inner] = 0x02
    return pem_from_der(bytes(data))


def pem_from_der(data: bytes) -> bytes:
    import base64
    body = base64.encodebytes(data).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def sha1_signed_leaf(names: list[str], key) -> x509.Certificate:
    """A leaf whose signature algorithm says sha1WithRSAEncryption.

    cryptography no longer signs with SHA-1, so the leaf is signed with SHA-256 by
    an RSA CA and the algorithm identifier is rewritten (same length); the
    signature then no longer verifies, which the weak-algorithm check never needs.
    """
    ca_key = rsa_key(30)
    ca = make_ca("Legacy SHA-1 CA", ca_key)
    good = der(make_leaf(names, key, ca, ca_key))
    sha256_rsa = bytes.fromhex("06092a864886f70d01010b")
    assert good.count(sha256_rsa) == 2
    return x509.load_der_x509_certificate(good.replace(sha256_rsa, sha256_rsa[:-1] + b"\x05"))


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed to sign SHA-1 test certificates: apt-get install openssl")
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


@functools.lru_cache(maxsize=None)
def real_sha1_self_signed(name: str = "mail.example.com") -> tuple[x509.Certificate, object]:
    """A self-signed certificate really signed with SHA-1 (cryptography 50 refuses to; openssl still does)."""
    import tempfile
    from pathlib import Path
    key = rsa_key(40)
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "key.pem"
        key_file.write_bytes(key_pem(key))
        out = _openssl("req", "-x509", "-new", "-key", str(key_file), "-sha1", "-days", "30", "-subj", f"/CN={name}",
                       "-addext", f"subjectAltName=DNS:{name}")
    return x509.load_pem_x509_certificate(out), key


@functools.lru_cache(maxsize=None)
def real_sha1_leaf(name: str = "mail.example.com") -> tuple[x509.Certificate, object, x509.Certificate]:
    """(leaf, key, its RSA CA): the leaf is really signed by the CA with SHA-1 (openssl x509 -req -sha1)."""
    import tempfile
    from pathlib import Path
    ca_key = rsa_key(41)
    ca = make_ca("Legacy SHA-1 Signing CA", ca_key)
    key = rsa_key(42)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(name))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False).sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "ca.pem").write_bytes(pem(ca))
        (d / "ca.key").write_bytes(key_pem(ca_key))
        (d / "csr.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        (d / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
        out = _openssl("x509", "-req", "-in", str(d / "csr.pem"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                       "-set_serial", "4242", "-days", "60", "-sha1", "-extfile", str(d / "ext.cnf"))
    return x509.load_pem_x509_certificate(out), key, ca


def fingerprint_of(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
