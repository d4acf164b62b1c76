"""Trust as clients see it: the anchors this server trusts, the intermediates svcssl can find, and the finding
for one certificate (trusted, incomplete chain, untrusted) that the assessment turns into reason codes.

Anchors: the system's CA bundle (``[trust] system_store``) and ``[trust] ca_file``, parsed once and kept
while the files are unchanged (a stat each time). Intermediates path building may use, in order: the chain
the service has on disk, the directories of ``[cabundles] dirs``, certificates already on the server (the
discovery index, as Autofill uses), and the caIssuers (AIA) download when ``[cabundles] aia_fetch`` is on
(public addresses only). The path itself is built and checked by ``cryptography`` (x509/trust.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.utils import CryptographyDeprecationWarning

from ..discovery.cabundles import AiaFetcher
from ..errors import InputError
from ..fsutil import StatCache, read_bounded
from ..settings import Settings
from ..x509.inspect import is_self_signed
from ..x509.parse import read_certificates
from ..x509.trust import TrustAnchors, name_label, top_of, trust_anchors, verify_path
from .context import Context

log = logging.getLogger(__name__)

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ANCHOR_FILE_LIMIT = 4 * 1024 * 1024
CA_FILE_LIMIT = 1024 * 1024
MAX_POOL = 64  # intermediates gathered for one certificate
_SHA256 = SHA256()

TRUSTED, INCOMPLETE, UNTRUSTED, UNCHECKED = "trusted", "incomplete", "untrusted", "unchecked"


@dataclass(frozen=True)
class TrustFinding:
    """What a client would conclude about a certificate and its chain on disk."""

    state: str  # trusted | incomplete | untrusted | unchecked (self-signed, or no name to check)
    message: str = ""  # for incomplete / untrusted: a sentence naming the certificate at fault and what to do
    chain: tuple[x509.Certificate, ...] = ()  # the intermediates of the validated path (anchor left out)
    added: tuple[tuple[str, str], ...] = ()  # (intermediate's name, where svcssl found it) missing from the files

    @property
    def completed(self) -> bool:
        return self.state == INCOMPLETE and bool(self.chain)


# --- anchors ----------------------------------------------------------------------------------------

_ANCHORS = StatCache(size=8)
_ANCHOR_FILES = StatCache(size=8)


def _pem_certificates(path: Path, limit: int, lenient: bool) -> tuple[x509.Certificate, ...]:
    data = read_bounded(path, limit, what="trust anchor file")
    if lenient:  # the system bundle: one odd root must not cost the other 143
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                return tuple(x509.load_pem_x509_certificates(data))
            except ValueError:
                return ()
    return read_certificates(data, what=f"[trust] ca_file {path}", field="ca_file")


def anchor_problem(settings: Settings) -> str | None:
    """Why ``[trust] ca_file`` cannot be used, or None."""
    path = settings.trust.ca_file
    if path is None:
        return None
    try:
        _pem_certificates(path, CA_FILE_LIMIT, False)
    except InputError as exc:
        return f"[trust] ca_file {path} cannot be used: {exc.message}"
    return None


_RECENT: dict = {}  # (system_store, ca_file) -> (monotonic time, anchors): one stat per second at most
RESTAT_SECONDS = 1.0


def load_anchors(settings: Settings) -> TrustAnchors:
    """The anchors of ``[trust]``, parsed once while the files are unchanged (looked at once a second at most)."""
    recent_key = (settings.trust.system_store, settings.trust.ca_file)
    recent = _RECENT.get(recent_key)
    if recent is not None and time.monotonic() - recent[0] < RESTAT_SECONDS:
        return recent[1]
    anchors = _load_anchors(settings)
    if len(_RECENT) > 16:
        _RECENT.clear()
    _RECENT[recent_key] = (time.monotonic(), anchors)
    return anchors


def _load_anchors(settings: Settings) -> TrustAnchors:
    paths = tuple(p for p in ((SYSTEM_BUNDLE if settings.trust.system_store else None), settings.trust.ca_file)
                  if p is not None)

    def load() -> TrustAnchors:
        certificates: list[x509.Certificate] = []
        if settings.trust.system_store:
            try:
                certificates.extend(_pem_certificates(SYSTEM_BUNDLE, ANCHOR_FILE_LIMIT, True))
            except InputError as exc:
                log.warning("system trust store: %s", exc.message)
        if settings.trust.ca_file is not None:
            try:
                certificates.extend(_pem_certificates(settings.trust.ca_file, CA_FILE_LIMIT, False))
            except InputError as exc:
                log.warning("%s", exc.message)
        return trust_anchors(certificates)

    return _ANCHORS.get(paths, paths, load)


# --- intermediates ------------------------------------------------------------------------------------

_CA_DIR_FILES = StatCache(size=512)
_FETCHER = AiaFetcher()


def _cabundle_certificates(settings: Settings) -> list[tuple[x509.Certificate, str]]:
    found = []
    for directory in settings.cabundles.dirs:
        try:
            with os.scandir(directory) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)

            def load(path=path) -> tuple[x509.Certificate, ...]:
                try:
                    return read_certificates(read_bounded(path, CA_FILE_LIMIT), what=path)
                except (InputError, OSError):
                    return ()

            found.extend((cert, path) for cert in _CA_DIR_FILES.get(path, (path,), load))
    return found


def _indexed(ctx: Context):
    from .autofill import issuer_candidates  # the repository Autofill builds CA bundles from
    from .browse import index
    try:
        return issuer_candidates(ctx, index(ctx))
    except Exception:  # noqa: BLE001 - an index that cannot be read only means fewer candidates
        return lambda cert: ()


def _gather(ctx: Context, leaf: x509.Certificate, given: tuple[x509.Certificate, ...], anchors: TrustAnchors,
            network: bool) -> dict[bytes, tuple[x509.Certificate, str]]:
    """Every certificate svcssl can find that may sit above ``leaf`` (by issuer name), with where it was found."""
    pool: dict[bytes, tuple[x509.Certificate, str]] = {}
    directories = _cabundle_certificates(ctx.settings)
    indexed = _indexed(ctx)
    frontier = [leaf, *given]
    done: set[bytes] = set()
    while frontier and len(pool) < MAX_POOL:
        cert = frontier.pop(0)
        key = cert.fingerprint(_SHA256)
        if key in done or is_self_signed(cert):
            continue
        done.add(key)
        issuer = cert.issuer
        found = [(c, f"the CA directory {path}") for c, path in directories if c.subject == issuer]
        found += [(c, "the certificates on this server") for c in _safe(indexed, cert)]
        found += [(c, "the system trust store") for c in anchors.certificates if c.subject == issuer]
        if not any(c.subject == issuer for c in given) and not found and ctx.settings.cabundles.aia_fetch:
            for url in _FETCHER.urls(cert)[:2]:
                if network:
                    downloaded, _note = _FETCHER.download(url)
                else:  # a surface that must not wait on the network: what the run already downloaded
                    downloaded = _FETCHER.cached(url)
                found += [(c, f"its caIssuers URL {url}") for c in downloaded if c.subject == issuer]
        for candidate, where in found:
            fp = candidate.fingerprint(_SHA256)
            if fp not in pool:
                pool[fp] = (candidate, where)
                frontier.append(candidate)
    return pool


def _safe(candidates, cert):
    try:
        return list(candidates(cert))
    except Exception:  # noqa: BLE001
        return []


# --- the finding ----------------------------------------------------------------------------------------

_FINDINGS: dict = {}
_FINDINGS_LOCK = threading.Lock()


def judge_trust(ctx: Context, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], now: datetime | None = None,
                *, network: bool = True, key_hint: tuple | None = None) -> TrustFinding:
    """Would a client trust ``leaf`` served with ``chain``, and can svcssl complete it if not? (``key_hint``: the
    leaf's and chain's identity when the caller knows it already, e.g. from the parsed file.)"""
    now = now or ctx.now()
    anchors = load_anchors(ctx.settings)
    key = (key_hint or (leaf.fingerprint(_SHA256), tuple(c.fingerprint(_SHA256) for c in chain)), id(anchors),
           now.replace(second=0, microsecond=0), network, ctx.settings.cabundles.dirs, ctx.settings.cabundles.aia_fetch,
           str(ctx.store.root))
    with _FINDINGS_LOCK:
        cached = _FINDINGS.get(key)
    if cached is not None:
        return cached
    finding = TrustFinding(UNCHECKED) if is_self_signed(leaf) else _judge(ctx, leaf, chain, anchors, now, network)
    with _FINDINGS_LOCK:
        if len(_FINDINGS) > 512:
            _FINDINGS.clear()
        _FINDINGS[key] = finding
    return finding


def _judge(ctx: Context, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], anchors: TrustAnchors,
           now: datetime, network: bool) -> TrustFinding:
    on_disk = verify_path(leaf, chain, anchors, now)
    if on_disk.trusted:
        return TrustFinding(TRUSTED, chain=on_disk.intermediates)
    pool = _gather(ctx, leaf, chain, anchors, network)
    found = [c for c, _ in pool.values()]
    completed = verify_path(leaf, (*chain, *found), anchors, now)
    if completed.trusted:
        have = {c.fingerprint(_SHA256) for c in chain}
        added = tuple((name_label(c.subject), pool[c.fingerprint(_SHA256)][1]) for c in completed.intermediates
                      if c.fingerprint(_SHA256) not in have)
        if not added:  # the files held everything (an order problem clients tolerate): trusted
            return TrustFinding(TRUSTED, chain=completed.intermediates)
        names = ", ".join(f"\u201c{name}\u201d" for name, _ in added)
        where = "; ".join(f"\u201c{name}\u201d is in {source}" for name, source in added)
        message = (f"Its chain is incomplete: the files lack the intermediate {names}, which clients need to trust "
                   f"it ({where}). The maintenance run adds it (or install the certificate again with its CA bundle).")
        return TrustFinding(INCOMPLETE, message, completed.intermediates, added)
    message = _untrusted_message(leaf, (*chain, *found), anchors, now, completed.error)
    problem = anchor_problem(ctx.settings)
    if problem:
        message += f" (Note: {problem}.)"
    return TrustFinding(UNTRUSTED, message)


def _untrusted_message(leaf: x509.Certificate, pool, anchors: TrustAnchors, now: datetime, error: str) -> str:
    above = top_of(leaf, (*pool, *anchors.certificates))
    issuer = f"\u201c{name_label(leaf.issuer)}\u201d"
    for cert in above:
        if cert.not_valid_after_utc <= now and cert not in anchors:
            return (f"It is not trusted: its issuer chain holds \u201c{name_label(cert.subject)}\u201d, which expired on "
                    f"{cert.not_valid_after_utc:%Y-%m-%d}. Install the certificate with the current CA bundle from its "
                    f"CA, or a new certificate.")
        if cert.not_valid_before_utc > now and cert not in anchors:
            return (f"It is not trusted: its issuer chain holds \u201c{name_label(cert.subject)}\u201d, which is not "
                    f"valid before {cert.not_valid_before_utc:%Y-%m-%d}.")
    if above and is_self_signed(above[-1]) and above[-1] not in anchors:
        root = f"\u201c{name_label(above[-1].subject)}\u201d"
        via = f"its issuer {issuer} chains to {root}" if len(above) > 1 else f"its issuer {root}"
        return (f"It is not trusted: {via}, which is not in this server's trust store. Add that root to "
                f"[trust] ca_file if clients trust it.")
    if not above:
        return (f"It is not trusted: its issuer {issuer} is not in this server's trust store and svcssl cannot find "
                f"it (paste the CA bundle from its CA, or add the root to [trust] ca_file if clients trust it).")
    if not is_self_signed(above[-1]) and not any(c.subject == above[-1].issuer for c in anchors.certificates):
        root = f"\u201c{name_label(above[-1].issuer)}\u201d"
        return (f"It is not trusted: its issuer {issuer} chains to {root}, which is not in this server's trust "
                f"store. Add that root to [trust] ca_file if clients trust it.")
    return f"It is not trusted: clients find no valid path from it to a trusted root ({error})."


def served_chain_problem(ctx: Context, leaf: x509.Certificate, served_chain: tuple[x509.Certificate, ...],
                         files_chain: tuple[x509.Certificate, ...] = (), now: datetime | None = None) -> str | None:
    """Why clients do not trust what a port serves (the leaf with the chain the daemon sends), or None.

    None also when the certificate is not trusted even with every intermediate svcssl can find (the
    ``untrusted`` code says that) or is self-signed."""
    now = now or ctx.now()
    if is_self_signed(leaf):
        return None
    anchors = load_anchors(ctx.settings)
    if verify_path(leaf, served_chain, anchors, now).trusted:
        return None
    full = judge_trust(ctx, leaf, (*served_chain, *files_chain), now, network=False)
    if full.state not in (TRUSTED, INCOMPLETE):
        return None
    sent = {c.fingerprint(_SHA256) for c in served_chain}
    missing = [name_label(c.subject) for c in full.chain if c.fingerprint(_SHA256) not in sent]
    names = ", ".join(f"\u201c{name}\u201d" for name in missing) or "an intermediate"
    return f"it sends the certificate without the intermediate {names}"
