"""CertificateInfo: what a person (and WHM's API) wants to know about one certificate."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

from .signature import issued_by
from ..timewords import whole_days

# OpenSSL's names for the curves, as WHM reports them.
CURVE_NAMES = {"secp256r1": ("prime256v1", "P-256"), "secp384r1": ("secp384r1", "P-384"), "secp521r1": ("secp521r1", "P-521")}


@dataclass(frozen=True)
class CertificateInfo:
    fingerprint: str  # lower-case hex SHA-256 of the DER
    spki_sha256: str
    subject_cn: str | None
    domains: tuple[str, ...]  # CN + SAN DNS names, no duplicates
    issuer: tuple[tuple[str, str], ...]  # (long attribute name, value), in DN order
    subject: tuple[tuple[str, str], ...]
    not_before: datetime
    not_after: datetime
    key_algorithm: str  # rsaEncryption | id-ecPublicKey
    key_size: int
    key_label: str  # "RSA, 2,048-bit" | "ECDSA, P-256 (prime256v1)"
    modulus: str | None
    ecdsa_curve_name: str | None
    ecdsa_public: str | None
    signature_algorithm: str  # e.g. sha256WithRSAEncryption
    signature_hash: str | None  # sha256, sha1, md5 …
    is_self_signed: bool
    is_ca: bool
    has_san: bool
    has_server_auth: bool  # usable by a TLS server: no EKU (any purpose, RFC 5280 §4.2.1.12), or an EKU with serverAuth/any
    has_eku: bool
    serial: str
    subject_key_id: str | None
    authority_key_id: str | None
    crl_urls: tuple[str, ...]
    ocsp_urls: tuple[str, ...]
    ca_issuers_urls: tuple[str, ...]

    def issuer_value(self, attribute: str) -> str | None:
        for name, value in self.issuer:
            if name == attribute:
                return value
        return None

    @property
    def issuer_text(self) -> str:
        """WHM's issuer_text: attribute names and values on alternate lines."""
        return "".join(f"{name}\n{value}\n" for name, value in self.issuer)

    @property
    def issuer_label(self) -> str:
        parts = [p for p in (self.issuer_value("commonName"), self.issuer_value("organizationName")) if p]
        return ", ".join(parts) or "(no issuer name)"

    def days_left(self, now: datetime) -> int:
        return whole_days(self.not_after - now)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(public_key) -> str:
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def _name_pairs(name: x509.Name) -> tuple[tuple[str, str], ...]:
    pairs = []
    for attribute in name:
        label = getattr(attribute.oid, "_name", None) or attribute.oid.dotted_string
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        pairs.append((label, value))
    return tuple(pairs)


def extension_value(cert: x509.Certificate, oid):
    """The parsed value of one extension, or None when the certificate does not have it."""
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None



@dataclass(frozen=True)
class AccessUrls:
    """The URLs a certificate names: CRL distribution points, OCSP responders, caIssuers (AIA)."""

    crl: tuple[str, ...]
    ocsp: tuple[str, ...]
    ca_issuers: tuple[str, ...]


def access_urls(cert: x509.Certificate) -> AccessUrls:
    """Every URI of the CRL distribution points and the authority information access, in order."""
    crl_urls: list[str] = []
    for point in extension_value(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS) or ():
        for full_name in point.full_name or ():
            if isinstance(full_name, x509.UniformResourceIdentifier):
                crl_urls.append(full_name.value)
    ocsp_urls, ca_issuers = [], []
    for description in extension_value(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS) or ():
        if isinstance(description.access_location, x509.UniformResourceIdentifier):
            if description.access_method == AuthorityInformationAccessOID.OCSP:
                ocsp_urls.append(description.access_location.value)
            elif description.access_method == AuthorityInformationAccessOID.CA_ISSUERS:
                ca_issuers.append(description.access_location.value)
    return AccessUrls(tuple(crl_urls), tuple(ocsp_urls), tuple(ca_issuers))


def key_identifiers(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """(SubjectKeyIdentifier, AuthorityKeyIdentifier's keyIdentifier), lower-case hex, None when absent."""
    ski = extension_value(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    aki = extension_value(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    return (ski.digest.hex() if ski else None,
            aki.key_identifier.hex() if aki and aki.key_identifier else None)


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer equals subject and its own key verifies its signature, whatever the algorithm
    (a SHA-1 self-signed certificate is self-signed; that SHA-1 is weak is a separate reason)."""
    return issued_by(cert, cert)


def _serial(cert: x509.Certificate) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # a negative serial is shown as it is
        return format(cert.serial_number, "x")


def key_label(public_key) -> str:
    """"RSA, 2,048-bit" | "ECDSA, P-256 (prime256v1)" — as the table and WHM show a key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA, {public_key.key_size:,}-bit"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve, short = CURVE_NAMES.get(public_key.curve.name, (public_key.curve.name, public_key.curve.name))
        return f"ECDSA, {short} ({curve})"
    return type(public_key).__name__


def describe(cert: x509.Certificate) -> CertificateInfo:
    """Read every field once. The certificate must have passed ``parse.check_certificate``."""
    public_key = cert.public_key()
    modulus = curve = ec_public = None
    if isinstance(public_key, rsa.RSAPublicKey):
        key_algorithm = "rsaEncryption"
        key_size = public_key.key_size
        label = key_label(public_key)
        modulus = format(public_key.public_numbers().n, "x")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        key_algorithm = "id-ecPublicKey"
        key_size = public_key.curve.key_size
        curve, _ = CURVE_NAMES.get(public_key.curve.name, (public_key.curve.name, public_key.curve.name))
        label = key_label(public_key)
        ec_public = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint).hex()
    else:
        key_algorithm = getattr(cert.public_key_algorithm_oid, "_name", "unknown")
        key_size = 0
        label = key_algorithm

    cn_attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject_cn = str(cn_attrs[0].value) if cn_attrs else None
    san = extension_value(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    domains: list[str] = []
    for name in ([subject_cn] if subject_cn else []) + (san.get_values_for_type(x509.DNSName) if san else []):
        lowered = name.lower()
        if lowered not in domains:
            domains.append(lowered)

    eku = extension_value(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    # An absent EKU means any purpose (RFC 5280 §4.2.1.12); only a present EKU without serverAuth restricts it.
    has_server_auth = eku is None or (
        ExtendedKeyUsageOID.SERVER_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    )
    constraints = extension_value(cert, ExtensionOID.BASIC_CONSTRAINTS)
    ski, aki = key_identifiers(cert)
    urls = access_urls(cert)

    hash_algorithm = None
    try:
        if cert.signature_hash_algorithm is not None:
            hash_algorithm = cert.signature_hash_algorithm.name
    except Exception:  # noqa: BLE001 - unknown signature algorithms have no hash to name
        hash_algorithm = None

    return CertificateInfo(
        fingerprint=fingerprint(cert),
        spki_sha256=spki_sha256(public_key),
        subject_cn=subject_cn,
        domains=tuple(domains),
        issuer=_name_pairs(cert.issuer),
        subject=_name_pairs(cert.subject),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_algorithm=key_algorithm,
        key_size=key_size,
        key_label=label,
        modulus=modulus,
        ecdsa_curve_name=curve,
        ecdsa_public=ec_public,
        signature_algorithm=getattr(cert.signature_algorithm_oid, "_name", cert.signature_algorithm_oid.dotted_string),
        signature_hash=hash_algorithm,
        is_self_signed=is_self_signed(cert),
        is_ca=bool(constraints and constraints.ca),
        has_san=san is not None,
        has_server_auth=has_server_auth,
        has_eku=eku is not None,
        serial=_serial(cert),
        subject_key_id=ski,
        authority_key_id=aki,
        crl_urls=urls.crl,
        ocsp_urls=urls.ocsp,
        ca_issuers_urls=urls.ca_issuers,
    )
