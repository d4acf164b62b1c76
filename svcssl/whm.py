"""WHM API 1's conventions, shared by `svcssl list --json` and the JSON API: our results in its field
names, and its generic ``api.filter.*`` parameters."""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import InputError

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


class FilterError(InputError):
    field = "api.filter"


def _compare(kind: str, value: Any, arg: str) -> bool:
    text = "" if value is None else (" ".join(map(str, value)) if isinstance(value, list) else str(value))
    if kind in ("eq", "=="):
        return text == arg
    if kind in ("ne", "!="):
        return text != arg
    if kind == "contains":
        return arg.lower() in text.lower()
    if kind == "begins":
        return text.lower().startswith(arg.lower())
    if kind == "ends":
        return text.lower().endswith(arg.lower())
    try:
        number, limit = float(text), float(arg)
    except ValueError:
        raise FilterError(f"The filter type “{kind}” needs numbers; “{text[:40]}” or “{arg[:40]}” is not one.") from None
    return {"lt": number < limit, "gt": number > limit, "lt_equal": number <= limit, "gt_equal": number >= limit}[kind]


FILTER_TYPES = ("eq", "==", "ne", "!=", "contains", "begins", "ends", "lt", "gt", "lt_equal", "gt_equal")


def _field(row: Any, name: str) -> Any:
    """A field by name; dots go one level down, and a flat key may hold dots itself (issuer.commonName)."""
    if not isinstance(row, dict):
        return None
    if name in row:
        return row[name]
    head, sep, rest = name.partition(".")
    while sep:
        if head in row:
            found = _field(row[head], rest)
            if found is not None:
                return found
        more_head, sep, rest = rest.partition(".")
        head = f"{head}.{more_head}"
    return None


def apply_filters(data: Any, params: Mapping[str, str]) -> Any:
    """WHM's generic ``api.filter.*`` parameters on a result's one list (e.g. ``data.crt``)."""
    if params.get("api.filter.enable") != "1":
        return data
    filters = []
    for key in params:
        match = re.fullmatch(r"api\.filter\.([A-Za-z0-9_]+)\.field", key)
        if match:
            ident = match.group(1)
            kind = params.get(f"api.filter.{ident}.type", "contains")
            if kind not in FILTER_TYPES:
                raise FilterError(f"Unknown filter type “{kind}” (use one of {', '.join(FILTER_TYPES)}).")
            filters.append((params[key], kind, params.get(f"api.filter.{ident}.arg0", "")))
    if not filters or not isinstance(data, dict):
        return data
    lists = [k for k, v in data.items() if isinstance(v, list)]
    if len(lists) != 1:
        return data
    rows = data[lists[0]]
    kept = [row for row in rows if all(_compare(kind, _field(row, name), arg) for name, kind, arg in filters)]
    return {**data, lists[0]: kept}
