"""The ACME account: its key and ``account.json`` per directory URL, registration with External Account Binding."""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import josepy as jose
from acme import messages
from acme.client import ClientV2
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import InputError
from ..fsutil import atomic_write
from ..x509.encode import key_pem
from ..x509.generate import generate_private_key
from ..x509.parse import PrivateKey, read_private_key
from .problems import AcmeError, translated

if TYPE_CHECKING:
    from .client import AcmeConfig

log = logging.getLogger(__name__)

ACCOUNT_FILE = "account.json"
ACCOUNT_KEY_FILE = "account-key.pem"


def directory_key(directory_url: str) -> str:
    """The name of the per-directory state folder: lower-case hex SHA-256 of the directory URL."""
    return hashlib.sha256(directory_url.encode("utf-8")).hexdigest()


def account_dir(state_dir: Path, directory_url: str) -> Path:
    return Path(state_dir) / "acme" / directory_key(directory_url)


def private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable ACME state file %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o600)


def load_account_key(folder: Path, directory_url: str) -> PrivateKey:
    """The account key stored in ``folder``; a new ECDSA P-256 key, stored first, when there is none."""
    path = folder / ACCOUNT_KEY_FILE
    if path.exists():
        try:
            return read_private_key(path.read_bytes())
        except (OSError, InputError) as exc:
            reason = getattr(exc, "message", None) or exc
            raise AcmeError(f"cannot read the ACME account key {path}: {reason}") from None
    key = generate_private_key("ecdsa-p256")
    atomic_write(path, key_pem(key), 0o600)
    log.info("created a new ACME account key for %s", directory_url)
    return key


def jwk_of(key: PrivateKey) -> tuple[jose.JWK, jose.JWASignature]:
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {"secp256r1": jose.ES256, "secp384r1": jose.ES384, "secp521r1": jose.ES512}.get(key.curve.name)
        if alg is not None:
            return jose.JWKEC(key=key), alg
    raise AcmeError("the ACME account key must be RSA or ECDSA P-256/P-384/P-521")


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
    return client.new_account(messages.NewRegistration.from_data(
        email=config.email or None, terms_of_service_agreed=True, external_account_binding=eab)).uri


def ensure_account(client: ClientV2, config: AcmeConfig, folder: Path, jwk: jose.JWK) -> str:
    """The account URL for this key at this CA, registered now if the CA does not know the key."""
    stored = read_json(folder / ACCOUNT_FILE) or {}
    contact = tuple(f"mailto:{part.strip()}" for part in (config.email or "").split(",") if part.strip())
    try:
        with translated("cannot look up the ACME account", client.net):
            regr = client.query_registration(messages.RegistrationResource(body=messages.Registration()))
    except AcmeError as exc:
        if exc.code != "accountDoesNotExist":
            raise
        if stored.get("uri"):
            log.warning("the ACME account %s no longer exists at %s; registering again", stored["uri"],
                        config.directory)
        with translated(f"cannot register an ACME account at {config.directory}", client.net):
            uri = _register(client, config, jwk)
        write_json(folder / ACCOUNT_FILE, {
            "directory": config.directory, "uri": uri, "contact": list(contact), "terms_of_service_agreed": True,
            "terms_of_service": getattr(getattr(client.directory, "meta", None), "terms_of_service", None),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        log.info("registered ACME account %s at %s", uri, config.directory)
        return uri
    meta = {**stored, "directory": config.directory, "uri": regr.uri}
    if contact and tuple(regr.body.contact) != contact:
        with translated("cannot update the ACME account's contact address", client.net):
            client.update_registration(regr, messages.Registration(contact=contact))
        meta["contact"] = list(contact)
        log.info("updated the contact of ACME account %s", regr.uri)
    if meta != stored:
        write_json(folder / ACCOUNT_FILE, meta)
    return regr.uri
