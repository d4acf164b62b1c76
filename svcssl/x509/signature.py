"""Does a key verify a signature? Whatever the hash algorithm: SHA-1 and MD5 are weak, not unsigned.

cryptography's ``verify_directly_issued_by`` refuses SHA-1 and MD5 signatures outright, which would
make a self-signed SHA-1 certificate look "not self-signed" and a SHA-1 leaf look "not issued by its
CA". Here the signature is checked with the public key itself; whether the algorithm is acceptable
is a separate question (``validate.weak_reasons``).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

VERIFIED, INVALID, UNSUPPORTED = "verified", "invalid", "unsupported"


def verify_signature(public_key, signature: bytes, data: bytes, hash_algorithm, rsa_padding=None) -> bool:
    """True when ``public_key`` verifies ``signature`` over ``data``; False for any failure."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, rsa_padding or padding.PKCS1v15(), hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        elif isinstance(public_key, dsa.DSAPublicKey):
            public_key.verify(signature, data, hash_algorithm)
        else:
            return False
    except Exception:  # noqa: BLE001 - InvalidSignature, unsupported hash, wrong key type: not verified
        return False
    return True


def certificate_signature(cert: x509.Certificate, public_key) -> str:
    """``verified`` | ``invalid`` | ``unsupported`` (the algorithm cannot be checked at all)."""
    try:
        hash_algorithm = cert.signature_hash_algorithm
        parameters = cert.signature_algorithm_parameters
    except Exception:  # noqa: BLE001 - an unknown signature algorithm
        return UNSUPPORTED
    rsa_padding = parameters if isinstance(parameters, (padding.PSS, padding.PKCS1v15)) else None
    if verify_signature(public_key, cert.signature, cert.tbs_certificate_bytes, hash_algorithm, rsa_padding):
        return VERIFIED
    return INVALID


def signed_by(cert: x509.Certificate, public_key) -> bool:
    return certificate_signature(cert, public_key) == VERIFIED


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when the parent's subject is the child's issuer and the parent's key verifies the child's signature
    (whatever the algorithm: a SHA-1 signature is weak, which ``validate.weak_reasons`` says, not absent)."""
    if child.issuer != parent.subject:
        return False
    try:
        public_key = parent.public_key()
    except Exception:  # noqa: BLE001 - an unreadable key verifies nothing
        return False
    return signed_by(child, public_key)
