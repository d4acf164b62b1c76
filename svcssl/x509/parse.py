"""PEM / DER / PKCS#12 bytes to certificate and key objects, with errors a person understands.

PEM is read in any order, with CRLF line ends, a byte-order mark or text around
the blocks. Certificates that parse lazily (cryptography defers extension
parsing) are checked eagerly here, so a malformed extension fails at input time
with the same clean error as any other malformed certificate.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from ..errors import CertificateParseError, InputError, KeyParseError, PasswordError
from .inspect import CertificateInfo, describe, key_label, spki_sha256
from .pbe import PbeCostError, check_iteration_counts
from .pkcs12child import CPU_SECONDS, TooCostly, open_pkcs12

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----")
_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----\n(.*?)\n?-----END \1-----", re.S)

CERTIFICATE_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"})
KEY_LABELS = frozenset({b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"})
_OTHER_LABELS = {
    b"CERTIFICATE REQUEST": "a certificate signing request (CSR), not a certificate: "
    "send the CSR to your certificate authority and paste the certificate it returns",
    b"NEW CERTIFICATE REQUEST": "a certificate signing request (CSR), not a certificate: "
    "send the CSR to your certificate authority and paste the certificate it returns",
    b"X509 CRL": "a certificate revocation list (CRL), not a certificate",
    b"PUBLIC KEY": "a public key, not a certificate",
    b"RSA PUBLIC KEY": "a public key, not a certificate",
    b"PKCS7": "a PKCS#7 container: export the certificates as PEM",
    b"DSA PRIVATE KEY": "a DSA private key, which no TLS service here accepts",
    b"OPENSSH PRIVATE KEY": "an OpenSSH private key, not a TLS private key",
}


@dataclass(frozen=True)
class PemBlock:
    label: bytes
    pem: bytes  # normalised PEM text of this block alone
    body: bytes  # the lines between BEGIN and END (may include RFC 1421 headers)


@dataclass(frozen=True)
class CertificateInput:
    """What one input field held: certificates in the order given, and any private keys."""

    certificates: tuple[x509.Certificate, ...]
    keys: tuple[PrivateKey, ...]
    from_pkcs12: bool = False


def normalise_text(data: bytes) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def looks_like_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def split_pem(data: bytes, what: str, field: str) -> tuple[PemBlock, ...]:
    """Every PEM block in ``data``; a BEGIN without its END is a truncated file."""
    text = normalise_text(data)
    blocks = []
    for match in _BLOCK.finditer(text):
        label = match.group(1)
        lines = [line.strip() for line in match.group(2).split(b"\n") if line.strip()]
        headers = [line for line in lines if b":" in line]
        if headers:  # RFC 1421 headers (traditional encrypted keys) end with a blank line
            lines = headers + [b""] + [line for line in lines if b":" not in line]
        body = b"\n".join(lines)
        pem = b"-----BEGIN " + label + b"-----\n" + body + b"\n-----END " + label + b"-----\n"
        blocks.append(PemBlock(label=label, pem=pem, body=body))
    begins = len(_BEGIN.findall(text))
    if begins > len(blocks):
        raise CertificateParseError(
            f"The {what} is truncated: a '-----BEGIN' line has no matching '-----END' line.", field=field
        )
    return tuple(blocks)


def _body_der(block: PemBlock, what: str, field: str) -> bytes:
    lines = [line for line in block.body.split(b"\n") if b":" not in line]
    try:
        return base64.b64decode(b"".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateParseError(f"The {what} contains a PEM block that is not valid base64.", field=field) from None


def _malformed(exc: Exception) -> str:
    """What is wrong with a certificate, from whatever cryptography raised while reading it."""
    if isinstance(exc, x509.InvalidVersion):
        return f"it declares X.509 version number {exc.parsed_version}, which does not exist (v3 is 2)"
    if isinstance(exc, x509.DuplicateExtension):
        name = getattr(exc.oid, "_name", None) or exc.oid.dotted_string
        return f"it holds the {name} extension more than once"
    if isinstance(exc, x509.UnsupportedGeneralNameType):
        return "its subjectAltName holds an x400Address or ediPartyName name, which svcssl cannot read"
    where = re.search(r'location: \["([a-z_]+)"', str(exc))
    if where:
        return f"its {where.group(1).replace('_', ' ')} extension cannot be decoded"
    return _reason(exc)


def check_certificate(cert: x509.Certificate, what: str = "certificate", field: str = "crt") -> x509.Certificate:
    """Touch every lazily parsed part (and everything ``describe`` reads) so that a malformed certificate
    fails here, as a CertificateParseError, and never later with another exception."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # e.g. a negative serial number
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            for extension in cert.extensions:
                extension.value  # noqa: B018 - parsing happens on access
            cert.public_key()
            cert.not_valid_before_utc
            cert.not_valid_after_utc
            describe(cert)
    except UnsupportedAlgorithm:
        raise CertificateParseError(f"The {what} uses a public-key algorithm that is not supported.", field=field) from None
    except Exception as exc:  # noqa: BLE001 - whatever cryptography raises, the user gets one clear message
        raise CertificateParseError(f"The {what} is malformed: {_malformed(exc)}.", field=field) from None
    return cert


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:200]


def _load_der_certificate(der: bytes, what: str, field: str) -> x509.Certificate:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateParseError(f"The {what} is not a valid X.509 certificate ({_reason(exc)}).", field=field) from None
    except Exception as exc:  # noqa: BLE001 - InvalidVersion and friends are not ValueErrors
        raise CertificateParseError(f"The {what} is malformed: {_malformed(exc)}.", field=field) from None
    return check_certificate(cert, what, field)


def is_pkcs12(data: bytes) -> bool:
    """PFX ::= SEQUENCE { version INTEGER (3), ... } — recognise it by its first bytes."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    length_byte = data[1]
    offset = 2 + (length_byte & 0x7F if length_byte & 0x80 else 0)
    return data[offset : offset + 3] == b"\x02\x01\x03"


def _describe_der(data: bytes) -> str | None:
    """Name a DER structure that is not a certificate, for the error message."""
    loaders = (
        (x509.load_der_x509_csr, _OTHER_LABELS[b"CERTIFICATE REQUEST"]),
        (x509.load_der_x509_crl, _OTHER_LABELS[b"X509 CRL"]),
    )
    for loader, description in loaders:
        try:
            loader(data)
            return description
        except Exception:  # noqa: BLE001 - any failure means "not this kind"
            continue
    try:
        serialization.load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
        return "a private key, not a certificate: paste it in the private key field"
    except TypeError:
        return "an encrypted private key, not a certificate: paste it in the private key field"
    except Exception:  # noqa: BLE001
        return None


def read_certificate_input(
    data: bytes, password: bytes | None = None, *, what: str = "certificate", field: str = "crt",
    validate_keys: bool = True,
) -> CertificateInput:
    """Read a certificate field: PEM (certificates and possibly keys), DER, or PKCS#12."""
    if not data.strip():
        raise CertificateParseError(f"The {what} is empty.", field=field)
    if looks_like_pem(data):
        blocks = split_pem(data, what, field)
        certificates = []
        keys = []
        for block in blocks:
            if block.label in CERTIFICATE_LABELS:
                certificates.append(_load_der_certificate(_body_der(block, what, field), what, field))
            elif block.label in KEY_LABELS:
                keys.append(read_private_key(block.pem, password, validate=validate_keys))
            elif block.label in _OTHER_LABELS:
                raise CertificateParseError(f"The {what} field holds {_OTHER_LABELS[block.label]}.", field=field)
            else:
                label = block.label.decode("ascii", "replace")
                raise CertificateParseError(f"The {what} holds a PEM block of type '{label}', which is not a certificate.", field=field)
        if not certificates:
            if keys:
                raise CertificateParseError(
                    f"The {what} field holds a private key, not a certificate: paste the key in the private key field.",
                    field=field,
                )
            raise CertificateParseError(f"The {what} holds no certificate.", field=field)
        return CertificateInput(tuple(certificates), tuple(keys))
    if is_pkcs12(data):
        return read_pkcs12(data, password, field=field)
    if data[:1] == b"\x30":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert = x509.load_der_x509_certificate(data)
        except ValueError:
            description = _describe_der(data)
            if description:
                raise CertificateParseError(f"The {what} field holds {description}.", field=field) from None
            raise CertificateParseError(
                f"The {what} is neither PEM, DER nor PKCS#12: it could not be read.", field=field
            ) from None
        except Exception as exc:  # noqa: BLE001 - InvalidVersion and friends are not ValueErrors
            raise CertificateParseError(f"The {what} is malformed: {_malformed(exc)}.", field=field) from None
        return CertificateInput((check_certificate(cert, what, field),), ())
    raise CertificateParseError(
        f"The {what} is not a certificate: expected PEM text starting with '-----BEGIN CERTIFICATE-----', "
        "a DER file or a PKCS#12 (.p12/.pfx) file.",
        field=field,
    )


def read_certificates(data: bytes, *, what: str = "CA bundle", field: str = "cabundle") -> tuple[x509.Certificate, ...]:
    """Read a list of certificates (a CA bundle): PEM or DER, no keys allowed."""
    result = read_certificate_input(data, None, what=what, field=field)
    if result.keys:
        raise CertificateParseError(f"The {what} contains a private key; it must hold certificates only.", field=field)
    return result.certificates


def read_downloaded_certificates(data: bytes) -> tuple[x509.Certificate, ...]:
    """Certificates a CA publishes at a caIssuers URL: DER, PEM or PKCS#7 (DER or PEM). Malformed ones are
    left out (they are checked as every other certificate is); nothing usable gives ()."""
    loaders = (x509.load_der_x509_certificate, x509.load_pem_x509_certificates, pkcs7.load_der_pkcs7_certificates,
               pkcs7.load_pem_pkcs7_certificates)
    for loader in loaders:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                result = loader(data)
        except Exception:  # noqa: BLE001 - try the next format
            continue
        certificates = []
        for cert in (result if isinstance(result, list) else [result]):
            try:
                certificates.append(check_certificate(cert, "downloaded issuer certificate"))
            except InputError:
                continue
        return tuple(certificates)
    return ()


def read_pkcs12(data: bytes, password: bytes | None, *, field: str = "crt") -> CertificateInput:
    check_iteration_counts(data, "PKCS#12 file", field)  # before OpenSSL derives any key from the password
    attempts = [password] if password else [None, b""]
    try:
        opened = open_pkcs12(data, attempts)  # in a child process with a CPU limit: hidden bags are bounded too
    except TooCostly:
        raise PbeCostError(
            f"The PKCS#12 file needs more than {CPU_SECONDS} s of CPU to open: its key derivations (some inside its "
            "encrypted parts, counted only while it opens) exceed the limit. Export it again with the default "
            "settings.", field=field) from None
    if "unsupported" in opened:
        raise CertificateParseError(f"The PKCS#12 file uses an unsupported algorithm: {opened['unsupported']}.",
                                    field=field)
    if "malformed" in opened:
        raise CertificateParseError(f"The PKCS#12 file is malformed: {opened['malformed']}.", field=field)
    if "wrong_password" in opened:
        if password:
            raise PasswordError("The PKCS#12 password is wrong (or the file is damaged).", field="password")
        raise PasswordError("The PKCS#12 file is protected by a password: give its password.", field="password")
    key = serialization.load_der_private_key(base64.b64decode(opened["key"]), None) if opened["key"] else None
    cert = x509.load_der_x509_certificate(base64.b64decode(opened["cert"])) if opened["cert"] else None
    extra = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in opened["extra"]]
    if cert is None:
        raise CertificateParseError("The PKCS#12 file holds no certificate.", field=field)
    certificates = [check_certificate(cert)] + [check_certificate(c, "CA certificate") for c in extra]
    keys = []
    if key is not None:
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise KeyParseError("The PKCS#12 private key is neither RSA nor ECDSA, which the services here need.")
        keys.append(key)
    return CertificateInput(tuple(certificates), tuple(keys), from_pkcs12=True)


def read_private_key(data: bytes, password: bytes | None = None, *, validate: bool = True) -> PrivateKey:
    """Read one private key (PKCS#8 or traditional, PEM or DER, encrypted with ``password``).

    ``validate=False`` skips the costly RSA consistency check; use it only for keys
    that were validated when they were imported.
    """
    if not data.strip():
        raise KeyParseError("The private key is empty.")
    if looks_like_pem(data):
        blocks = split_pem(data, "private key", "key")
        keys = [b for b in blocks if b.label in KEY_LABELS]
        if not keys:
            if any(b.label in CERTIFICATE_LABELS for b in blocks):
                raise KeyParseError("The private key field holds a certificate, not a private key.")
            raise KeyParseError("The private key field holds no private key ('-----BEGIN PRIVATE KEY-----').")
        if len(keys) > 1:
            raise KeyParseError("The private key field holds more than one private key: give only the one for this certificate.")
        block = keys[0]
        loader, payload = serialization.load_pem_private_key, block.pem
        encrypted = block.label == b"ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in block.body.split(b"\n", 1)[0]
        if block.label == b"ENCRYPTED PRIVATE KEY":
            check_iteration_counts(_body_der(block, "private key", "key"), "encrypted private key", "key")
    else:
        loader, payload = serialization.load_der_private_key, data
        encrypted = False
        check_iteration_counts(data, "encrypted private key", "key", unreadable_ok=True)
    try:
        try:
            key = loader(payload, password=password or None, unsafe_skip_rsa_key_validation=not validate)
        except TypeError as exc:
            if "not encrypted" in str(exc):
                key = loader(payload, password=None, unsafe_skip_rsa_key_validation=not validate)
            else:
                raise PasswordError("The private key is encrypted: give its passphrase.", field="password") from None
    except ValueError as exc:
        if password and (encrypted or "decrypt" in str(exc).lower() or "password" in str(exc).lower()):
            raise PasswordError("The passphrase does not decrypt the private key.", field="password") from None
        raise KeyParseError(f"The private key could not be read ({_reason(exc)}).") from None
    except UnsupportedAlgorithm as exc:
        raise KeyParseError(f"The private key uses an unsupported algorithm ({_reason(exc)}).") from None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, the user gets one clear message
        raise KeyParseError(f"The private key could not be read ({_reason(exc)}).") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyParseError("The private key is neither RSA nor ECDSA, which the services here need.")
    return key


@dataclass(frozen=True)
class ParsedFile:
    """Every usable certificate and key of a file found on the server (account storage, Apache's files …)."""

    certificates: tuple[tuple[CertificateInfo, bytes, bytes], ...]  # (info, subject DER, issuer DER)
    keys: tuple[tuple[str, str], ...]  # (SPKI SHA-256, key label)
    problem: str | None


def parse_file(data: bytes) -> ParsedFile:
    """Every certificate and private key in a file (PEM with any number of blocks, or one DER certificate).

    Never raises: a damaged block is reported in ``problem`` and the usable blocks of the same file are
    still returned. Keys are read without the slow RSA consistency check (only their public half is
    needed); the install path validates a key fully before it is deployed.
    """
    certificates: list[tuple[CertificateInfo, bytes, bytes]] = []
    keys: list[tuple[str, str]] = []
    problems: list[str] = []
    if not data.strip():
        return ParsedFile((), (), "empty file")
    if looks_like_pem(data):
        try:
            blocks = split_pem(data, "file", "crt")
        except InputError as exc:
            return ParsedFile((), (), exc.message)
        for number, block in enumerate(blocks, 1):
            if block.label in CERTIFICATE_LABELS:
                try:
                    cert = _load_der_certificate(_body_der(block, "certificate", "crt"), "certificate", "crt")
                    certificates.append((describe(cert), cert.subject.public_bytes(), cert.issuer.public_bytes()))
                except InputError as exc:
                    problems.append(f"PEM block {number}: {exc.message}")
            elif block.label in KEY_LABELS:
                try:
                    key = read_private_key(block.pem, validate=False)
                except InputError as exc:
                    if exc.field == "password":
                        problems.append(f"PEM block {number}: an encrypted private key (svcssl cannot use it "
                                        "without its passphrase)")
                    else:
                        problems.append(f"PEM block {number}: {exc.message}")
                    continue
                public = key.public_key()
                keys.append((spki_sha256(public), key_label(public)))
            else:
                problems.append(f"PEM block {number}: '{block.label.decode('ascii', 'replace')}' is neither a "
                                "certificate nor a private key")
        if not blocks:
            problems.append("no complete PEM block")
    else:
        try:
            cert = _load_der_certificate(data, "certificate", "crt")
            certificates.append((describe(cert), cert.subject.public_bytes(), cert.issuer.public_bytes()))
        except InputError as exc:
            problems.append("neither PEM nor a DER certificate" if "not a valid X.509" in exc.message else exc.message)
    return ParsedFile(tuple(certificates), tuple(keys), "; ".join(problems) or None)
