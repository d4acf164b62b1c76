"""Is a certificate revoked? OCSP (where the certificate names a responder) and CRL distribution points.

``check_revocation`` never says "revoked" because something failed: an unreachable, oversized,
malformed, stale or unverifiable source gives ``state="unknown"`` with the reason in ``detail``.
Only http and https URLs are fetched (ldap:// and others are ignored), with a timeout and a size
cap, redirects limited to http(s). Fetched CRLs are cached under ``cache_dir`` (mode 0700, files
named by the SHA-256 of the URL) until their nextUpdate, and re-verified on every use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from .fsutil import atomic_write
from .httpfetch import FetchError, FetchPolicy, fetch
from .x509.inspect import access_urls, extension_value
from .x509.signature import verify_signature
from .x509.validate import issued_by

log = logging.getLogger(__name__)

USER_AGENT = "svcssl-revocation/1"
MAX_REDIRECTS = 3
CRL_REFETCH = timedelta(days=1)  # a cached CRL is fetched again after this, even before its nextUpdate


@dataclass(frozen=True)
class RevocationStatus:
    state: str  # "good" | "revoked" | "unknown"
    source: str | None  # "crl" | "ocsp" | None (nothing could be checked)
    detail: str  # e.g. "revoked on 2026-11-01 (keyCompromise) per http://…/int.crl"
    revoked_at: datetime | None = None
    reason: str | None = None  # RFC 5280 reason name, e.g. "keyCompromise"


class _SourceError(Exception):
    """A source gave no usable answer; the message is a readable verb phrase ("is out of date …")."""


class _FetchError(_SourceError):
    """The source could not be reached or read; the message is the network's reason ("timed out")."""


# --------------------------------------------------------------------------- URLs in the certificate

def _urls(leaf: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    """(CRL URLs, OCSP URLs, ignored non-http URLs), from the x509 core's reading of the certificate."""
    crl_urls: list[str] = []
    ocsp_urls: list[str] = []
    ignored: list[str] = []

    def keep(url: str, into: list[str]) -> None:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        target = into if scheme in ("http", "https") else ignored
        if url not in target:
            target.append(url)

    urls = access_urls(leaf)
    for url in urls.crl:
        keep(url, crl_urls)
    for url in urls.ocsp:
        keep(url, ocsp_urls)
    return crl_urls, ocsp_urls, ignored


# --------------------------------------------------------------------------- HTTP

def _http(url: str, *, timeout: float, max_bytes: int, body: bytes | None = None,
          content_type: str | None = None, accept: str | None = None) -> bytes:
    """GET (or POST ``body``) ``url`` with the one fetch policy; CRL and OCSP servers may sit on local
    addresses (a private CA), and CAs move their CRLs behind a few redirects."""
    headers = {name: value for name, value in (("Content-Type", content_type), ("Accept", accept)) if value}
    policy = FetchPolicy(timeout=timeout, max_bytes=max_bytes, max_redirects=MAX_REDIRECTS, allow_local=True,
                         user_agent=USER_AGENT)
    try:
        return fetch(url, policy, body=body, headers=headers)
    except FetchError as exc:
        raise _FetchError(str(exc)) from None


# --------------------------------------------------------------------------- signatures and formatting

def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _reason_name(reason) -> str | None:
    return reason.value if isinstance(reason, x509.ReasonFlags) else None


def _revoked_text(when: datetime | None, reason: str | None, where: str) -> str:
    text = "revoked"
    if when is not None:
        text += f" on {_day(when)}"
    if reason and reason != "unspecified":
        text += f" ({reason})"
    return f"{text} per {where}"


# --------------------------------------------------------------------------- OCSP

def _responder_matches(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_name is not None:
        return resp.responder_name == cert.subject
    if resp.responder_key_hash is not None:
        return resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return False


def _ocsp_signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> x509.Certificate:
    """The certificate whose key signed ``resp``: the issuer, or a responder it delegated to."""
    algorithm = resp.signature_hash_algorithm
    if _responder_matches(resp, issuer) and verify_signature(issuer.public_key(), resp.signature,
                                                              resp.tbs_response_bytes, algorithm):
        return issuer
    why = "answered with a response not signed by the issuer or by a responder it authorised"
    for cert in resp.certificates:
        if not _responder_matches(resp, cert) or cert.issuer != issuer.subject:
            continue
        if not issued_by(cert, issuer):
            continue
        eku = extension_value(cert, ExtensionOID.EXTENDED_KEY_USAGE)
        if not eku or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            why = "answered with a response signed by a responder certificate without the OCSPSigning usage"
        elif not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            why = "answered with a response signed by a responder certificate that is not valid now"
        elif verify_signature(cert.public_key(), resp.signature, resp.tbs_response_bytes, algorithm):
            return cert
    raise _SourceError(why)


def _matching_single(resp: ocsp.OCSPResponse, leaf: x509.Certificate, issuer: x509.Certificate):
    for single in resp.responses:
        if single.serial_number != leaf.serial_number:
            continue
        # Compare the CertID under whatever hash the responder used.
        expected = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, single.hash_algorithm).build()
        if single.issuer_name_hash == expected.issuer_name_hash and single.issuer_key_hash == expected.issuer_key_hash:
            return single
    raise _SourceError("answered with a response that says nothing about this certificate")


def _check_ocsp(url: str, leaf: x509.Certificate, issuer: x509.Certificate, *, now: datetime, timeout: float,
                max_bytes: int) -> RevocationStatus:
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    data = _http(url, timeout=timeout, max_bytes=max_bytes, body=request.public_bytes(serialization.Encoding.DER),
                 content_type="application/ocsp-request", accept="application/ocsp-response")
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise _SourceError("answered with something that is not an OCSP response") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise _SourceError(f"answered {resp.response_status.name}")
    try:
        _ocsp_signer(resp, issuer, now)
        single = _matching_single(resp, leaf, issuer)
        this_update, next_update = single.this_update_utc, single.next_update_utc
        status = single.certificate_status
    except _SourceError:
        raise
    except (ValueError, TypeError) as exc:
        raise _SourceError(f"answered with a malformed response ({exc})") from None
    if this_update > now:
        raise _SourceError(f"answered with a response not yet valid (thisUpdate {this_update:%Y-%m-%d %H:%M} UTC)")
    if status == ocsp.OCSPCertStatus.REVOKED:
        when, reason = single.revocation_time_utc, _reason_name(single.revocation_reason)
        return RevocationStatus("revoked", "ocsp", _revoked_text(when, reason, f"OCSP {url}"), when, reason)
    if next_update is not None and next_update < now:
        raise _SourceError(f"answered with an out-of-date response (nextUpdate {next_update:%Y-%m-%d %H:%M} UTC)")
    if status == ocsp.OCSPCertStatus.GOOD:
        return RevocationStatus("good", "ocsp", f"not revoked per OCSP {url}")
    raise _SourceError("does not know this certificate (status UNKNOWN)")


# --------------------------------------------------------------------------- CRL

def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise _SourceError("is not a CRL (neither DER nor PEM)") from None


def _cache_path(cache_dir: Path, url: str) -> Path:
    return cache_dir / (hashlib.sha256(url.encode("utf-8")).hexdigest() + ".crl")


def _prepare_cache(cache_dir: Path) -> bool:
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(cache_dir, 0o700)
    except OSError as exc:
        log.warning("revocation: CRL cache %s unusable: %s", cache_dir, exc.strerror or exc)
        return False
    return True


def _crl_usable(crl: x509.CertificateRevocationList, leaf: x509.Certificate, issuer: x509.Certificate | None,
                now: datetime) -> str | None:
    """Why ``crl`` cannot speak for ``leaf`` (None when it can)."""
    if crl.issuer != leaf.issuer:
        return "it was issued by a different CA than the certificate (indirect CRLs are not supported)"
    if issuer is not None:
        if issuer.subject != leaf.issuer:
            return "the issuer certificate given is not the certificate's issuer"
        try:
            valid = crl.is_signature_valid(issuer.public_key())
        except (TypeError, ValueError):
            valid = False
        if not valid:
            return "its signature does not verify with the issuer's key"
    if crl.last_update_utc > now:
        return f"it is not yet valid (thisUpdate {crl.last_update_utc:%Y-%m-%d %H:%M} UTC)"
    try:
        if _extension_of_crl(crl, ExtensionOID.DELTA_CRL_INDICATOR) is not None:
            return "it is a delta CRL"
        idp = _extension_of_crl(crl, ExtensionOID.ISSUING_DISTRIBUTION_POINT)
    except ValueError as exc:
        return f"its extensions are malformed ({exc})"
    if idp is not None and (idp.only_contains_ca_certs or idp.only_contains_attribute_certs
                            or idp.only_some_reasons or idp.indirect_crl):
        return "it covers only part of the certificates or reasons (partitioned CRL)"
    return None


def _extension_of_crl(crl: x509.CertificateRevocationList, oid):
    try:
        return crl.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _fetched_path(cache_dir: Path, url: str) -> Path:
    return _cache_path(cache_dir, url).with_suffix(".fetched")


def _cached_crl(cache_dir: Path | None, url: str, leaf, issuer, now: datetime):
    """The cached CRL, while it is valid and was fetched less than a day ago (a CA may publish a
    revocation long before its CRL's nextUpdate)."""
    if cache_dir is None:
        return None
    path = _cache_path(cache_dir, url)
    try:
        data = path.read_bytes()
        fetched_at = datetime.fromtimestamp(int(_fetched_path(cache_dir, url).read_text().strip()), timezone.utc)
        crl = x509.load_der_x509_crl(data)
        next_update = crl.next_update_utc
    except (OSError, ValueError):
        return None
    if not timedelta(0) <= now - fetched_at < CRL_REFETCH:
        return None
    if next_update is None or next_update <= now or _crl_usable(crl, leaf, issuer, now) is not None:
        return None
    return crl


def _store_crl(cache_dir: Path | None, url: str, crl: x509.CertificateRevocationList, now: datetime) -> None:
    if cache_dir is None or crl.next_update_utc is None or crl.next_update_utc <= now:
        return
    if not _prepare_cache(cache_dir):
        return
    try:
        atomic_write(_cache_path(cache_dir, url), crl.public_bytes(serialization.Encoding.DER), 0o600)
        atomic_write(_fetched_path(cache_dir, url), f"{int(now.timestamp())}\n".encode(), 0o600)
    except OSError as exc:
        log.warning("revocation: could not cache the CRL from %s: %s", url, exc.strerror or exc)


def _age(delta: timedelta) -> str:
    hours = max(0.0, delta.total_seconds() / 3600)
    if hours < 1:
        return "less than an hour"
    if hours < 48:
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''}"
    return f"{hours / 24:.1f} days"


def _check_crl(url: str, leaf: x509.Certificate, issuer: x509.Certificate | None, *, cache_dir: Path | None,
               now: datetime, timeout: float, max_bytes: int) -> RevocationStatus:
    crl = _cached_crl(cache_dir, url, leaf, issuer, now)
    if crl is not None:
        log.info("revocation: using the cached CRL from %s (valid until %s)", url, crl.next_update_utc)
    else:
        data = _http(url, timeout=timeout, max_bytes=max_bytes, accept="application/pkix-crl")
        crl = _load_crl(data)
        log.info("revocation: fetched the CRL from %s (%d bytes, %d entries)", url, len(data), len(crl))
        why = _crl_usable(crl, leaf, issuer, now)
        if why:
            raise _SourceError(f"cannot be used: {why}")
        _store_crl(cache_dir, url, crl, now)

    try:
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        reason = None
        if entry is not None:
            try:
                reason = _reason_name(entry.extensions.get_extension_for_class(x509.CRLReason).value.reason)
            except x509.ExtensionNotFound:
                reason = None
        next_update = crl.next_update_utc
    except ValueError as exc:
        raise _SourceError(f"is malformed ({exc})") from None

    if entry is not None and reason != "removeFromCRL":
        when = entry.revocation_date_utc
        if issuer is None:
            raise _SourceError(f"lists this certificate as revoked on {_day(when)}, but its signature could not "
                               "be checked (issuer certificate unknown)")
        return RevocationStatus("revoked", "crl", _revoked_text(when, reason, url), when, reason)
    if next_update is not None and next_update < now:
        raise _SourceError(f"is out of date (nextUpdate {next_update:%Y-%m-%d %H:%M} UTC)")
    if issuer is None:
        raise _SourceError("does not list this certificate, but its signature could not be checked "
                           "(issuer certificate unknown)")
    return RevocationStatus("good", "crl", f"not revoked per {url} (a CRL issued {_age(now - crl.last_update_utc)} ago)")


# --------------------------------------------------------------------------- entry point

def _failure(kind: str, url: str, exc: Exception) -> str:
    if isinstance(exc, _FetchError):
        text = f"{kind} {url} unreachable: {exc}"
    elif isinstance(exc, _SourceError):
        text = f"{kind} {url} {exc}"
    else:
        text = f"{kind} {url} could not be checked ({type(exc).__name__}: {exc})"
    log.info("revocation: %s", text)
    return text


def check_revocation(leaf: x509.Certificate, issuer: x509.Certificate | None, *, cache_dir: Path | None,
                     now: datetime, timeout: float = 5.0, max_bytes: int = 10 * 1024 * 1024) -> RevocationStatus:
    """The revocation state of ``leaf``: OCSP first (when it names a responder and ``issuer`` is known),
    then each http(s) CRL distribution point. The first definite answer (good or revoked) wins;
    otherwise "unknown" with every source's reason."""
    try:
        crl_urls, ocsp_urls, ignored = _urls(leaf)
    except ValueError as exc:
        return RevocationStatus("unknown", None, f"the certificate's CRL/OCSP extensions are malformed ({exc})")
    if not crl_urls and not ocsp_urls:
        if ignored:
            return RevocationStatus("unknown", None, "the certificate names only non-HTTP revocation sources "
                                                     f"({', '.join(ignored)}), which svcssl does not check")
        return RevocationStatus("unknown", None, "the certificate names no CRL distribution point or OCSP responder")
    failures: list[str] = []
    if issuer is not None and not issued_by(leaf, issuer):
        failures.append("the issuer certificate given did not issue this certificate")
        issuer = None

    if ocsp_urls and issuer is None:
        failures.append(f"OCSP {ocsp_urls[0]} not asked: the issuer certificate is unknown")
    elif ocsp_urls:
        for url in ocsp_urls:
            try:
                status = _check_ocsp(url, leaf, issuer, now=now, timeout=timeout, max_bytes=max_bytes)
            except Exception as exc:  # noqa: BLE001 - one bad source never stops the others
                failures.append(_failure("OCSP", url, exc))
                continue
            log.info("revocation: serial %x %s", leaf.serial_number, status.detail)
            return status

    for url in crl_urls:
        try:
            status = _check_crl(url, leaf, issuer, cache_dir=cache_dir, now=now, timeout=timeout,
                                max_bytes=max_bytes)
        except Exception as exc:  # noqa: BLE001 - one bad source never stops the others
            failures.append(_failure("CRL", url, exc))
            continue
        log.info("revocation: serial %x %s", leaf.serial_number, status.detail)
        return status

    return RevocationStatus("unknown", None, "; ".join(failures))
