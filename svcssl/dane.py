"""DANE for SMTP (RFC 6698, 7671, 7672): validated TLSA lookups and matching records against certificates.

Beside ``dnscheck.py`` and in the same manner: plain parameters in, frozen dataclasses out, DNS failures never
raise. Only an answer the resolver marks DNSSEC-validated (the AD bit, as Postfix requires) counts as
``validated``; an answer without it is ``unvalidated`` and a SERVFAIL (what a validating resolver answers for
bogus data) is ``failed``: neither is ever acted on. Matching is pure: usages 2 (DANE-TA, against the chain)
and 3 (DANE-EE, against the leaf or a key), selectors 0 (whole certificate) and 1 (SubjectPublicKeyInfo),
matching types 0 (exact), 1 (SHA-256) and 2 (SHA-512). Usages 0 and 1 are unusable for SMTP (RFC 7672 §3.1.3):
they are listed, never matched.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

import dns.exception
import dns.flags
import dns.rdatatype
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .dnscheck import _dns_error_text, _fqdn_problem, _no_nameservers_problem, make_resolver

log = logging.getLogger(__name__)

SMTP_PORT = 25
DANE_TA, DANE_EE = 2, 3
USABLE_USAGES = (DANE_TA, DANE_EE)
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MATCH_FULL, MATCH_SHA256, MATCH_SHA512 = 0, 1, 2
MAX_RECORDS = 64  # more TLSA records than this at one name is hostile or broken: the rest are ignored
MAX_DATA = 4096  # bytes of one record's association data (a full RSA-4096 certificate fits)

VALIDATED, UNVALIDATED, ABSENT, FAILED = "validated", "unvalidated", "absent", "failed"


@dataclass(frozen=True)
class TlsaRecord:
    usage: int
    selector: int
    matching_type: int
    data: str  # lower-case hex of the association data

    @property
    def text(self) -> str:
        """Presentation form: "3 1 1 <hex>"."""
        return f"{self.usage} {self.selector} {self.matching_type} {self.data}"

    @property
    def usable(self) -> bool:
        """A record SMTP clients use (RFC 7672): usage 2 or 3 with a known selector and matching type."""
        return (self.usage in USABLE_USAGES and self.selector in (SELECTOR_CERT, SELECTOR_SPKI)
                and self.matching_type in (MATCH_FULL, MATCH_SHA256, MATCH_SHA512))

    @property
    def pins_key(self) -> bool:
        """A "3 1 x" record: it names the leaf's key, so a renewal must keep that key."""
        return self.usage == DANE_EE and self.selector == SELECTOR_SPKI and self.usable

    def to_dict(self) -> dict:
        return {"usage": self.usage, "selector": self.selector, "matching_type": self.matching_type,
                "data": self.data}

    @classmethod
    def from_dict(cls, value: dict) -> "TlsaRecord":
        return cls(int(value["usage"]), int(value["selector"]), int(value["matching_type"]), str(value["data"]))


@dataclass(frozen=True)
class TlsaLookup:
    """The TLSA RRset at ``_25._tcp.<name>`` as the resolver answered it."""

    name: str  # the mail host name, lower-case, no trailing dot
    status: str  # validated | unvalidated | absent | failed
    records: tuple[TlsaRecord, ...] = ()
    ttl: int | None = None  # the TTL the resolver reported with the answer
    problem: str | None = None  # a sentence for a person when status is unvalidated or failed

    @property
    def validated(self) -> bool:
        return self.status == VALIDATED

    @property
    def owner(self) -> str:
        return tlsa_owner(self.name)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "records": [r.to_dict() for r in self.records],
                "ttl": self.ttl, "problem": self.problem}

    @classmethod
    def from_dict(cls, value: dict) -> "TlsaLookup":
        return cls(str(value["name"]), str(value["status"]),
                   tuple(TlsaRecord.from_dict(r) for r in value.get("records") or ()),
                   value.get("ttl"), value.get("problem"))


def tlsa_owner(name: str, port: int = SMTP_PORT) -> str:
    """The owner name of the TLSA records of an SMTP server: ``_25._tcp.mail.example.com.``."""
    return f"_{port}._tcp.{name.strip().lower().rstrip('.')}."


def zone_line(name: str, record: TlsaRecord) -> str:
    """The record in zone-file syntax, to publish: ``_25._tcp.mail.example.com. IN TLSA 3 1 1 <hex>``."""
    return f"{tlsa_owner(name)} IN TLSA {record.text}"


def make_dane_resolver(nameservers: Sequence[str], timeout: float = 3.0):
    """``make_resolver`` asking with the DO and AD bits, so that a validating resolver says whether it validated."""
    resolver = make_resolver(list(nameservers), timeout)
    resolver.use_edns(0, dns.flags.DO, 1232)
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


def lookup_tlsa(name: str, resolver) -> TlsaLookup:
    """The TLSA records of the SMTP server ``name``, and whether the resolver validated them (AD bit)."""
    host = name.strip().lower().rstrip(".") if isinstance(name, str) else ""
    invalid = _fqdn_problem(host)
    if invalid:
        return TlsaLookup(host, FAILED, problem=f"'{name}' is not a valid host name for TLSA records: {invalid}")
    missing = _no_nameservers_problem(resolver)
    if missing:
        return TlsaLookup(host, FAILED, problem=f"cannot look up the TLSA records of {host}: {missing}")
    qname = tlsa_owner(host)
    try:
        answer = resolver.resolve(qname, "TLSA", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return TlsaLookup(host, ABSENT)
    except dns.resolver.NoNameservers as exc:
        # a validating resolver answers SERVFAIL for bogus data (a bad signature, a broken chain of trust)
        return TlsaLookup(host, FAILED, problem=(
            f"the TLSA records at {qname} could not be validated (the resolver answered SERVFAIL, which a validating "
            f"resolver does for bogus DNSSEC data): " + _dns_error_text(exc, qname, "TLSA", resolver)))
    except dns.exception.DNSException as exc:
        return TlsaLookup(host, FAILED, problem=_dns_error_text(exc, qname, "TLSA", resolver))
    validated = bool(answer.response.flags & dns.flags.AD)
    records: list[TlsaRecord] = []
    ttl = None
    if answer.rrset is not None:
        ttl = int(answer.rrset.ttl)
        for rdata in list(answer.rrset)[:MAX_RECORDS]:
            if len(rdata.cert) > MAX_DATA:
                continue
            records.append(TlsaRecord(int(rdata.usage), int(rdata.selector), int(rdata.mtype), rdata.cert.hex()))
    if not records:
        return TlsaLookup(host, ABSENT, ttl=ttl)
    if not validated:
        return TlsaLookup(host, UNVALIDATED, tuple(records), ttl, (
            f"TLSA records exist at {qname}, but the resolver did not validate them (no AD bit): DANE senders see "
            f"them only if the zone is DNSSEC-signed and svcssl asks a validating resolver ([dns] nameservers)"))
    log.info("dane: %d validated TLSA record(s) at %s (TTL %s)", len(records), qname, ttl)
    return TlsaLookup(host, VALIDATED, tuple(records), ttl)


# --------------------------------------------------------------------------- matching (pure)

def _spki(public_key) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def association_data(selector: int, matching_type: int, *, cert: x509.Certificate | None = None,
                     public_key=None) -> bytes | None:
    """The bytes a record with this selector and matching type carries for ``cert`` (or for a key alone,
    selector 1 only); None when it cannot be computed."""
    if selector == SELECTOR_CERT:
        if cert is None:
            return None
        raw = cert.public_bytes(Encoding.DER)
    elif selector == SELECTOR_SPKI:
        key = public_key if public_key is not None else (cert.public_key() if cert is not None else None)
        if key is None:
            return None
        raw = _spki(key)
    else:
        return None
    if matching_type == MATCH_FULL:
        return raw
    if matching_type == MATCH_SHA256:
        return hashlib.sha256(raw).digest()
    if matching_type == MATCH_SHA512:
        return hashlib.sha512(raw).digest()
    return None


def _matches(record: TlsaRecord, *, cert: x509.Certificate | None = None, public_key=None) -> bool:
    data = association_data(record.selector, record.matching_type, cert=cert, public_key=public_key)
    return data is not None and data.hex() == record.data.lower()


def matches_certificate(record: TlsaRecord, leaf: x509.Certificate, chain: Iterable[x509.Certificate]) -> bool:
    """Does a server presenting ``leaf`` + ``chain`` satisfy this record? Usage 3 against the leaf, usage 2
    against a CA certificate of the chain; unusable records never match."""
    if not record.usable:
        return False
    if record.usage == DANE_EE:
        return _matches(record, cert=leaf)
    return any(_matches(record, cert=ca) for ca in chain)


def matches_key(record: TlsaRecord, public_key) -> bool:
    """Does a "3 1 x" record name this key (any certificate with it would match)?"""
    return record.pins_key and _matches(record, public_key=public_key)


def record_for_key(public_key, matching_type: int = MATCH_SHA256) -> TlsaRecord:
    """The "3 1 1" record of a key: what to publish for it."""
    data = association_data(SELECTOR_SPKI, matching_type, public_key=public_key)
    assert data is not None
    return TlsaRecord(DANE_EE, SELECTOR_SPKI, matching_type, data.hex())
