"""CA bundles built from the CA repository: the issuer chain of a certificate, leaf's issuer first, root left out.

The repository is every certificate the index knows (the directories of ``[cabundles] dirs``,
Apache chain files, the services' chains, accounts' storage) — the caller passes a function that
returns the candidates for a certificate's issuer (by subject name). Each link is checked: the
issuer's subject is the child's issuer name, its SubjectKeyIdentifier matches the child's
AuthorityKeyIdentifier when both are present, and its key verifies the child's signature.

Optionally (``[cabundles] aia_fetch``) a missing issuer is downloaded from the certificate's
caIssuers URL (AIA), with a timeout and a size cap, and used only when its signature checks out.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import NameOID

from ..httpfetch import FetchError, FetchPolicy, fetch
from ..x509.inspect import access_urls, is_self_signed, key_identifiers
from ..x509.parse import read_downloaded_certificates
from ..x509.validate import issued_by

log = logging.getLogger(__name__)

AIA_TIMEOUT = 5.0  # seconds per download
AIA_MAX_BYTES = 64 * 1024  # an issuer certificate (or a PKCS#7 of a few) is a few KiB
AIA_MAX_URLS = 2  # caIssuers URLs tried per certificate
MAX_CHAIN = 8
_SHA256 = SHA256()

IssuerCandidates = Callable[[x509.Certificate], Iterable[x509.Certificate]]


@dataclass(frozen=True)
class ChainResult:
    chain: tuple[x509.Certificate, ...]  # the leaf's issuer first, the root left out
    complete: bool  # it ends below a root that was found (or the certificate is self-signed)
    missing: str | None  # what the user must supply, said precisely
    notes: tuple[str, ...]
    fetched: tuple[str, ...]  # caIssuers URLs downloaded


def name_label(name: x509.Name) -> str:
    """"R11, Let's Encrypt": the common name and organisation, as people call a CA."""
    parts = []
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        attributes = name.get_attributes_for_oid(oid)
        if attributes:
            parts.append(str(attributes[0].value))
    return ", ".join(parts) or name.rfc4514_string() or "(an empty name)"


def _key_ids(cert: x509.Certificate) -> tuple[str | None, str | None]:
    try:
        return key_identifiers(cert)
    except ValueError:  # a malformed key identifier extension: rank it as unknown
        return None, None


def find_issuer(child: x509.Certificate, candidates: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """The candidate that issued ``child``: SKI = AKI first, then any whose signature verifies."""
    aki = _key_ids(child)[1]
    ranked = []
    for candidate in candidates:
        ski = _key_ids(candidate)[0]
        if aki is not None and ski is not None and ski != aki:
            continue  # another key of a CA with the same name (a rollover)
        ranked.append(candidate)
    for candidate in ranked:
        if issued_by(child, candidate):
            return candidate
    return None


def _parse_downloaded(data: bytes) -> list[x509.Certificate]:
    return list(read_downloaded_certificates(data))


class AiaFetcher:
    """Download issuers from caIssuers URLs (http/https), with a timeout and size cap; remember what came back."""

    def __init__(self, timeout: float = AIA_TIMEOUT, max_bytes: int = AIA_MAX_BYTES, *, allow_local: bool = False):
        self.timeout = timeout
        self.max_bytes = max_bytes
        # The URLs come from pasted certificates: never let one make the server reach its own
        # network (loopback, private, link-local ...) unless told to (tests on loopback).
        self.allow_local = allow_local
        self._cache: dict[str, list[x509.Certificate]] = {}
        self._lock = threading.Lock()

    def urls(self, cert: x509.Certificate) -> list[str]:
        try:
            urls = access_urls(cert).ca_issuers
        except ValueError:
            return []
        return [url for url in urls if url.lower().startswith(("http://", "https://"))]

    def cached(self, url: str) -> list[x509.Certificate]:
        """What an earlier download of ``url`` brought (never the network)."""
        with self._lock:
            return list(self._cache.get(url, ()))

    def download(self, url: str) -> tuple[list[x509.Certificate], str | None]:
        with self._lock:
            if url in self._cache:
                return self._cache[url], None
        try:
            data = fetch(url, FetchPolicy(timeout=self.timeout, max_bytes=self.max_bytes, allow_local=self.allow_local))
        except FetchError as exc:
            if exc.too_large:
                return [], f"{url} sent more than {self.max_bytes:,} bytes: ignored"
            return [], f"downloading {url} failed: {exc}"
        certificates = _parse_downloaded(data)
        if not certificates:
            return [], f"{url} did not send a certificate"
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[url] = certificates
        return certificates, None

    def issuer_of(self, cert: x509.Certificate) -> tuple[x509.Certificate | None, str | None, str | None]:
        """(issuer, URL it came from, note on failure)."""
        note = None
        for url in self.urls(cert)[:AIA_MAX_URLS]:  # a certificate may name many: only the first few are tried
            certificates, note = self.download(url)
            issuer = find_issuer(cert, certificates)
            if issuer is not None:
                log.info("issuer %s downloaded from %s", name_label(issuer.subject), url)
                return issuer, url, None
            if note is None:
                note = f"{url} sent a certificate that did not issue this one"
        return None, None, note


def build_chain(leaf: x509.Certificate, candidates: IssuerCandidates, *, given: Iterable[x509.Certificate] = (),
                fetcher: AiaFetcher | None = None) -> ChainResult:
    """Follow issuers upward from ``leaf`` until a root (left out) or a certificate whose issuer is not found.

    ``given`` are certificates to try first (the file's own chain, a vhost's chain file).
    """
    if is_self_signed(leaf):
        return ChainResult((), True, None, ("The certificate is self-signed: it needs no CA bundle.",), ())
    given = list(given)
    chain: list[x509.Certificate] = []
    notes: list[str] = []
    fetched: list[str] = []
    current = leaf
    seen = {leaf.fingerprint(_SHA256)}
    for _ in range(MAX_CHAIN):
        parent = find_issuer(current, given) or find_issuer(current, candidates(current))
        if parent is None and fetcher is not None:
            parent, url, note = fetcher.issuer_of(current)
            if url:
                fetched.append(url)
            if note:
                notes.append(note)
        issuer = name_label(current.issuer)
        if parent is None:
            if current is leaf:
                return ChainResult((), False, f"Issuer {issuer} not found: paste the CA bundle your CA gave you.",
                                   tuple(notes), tuple(fetched))
            notes.append(f"The CA bundle ends at {name_label(current.subject)}: its issuer {issuer} is not on this "
                         "server (no need if it is a root your clients trust).")
            return ChainResult(tuple(chain), False, None, tuple(notes), tuple(fetched))
        if is_self_signed(parent):
            return ChainResult(tuple(chain), True, None, tuple(notes), tuple(fetched))
        key = parent.fingerprint(_SHA256)
        if key in seen:
            notes.append(f"The issuers of {name_label(current.subject)} form a loop: the CA bundle stops there.")
            return ChainResult(tuple(chain), False, None, tuple(notes), tuple(fetched))
        seen.add(key)
        chain.append(parent)
        current = parent
    notes.append(f"The issuer chain is longer than {MAX_CHAIN} certificates: the CA bundle stops there.")
    return ChainResult(tuple(chain), False, None, tuple(notes), tuple(fetched))
