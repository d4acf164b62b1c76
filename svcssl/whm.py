"""Our results in WHM API 1's field names (shared by `svcssl list --json` and the JSON API)."""

from __future__ import annotations

from typing import Any

from .x509.inspect import CertificateInfo


def certificate_info(info: CertificateInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "domains": list(info.domains),
        "not_before": int(info.not_before.timestamp()),
        "not_after": int(info.not_after.timestamp()),
        "is_self_signed": int(info.is_self_signed),
        "key_algorithm": info.key_algorithm,
        "modulus": info.modulus,
        "modulus_length": info.key_size if info.key_algorithm == "rsaEncryption" else None,
        "ecdsa_curve_name": info.ecdsa_curve_name,
        "ecdsa_public": info.ecdsa_public,
        "issuer.commonName": info.issuer_value("commonName"),
        "issuer.organizationName": info.issuer_value("organizationName"),
        "issuer_text": info.issuer_text,
        "signature_algorithm": info.signature_algorithm,
    }
