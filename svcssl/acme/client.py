"""ACME (RFC 8555) over the ``acme`` package: account, order, HTTP-01, finalisation, resumable orders.

State lives under ``state_dir/acme/<sha256 of the directory URL>/`` (directories 0700, files 0600),
one account per directory URL, so switching between staging and production never mixes them up:

* ``account-key.pem`` -- the account key (ECDSA P-256), written before the account is registered;
* ``account.json``    -- directory URL, account URL, contact, creation time;
* ``pending-key.pem`` + ``pending.json`` -- the certificate key and the URL of an order that has
  not finished yet.  They are written before any challenge is answered; the next
  :func:`order_certificate` for the same names resumes that order if the CA still has it
  (``pending``/``ready``/``processing``/``valid``), and they are removed once the certificate is
  returned or the order has definitively failed.  A timeout or a network error keeps them.

One ``order_certificate`` runs at a time per directory URL (``state_dir/locks/acme-<hash>.lock``).
Every failure is an :class:`AcmeError`; it carries the CA's problem document where there is one.
Nothing here logs key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import josepy as jose
import requests
from acme import challenges, messages
from acme import errors as acme_errors
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import InputError, SvcsslError
from ..fsutil import atomic_write, file_lock
from ..x509.encode import key_pem
from ..x509.generate import generate_private_key, make_csr
from ..x509.parse import PrivateKey, read_private_key
from ..x509.validate import key_matches
from .dns01 import DNS01Error, HookResponder
from .http01 import DEFAULT_LISTEN, HTTP01Error, parse_listen, responder

log = logging.getLogger(__name__)

ACCOUNT_FILE = "account.json"
ACCOUNT_KEY_FILE = "account-key.pem"
PENDING_FILE = "pending.json"
PENDING_KEY_FILE = "pending-key.pem"
ERROR_PREFIX = "urn:ietf:params:acme:error:"
RESUMABLE_STATUSES = frozenset({"pending", "ready", "processing", "valid"})

_NONCE_ATTEMPTS = 6  # acme itself retries a badNonce once; CAs may reject several in a row
_POLL_FIRST = 0.2
_POLL_MAX = 3.0
_RETRY_AFTER_MAX = 10.0
_TRANSIENT = frozenset({"rateLimited", "serverInternal", "badNonce"})
_KEY_TYPE = re.compile(r"rsa-(2048|3072|4096)|ecdsa-p(256|384)")


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


@dataclass(frozen=True)
class IssuedCertificate:
    key_pem: bytes = field(repr=False)  # PKCS#8 PEM of the certificate key
    fullchain_pem: bytes  # leaf + chain, as the CA returned it
    account_uri: str


class AcmeError(SvcsslError):
    """An ACME operation failed; ``problem_type``/``detail``/``status`` come from the CA's problem document.

    ``problem_type`` is e.g. ``urn:ietf:params:acme:error:connection`` and ``None`` when the failure
    was not reported by the CA (no connection, timeout, local listener could not start).
    """

    def __init__(self, message: str, *, problem_type: str | None = None, detail: str = "",
                 status: int | None = None):
        super().__init__(message)
        self.problem_type = problem_type
        self.detail = detail or message
        self.status = status

    @property
    def code(self) -> str | None:
        """The short ACME error code (``connection``, ``rateLimited``, ...) when the type is an ACME one."""
        if self.problem_type and self.problem_type.startswith(ERROR_PREFIX):
            return self.problem_type[len(ERROR_PREFIX):]
        return None


class _OrderFailed(AcmeError):
    """The order itself is dead at the CA (invalid): its pending state must go."""


def _problem_error(what: str, problem_type: str | None, detail: str | None, status: int | None,
                   cls: type[AcmeError] = AcmeError) -> AcmeError:
    detail = (detail or "").strip() or "no detail given"
    label = problem_type or "unknown problem"
    if problem_type and problem_type.startswith(ERROR_PREFIX):
        label = problem_type[len(ERROR_PREFIX):]
    return cls(f"{what}: {detail} ({label})", problem_type=problem_type, detail=detail, status=status)


# --------------------------------------------------------------------------- network

class _Network(ClientNetwork):
    """``acme``'s ClientNetwork, remembering the last HTTP status and retrying badNonce a few times."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_status: int | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.last_status = None
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_status = response.status_code
        return response

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for attempt in range(_NONCE_ATTEMPTS):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == _NONCE_ATTEMPTS - 1:
                    raise
                log.debug("ACME server rejected a nonce; retrying")
        raise AssertionError("unreachable")  # pragma: no cover


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for pattern in (r"certificate verify failed: ([^(')\"]+)", r"\[Errno -?\d+\] ([^'\")]+)",
                    r"(Read timed out|Connection refused|Name or service not known)"):
        found = re.search(pattern, text)
        if found:
            return found.group(1).strip()
    return text if len(text) <= 300 else text[:297] + "..."


@contextmanager
def _translated(what: str, net: _Network | None = None, server: str = "") -> Iterator[None]:
    """Turn every ``acme``/``requests``/``josepy`` error into an :class:`AcmeError` about ``what``."""
    try:
        yield
    except AcmeError:
        raise
    except (HTTP01Error, DNS01Error) as exc:
        raise AcmeError(f"{what}: {exc.message}", detail=exc.message) from exc
    except messages.Error as exc:
        raise _problem_error(what, exc.typ, exc.detail, net.last_status if net else None) from exc
    except acme_errors.IssuanceError as exc:
        raise _problem_error(what, exc.error.typ, exc.error.detail, None, _OrderFailed) from exc
    except acme_errors.TimeoutError as exc:
        raise AcmeError(f"{what}: the ACME server did not answer in time") from exc
    except acme_errors.ConflictError as exc:
        raise AcmeError(f"{what}: the ACME server reported a conflict ({exc.location})",
                        status=net.last_status if net else None) from exc
    except acme_errors.Error as exc:
        reason = str(exc) or type(exc).__name__
        raise AcmeError(f"{what}: {reason}", status=net.last_status if net else None) from exc
    except requests.exceptions.SSLError as exc:
        raise AcmeError(f"{what}: the TLS certificate of the ACME server {server} could not be verified "
                        f"({_short_reason(exc)}); configure the CA file that signed it") from exc
    except requests.exceptions.Timeout as exc:
        raise AcmeError(f"{what}: the ACME server {server} did not answer in time") from exc
    except requests.exceptions.ConnectionError as exc:
        raise AcmeError(f"{what}: cannot connect to the ACME server {server} ({_short_reason(exc)})") from exc
    except requests.exceptions.RequestException as exc:
        raise AcmeError(f"{what}: {_short_reason(exc)}", status=net.last_status if net else None) from exc
    except jose.errors.Error as exc:
        raise AcmeError(f"{what}: the ACME server sent a response svcssl cannot read ({exc})") from exc


def _post_as_get(client: ClientV2, url: str) -> requests.Response:
    return client.net.post(url, None, new_nonce_url=getattr(client.directory, "newNonce"))


def _connect(config: AcmeConfig, timeout: float, key: jose.JWK | None = None,
             alg: jose.JWASignature = jose.ES256) -> tuple[ClientV2, _Network]:
    net = _Network(key=key, alg=alg, verify_ssl=config.verify, user_agent=config.user_agent,  # type: ignore[arg-type]
                   timeout=max(5, min(45, int(timeout))))
    server = urlsplit(config.directory).netloc or config.directory
    with _translated(f"cannot read the ACME directory {config.directory}", net, server):
        directory = ClientV2.get_directory(config.directory, net)
    return ClientV2(directory, net), net


# --------------------------------------------------------------------------- state files

def directory_key(directory_url: str) -> str:
    """The name of the per-directory state folder: lower-case hex SHA-256 of the directory URL."""
    return hashlib.sha256(directory_url.encode("utf-8")).hexdigest()


def account_dir(state_dir: Path, directory_url: str) -> Path:
    return Path(state_dir) / "acme" / directory_key(directory_url)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable ACME state file %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o600)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _clear_pending(folder: Path) -> None:
    _unlink(folder / PENDING_FILE)
    _unlink(folder / PENDING_KEY_FILE)


def _read_key_file(path: Path, what: str) -> PrivateKey:
    try:
        return read_private_key(path.read_bytes())
    except (OSError, InputError) as exc:
        raise AcmeError(f"cannot read the {what} {path}: {getattr(exc, 'message', None) or exc}") from None


# --------------------------------------------------------------------------- account

def _jwk(key: PrivateKey) -> tuple[jose.JWK, jose.JWASignature]:
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": jose.ES256, "secp384r1": jose.ES384, "secp521r1": jose.ES512}.get(key.curve.name)
        if alg is not None:
            return jose.JWKEC(key=key), alg
    raise AcmeError("the ACME account key must be RSA or ECDSA P-256/P-384/P-521")


def _account_key(folder: Path, directory_url: str) -> PrivateKey:
    path = folder / ACCOUNT_KEY_FILE
    if path.exists():
        return _read_key_file(path, "ACME account key")
    key = generate_private_key("ecdsa-p256")
    atomic_write(path, key_pem(key), 0o600)
    log.info("created a new ACME account key for %s", directory_url)
    return key


def _contact(email: str | None) -> tuple[str, ...]:
    if not email:
        return ()
    return tuple(f"mailto:{part.strip()}" for part in email.split(",") if part.strip())


def _register(client: ClientV2, config: AcmeConfig, jwk: jose.JWK) -> str:
    eab = None
    if config.eab_kid or config.eab_hmac_key:
        if not (config.eab_kid and config.eab_hmac_key):
            raise AcmeError("External Account Binding needs both a key identifier and an HMAC key")
        try:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=jwk.public_key(), kid=config.eab_kid, hmac_key=config.eab_hmac_key,
                directory=client.directory)
        except (ValueError, binascii.Error, jose.errors.Error):
            raise AcmeError("the External Account Binding HMAC key is not valid base64url") from None
    elif client.external_account_required():
        raise AcmeError(f"the ACME server {config.directory} requires External Account Binding: "
                        "configure the key identifier and HMAC key your CA gave you")
    registration = messages.NewRegistration.from_data(
        email=config.email or None, terms_of_service_agreed=True, external_account_binding=eab)
    try:
        regr = client.new_account(registration)
    except acme_errors.ConflictError as exc:  # this key already has an account: use it
        client.net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        return exc.location
    return regr.uri


def _ensure_account(client: ClientV2, net: _Network, config: AcmeConfig, folder: Path, jwk: jose.JWK) -> str:
    """The account URL for this key at this CA: the stored one if the CA still knows it, else a new one."""
    meta = _read_json(folder / ACCOUNT_FILE)
    uri = meta.get("uri") if meta and meta.get("directory") == config.directory else None
    wanted_contact = _contact(config.email)
    if uri:
        try:
            with _translated("cannot look up the ACME account", net):
                regr = client.query_registration(
                    messages.RegistrationResource(uri=uri, body=messages.Registration()))
        except AcmeError as exc:
            if exc.code != "accountDoesNotExist":
                raise
            log.warning("the ACME account %s no longer exists at %s; registering again", uri, config.directory)
            uri = None
        else:
            if regr.uri != uri:
                uri = regr.uri
                meta = {**meta, "uri": uri}
                _write_json(folder / ACCOUNT_FILE, meta)
            if wanted_contact and tuple(regr.body.contact) != wanted_contact:
                with _translated("cannot update the ACME account's contact address", net):
                    client.update_registration(regr, messages.Registration(contact=wanted_contact))
                _write_json(folder / ACCOUNT_FILE, {**meta, "contact": list(wanted_contact)})
                log.info("updated the contact of ACME account %s", uri)
            return uri
    with _translated(f"cannot register an ACME account at {config.directory}", net):
        uri = _register(client, config, jwk)
    terms = getattr(getattr(client.directory, "meta", None), "terms_of_service", None)
    _write_json(folder / ACCOUNT_FILE, {
        "directory": config.directory, "uri": uri, "contact": list(wanted_contact),
        "terms_of_service": terms, "terms_of_service_agreed": True,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    log.info("registered ACME account %s at %s", uri, config.directory)
    return uri


# --------------------------------------------------------------------------- order steps

def _status(body: Any) -> str:
    status = getattr(body, "status", None)
    return getattr(status, "name", str(status)) if status is not None else ""


def _sleep(deadline: float, seconds: float, what: str) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise AcmeError(f"{what}: gave up after the time limit; the order is kept and will be resumed")
    time.sleep(max(0.0, min(seconds, remaining)))


def _retry_after(response: requests.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    return min(float(value), _RETRY_AFTER_MAX) if value.isdigit() else default


def _fetch_order(client: ClientV2, url: str) -> tuple[messages.Order, requests.Response]:
    response = _post_as_get(client, url)
    return messages.Order.from_json(response.json()), response


def _fetch_authorization(client: ClientV2, url: str) -> tuple[messages.AuthorizationResource, dict]:
    response = _post_as_get(client, url)
    raw = response.json()
    return messages.AuthorizationResource(body=messages.Authorization.from_json(raw), uri=url), raw


def _authorization_failure(name: str, raw: dict, status: str) -> AcmeError:
    for challenge in raw.get("challenges") or ():
        error = challenge.get("error")
        if isinstance(error, dict):
            return _problem_error(f"the CA could not validate {name}", error.get("type"), error.get("detail"),
                                  error.get("status") if isinstance(error.get("status"), int) else None,
                                  _OrderFailed)
    return _OrderFailed(f"the CA's authorisation for {name} is {status}", detail=f"authorisation is {status}")


def _identifier(authzr: messages.AuthorizationResource) -> str:
    identifier = authzr.body.identifier
    value = identifier.value if identifier is not None else "?"
    return f"*.{value}" if getattr(authzr.body, "wildcard", False) else value


def _authorize(client: ClientV2, net: _Network, config: AcmeConfig, jwk: jose.JWK,
               authz_urls: list[str], deadline: float) -> None:
    """Answer HTTP-01 (or DNS-01 through the hook) for every pending authorisation; wait for the CA's decisions."""
    todo: list[tuple[str, messages.ChallengeBody, challenges.ChallengeResponse]] = []
    responses: dict[str, str] = {}
    with _translated("cannot read the ACME authorisations", net):
        for url in authz_urls:
            authzr, raw = _fetch_authorization(client, url)
            status, name = _status(authzr.body), _identifier(authzr)
            if status == "valid":
                log.info("ACME authorisation for %s is already valid", name)
                continue
            if status != "pending":
                raise _authorization_failure(name, raw, status)
            kind = challenges.DNS01 if config.dns01_hook else challenges.HTTP01
            offered = [c for c in authzr.body.challenges if isinstance(c.chall, kind)]
            if not offered:
                offered_types = ", ".join(sorted({str(c.chall.typ) for c in authzr.body.challenges
                                                  if hasattr(c.chall, "typ")})) or "none"
                raise _OrderFailed(f"the CA offers no {kind.typ} challenge for {name} (offered: {offered_types})")
            challb = offered[0]
            response, validation = challb.response_and_validation(jwk)
            if config.dns01_hook:
                responses[challb.chall.validation_domain_name(name)] = validation
            else:
                responses[challb.chall.encode("token")] = validation
            todo.append((url, challb, response))
    if not todo:
        return
    kind = "DNS-01" if config.dns01_hook else "HTTP-01"
    publish = HookResponder(config.dns01_hook, responses) if config.dns01_hook else \
        responder(config.http01_listen, config.webroot, responses)
    with _translated(f"{kind} validation failed", net), publish:
        for _url, challb, response in todo:
            if _status(challb) == "pending":
                client.answer_challenge(challb, response)
        log.info("answered %d %s challenge(s); waiting for the CA", len(todo), kind)
        delay = _POLL_FIRST
        waiting = [url for url, _c, _r in todo]
        while waiting:
            _sleep(deadline, delay, "the CA did not finish validating")
            still = []
            for url in waiting:
                authzr, raw = _fetch_authorization(client, url)
                status = _status(authzr.body)
                if status == "pending":
                    still.append(url)
                elif status != "valid":
                    raise _authorization_failure(_identifier(authzr), raw, status)
                else:
                    log.info("the CA validated %s", _identifier(authzr))
            waiting = still
            delay = min(delay * 1.5, _POLL_MAX)


def _finalize(client: ClientV2, net: _Network, order_url: str, csr_pem: bytes, deadline: float) -> bytes:
    """Finalise the order once it is ready and download the certificate chain."""
    finalized = False
    delay = _POLL_FIRST
    with _translated("cannot finish the ACME order", net):
        while True:
            body, response = _fetch_order(client, order_url)
            status = _status(body)
            if status == "invalid":
                error = body.error
                if error is not None:
                    raise _problem_error("the CA refused to issue the certificate", error.typ, error.detail,
                                         None, _OrderFailed)
                raise _OrderFailed("the CA marked the order invalid without saying why")
            if status == "valid" and body.certificate:
                certificate = _post_as_get(client, body.certificate)
                return certificate.content
            if status == "ready" and not finalized:
                try:
                    client.begin_finalization(messages.OrderResource(body=body, uri=order_url, csr_pem=csr_pem))
                    log.info("finalised ACME order %s", order_url)
                    finalized = True
                    continue
                except messages.Error as exc:
                    if exc.code != "orderNotReady":
                        transient = exc.code in _TRANSIENT or (net.last_status or 0) >= 500
                        # badCSR, badPublicKey, ...: this order cannot succeed; drop it
                        raise _problem_error("the CA refused to finalise the order", exc.typ, exc.detail,
                                             net.last_status, AcmeError if transient else _OrderFailed) from exc
            wait = _retry_after(response, delay) if status == "processing" else delay
            _sleep(deadline, wait, "the CA did not issue the certificate")
            delay = min(delay * 1.5, _POLL_MAX)


def _check_issued(fullchain: bytes, key: PrivateKey, names: list[str]) -> None:
    try:
        certs = x509.load_pem_x509_certificates(fullchain)
    except ValueError:
        raise AcmeError("the CA returned a certificate chain svcssl cannot read") from None
    leaf = certs[0]
    if not key_matches(leaf, key):
        raise AcmeError("the CA returned a certificate for a different key")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        covered = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    except (x509.ExtensionNotFound, ValueError):
        covered = set()
    missing = [n for n in names if n not in covered]
    if missing:
        raise AcmeError(f"the CA returned a certificate that does not cover {', '.join(missing)}")


def normalise_names(names: list[str]) -> list[str]:
    """Lower-case, without trailing dots or duplicates, first name first (it becomes the CN)."""
    result: list[str] = []
    for name in names:
        clean = name.strip().rstrip(".").lower()
        if clean and clean not in result:
            result.append(clean)
    if not result:
        raise InputError("no names were given for the certificate order")
    return result


# --------------------------------------------------------------------------- public API

def order_certificate(config: AcmeConfig, names: list[str], state_dir: Path, *,
                      timeout: float = 90) -> IssuedCertificate:
    """Order a certificate for ``names`` (the first is the CN) and return its key and full chain.

    Resumes this account's pending order for the same names if the CA still has it. Raises
    :class:`AcmeError` on any failure; within ``timeout`` seconds for validation and issuance.
    """
    names = normalise_names(names)
    if not _KEY_TYPE.fullmatch(str(config.key_type)):
        raise AcmeError(f"unknown certificate key type {config.key_type!r} "
                        "(rsa-2048, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384)")
    if config.webroot is None and not config.dns01_hook:
        parse_listen(config.http01_listen)  # ConfigError now rather than after the order exists
    started = time.monotonic()
    deadline = started + timeout
    state_dir = Path(state_dir)
    _private_dir(state_dir / "acme")
    folder = account_dir(state_dir, config.directory)
    _private_dir(folder)
    lock = state_dir / "locks" / f"acme-{directory_key(config.directory)[:16]}.lock"
    with file_lock(lock, timeout=timeout):
        account_key = _account_key(folder, config.directory)
        jwk, alg = _jwk(account_key)
        client, net = _connect(config, timeout, jwk, alg)
        account_uri = _ensure_account(client, net, config, folder, jwk)

        order_url, key, authz_urls = _resume(client, net, config, folder, names)
        if order_url is None:
            key = generate_private_key(config.key_type)
            atomic_write(folder / PENDING_KEY_FILE, key_pem(key), 0o600)
            csr_pem = make_csr(key, names).public_bytes(serialization.Encoding.PEM)
            try:
                with _translated(f"the CA refused a new order for {', '.join(names)}", net):
                    orderr = client.new_order(csr_pem)
            except AcmeError:
                _clear_pending(folder)
                raise
            order_url = orderr.uri
            authz_urls = list(orderr.body.authorizations or ())
            _write_json(folder / PENDING_FILE, {
                "directory": config.directory, "names": names, "order_url": order_url,
                "account_uri": account_uri, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            })
            log.info("new ACME order %s for %s", order_url, ", ".join(names))
        else:
            csr_pem = make_csr(key, names).public_bytes(serialization.Encoding.PEM)
        assert key is not None and order_url is not None

        try:
            if authz_urls:
                _authorize(client, net, config, jwk, authz_urls, deadline)
            fullchain = _finalize(client, net, order_url, csr_pem, deadline)
        except _OrderFailed:
            _clear_pending(folder)
            log.warning("ACME order %s failed; its pending state is removed", order_url)
            raise
        _check_issued(fullchain, key, names)
        _clear_pending(folder)
        log.info("certificate issued for %s by %s in %.1f s", ", ".join(names), config.directory,
                 time.monotonic() - started)
        return IssuedCertificate(key_pem=key_pem(key), fullchain_pem=fullchain, account_uri=account_uri)


def _resume(client: ClientV2, net: _Network, config: AcmeConfig, folder: Path,
            names: list[str]) -> tuple[str | None, PrivateKey | None, list[str]]:
    """(order URL, key, authorisation URLs) of a pending order worth resuming, else (None, None, [])."""
    pending = _read_json(folder / PENDING_FILE)
    if pending is None:
        return None, None, []
    order_url = pending.get("order_url")
    if pending.get("directory") != config.directory or not order_url:
        _clear_pending(folder)
        return None, None, []
    if sorted(pending.get("names") or ()) != sorted(names):
        log.info("abandoning pending ACME order %s: it is for %s", order_url, ", ".join(pending.get("names") or ()))
        _clear_pending(folder)
        return None, None, []
    try:
        key = read_private_key((folder / PENDING_KEY_FILE).read_bytes())
    except (OSError, InputError):
        log.warning("abandoning pending ACME order %s: its key cannot be read", order_url)
        _clear_pending(folder)
        return None, None, []
    try:
        with _translated("cannot look up the pending ACME order", net):
            body, _response = _fetch_order(client, order_url)
    except AcmeError as exc:
        if exc.problem_type is None or (exc.status or 0) >= 500 or exc.code in _TRANSIENT:
            raise  # transient: keep the pending order for next time
        log.warning("abandoning pending ACME order %s: %s", order_url, exc.message)
        _clear_pending(folder)
        return None, None, []
    status = _status(body)
    if status not in RESUMABLE_STATUSES:
        log.info("pending ACME order %s is %s; starting a new one", order_url, status)
        _clear_pending(folder)
        return None, None, []
    log.info("resuming ACME order %s (%s) for %s", order_url, status, ", ".join(names))
    authz_urls = list(body.authorizations or ()) if status == "pending" else []
    return order_url, key, authz_urls


# --------------------------------------------------------------------------- renewal information

def _ari_identifier(cert: x509.Certificate) -> str | None:
    """RFC 9773 certificate identifier: base64url(AKI keyIdentifier) "." base64url(DER serial)."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    if not aki.key_identifier:
        return None
    serial = cert.serial_number
    serial_bytes = serial.to_bytes(max(1, math.ceil((serial.bit_length() + 1) / 8)), "big", signed=True)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")

    return f"{b64(aki.key_identifier)}.{b64(serial_bytes)}"


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, any number of fraction digits) as an aware UTC datetime."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)", text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, fraction, zone = match.groups()
    fraction = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{base.replace('t', 'T').replace(' ', 'T')}.{fraction}{zone}").astimezone(
        timezone.utc)


def renewal_window(config: AcmeConfig, cert_pem: bytes, *, now: datetime | None = None,
                   timeout: float = 30) -> tuple[datetime, datetime] | None:
    """The CA's suggested renewal window (RFC 9773 ARI) for the leaf in ``cert_pem``, as aware UTC datetimes.

    ``None`` when the CA does not advertise ``renewalInfo`` (pebble 2.4.0), when the certificate has
    no Authority Key Identifier, or when it has already expired (ARI must not be asked then; it is
    due anyway).
    """
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, IndexError):
        raise AcmeError("renewal information needs a PEM certificate; this one cannot be read") from None
    now = now or datetime.now(timezone.utc)
    if cert.not_valid_after_utc <= now:
        return None
    identifier = _ari_identifier(cert)
    net = _Network(verify_ssl=config.verify, user_agent=config.user_agent,  # type: ignore[arg-type]
                   timeout=max(5, min(45, int(timeout))))
    server = urlsplit(config.directory).netloc or config.directory
    with _translated(f"cannot read the ACME directory {config.directory}", net, server):
        directory = net.get(config.directory).json()
    base = directory.get("renewalInfo") if isinstance(directory, dict) else None
    if not base or identifier is None:
        return None
    url = base.rstrip("/") + "/" + identifier
    with _translated("cannot read the CA's renewal information", net, server):
        info = net.get(url, content_type="application/json").json()
    try:
        window = info["suggestedWindow"]
        start, end = parse_rfc3339(window["start"]), parse_rfc3339(window["end"])
    except (KeyError, TypeError, ValueError):
        raise AcmeError("the CA's renewal information has no readable suggestedWindow") from None
    if end < start:
        raise AcmeError("the CA's renewal information has a window that ends before it starts")
    return start, end
