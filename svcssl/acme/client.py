"""ACME (RFC 8555) on ``acme.client.ClientV2``'s public API: resumable orders, HTTP-01/DNS-01, renewal information.

State lives under ``state_dir/acme/<sha256 of the directory URL>/`` (0700; files 0600): the account
(:mod:`.account`) and, while an order is unfinished, ``pending-key.pem`` + ``pending.json`` (its key
and URL, written before any challenge is answered). The next :func:`order_certificate` for the same
names resumes that order if the CA still has it; both files go once the certificate is returned or the
order has definitively failed (a timeout or a network error keeps them). One order runs at a time per
directory URL (``state_dir/locks/acme-<hash>.lock``). Every failure is an :class:`AcmeError`.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import josepy as jose
from acme import challenges, messages
from acme import errors as acme_errors
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import InputError
from ..fsutil import atomic_write, file_lock
from ..x509.encode import key_pem
from ..x509.generate import generate_private_key, make_csr
from ..x509.parse import PrivateKey, read_private_key
from ..x509.validate import key_matches
from .account import ACCOUNT_FILE, ACCOUNT_KEY_FILE, account_dir, directory_key, ensure_account  # noqa: F401
from .account import jwk_of, load_account_key as _account_key, private_dir, read_json, write_json
from .dns01 import published
from .http01 import DEFAULT_LISTEN, Resource, parse_listen, responder
from .problems import TRANSIENT, AcmeError, OrderFailed, problem_error, translated

log = logging.getLogger(__name__)

PENDING_FILE = "pending.json"
PENDING_KEY_FILE = "pending-key.pem"
RESUMABLE = (messages.STATUS_PENDING, messages.STATUS_READY, messages.STATUS_PROCESSING, messages.STATUS_VALID)
_NONCE_ROUNDS = 3  # acme's post tries two nonces each round; CAs may reject several in a row
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


class _Network(ClientNetwork):
    """``acme``'s ClientNetwork, remembering the last HTTP status and trying a rejected nonce more than twice."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_status: int | None = None
        self.session.hooks["response"].append(self._remember)

    def _remember(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.last_status = response.status_code

    def post(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, _NONCE_ROUNDS + 1):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == _NONCE_ROUNDS:
                    raise


def _connect(config: AcmeConfig, timeout: float, key: PrivateKey | None = None) -> ClientV2:
    jwk, alg = jwk_of(key) if key is not None else (None, jose.RS256)
    net = _Network(key=jwk, alg=alg, verify_ssl=config.verify, user_agent=config.user_agent,  # type: ignore[arg-type]
                   timeout=max(5, min(45, int(timeout))))
    with translated(f"cannot read the ACME directory {config.directory}", net,
                    urlsplit(config.directory).netloc or config.directory):
        return ClientV2(ClientV2.get_directory(config.directory, net), net)


def _post_as_get(client: ClientV2, url: str) -> Any:
    return client.net.post(url, None, new_nonce_url=client.directory.newNonce)


def _clear_pending(folder: Path) -> None:
    (folder / PENDING_FILE).unlink(missing_ok=True)
    (folder / PENDING_KEY_FILE).unlink(missing_ok=True)


def _identifier(authzr: messages.AuthorizationResource) -> str:
    value = authzr.body.identifier.value if authzr.body.identifier is not None else "?"
    return f"*.{value}" if authzr.body.wildcard else value


def _authorization_failure(client: ClientV2, authzr: messages.AuthorizationResource) -> AcmeError:
    """The CA's problem with a failed authorisation (read raw: ``acme``'s Error drops the problem's status)."""
    name, raw = _identifier(authzr), _post_as_get(client, authzr.uri).json()
    for error in (challenge.get("error") for challenge in raw.get("challenges") or ()):
        if isinstance(error, dict):
            status = error.get("status") if isinstance(error.get("status"), int) else None
            return problem_error(f"the CA could not validate {name}", error.get("type"), error.get("detail"),
                                 status, OrderFailed)
    state = raw.get("status", "not valid")
    return OrderFailed(f"the CA's authorisation for {name} is {state}", detail=f"authorisation is {state}")


def _authorize(client: ClientV2, config: AcmeConfig, orderr: messages.OrderResource, deadline: datetime) -> None:
    """Answer HTTP-01 (or DNS-01 through the hook) for every pending authorisation; wait for the CA's decisions."""
    kind, label = (challenges.DNS01, "DNS-01") if config.dns01_hook else (challenges.HTTP01, "HTTP-01")
    answers, records, resources = [], {}, []
    with translated("cannot read the ACME authorisations", client.net):
        for authzr in orderr.authorizations:
            name = _identifier(authzr)
            if authzr.body.status == messages.STATUS_VALID:
                log.info("ACME authorisation for %s is already valid", name)
                continue
            if authzr.body.status != messages.STATUS_PENDING:
                raise _authorization_failure(client, authzr)
            challb = next((c for c in authzr.body.challenges if isinstance(c.chall, kind)), None)
            if challb is None:
                offered = ", ".join(sorted(str(getattr(c.chall, "typ", "?")) for c in authzr.body.challenges))
                raise OrderFailed(f"the CA offers no {kind.typ} challenge for {name} (offered: {offered or 'none'})")
            response, validation = challb.response_and_validation(client.net.key)
            if config.dns01_hook:
                records[challb.chall.validation_domain_name(name)] = validation
            resources.append(Resource(challb.chall, response, validation))
            answers.append((challb, response))
    if not answers:
        return
    publish = published(config.dns01_hook, records) if config.dns01_hook else \
        responder(config.http01_listen, config.webroot, resources)
    with translated(f"{label} validation failed", client.net), publish:
        for challb, response in answers:
            if challb.status == messages.STATUS_PENDING:
                client.answer_challenge(challb, response)
        log.info("answered %d %s challenge(s); waiting for the CA", len(answers), label)
        try:
            client.poll_authorizations(orderr, deadline)
        except acme_errors.ValidationError as exc:
            raise _authorization_failure(client, exc.failed_authzrs[0]) from None


def _finalize(client: ClientV2, orderr: messages.OrderResource, deadline: datetime) -> bytes:
    """``finalize_order`` in its two public steps, to tell a refused CSR from a transient failure."""
    with translated("cannot finish the ACME order", client.net):
        if orderr.body.status in (messages.STATUS_PENDING, messages.STATUS_READY):
            try:
                client.begin_finalization(orderr)
                log.info("finalised ACME order %s", orderr.uri)
            except messages.Error as exc:
                if exc.code != "orderNotReady":  # badCSR, badPublicKey, ...: this order cannot succeed
                    status = client.net.last_status
                    transient = exc.code in TRANSIENT or (status or 0) >= 500
                    raise problem_error("the CA refused to finalise the order", exc.typ, exc.detail, status,
                                        AcmeError if transient else OrderFailed) from exc
        try:
            return client.poll_finalization(orderr, deadline).fullchain_pem.encode("utf-8")
        except acme_errors.IssuanceError as exc:
            raise problem_error("the CA refused to issue the certificate", exc.error.typ, exc.error.detail,
                                None, OrderFailed) from exc
        except acme_errors.Error as exc:
            if type(exc) is acme_errors.Error:  # acme's "The certificate order failed. No further information"
                raise OrderFailed("the CA marked the order invalid without saying why") from exc
            raise


def _check_issued(fullchain: bytes, key: PrivateKey, names: list[str]) -> None:
    try:
        leaf = x509.load_pem_x509_certificates(fullchain)[0]
        covered = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        covered = []
    except ValueError:
        raise AcmeError("the CA returned a certificate chain svcssl cannot read") from None
    if not key_matches(leaf, key):
        raise AcmeError("the CA returned a certificate for a different key")
    if missing := [n for n in names if n not in {c.lower() for c in covered}]:
        raise AcmeError(f"the CA returned a certificate that does not cover {', '.join(missing)}")


def normalise_names(names: list[str]) -> list[str]:
    """Lower-case, without trailing dots or duplicates, first name first (it becomes the CN)."""
    result = list(dict.fromkeys(clean for name in names if (clean := name.strip().rstrip(".").lower())))
    if not result:
        raise InputError("no names were given for the certificate order")
    return result


def _resume(client: ClientV2, config: AcmeConfig, folder: Path,
            names: list[str]) -> tuple[messages.OrderResource, PrivateKey] | None:
    """This account's pending order for ``names`` (with its key) if the CA still has it, else None."""
    pending = read_json(folder / PENDING_FILE)
    if pending is None:
        return None
    url, reason = pending.get("order_url"), None
    if pending.get("directory") != config.directory or not url:
        reason = "it belongs to another directory"
    elif sorted(pending.get("names") or ()) != sorted(names):
        reason = f"it is for {', '.join(pending.get('names') or ())}"
    else:
        try:
            key = read_private_key((folder / PENDING_KEY_FILE).read_bytes())
            with translated("cannot look up the pending ACME order", client.net):
                body = messages.Order.from_json(_post_as_get(client, url).json())
                reason = None if body.status in RESUMABLE else f"it is {body.status.name}"
                authzrs = [client.poll(messages.AuthorizationResource(uri=authz, body=messages.Authorization()))[0]
                           for authz in body.authorizations if body.status == messages.STATUS_PENDING]
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


def _new_order(client: ClientV2, config: AcmeConfig, folder: Path, names: list[str],
               account_uri: str) -> tuple[messages.OrderResource, PrivateKey]:
    """A new order for ``names``; its key and URL are stored before any challenge is answered."""
    key = generate_private_key(config.key_type)
    atomic_write(folder / PENDING_KEY_FILE, key_pem(key), 0o600)
    try:
        with translated(f"the CA refused a new order for {', '.join(names)}", client.net):
            orderr = client.new_order(make_csr(key, names).public_bytes(Encoding.PEM))
    except AcmeError:
        _clear_pending(folder)
        raise
    write_json(folder / PENDING_FILE, {
        "directory": config.directory, "names": names, "order_url": orderr.uri, "account_uri": account_uri,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    log.info("new ACME order %s for %s", orderr.uri, ", ".join(names))
    return orderr, key


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
    deadline = datetime.now() + timedelta(seconds=timeout)  # naive local time: acme's polling compares so
    private_dir(Path(state_dir) / "acme")
    private_dir(folder := account_dir(state_dir, config.directory))
    with file_lock(Path(state_dir) / "locks" / f"acme-{directory_key(config.directory)[:16]}.lock", timeout=timeout):
        client = _connect(config, timeout, _account_key(folder, config.directory))
        account_uri = ensure_account(client, config, folder, client.net.key)
        orderr, key = _resume(client, config, folder, names) or _new_order(client, config, folder, names, account_uri)
        try:
            _authorize(client, config, orderr, deadline)
            fullchain = _finalize(client, orderr, deadline)
        except OrderFailed:
            _clear_pending(folder)
            log.warning("ACME order %s failed; its pending state is removed", orderr.uri)
            raise
        _check_issued(fullchain, key, names)
        _clear_pending(folder)
        log.info("certificate issued for %s by %s in %.1f s", ", ".join(names), config.directory,
                 time.monotonic() - started)
        return IssuedCertificate(key_pem=key_pem(key), fullchain_pem=fullchain, account_uri=account_uri)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, any number of fraction digits) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().upper())
    if value.tzinfo is None:
        raise ValueError(f"not an RFC 3339 time (no offset): {text!r}")
    return value.astimezone(timezone.utc)


def renewal_window(config: AcmeConfig, cert_pem: bytes, *, now: datetime | None = None,
                   timeout: float = 30) -> tuple[datetime, datetime] | None:
    """The CA's suggested renewal window (RFC 9773 ARI) for the leaf in ``cert_pem``, as aware UTC datetimes.

    ``None`` when the CA does not advertise ``renewalInfo`` (pebble 2.4.0), when the certificate has
    no Authority Key Identifier, or when it has already expired (ARI must not be asked then; it is due
    anyway). Not ``ClientV2.renewal_time``: that returns a random time inside the window, not the window.
    """
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
        key_id = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        key_id = None
    except (ValueError, IndexError):
        raise AcmeError("renewal information needs a PEM certificate; this one cannot be read") from None
    if cert.not_valid_after_utc <= (now or datetime.now(timezone.utc)):
        return None
    client = _connect(config, timeout)
    base = getattr(client.directory, "renewalInfo", None)
    if not base or not key_id:
        return None
    serial = cert.serial_number.to_bytes(math.ceil((cert.serial_number.bit_length() + 1) / 8), "big", signed=True)
    identifier = ".".join(base64.urlsafe_b64encode(part).decode("ascii").rstrip("=") for part in (key_id, serial))
    with translated("cannot read the CA's renewal information", client.net, urlsplit(config.directory).netloc):
        response = client.net.get(f"{base.rstrip('/')}/{identifier}", content_type="application/json")
    try:
        window = messages.RenewalInfo.from_json(response.json()).suggested_window
        start, end = window.start.astimezone(timezone.utc), window.end.astimezone(timezone.utc)
    except (ValueError, AttributeError, jose.errors.Error):
        raise AcmeError("the CA's renewal information has no readable suggestedWindow") from None
    if end < start:
        raise AcmeError("the CA's renewal information has a window that ends before it starts")
    return start, end
