"""PEM output: certificates, chains, keys and the combined files some daemons want."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .parse import PrivateKey


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def chain_pem(chain: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> bytes:
    return b"".join(certificate_pem(c) for c in chain)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8, which OpenSSL (Dovecot, pure-ftpd) and GnuTLS (Debian's Exim) both read."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def fullchain_pem(leaf: x509.Certificate, chain) -> bytes:
    return certificate_pem(leaf) + chain_pem(chain)


def combined_pem(key: PrivateKey, leaf: x509.Certificate, chain) -> bytes:
    """Key, leaf, chain in one file (pure-ftpd's /etc/ssl/private/pure-ftpd.pem layout)."""
    return key_pem(key) + fullchain_pem(leaf, chain)
