"""A bundle is a leaf certificate, its private key and its CA chain, checked to belong together."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ..errors import KeyMismatchError, KeyParseError
from .inspect import CertificateInfo, describe, spki_der
from .parse import PrivateKey
from .validate import order_chain


@dataclass(frozen=True)
class Bundle:
    leaf: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    info: CertificateInfo

    @property
    def fingerprint(self) -> str:
        return self.info.fingerprint


def pick_leaf(certificates: tuple[x509.Certificate, ...], keys: tuple[PrivateKey, ...]) -> x509.Certificate:
    if keys:
        key_spkis = {spki_der(k.public_key()) for k in keys}
        for cert in certificates:
            if spki_der(cert.public_key()) in key_spkis:
                return cert
    # Without a matching key: the certificate that issued none of the others.
    issuers = {c.issuer for c in certificates}
    for cert in certificates:
        if cert.subject not in issuers or len(certificates) == 1:
            return cert
    return certificates[0]


def assemble_bundle(
    certificates: tuple[x509.Certificate, ...],
    keys: tuple[PrivateKey, ...],
    cabundle: tuple[x509.Certificate, ...] = (),
) -> Bundle:
    """Find the leaf, its key and its ordered chain among everything the user gave.

    ``certificates`` and ``keys`` come from the certificate and key fields (a PEM
    or PKCS#12 certificate file may carry both); ``cabundle`` from the CA bundle field.
    """
    leaf = pick_leaf(certificates, keys)
    leaf_spki = spki_der(leaf.public_key())
    if not keys:
        raise KeyParseError("No private key was given: paste the private key of this certificate.")
    key = next((k for k in keys if spki_der(k.public_key()) == leaf_spki), None)
    if key is None:
        raise KeyMismatchError("The private key does not match the certificate (their public keys differ).")
    others = tuple(c for c in certificates if c is not leaf) + tuple(cabundle)
    chain = order_chain(leaf, others)
    return Bundle(leaf=leaf, key=key, chain=chain, info=describe(leaf))
