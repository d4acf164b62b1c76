"""Render the bytes of a service's target files from a bundle (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import ServiceSettings
from ..x509 import Bundle
from ..x509.encode import chain_pem, combined_pem, fullchain_pem, key_pem


@dataclass(frozen=True)
class TargetFile:
    path: Path
    data: bytes
    mode: int
    role: str  # cert | key | chain | combined


def render_files(service: ServiceSettings, bundle: Bundle) -> tuple[TargetFile, ...]:
    """Keys (and the combined file, which holds one) get ``key_mode``; the rest ``cert_mode``."""
    files = []
    if service.key_file is not None:
        files.append(TargetFile(service.key_file, key_pem(bundle.key), service.key_mode, "key"))
    if service.cert_file is not None:
        files.append(TargetFile(service.cert_file, fullchain_pem(bundle.leaf, bundle.chain), service.cert_mode, "cert"))
    if service.chain_file is not None:
        files.append(TargetFile(service.chain_file, chain_pem(bundle.chain), service.cert_mode, "chain"))
    if service.combined_file is not None:
        files.append(TargetFile(service.combined_file, combined_pem(bundle.key, bundle.leaf, bundle.chain),
                                service.key_mode, "combined"))
    return tuple(files)


def installed_certificate_path(service: ServiceSettings) -> Path:
    """The file whose first certificate is the service's leaf."""
    return service.cert_file if service.cert_file is not None else service.combined_file  # type: ignore[return-value]


def installed_key_path(service: ServiceSettings) -> Path:
    return service.key_file if service.key_file is not None else service.combined_file  # type: ignore[return-value]
