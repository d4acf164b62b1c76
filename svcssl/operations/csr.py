"""Generate a private key and a CSR for service certificates: the key stays in svcssl's own key store.

The key is written 0600 into ``<state_dir>/keys/<spki-sha256>.key`` (directory 0700) and indexed
at once, so that Autofill — and ``svcssl install`` without ``--key`` — finds it when the CA's
certificate comes back. Only the CSR leaves: the key is never returned, printed or shown.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from ..errors import InputError, excerpt
from ..fsutil import atomic_write
from ..settings import KEY_TYPES
from ..store import AuditEntry
from ..x509.encode import key_pem
from ..x509.generate import generate_private_key, key_type_label, make_csr
from ..x509.inspect import spki_sha256
from .browse import key_store_dir, refresh_index
from .context import Context

log = logging.getLogger(__name__)

MAX_NAMES = 100
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class CsrResult:
    csr_pem: str
    domains: tuple[str, ...]
    key_type: str
    key_label: str  # "RSA, 2,048-bit"
    key_path: str  # where the key is kept (a path, never the key)
    spki_sha256: str


def _domain_problem(name: str) -> str | None:
    text = name.rstrip(".")
    if not text or len(text) > 253:
        return "it is empty or longer than 253 characters"
    if not text.isascii():
        return "it contains non-ASCII characters (use the xn-- form of an internationalised name)"
    labels = text.split(".")
    if len(labels) < 2:
        return "it has only one label (a fully qualified name needs a domain, like host.example.com)"
    for number, label in enumerate(labels):
        if label == "*" and number == 0:
            continue
        if not _LABEL.fullmatch(label):
            return f"the label '{excerpt(label, 20)}' is not letters, digits and hyphens"
    return None


def split_domains(text: str) -> list[str]:
    """Names separated by spaces, commas or new lines, lower-cased, duplicates dropped, order kept."""
    names: list[str] = []
    for part in re.split(r"[\s,]+", text or ""):
        name = part.strip().lower().rstrip(".")
        if name and name not in names:
            names.append(name)
    return names


def check_domains(names: list[str]) -> tuple[str, ...]:
    if not names:
        raise InputError("Give at least one domain name for the certificate request.", field="domains")
    if len(names) > MAX_NAMES:
        raise InputError(f"A certificate request may name at most {MAX_NAMES} domains ({len(names)} given).",
                         field="domains")
    clean = []
    for name in names:
        lowered = name.strip().lower().rstrip(".")
        problem = _domain_problem(lowered)
        if problem:
            raise InputError(f"'{excerpt(name)}' is not a valid domain name: {problem}.", field="domains")
        if lowered not in clean:
            clean.append(lowered)
    return tuple(clean)


def create_csr(ctx: Context, names: list[str], key_type: str | None = None, *, actor: str) -> CsrResult:
    """A new key (kept in the key store, 0600) and a CSR for ``names`` (the first is the CN). Checks come first."""
    domains = check_domains(names)
    key_type = key_type or ctx.settings.certificates.key_type
    if key_type not in KEY_TYPES:
        raise InputError(f"The key type must be one of {', '.join(KEY_TYPES)}, not '{excerpt(key_type)}'.",
                         field="key_type")
    key = generate_private_key(key_type)
    csr = make_csr(key, list(domains))
    spki = spki_sha256(key.public_key())
    directory = key_store_dir(ctx)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = ctx.store.layout.key_store_key(spki)
    atomic_write(path, key_pem(key), mode=0o600)
    atomic_write(ctx.store.layout.key_store_csr(spki), csr.public_bytes(serialization.Encoding.PEM), mode=0o600)
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="csr create",
                                   detail=f"{key_type} {', '.join(domains)[:200]}"))
    log.info("key and CSR created for %s (%s), key kept in %s", domains[0], key_type, path)
    refresh_index(ctx, lock_timeout=30)  # Autofill finds the key as soon as the certificate comes back
    return CsrResult(csr.public_bytes(serialization.Encoding.PEM).decode(), domains, key_type,
                     key_type_label(key_type), str(path), spki)
