"""ACME (RFC 8555) on ``acme.client.ClientV2``'s public API, keeping what is ours: the account and resumable orders.

State lives in ``state_dir/acme/<sha256 of the directory URL>/`` (0700, files 0600): ``account-key.pem`` and
``account.json``; while an order is unfinished, ``pending-key.pem`` + ``pending.json`` (key and order URL, written
before any challenge is answered). The next order for the same names resumes it if the CA still has it; both go
once the certificate is returned or the order has definitively failed (a timeout or a network error keeps them).
One order runs at a time per directory URL (``state_dir/locks/acme-<hash>.lock``). The paths are named by
``svcssl.statedir``.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import josepy as jose
import requests
from acme import challenges, messages
from acme import errors as acme_errors
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import AcmeError, InputError
from ..settings import parse_listen
from ..fsutil import atomic_write, file_lock
from ..statedir import ACME_ACCOUNT, ACME_ACCOUNT_KEY, ACME_PENDING, ACME_PENDING_KEY, StateLayout
from ..x509.encode import key_pem
from ..x509.inspect import spki_der
from ..x509.generate import generate_private_key, make_csr
from ..x509.parse import PrivateKey, read_private_key
from .dns01 import published
from .http01 import DEFAULT_LISTEN, Resource, StandaloneResponder, webroot_files

log = logging.getLogger(__name__)

ACCOUNT_FILE = ACME_ACCOUNT
ACCOUNT_KEY_FILE = ACME_ACCOUNT_KEY
PENDING_FILE = ACME_PENDING
PENDING_KEY_FILE = ACME_PENDING_KEY
RESUMABLE = (messages.STATUS_PENDING, messages.STATUS_READY, messages.STATUS_PROCESSING, messages.STATUS_VALID)
TRANSIENT = frozenset({"rateLimited", "serverInternal", "badNonce"})
_REASON = re.compile(r"certificate verify failed: ([^(')\"]+)|\[Errno -?\d+\] ([^'\")]+)|"
                     r"(Read timed out|Connection refused|Name or service not known)")
_NONCE_ROUNDS = 3  # acme's post tries two nonces each round; CAs may reject several in a row
_KEY_TYPE = re.compile(r"rsa-(2048|3072|4096)|ecdsa-p(256|384)")
_EC_ALGORITHMS = {"secp256r1": jose.ES256, "secp384r1": jose.ES384, "secp521r1": jose.ES512}


class OrderFailed(AcmeError):
    """The order itself is dead at the CA (invalid): its pending state must go."""


def problem_error(what: str, problem_type: str | None, detail: str | None, status: int | None,
                  cls: type[AcmeError] = AcmeError) -> AcmeError:
    detail = (detail or "").strip() or "no detail given"
    label = (problem_type or "unknown problem").removeprefix(AcmeError.PREFIX)
    return cls(f"{what}: {detail} ({label})", problem_type=problem_type, detail=detail, status=status)


def _short_reason(exc: BaseException) -> str:
    found = _REASON.search(str(exc))
    return next(part for part in found.groups() if part).strip() if found else str(exc)[:300]


@contextmanager
def translated(what: str, net: object = None, server: str = "") -> Iterator[None]:
    """Turn an ``acme``/``requests``/``josepy`` error into an :class:`AcmeError` about ``what``."""
    try:
        yield
    except messages.Error as exc:
        error = problem_error(what, exc.typ, exc.detail, getattr(net, "last_status", None))
        error.retry_after = getattr(net, "last_retry_after", None)
        raise error from exc
    except acme_errors.TimeoutError as exc:
        raise AcmeError(f"{what}: gave up after the time limit; the order is kept and will be resumed") from exc
    except acme_errors.Error as exc:
        error = AcmeError(f"{what}: {str(exc) or type(exc).__name__}", status=getattr(net, "last_status", None))
        error.retry_after = getattr(net, "last_retry_after", None)
        raise error from exc
    except requests.exceptions.SSLError as exc:
        raise AcmeError(f"{what}: the TLS certificate of the ACME server {server} could not be verified "
                        f"({_short_reason(exc)}); configure the CA file that signed it") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise AcmeError(f"{what}: cannot reach the ACME server {server} ({_short_reason(exc)})") from exc
    except requests.exceptions.RequestException as exc:
        raise AcmeError(f"{what}: {_short_reason(exc)}") from exc
    except jose.errors.Error as exc:
        raise AcmeError(f"{what}: the ACME server sent a response svcssl cannot read ({exc})") from exc


@dataclass(frozen=True)
class AcmeConfig:
    directory: str
    email: str | None = None
    verify: str | bool = True  # CA file for the ACME server's own HTTPS, or True (system store)
    key_type: str = "rsa-2048"  # of the certificate key: rsa-2048/3072/4096, ecdsa-p256/p384
    http01_listen: str | None = DEFAULT_LISTEN  # standalone listener "host:port"
    webroot: Path | None = None  # serve HTTP-01 as files under webroot/.well-known/acme-challenge/
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)  # base64url
    user_agent: str = "svcssl"
    dns01_hook: tuple[str, ...] = ()  # when set, names are validated over DNS-01 through this command
    profile: str | None = None  # ACME profile to ask for (draft-ietf-acme-profiles); None = the CA's default
    profile_required: bool = False  # no order from a CA that offers no profiles


@dataclass(frozen=True)
class IssuedCertificate:
    key_pem: bytes = field(repr=False)  # PKCS#8 PEM of the certificate key
    fullchain_pem: bytes  # leaf + chain, as the CA returned it
    account_uri: str
    profile: str | None = None  # the profile the order carried
    replaced: str | None = None  # the ARI certID the order carried in "replaces" (and the CA accepted)
    notes: tuple[str, ...] = ()  # what a person should know (no profiles at this CA, "replaces" refused, …)


class ReplacingNewOrder(messages.NewOrder):
    """``acme``'s newOrder with RFC 9773's ``replaces`` (the ARI certID of the certificate this order renews)."""

    replaces: str | None = jose.field("replaces", omitempty=True)


class ProfileUnavailable(AcmeError):
    """The configured ACME profile cannot be had from this CA: no order was placed."""


class _Network(ClientNetwork):
    """``acme``'s ClientNetwork, remembering the last HTTP status and trying a rejected nonce more than twice."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_status: int | None = None
        self.last_retry_after: datetime | None = None
        self.replaces: str | None = None  # sent in the next newOrder payload (RFC 9773 §5)
        self.session.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, **_: Any) -> None:
        self.last_status = response.status_code
        self.last_retry_after = retry_after_moment(response.headers.get("Retry-After"), datetime.now(timezone.utc))

    def post(self, *args: Any, **kwargs: Any) -> Any:
        if self.replaces and len(args) > 1 and type(args[1]) is messages.NewOrder:
            order = args[1]
            args = (args[0], ReplacingNewOrder(identifiers=order.identifiers, profile=order.profile,
                                               replaces=self.replaces), *args[2:])
        for attempt in range(1, _NONCE_ROUNDS + 1):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == _NONCE_ROUNDS:
                    raise


def retry_after_moment(value: str | None, now: datetime) -> datetime | None:
    """An HTTP Retry-After header (seconds or an HTTP date) as an aware UTC moment; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=min(int(value), 30 * 86400))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """RFC 9773 §4.1 certID: base64url(AKI keyIdentifier) "." base64url(serial DER bytes); None without an AKI."""
    try:
        key_id = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not key_id:
        return None
    serial = cert.serial_number.to_bytes(math.ceil((cert.serial_number.bit_length() + 1) / 8), "big", signed=True)
    return ".".join(base64.urlsafe_b64encode(part).decode("ascii").rstrip("=") for part in (key_id, serial))


def offered_profiles(client: ClientV2) -> dict[str, str] | None:
    """The CA's ``meta.profiles`` (name → description), or None when its directory lists none."""
    meta = getattr(client.directory, "meta", None)
    profiles = getattr(meta, "profiles", None) if meta is not None else None
    return dict(profiles) if profiles else None


def _choose_profile(client: ClientV2, config: AcmeConfig) -> tuple[str | None, tuple[str, ...]]:
    """The profile to send and the notes for the report; ProfileUnavailable when no order may be placed."""
    offered = offered_profiles(client)
    if offered is None:
        if config.profile_required:
            raise ProfileUnavailable(f"the CA {config.directory} offers no ACME profiles and profile_required is "
                                     f"set: no order was placed (it would not get the profile "
                                     f"{config.profile or '(none named)'!r})")
        if config.profile:
            return None, (f"The CA {config.directory} offers no ACME profiles: ordered without the profile "
                          f"{config.profile!r} (the CA's default certificate).",)
        return None, ()
    if config.profile and config.profile not in offered:
        raise ProfileUnavailable(f"the ACME profile {config.profile!r} is not offered by {config.directory}; "
                                 f"the CA offers: {', '.join(offered)}. Set [acme] profile to one of them, or to "
                                 f"\"\" for the CA's default")
    return config.profile or None, ()


def _connect(config: AcmeConfig, timeout: float, key: PrivateKey | None = None) -> ClientV2:
    jwk, alg = None, jose.RS256
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = jose.JWKRSA(key=key)
    elif key is not None:
        if (alg := _EC_ALGORITHMS.get(key.curve.name)) is None:
            raise AcmeError("the ACME account key must be RSA or ECDSA P-256/P-384/P-521")
        jwk = jose.JWKEC(key=key)
    net = _Network(key=jwk, alg=alg, verify_ssl=config.verify, user_agent=config.user_agent,  # type: ignore[arg-type]
                   timeout=max(5, min(45, int(timeout))))
    with translated(f"cannot read the ACME directory {config.directory}", net,
                    urlsplit(config.directory).netloc or config.directory):
        return ClientV2(ClientV2.get_directory(config.directory, net), net)


def account_dir(state_dir: Path, directory_url: str) -> Path:
    """The state folder of one directory URL: ``state_dir/acme/`` + lower-case hex SHA-256 of the URL."""
    return StateLayout(state_dir).acme_account_dir(directory_url)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable ACME state file %s: %s", path, exc)
        data = {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o600)


def _clear_pending(folder: Path) -> None:
    for name in (PENDING_FILE, PENDING_KEY_FILE):
        (folder / name).unlink(missing_ok=True)


def _account_key(folder: Path, directory_url: str) -> PrivateKey:
    """The account key stored in ``folder``; a new ECDSA P-256 key, stored first, when there is none."""
    path = folder / ACCOUNT_KEY_FILE
    if path.exists():
        try:
            return read_private_key(path.read_bytes())
        except (OSError, InputError) as exc:
            raise AcmeError(f"cannot read the ACME account key {path}: {getattr(exc, 'message', exc)}") from None
    key = generate_private_key("ecdsa-p256")
    atomic_write(path, key_pem(key), 0o600)
    log.info("created a new ACME account key for %s", directory_url)
    return key


def _ensure_account(client: ClientV2, config: AcmeConfig, folder: Path) -> str:
    """The account URL of the client's key at this CA, registered now (with EAB if configured) if it is unknown."""
    stored = _read_json(folder / ACCOUNT_FILE)
    contact = tuple(f"mailto:{part.strip()}" for part in (config.email or "").split(",") if part.strip())
    try:
        with translated("cannot look up the ACME account", client.net):
            regr = client.query_registration(messages.RegistrationResource(body=messages.Registration()))
    except AcmeError as exc:
        if exc.code != "accountDoesNotExist":
            raise
        eab = None
        if config.eab_kid or config.eab_hmac_key:
            if not (config.eab_kid and config.eab_hmac_key):
                raise AcmeError("External Account Binding needs both a key identifier and an HMAC key") from None
            try:
                eab = messages.ExternalAccountBinding.from_data(
                    account_public_key=client.net.key.public_key(), kid=config.eab_kid,
                    hmac_key=config.eab_hmac_key, directory=client.directory)
            except (ValueError, binascii.Error, jose.errors.Error):
                raise AcmeError("the External Account Binding HMAC key is not valid base64url") from None
        elif client.external_account_required():
            raise AcmeError(f"the ACME server {config.directory} requires External Account Binding: "
                            "configure the key identifier and HMAC key your CA gave you") from None
        with translated(f"cannot register an ACME account at {config.directory}", client.net):
            uri = client.new_account(messages.NewRegistration.from_data(
                email=config.email or None, terms_of_service_agreed=True, external_account_binding=eab)).uri
        _write_json(folder / ACCOUNT_FILE, {
            "directory": config.directory, "uri": uri, "contact": list(contact), "terms_of_service_agreed": True,
            "terms_of_service": getattr(getattr(client.directory, "meta", None), "terms_of_service", None),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        log.info("registered ACME account %s at %s (previously stored: %s)", uri, config.directory, stored.get("uri"))
        return uri
    meta = {**stored, "directory": config.directory, "uri": regr.uri}
    if contact and tuple(regr.body.contact) != contact:
        with translated("cannot update the ACME account's contact address", client.net):
            client.update_registration(regr, messages.Registration(contact=contact))
        meta["contact"] = list(contact)
        log.info("updated the contact of ACME account %s", regr.uri)
    if meta != stored:
        _write_json(folder / ACCOUNT_FILE, meta)
    return regr.uri


def _authorize(client: ClientV2, config: AcmeConfig, orderr: messages.OrderResource, deadline: datetime) -> None:
    """Answer HTTP-01 (or DNS-01 through the hook) for every pending authorisation; wait for the CA's decisions."""
    kind, label = (challenges.DNS01, "DNS-01") if config.dns01_hook else (challenges.HTTP01, "HTTP-01")
    answers, records, resources = [], {}, []
    with translated("cannot read the ACME authorisations", client.net):
        for authzr in orderr.authorizations:
            if authzr.body.status != messages.STATUS_PENDING:
                continue  # valid already, or failed: poll_authorizations and finalisation report that
            challb = next((c for c in authzr.body.challenges if isinstance(c.chall, kind)), None)
            if challb is None:
                raise OrderFailed(f"the CA offers no {kind.typ} challenge for {authzr.body.identifier.value}")
            response, validation = challb.response_and_validation(client.net.key)
            if config.dns01_hook:
                records[challb.chall.validation_domain_name(authzr.body.identifier.value)] = validation
            resources.append(Resource(challb.chall, response, validation))
            answers.append((challb, response))
    if not answers:
        return
    publish = (published(config.dns01_hook, records) if config.dns01_hook
               else StandaloneResponder(config.http01_listen, resources) if config.webroot is None
               else webroot_files(config.webroot, resources))
    with translated(f"{label} validation failed", client.net), publish:
        for challb, response in answers:
            if challb.status == messages.STATUS_PENDING:
                client.answer_challenge(challb, response)
        log.info("answered %d %s challenge(s); waiting for the CA", len(answers), label)
        try:
            client.poll_authorizations(orderr, deadline)
        except acme_errors.ValidationError as exc:  # read the problem raw: acme's Error drops its status
            authzr = exc.failed_authzrs[0]
            error = next((c["error"] for c in client.poll(authzr)[1].json()["challenges"] if c.get("error")), {})
            raise problem_error(f"the CA could not validate {authzr.body.identifier.value}", error.get("type"),
                                error.get("detail"), error.get("status"), OrderFailed) from None


def _finalize(client: ClientV2, orderr: messages.OrderResource, deadline: datetime) -> bytes:
    """Finalise the order (or wait for a resumed one) and return the certificate chain."""
    with translated("cannot finish the ACME order", client.net):
        try:
            return client.finalize_order(orderr, deadline).fullchain_pem.encode("utf-8")
        except messages.Error as exc:  # badCSR, badPublicKey, ...: this order cannot succeed
            status = client.net.last_status
            raise problem_error("the CA refused to finalise the order", exc.typ, exc.detail, status,
                                AcmeError if exc.code in TRANSIENT or (status or 0) >= 500 else OrderFailed) from exc
        except acme_errors.IssuanceError as exc:
            raise problem_error("the CA refused to issue the certificate", exc.error.typ, exc.error.detail,
                                None, OrderFailed) from exc


def _resume(client: ClientV2, config: AcmeConfig, folder: Path,
            names: list[str]) -> tuple[messages.OrderResource, PrivateKey] | None:
    """This account's pending order for ``names`` (with its key) if the CA still has it, else None."""
    pending = _read_json(folder / PENDING_FILE)
    url, reason = pending.get("order_url"), f"it is for {', '.join(pending.get('names') or ())}"
    if not pending:
        return None
    if pending.get("directory") == config.directory and url and sorted(pending.get("names") or ()) == sorted(names):
        try:
            key = read_private_key((folder / PENDING_KEY_FILE).read_bytes())
            with translated("cannot look up the pending ACME order", client.net):
                body = messages.Order.from_json(client.net.post(url, None, new_nonce_url=client.directory.newNonce)
                                                .json())
                authzrs = [client.poll(messages.AuthorizationResource(uri=authz, body=messages.Authorization()))[0]
                           for authz in body.authorizations if body.status == messages.STATUS_PENDING]
            reason = None if body.status in RESUMABLE else f"it is {body.status.name}"
        except (OSError, InputError):
            reason = "its key cannot be read"
        except AcmeError as exc:
            if exc.problem_type is None or (exc.status or 0) >= 500 or exc.code in TRANSIENT:
                raise  # transient: keep the pending order for next time
            reason = exc.message
    if reason is None:
        log.info("resuming ACME order %s (%s) for %s", url, body.status.name, ", ".join(names))
        csr_pem = make_csr(key, names).public_bytes(Encoding.PEM)
        return messages.OrderResource(body=body, uri=url, authorizations=authzrs, csr_pem=csr_pem), key
    log.info("abandoning pending ACME order %s: %s", url, reason)
    _clear_pending(folder)
    return None


def _place_order(client: ClientV2, csr_pem: bytes, names: list[str], profile: str | None,
                 replaces: str | None) -> tuple[messages.OrderResource, str | None, tuple[str, ...]]:
    """newOrder with ``profile`` and ``replaces``; a CA that refuses ``replaces`` gets the order once without it."""
    what = f"the CA refused a new order for {', '.join(names)}"
    client.net.replaces = replaces
    try:
        with translated(what, client.net):
            return client.new_order(csr_pem, profile=profile), replaces, ()
    except AcmeError as exc:
        # RFC 9773 §5: "alreadyReplaced" comes with 409 Conflict, which acme reports without the problem document
        refused = exc.status == 409 or (exc.problem_type is not None and 400 <= (exc.status or 400) < 500)
        if not replaces or exc.code in TRANSIENT or not refused:
            raise
        why = exc.code or exc.problem_type or f"HTTP {exc.status}"
        note = (f"The CA refused the renewal order's \"replaces\" ({replaces}): {exc.detail} ({why}); "
                f"ordered again without it.")
        log.info("%s", note)
    finally:
        client.net.replaces = None
    with translated(what, client.net):
        return client.new_order(csr_pem, profile=profile), None, (note,)


def _new_order(client: ClientV2, config: AcmeConfig, folder: Path, names: list[str], account_uri: str,
               profile: str | None = None, replaces: str | None = None, key: PrivateKey | None = None
               ) -> tuple[messages.OrderResource, PrivateKey, str | None, tuple[str, ...]]:
    """A new order for ``names`` (with ``key``, else a new key); its key and URL are stored before any challenge
    is answered."""
    key = key if key is not None else generate_private_key(config.key_type)
    atomic_write(folder / PENDING_KEY_FILE, key_pem(key), 0o600)
    try:
        orderr, replaced, notes = _place_order(client, make_csr(key, names).public_bytes(Encoding.PEM), names,
                                               profile, replaces)
    except AcmeError:
        _clear_pending(folder)
        raise
    _write_json(folder / PENDING_FILE, {
        "directory": config.directory, "names": names, "order_url": orderr.uri, "account_uri": account_uri,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    log.info("new ACME order %s for %s (profile %s, replaces %s)", orderr.uri, ", ".join(names), profile, replaced)
    return orderr, key, replaced, notes


def order_certificate(config: AcmeConfig, names: list[str], state_dir: Path, *,
                      timeout: float = 90, replaces: str | None = None,
                      key: PrivateKey | None = None) -> IssuedCertificate:
    """Order a certificate for ``names`` (the first is the CN) and return its key and full chain.

    With ``key`` the CSR is made from that key (a key that DANE TLSA records pin is kept); else a new key.
    Resumes this account's pending order for the same names (and key) if the CA still has it. Raises
    :class:`AcmeError` on any failure; within ``timeout`` seconds for validation and issuance.
    """
    names = list(dict.fromkeys(clean for name in names if (clean := name.strip().rstrip(".").lower())))
    if not names:
        raise InputError("no names were given for the certificate order")
    if not _KEY_TYPE.fullmatch(str(config.key_type)):
        raise AcmeError(f"unknown certificate key type {config.key_type!r} "
                        "(rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384)")
    if config.webroot is None and not config.dns01_hook:
        parse_listen(config.http01_listen or DEFAULT_LISTEN, "HTTP-01 listen address")  # ConfigError now rather than after the order exists
    started, deadline = time.monotonic(), datetime.now() + timedelta(seconds=timeout)  # naive, as acme compares
    folder = account_dir(state_dir, config.directory)
    for private in (folder.parent, folder):
        private.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(private, 0o700)
    with file_lock(StateLayout(state_dir).acme_lock(config.directory), timeout=timeout):
        client = _connect(config, timeout, _account_key(folder, config.directory))
        profile, notes = _choose_profile(client, config)  # before any order: a wrong name is a configuration error
        account_uri = _ensure_account(client, config, folder)
        resumed = _resume(client, config, folder, names)
        if resumed is not None and key is not None and spki_der(resumed[1].public_key()) != spki_der(key.public_key()):
            _clear_pending(folder)  # a pending order with another key than the one asked for: a new order
            resumed = None
        replaced = None
        if resumed is not None:
            orderr, key = resumed
        else:
            orderr, key, replaced, more = _new_order(client, config, folder, names, account_uri, profile, replaces,
                                                     key)
            notes += more
        try:
            _authorize(client, config, orderr, deadline)
            fullchain = _finalize(client, orderr, deadline)
        except OrderFailed:
            _clear_pending(folder)
            log.warning("ACME order %s failed; its pending state is removed", orderr.uri)
            raise
        _clear_pending(folder)
        log.info("certificate issued for %s by %s in %.1f s", ", ".join(names), config.directory,
                 time.monotonic() - started)
        return IssuedCertificate(key_pem=key_pem(key), fullchain_pem=fullchain, account_uri=account_uri,
                                 profile=getattr(orderr.body, "profile", None) or profile, replaced=replaced,
                                 notes=notes)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, any number of fraction digits) as an aware UTC datetime."""
    if (value := datetime.fromisoformat(text.strip().upper())).tzinfo is None:
        raise ValueError(f"not an RFC 3339 time (no offset): {text!r}")
    return value.astimezone(timezone.utc)


def renewal_window(config: AcmeConfig, cert_pem: bytes, *, now: datetime | None = None,
                   timeout: float = 30) -> tuple[datetime, datetime] | None:
    """The CA's suggested renewal window (RFC 9773 ARI) for the leaf in ``cert_pem``, as aware UTC datetimes.

    ``None`` when the CA has no ``renewalInfo`` (pebble 2.4.0), the certificate no Authority Key Identifier, or it
    has expired (due anyway). Not ``ClientV2.renewal_time``, which picks a random time inside the window.
    """
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, IndexError):
        raise AcmeError("renewal information needs a PEM certificate; this one cannot be read") from None
    if cert.not_valid_after_utc <= (now or datetime.now(timezone.utc)):
        return None
    if (identifier := ari_cert_id(cert)) is None:
        return None
    client = _connect(config, timeout)
    base = getattr(client.directory, "renewalInfo", None)
    if not base:
        return None
    with translated("cannot read the CA's renewal information", client.net, urlsplit(config.directory).netloc):
        response = client.net.get(f"{base.rstrip('/')}/{identifier}", content_type="application/json")
    try:
        window = messages.RenewalInfo.from_json(response.json()).suggested_window
        start, end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    except (ValueError, AttributeError, jose.errors.Error):
        raise AcmeError("the CA's renewal information has no readable suggestedWindow") from None
    return start, end
