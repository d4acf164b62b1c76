"""Is there a path from a leaf to a trust anchor, as a TLS client builds it? Pure: bytes and ``now`` in.

Path building and checking is ``cryptography.x509.verification`` (server verification for one of
the leaf's own names): signatures, validity of every certificate, basic constraints and path
length, name constraints, Extended Key Usage (serverAuth) along the path. Never hand-written.

The extension policies are the WebPKI defaults, loosened only where OpenSSL (what mail clients,
MTAs and curl use on a server) is looser too: a CA certificate without KeyUsage is accepted (one
with KeyUsage still needs keyCertSign), and the AuthorityKeyIdentifier may be absent.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from .inspect import is_self_signed

_SHA256 = SHA256()
MAX_CHAIN_DEPTH = 8


@dataclass(frozen=True)
class TrustAnchors:
    """The roots a client trusts, ready for path validation (build once, reuse)."""

    certificates: tuple[x509.Certificate, ...]
    store: Store | None  # None when there are no anchors at all
    fingerprints: frozenset[bytes]

    def __contains__(self, cert: x509.Certificate) -> bool:
        return cert.fingerprint(_SHA256) in self.fingerprints


def trust_anchors(certificates) -> TrustAnchors:
    """Anchors from certificates (duplicates dropped)."""
    unique: dict[bytes, x509.Certificate] = {}
    for cert in certificates:
        unique.setdefault(cert.fingerprint(_SHA256), cert)
    certs = tuple(unique.values())
    with warnings.catch_warnings():  # a system root with a non-positive serial: accepted, not an error
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        store = Store(list(certs)) if certs else None
    return TrustAnchors(certs, store, frozenset(unique))


@dataclass(frozen=True)
class PathResult:
    trusted: bool
    path: tuple[x509.Certificate, ...]  # leaf, intermediates …, anchor (when trusted)
    error: str  # cryptography's reason when not trusted

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self.path[1:-1]


def _key_cert_sign(policy, cert, ext) -> None:
    if ext is not None and not ext.key_cert_sign:
        raise ValueError("a CA certificate's KeyUsage lacks keyCertSign")


def _policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    ca = (ExtensionPolicy.webpki_defaults_ca()
          .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _key_cert_sign)
          .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None))
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL,
                                                             None)
    return ca, ee


_CA_POLICY, _EE_POLICY = _policies()


def verification_subject(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress | None:
    """One of the leaf's own names (a wildcard's label filled in), to verify it for; None when it has none."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for name in san.get_values_for_type(x509.DNSName):
        host = name.lower().rstrip(".")
        if host.startswith("*."):
            host = "svcssl-check" + host[1:]
        try:
            return x509.DNSName(host)
        except ValueError:
            continue
    for address in san.get_values_for_type(x509.IPAddress):
        return x509.IPAddress(ip_address(address))
    return None


def verify_path(leaf: x509.Certificate, intermediates, anchors: TrustAnchors, now: datetime) -> PathResult:
    """A path from ``leaf`` through any of ``intermediates`` (untrusted, in any order) to an anchor, at ``now``."""
    if anchors.store is None:
        return PathResult(False, (), "there are no trust anchors (the system store is off and [trust] ca_file is empty)")
    subject = verification_subject(leaf)
    if subject is None:
        return PathResult(False, (), "the certificate names no DNS name or IP address to verify it for")
    verifier = (PolicyBuilder().store(anchors.store).time(now).max_chain_depth(MAX_CHAIN_DEPTH)
                .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY).build_server_verifier(subject))
    try:
        path = verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        return PathResult(False, (), _reason(str(exc)))
    except ValueError as exc:  # a certificate cryptography cannot use (an unsupported key, a malformed extension)
        return PathResult(False, (), str(exc))
    return PathResult(True, tuple(path), "")


def _reason(text: str) -> str:
    text = text.removeprefix("validation failed: ")
    if "all candidates exhausted with no interior errors" in text:
        return "no issuer was found for a certificate of the chain"
    return text.replace("candidates exhausted: ", "")


def name_label(name: x509.Name) -> str:
    """The common name, as people call a CA ("Corp Root CA"); the whole DN when there is none."""
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if attributes:
        return str(attributes[0].value)
    return name.rfc4514_string() or "(an empty name)"


def top_of(leaf: x509.Certificate, pool) -> tuple[x509.Certificate, ...]:
    """The issuers above ``leaf`` found in ``pool`` by name (for the message only, not for the verdict):
    the chain as far as names lead, without checking anything."""
    chain: list[x509.Certificate] = []
    current = leaf
    seen = {leaf.fingerprint(_SHA256)}
    pool = list(pool)
    for _ in range(MAX_CHAIN_DEPTH):
        if is_self_signed(current) and current is not leaf:
            break
        parent = next((c for c in pool if c.subject == current.issuer and c.fingerprint(_SHA256) not in seen), None)
        if parent is None:
            break
        seen.add(parent.fingerprint(_SHA256))
        chain.append(parent)
        current = parent
    return tuple(chain)
