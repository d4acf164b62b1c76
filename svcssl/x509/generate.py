"""New keys, self-signed certificates (as WHM's reset makes them) and CSRs. Pure but for randomness."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .parse import PrivateKey

_CURVES = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}


def generate_private_key(key_type: str = "rsa-2048") -> PrivateKey:
    """``rsa-2048``/``rsa-3072``/``rsa-4096`` or ``ecdsa-p256``/``ecdsa-p384``."""
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    raise ValueError(f"unknown key type {key_type!r}")


def key_type_label(key_type: str) -> str:
    """``rsa-2048`` → ``RSA, 2,048-bit``; ``ecdsa-p256`` → ``ECDSA, P-256`` (the table's key labels)."""
    if key_type.startswith("rsa-"):
        return f"RSA, {int(key_type[4:]):,}-bit"
    if key_type in _CURVES:
        return f"ECDSA, P-{key_type[len('ecdsa-p'):]}"
    return key_type


def make_self_signed(hostname: str, key: PrivateKey, now: datetime, days: int = 365) -> x509.Certificate:
    """CN and only SAN = hostname, ``days`` of validity, SHA-256, serverAuth: what WHM's reset makes."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    public_key = key.public_key()
    start = now - timedelta(minutes=5)  # tolerate small clock differences between hosts
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey), content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_csr(key: PrivateKey, names: list[str]) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
