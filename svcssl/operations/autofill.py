"""Autofill by certificate, and Use Certificate: a certificate's private key and CA bundle, found on this server.

The key: one indexed query for the SHA-256 of the certificate's SubjectPublicKeyInfo among the key
files of every store the user may see (their own accounts; for root also Apache and every account;
the services' files for anyone with the service-SSL privilege), then that one file is read to
check it still holds the key. The CA bundle: the issuer chain from the CA repository (the index),
leaf's issuer first, signatures checked, root left out. What cannot be found is said precisely.

The key never leaves the server through these results: they carry a *reference*
(``store:owner:spki-sha256``) that ``load_key`` resolves again — re-checking that the user may
see that store — when the install form comes back. Only the WHM API, whose contract returns
keys (``fetchcrtinfo``, ``fetch_vhost_ssl_components``, ``fetchsslinfo``), asks ``private_key_pem``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

from cryptography import x509

from ..discovery.cabundles import AiaFetcher, build_chain
from ..discovery.index import display_path
from ..fsutil import StatCache
from ..errors import AccessDeniedError, InputError, InputTooLargeError, SvcsslError
from ..store.discovery import DiscoveryIndex, IndexedFile, VhostRow
from ..x509.bundle import pick_leaf
from ..x509.encode import certificate_pem, chain_pem, key_pem
from ..x509.inspect import CertificateInfo, describe, spki_sha256
from ..x509.inspect import fingerprint as certificate_fingerprint
from ..x509.parse import KEY_LABELS, PrivateKey, read_certificate_input, read_private_key, split_pem
from .browse import (Visibility, account_certificates, file_id, index, list_vhosts, make_reference, origin_of,
                     parse_reference, read_indexed_file, vhost_for_certificate, visibility)
from .context import Context
from .users import PanelUser

log = logging.getLogger(__name__)

STORE_ORDER = {"account": 0, "apache": 1, "service": 2, "keystore": 3}
_FETCHER = AiaFetcher()


@dataclass(frozen=True)
class KeyMatch:
    """Where the matching private key is — never the key itself."""

    store: str
    owner: str
    path: str
    id: str  # the key file's name without .key (WHM's key_id)
    reference: str  # store:owner:spki-sha256, for the install form's key_source
    origin: str  # for people: "the SSL storage of account bob (/home/bob/ssl/keys/x.key)"


@dataclass(frozen=True)
class CertificateChoice:
    """What fills the install form: the certificate, its CA bundle, its key by reference, and what is missing."""

    info: CertificateInfo
    certificate_pem: str
    cabundle_pem: str
    chain: tuple[CertificateInfo, ...]
    chain_complete: bool
    key: KeyMatch | None
    other_keys: int  # further copies of the key in other files the user may see
    origin: str | None  # where the certificate came from; None when pasted
    missing: tuple[str, ...]  # what the user still has to supply
    notes: tuple[str, ...]
    account: str | None = None  # the hosting account it belongs to (its storage, its vhost's user, its key's)


# --- keys ----------------------------------------------------------------------------------------


def _keys_in(data: bytes) -> Iterator[PrivateKey]:
    try:
        blocks = split_pem(data, "file", "key")
    except InputError:
        return
    for block in blocks:
        if block.label in KEY_LABELS:
            try:
                yield read_private_key(block.pem, validate=False)
            except InputError:
                continue


def _key_from_file(ctx: Context, file: IndexedFile, spki: str) -> PrivateKey | None:
    try:
        data = read_indexed_file(ctx, file)
    except OSError as exc:
        log.info("key file %s: %s", display_path(file.path), exc.strerror)
        return None
    return next((k for k in _keys_in(data) if spki_sha256(k.public_key()) == spki), None)


def find_key(ctx: Context, vis: Visibility, spki: str, prefer: tuple[str, str] | None = None) -> tuple[KeyMatch | None, int]:
    """The best key file for ``spki`` among the stores the user may see (checked by reading it), and how many others."""
    rows = [k for k in index(ctx).keys_by_spki(spki) if vis.may_see(k.file.store, k.file.owner)]
    rows.sort(key=lambda k: ((k.file.store, k.file.owner) != prefer, STORE_ORDER.get(k.file.store, 9), k.file.path))
    for number, row in enumerate(rows):
        if _key_from_file(ctx, row.file, spki) is not None:
            match = KeyMatch(row.file.store, row.file.owner, display_path(row.file.path), file_id(row.file.name, b".key"),
                             make_reference(row.file.store, row.file.owner, spki),
                             origin_of(row.file.store, row.file.owner, row.file.path))
            return match, len(rows) - number - 1
    return None, 0


def load_key(ctx: Context, user: PanelUser | None, reference: str) -> PrivateKey:
    """The private key a ``key_source`` reference names, re-checking that ``user`` may see its store."""
    store, owner, spki = parse_reference(reference, "key")
    vis = visibility(ctx, user)
    if not vis.may_see(store, owner):
        raise InputError("The referenced private key is not available to you: paste the private key.", field="key")
    for row in index(ctx).keys_by_spki(spki):
        if (row.file.store, row.file.owner) == (store, owner):
            key = _key_from_file(ctx, row.file, spki)
            if key is not None:
                return key
    raise InputError("The referenced private key is no longer where it was found (the file changed or was removed): "
                     "browse again or paste the private key.", field="key")


def private_key_pem(ctx: Context, user: PanelUser | None, reference: str) -> bytes:
    """The key as PEM — for the WHM API functions whose contract returns it, and nothing else."""
    return key_pem(load_key(ctx, user, reference))


# --- the CA bundle --------------------------------------------------------------------------------


_CA_FILES = StatCache(size=512)  # parsed CA files by path and stamp (they are read often)


def _certificates_in(ctx: Context, file: IndexedFile) -> tuple[x509.Certificate, ...]:
    def load() -> tuple[x509.Certificate, ...]:
        try:
            return read_certificate_input(read_indexed_file(ctx, file), validate_keys=False).certificates
        except (OSError, InputError):
            return ()

    return _CA_FILES.get((file.path, file.store, file.owner), (file.path,), load)


def issuer_candidates(ctx: Context, idx: DiscoveryIndex):
    """The CA certificates of the index named like a certificate's issuer (the CA repository)."""
    def candidates(cert: x509.Certificate) -> Iterator[x509.Certificate]:
        for row in idx.certificates_by_subject(cert.issuer.public_bytes()):
            certificates = _certificates_in(ctx, row.file)
            if row.position < len(certificates):
                yield certificates[row.position]

    return candidates


def _no_key_message(vis: Visibility) -> str:
    if vis.all_accounts:
        return "No private key on this server matches this certificate: paste its private key."
    return ("No private key in the storage you may see matches this certificate: paste its private key.")


def complete(ctx: Context, vis: Visibility, leaf: x509.Certificate, *, given: tuple[x509.Certificate, ...] = (),
             origin: str | None = None, prefer: tuple[str, str] | None = None,
             account: str | None = None) -> CertificateChoice:
    """Find the key and CA bundle of ``leaf``; ``given`` are certificates to try first as its chain."""
    info = describe(leaf)
    key, others = find_key(ctx, vis, info.spki_sha256, prefer)
    fetcher = _FETCHER if ctx.settings.cabundles.aia_fetch else None
    result = build_chain(leaf, issuer_candidates(ctx, index(ctx)), given=given, fetcher=fetcher)
    missing = []
    if key is None:
        missing.append(_no_key_message(vis))
    if result.missing:
        missing.append(result.missing)
    notes = list(result.notes)
    if others:
        notes.append(f"The same key is also in {others} other file{'s' if others != 1 else ''}.")
    for url in result.fetched:
        notes.append(f"An issuer was downloaded from {url} (caIssuers).")
    return CertificateChoice(
        info=info, certificate_pem=certificate_pem(leaf).decode(), cabundle_pem=chain_pem(result.chain).decode(),
        chain=tuple(describe(c) for c in result.chain), chain_complete=result.complete, key=key, other_keys=others,
        origin=origin, missing=tuple(missing), notes=tuple(notes),
        account=account or (key.owner if key is not None and key.store == "account" else None))


# --- the use cases -------------------------------------------------------------------------------


def autofill_certificate(ctx: Context, user: PanelUser | None, crt: bytes) -> CertificateChoice:
    """Autofill by certificate: the pasted certificate's key and CA bundle."""
    limit = ctx.settings.limits.max_input_bytes
    if crt is None or not crt.strip():
        raise InputError("Paste a certificate or choose a certificate file, then Autofill.", field="crt")
    if len(crt) > limit:
        raise InputTooLargeError(f"The certificate is larger than the {limit:,}-byte limit.", field="crt")
    vis = visibility(ctx, user)
    parsed = read_certificate_input(crt, validate_keys=False)
    leaf = pick_leaf(parsed.certificates, ())
    given = tuple(c for c in parsed.certificates if c is not leaf)
    return complete(ctx, vis, leaf, given=given)


def _certificate_in(ctx: Context, file: IndexedFile, fingerprint: str) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]] | None:
    try:
        certificates = read_certificate_input(read_indexed_file(ctx, file), validate_keys=False).certificates
    except (OSError, InputError):
        return None
    leaf = next((c for c in certificates if certificate_fingerprint(c) == fingerprint), None)
    if leaf is None:
        return None
    return leaf, tuple(c for c in certificates if c is not leaf)


def _chain_file_certificates(ctx: Context, vhost: VhostRow | None) -> tuple[x509.Certificate, ...]:
    if vhost is None or vhost.chain_file is None:
        return ()
    file = IndexedFile(0, vhost.chain_file, "apache", "", None)
    try:
        return read_certificate_input(read_indexed_file(ctx, file), validate_keys=False).certificates
    except (OSError, InputError):
        return ()


def use_certificate(ctx: Context, user: PanelUser | None, reference: str) -> CertificateChoice:
    """Use Certificate: a browsed certificate (``store:owner:fingerprint``), its key by reference and its CA bundle."""
    store, owner, fingerprint = parse_reference(reference, "crt")
    vis = visibility(ctx, user)
    if store == "apache" and not vis.apache:
        raise AccessDeniedError("Only root may use the certificates of Apache's virtual hosts.")
    if not vis.may_see(store, owner):
        raise AccessDeniedError(f"The account '{owner}' is not among the accounts you may browse.")
    for row in index(ctx).certificates_by_fingerprint(fingerprint):
        if (row.file.store, row.file.owner) != (store, owner):
            continue
        found = _certificate_in(ctx, row.file, fingerprint)
        if found is None:
            continue
        leaf, others = found
        account = owner or None
        if store == "apache":
            vhost = vhost_for_certificate(ctx, fingerprint)
            others += _chain_file_certificates(ctx, vhost)
            account = vhost.user if vhost is not None else None
        return complete(ctx, vis, leaf, given=others, origin=origin_of(store, owner, row.file.path),
                        prefer=(store, owner), account=account)
    raise InputError("That certificate is no longer where it was found (the file changed or was removed): "
                     "browse again.", field="crt")


def autofill_domain(ctx: Context, user: PanelUser | None, domain: str) -> CertificateChoice:
    """WHM's fetchsslinfo with ``domain``: the newest certificate covering it, with a key, that the user may see."""
    name = (domain or "").strip().lower().rstrip(".")
    if not name or len(name) > 253 or any(c.isspace() or c in "/\\:" for c in name):
        raise InputError("Give a domain name such as www.example.com.", field="domain")
    vis = visibility(ctx, user)
    parent = name.split(".", 1)[1] if "." in name else ""
    rows = [r for r in index(ctx).certificates_by_domain([name] + ([f"*.{parent}"] if parent else []))
            if r.position == 0 and r.file.store in ("account", "apache") and vis.may_see(r.file.store, r.file.owner)]
    choice = None
    for row in rows:
        try:
            candidate = use_certificate(ctx, user, make_reference(row.file.store, row.file.owner, row.fingerprint))
        except (InputError, AccessDeniedError):
            continue
        if candidate.key is not None:
            return candidate
        choice = choice or candidate
    if choice is None:
        raise InputError(f"No certificate for {name} is on this server among what you may browse.", field="domain")
    return choice


def account_certificate_by_id(ctx: Context, user: PanelUser | None, account: str, cert_id: str) -> CertificateChoice:
    """WHM's fetchcrtinfo: a certificate of an account's storage by its id."""
    listing = account_certificates(ctx, user, account)
    for certificate in listing.certificates:
        if certificate.id == cert_id:
            return use_certificate(ctx, user, certificate.reference)
    raise InputError(f"The account '{account}' has no certificate with the id '{cert_id}'.", field="id")


@dataclass(frozen=True)
class VhostChoice:
    servername: str | None
    certificate_id: str
    choice: CertificateChoice | None
    problem: str | None


def vhost_choices(ctx: Context, user: PanelUser | None) -> list[VhostChoice]:
    """WHM's fetch_vhost_ssl_components: every SSL virtual host's certificate, key reference and CA bundle."""
    result = []
    for vhost in list_vhosts(ctx, user).vhosts:
        if vhost.certificate is None:
            result.append(VhostChoice(vhost.servername, "", None, vhost.problem))
            continue
        try:
            choice = use_certificate(ctx, user, vhost.certificate.reference)
        except SvcsslError as exc:
            result.append(VhostChoice(vhost.servername, vhost.certificate.id, None, exc.message))
            continue
        result.append(VhostChoice(vhost.servername, vhost.certificate.id, choice, None))
    return result
