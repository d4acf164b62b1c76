"""Checks on certificates, keys and chains. Pure: ``now`` is always a parameter."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256

from ..errors import CertificateValidityError, ChainError
from .inspect import CertificateInfo, is_self_signed, spki_der
from .signature import UNSUPPORTED, certificate_signature, issued_by

_SHA256 = SHA256()


def key_matches(cert: x509.Certificate, key) -> bool:
    """True when ``key`` is the private half of ``cert``'s SubjectPublicKeyInfo."""
    return spki_der(cert.public_key()) == spki_der(key.public_key())


def _unchained_reason(cert: x509.Certificate, candidates: list[x509.Certificate]) -> str | None:
    """Why a certificate whose issuer *is* named in the bundle still does not chain, or None."""
    named = [c for c in candidates if c.subject == cert.issuer]
    if not named:
        return None
    algorithm = getattr(cert.signature_algorithm_oid, "_name", None) or cert.signature_algorithm_oid.dotted_string
    for parent in named:
        try:
            state = certificate_signature(cert, parent.public_key())
        except Exception:  # noqa: BLE001
            state = UNSUPPORTED
        if state == UNSUPPORTED:
            return (f"the certificate {_subject_label(cert)} is signed with a weak or unsupported algorithm "
                    f"({algorithm}) that cannot be checked against its issuer {_subject_label(parent)}")
    return (f"the bundle holds a certificate named like the issuer ({_subject_label(named[0])}), but its key did "
            f"not sign {_subject_label(cert)}: it is not signed by this issuer")


def _subject_label(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def order_chain(leaf: x509.Certificate, candidates: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """Order a CA bundle from the leaf's issuer upward, checking every signature.

    Duplicates and the leaf itself are dropped. Every remaining certificate must be
    part of the chain; one that is not is refused with its subject named.
    """
    seen: set[bytes] = {leaf.fingerprint(_SHA256)}
    remaining: list[x509.Certificate] = []
    for cert in candidates:
        digest = cert.fingerprint(_SHA256)
        if digest not in seen:
            seen.add(digest)
            remaining.append(cert)
    ordered: list[x509.Certificate] = []
    current = leaf
    while remaining and not (current is not leaf and is_self_signed(current)):
        parent = next((c for c in remaining if issued_by(current, c)), None)
        if parent is None:
            break
        ordered.append(parent)
        remaining.remove(parent)
        current = parent
    if remaining:
        names = "; ".join(_subject_label(c) for c in remaining)
        why = _unchained_reason(current, remaining)
        if why:
            raise ChainError(f"The CA bundle does not chain to the certificate: {why}.")
        if not ordered:
            raise ChainError(
                f"The CA bundle does not chain to the certificate: the certificate's issuer "
                f"({leaf.issuer.rfc4514_string()}) did not sign it, and nothing in the bundle did. Unrelated: {names}."
            )
        raise ChainError(f"The CA bundle holds certificates that are not part of this certificate's chain: {names}.")
    return tuple(ordered)


def weak_reasons(info: CertificateInfo) -> tuple[str, ...]:
    reasons = []
    if info.signature_hash in ("md5", "sha1"):
        reasons.append(f"weak signature algorithm ({info.signature_algorithm})")
    if info.key_algorithm == "rsaEncryption" and info.key_size < 2048:
        reasons.append(f"weak key (RSA {info.key_size}-bit, under 2048)")
    if info.key_algorithm == "id-ecPublicKey" and info.key_size < 256:
        reasons.append(f"weak key (ECDSA {info.key_size}-bit)")
    return tuple(reasons)


def require_current(info: CertificateInfo, now: datetime) -> None:
    if info.not_after <= now:
        raise CertificateValidityError(
            f"The certificate expired on {info.not_after:%Y-%m-%d %H:%M} UTC; install a current one."
        )
    if info.not_before > now:
        raise CertificateValidityError(
            f"The certificate is not valid yet: it starts on {info.not_before:%Y-%m-%d %H:%M} UTC."
        )


def name_covers(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching: an exact name, or a wildcard in the left-most label only."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern == hostname:
        return True
    if pattern.startswith("*.") and "*" not in pattern[2:]:
        head, _, tail = hostname.partition(".")
        return bool(head) and tail == pattern[2:] and "." in tail
    return False


def covers_hostname(info: CertificateInfo, hostname: str) -> bool:
    return any(name_covers(domain, hostname) for domain in info.domains)

