"""Every bad input with the message it must give: shared by the command line, the form and the API tests."""

from __future__ import annotations

import os
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from support import pki

HOST = "mail.example.com"


def _csr() -> bytes:
    from cryptography.hazmat.primitives import serialization
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
           .sign(pki.rsa_key(10), hashes.SHA256()))
    return req.public_bytes(serialization.Encoding.PEM)


def _crl() -> bytes:
    from cryptography.hazmat.primitives import serialization
    ca = pki.pki()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.intermediate.subject)
           .last_update(pki.NOW).next_update(pki.NOW + timedelta(days=7))
           .sign(ca.intermediate_key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


def _leaf(**kwargs):
    return pki.pki().leaf([HOST], key=pki.rsa_key(10), **kwargs)


def _files(**overrides):
    leaf, key = _leaf()
    files = {"cert": pki.pem(leaf), "key": pki.key_pem(key), "cabundle": None, "password": None}
    files.update(overrides)
    return files


CASES = {
    "empty file": (_files(cert=b""), "certificate is empty"),
    "random bytes": (_files(cert=os.urandom(2048).replace(b"-", b"_")), "not a certificate"),
    "private key as certificate": (_files(cert=pki.key_pem(pki.rsa_key(10))), "holds a private key, not a certificate"),
    "truncated PEM": (_files(cert=pki.pem(_leaf()[0])[:-200]), "truncated"),
    "CSR": (_files(cert=_csr()), "certificate signing request"),
    "CRL": (_files(cert=_crl()), "certificate revocation list"),
    "malformed SAN": (_files(cert=pki.malformed_san_certificate()), "subject alternative name extension cannot be decoded"),
    "key does not match": (_files(key=pki.key_pem(pki.rsa_key(11))), "does not match the certificate"),
    "encrypted key without passphrase": (_files(key=pki.key_pem(pki.rsa_key(10), b"hunter2")), "encrypted: give its passphrase"),
    "encrypted key wrong passphrase": (_files(key=pki.key_pem(pki.rsa_key(10), b"hunter2"), password=b"wrong"),
                                       "passphrase does not decrypt"),
    "encrypted traditional key wrong passphrase": (
        _files(key=pki.key_pem(pki.rsa_key(10), b"hunter2", traditional=True), password=b"wrong"), "passphrase does not decrypt"),
    "PKCS#12 wrong password": (_files(cert=pki.p12(*_leaf(), password=b"right"), key=None, password=b"wrong"),
                               "PKCS#12 password is wrong"),
    "PKCS#12 without password": (_files(cert=pki.p12(*_leaf(), password=b"right"), key=None),
                                 "protected by a password"),
    "CA bundle does not chain": (_files(cabundle=pki.pem(pki.pki(1).intermediate)), "does not chain to the certificate"),
    "CA bundle with an unrelated extra": (_files(cabundle=pki.pem(pki.pki().intermediate, pki.pki(1).root)),
                                          "not part of this certificate's chain"),
    "10 MB file": (_files(cert=b"A" * (10 * 1024 * 1024)), "larger than the"),
    "expired certificate": (_files(cert=pki.pem(_leaf(not_before=pki.NOW - timedelta(days=100),
                                                      not_after=pki.NOW - timedelta(days=1))[0])), "expired on"),
    "not yet valid": (_files(cert=pki.pem(_leaf(not_before=pki.NOW + timedelta(days=2))[0])), "not valid yet"),
    "SHA-1 signature": (_files(cert=pki.pem(pki.sha1_signed_leaf([HOST], pki.rsa_key(10)))), "weak signature algorithm (sha1WithRSAEncryption)"),
    "RSA-1024 key": (_files(cert=pki.pem(pki.pki().leaf([HOST], key=pki.rsa_key(12, 1024))[0]),
                            key=pki.key_pem(pki.rsa_key(12, 1024))), "RSA 1024-bit"),
    "no key at all": (_files(key=None), "No private key was given"),
    "certificate given as key": (_files(key=pki.pem(_leaf()[0])), "holds a certificate, not a private key"),
}
