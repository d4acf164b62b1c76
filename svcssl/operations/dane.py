"""DANE for the services that receive mail: what the validated TLSA records say of each service's certificate,
the key a renewal must keep, the refusal of a certificate that would break them, and the key rollover.

State lives in ``<state_dir>/dane/`` (0700): ``<service>.json`` (the last lookups, the rollover) and, during a
rollover, ``<service>.next-key.pem`` (0600; never shown, never logged). Lookups need the network: the
maintenance run and ``svcssl dane status`` make them (``network=True``) and record them; the other surfaces
(the table, Details, install) read what was recorded, as they do for every other fact from the network.

Rollover states: ``none`` (no next key); ``waiting`` (a next key exists; its "3 1 1" record has not been seen
validated at every name for twice the TTL the resolver reported when svcssl first saw it); ``ready`` (it has:
the next renewal switches to it); ``done`` (switched: the old record may be removed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from cryptography import x509

from ..dane import (ABSENT, FAILED, UNVALIDATED, VALIDATED, TlsaLookup, TlsaRecord, lookup_tlsa,
                    make_dane_resolver, matches_certificate, matches_key, record_for_key, zone_line)
from ..errors import DaneMismatchError, InputError, SvcsslError
from ..fsutil import atomic_write
from ..settings import ServiceSettings
from ..store import AuditEntry
from ..x509.encode import key_pem
from ..x509.generate import generate_private_key
from ..x509.parse import read_private_key
from .assessment import CertificateFacts
from .context import Context

log = logging.getLogger(__name__)

NONE, WAITING, READY, DONE = "none", "waiting", "ready", "done"
UNCHECKED = "unchecked"  # no lookup recorded yet (no maintenance run or `svcssl dane status` since)
STATE_LIMIT = 256 * 1024


# --------------------------------------------------------------------------- which services, which names

def dane_setting(service: ServiceSettings) -> bool:
    """Does svcssl look at this service's TLSA records? ``dane`` when set, else yes for kind exim (a service
    whose names have no TLSA records then simply has nothing to match)."""
    return service.dane if service.dane is not None else service.kind == "exim"


def dane_names(ctx: Context, service: ServiceSettings) -> tuple[str, ...]:
    names = service.dane_names or (ctx.settings.server.hostname,)
    return tuple(dict.fromkeys(n.strip().lower().rstrip(".") for n in names if n.strip()))


# --------------------------------------------------------------------------- findings

@dataclass(frozen=True)
class RecordMatch:
    record: TlsaRecord
    matches_current: bool
    matches_next: bool

    def to_dict(self) -> dict:
        return {**self.record.to_dict(), "matches_current": self.matches_current, "matches_next": self.matches_next}


@dataclass(frozen=True)
class NameFinding:
    name: str
    lookup: TlsaLookup
    records: tuple[RecordMatch, ...]
    publish: tuple[str, ...]  # zone-file lines: the current key's record (and the next key's during a rollover)

    @property
    def validated(self) -> bool:
        return self.lookup.status == VALIDATED

    @property
    def usable(self) -> tuple[RecordMatch, ...]:
        """The validated records SMTP senders use (usage 2 and 3); empty when not validated."""
        return tuple(m for m in self.records if m.record.usable) if self.validated else ()

    def to_dict(self) -> dict:
        return {"name": self.name, "validated": self.validated, "records": [m.to_dict() for m in self.records],
                "publish": list(self.publish)}


@dataclass(frozen=True)
class Rollover:
    state: str = NONE
    next_record: str | None = None  # the next key's "3 1 1" line (after the switch: the key now in use)
    seen_validated_since: datetime | None = None
    old_record_removable: bool = False
    old_record: str | None = None  # after the switch: the record of the key no longer used
    ttl: int | None = None

    def to_dict(self) -> dict:
        return {"state": self.state, "next_record": self.next_record,
                "seen_validated_since": self.seen_validated_since.isoformat(timespec="seconds").replace(
                    "+00:00", "Z") if self.seen_validated_since else None,
                "old_record_removable": self.old_record_removable}


@dataclass(frozen=True)
class ServiceDane:
    service: str
    names: tuple[NameFinding, ...]
    rollover: Rollover = field(default_factory=Rollover)
    checked_at: datetime | None = None

    @property
    def mismatch(self) -> str | None:
        """Validated records exist and none matches the installed certificate: what senders see, what to publish."""
        broken = [f for f in self.names if f.usable and not any(m.matches_current for m in f.usable)]
        if not broken:
            return None
        where = "; ".join(f"{f.lookup.owner} has {', '.join(m.record.text[:24] + '…' for m in f.usable)}"
                          for f in broken)
        publish = "; ".join(line for f in broken for line in f.publish)
        return (f"no validated TLSA record matches its certificate ({where}): DANE senders refuse to deliver mail to "
                f"it. Publish {publish}")

    @property
    def unvalidated(self) -> str | None:
        """TLSA records are there but the resolver does not validate them: svcssl acts on nothing."""
        problems = [f.lookup.problem for f in self.names if f.lookup.status in (UNVALIDATED, FAILED)
                    and (f.lookup.records or f.lookup.status == FAILED and "SERVFAIL" in (f.lookup.problem or ""))]
        return "; ".join(p for p in problems if p) or None

    def to_dict(self) -> dict:
        return {"service": self.service, "names": [f.to_dict() for f in self.names],
                "rollover": self.rollover.to_dict()}


# --------------------------------------------------------------------------- state files

def _dir(ctx: Context) -> Path:
    return Path(ctx.store.root) / "dane"


def _state_path(ctx: Context, service: str) -> Path:
    return _dir(ctx) / f"{service}.json"


def next_key_path(ctx: Context, service: str) -> Path:
    return _dir(ctx) / f"{service}.next-key.pem"


def _read_state(ctx: Context, service: str) -> dict:
    path = _state_path(ctx, service)
    try:
        data = path.read_bytes()[:STATE_LIMIT]
        value = json.loads(data)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(ctx: Context, service: str, state: dict) -> None:
    folder = _dir(ctx)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    atomic_write(_state_path(ctx, service), json.dumps(state, indent=1, sort_keys=True).encode(), mode=0o600)


def _moment(text) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def read_next_key(ctx: Context, service: str):
    """The pending next key of a rollover, or None."""
    path = next_key_path(ctx, service)
    try:
        return read_private_key(path.read_bytes(), validate=False)
    except FileNotFoundError:
        return None
    except (OSError, SvcsslError) as exc:
        log.warning("dane: the next key of %s cannot be read: %s", service, getattr(exc, "message", exc))
        return None


# --------------------------------------------------------------------------- judging

def _rollover(state: dict, next_key, now: datetime) -> Rollover:
    roll = state.get("rollover") or {}
    if next_key is None:
        if roll.get("state") == DONE:
            return Rollover(DONE, roll.get("next_record"), _moment(roll.get("seen_validated_since")), True,
                            roll.get("old_record"), roll.get("ttl"))
        return Rollover()
    since, ttl = _moment(roll.get("seen_validated_since")), roll.get("ttl")
    ready = since is not None and ttl is not None and now >= since + timedelta(seconds=2 * int(ttl))
    return Rollover(READY if ready else WAITING, roll.get("next_record"), since, False, None, ttl)


def _finding(name: str, lookup: TlsaLookup, leaf, chain, next_key) -> NameFinding:
    matches = tuple(RecordMatch(r, leaf is not None and matches_certificate(r, leaf, chain),
                                next_key is not None and matches_key(r, next_key.public_key()))
                    for r in lookup.records)
    publish = []
    if leaf is not None:
        publish.append(zone_line(name, record_for_key(leaf.public_key())))
    if next_key is not None:
        publish.append(zone_line(name, record_for_key(next_key.public_key())))
    return NameFinding(name, lookup, matches, tuple(dict.fromkeys(publish)))


def check_dane(ctx: Context, service: ServiceSettings, leaf: x509.Certificate | None,
               chain: Iterable[x509.Certificate] = (), *, network: bool = False) -> ServiceDane | None:
    """What the TLSA records of ``service``'s names say of its certificate (None when DANE is off for it).

    With ``network`` the records are looked up now (through [dns] nameservers), the rollover's observation is
    updated and both are recorded; without, the last recorded lookups are used."""
    if not dane_setting(service):
        return None
    chain = tuple(chain)
    now = ctx.now()
    state = _read_state(ctx, service.name)
    next_key = read_next_key(ctx, service.name)
    names = dane_names(ctx, service)
    if network:
        resolver = make_dane_resolver(ctx.settings.dns.nameservers, ctx.settings.dns.timeout)
        lookups = [lookup_tlsa(name, resolver) for name in names]
        state["checked_at"] = now.isoformat()
        state["lookups"] = [lookup.to_dict() for lookup in lookups]
        if next_key is not None:
            _observe(state, lookups, next_key, now)
        try:
            _write_state(ctx, service.name, state)
        except (OSError, SvcsslError) as exc:  # the finding stands; the next check records it
            log.warning("dane: cannot record the TLSA lookups of %s: %s", service.name, getattr(exc, "message", exc))
    else:
        recorded = {}
        for item in state.get("lookups") or ():
            try:
                lookup = TlsaLookup.from_dict(item)
            except (KeyError, TypeError, ValueError):
                continue
            recorded[lookup.name] = lookup
        lookups = [recorded.get(name) or TlsaLookup(name, UNCHECKED) for name in names]
    findings = tuple(_finding(name, lookup, leaf, chain, next_key) for name, lookup in zip(names, lookups))
    return ServiceDane(service.name, findings, _rollover(state, next_key, now), _moment(state.get("checked_at")))


def _observe(state: dict, lookups: list[TlsaLookup], next_key, now: datetime) -> None:
    """Remember when the next key's record was first seen validated at every name (and the TTL then)."""
    roll = state.setdefault("rollover", {})
    public = next_key.public_key()
    seen = bool(lookups) and all(lookup.validated and any(matches_key(r, public) for r in lookup.records)
                                 for lookup in lookups)
    if not seen:
        roll["seen_validated_since"], roll["ttl"] = None, None
    elif not roll.get("seen_validated_since"):
        roll["seen_validated_since"] = now.isoformat()
        roll["ttl"] = max(int(lookup.ttl or 0) for lookup in lookups)
        log.info("dane: the next key's record is validated at every name (TTL %s s)", roll["ttl"])


def with_dane(facts: CertificateFacts | None, finding: ServiceDane | None) -> CertificateFacts | None:
    """The certificate's facts with what the TLSA records say of it (dane-mismatch, dane-unvalidated)."""
    if facts is None or finding is None:
        return facts
    return replace(facts, dane_mismatch=finding.mismatch, dane_unvalidated=finding.unvalidated)


def known_dane(ctx: Context, service: ServiceSettings, leaf, chain, facts: CertificateFacts | None
               ) -> CertificateFacts | None:
    """``with_dane`` from the recorded lookups (the surfaces that do not wait on the network)."""
    try:
        return with_dane(facts, check_dane(ctx, service, leaf, chain))
    except SvcsslError as exc:
        log.warning("dane: %s: %s", service.name, exc.message)
        return facts


def would_break(finding: ServiceDane | None, leaf: x509.Certificate, chain: Iterable[x509.Certificate], *,
                only_if_matching: bool) -> str | None:
    """Why installing ``leaf`` (with ``chain``) would leave a name whose validated records match none of it, or None.

    ``only_if_matching``: only names whose records match the certificate installed now count (the run: never
    make a working name fail); else every name with validated records (install: confirm any mismatch)."""
    if finding is None:
        return None
    chain = tuple(chain)
    broken = []
    for name in finding.names:
        usable = name.usable
        if not usable or (only_if_matching and not any(m.matches_current for m in usable)):
            continue
        if not any(matches_certificate(m.record, leaf, chain) for m in usable):
            broken.append((name, zone_line(name.name, record_for_key(leaf.public_key()))))
    if not broken:
        return None
    where = ", ".join(f"{n.lookup.owner} ({', '.join(m.record.text[:24] + '…' for m in n.usable)})" for n, _ in broken)
    publish = "; ".join(line for _, line in broken)
    return (f"its key matches none of the validated TLSA records at {where}: DANE senders would refuse to deliver "
            f"mail. Publish {publish} (beside the current record) and wait until it is seen validated")


def require_dane_confirmation(ctx: Context, services: Iterable[ServiceSettings], leaf: x509.Certificate,
                              chain: Iterable[x509.Certificate], allowed: bool, how: str) -> tuple[str, ...]:
    """Install and Apply: a certificate that matches none of a service's validated TLSA records (as last looked
    up) is installed only when the person confirms it; nothing is written before. Returns the warnings (when
    ``allowed``), for the API, which installs and says so, as WHM does."""
    chain = tuple(chain)
    problems = []
    for service in services:
        problem = would_break(check_dane(ctx, service, None), leaf, chain, only_if_matching=False)
        if problem:
            problems.append(f"On {service.name}, {problem}.")
    if problems and not allowed:
        raise DaneMismatchError(" ".join(problems) + f" Nothing was changed. To install it anyway, {how}.")
    return tuple(problems)


# --------------------------------------------------------------------------- the key a renewal uses

@dataclass(frozen=True)
class KeyChoice:
    key_pem: bytes | None = field(default=None, repr=False)  # None: a new key is fine
    why: str = ""
    rollover_service: str | None = None  # this renewal switches that service to its next key


def renewal_key(ctx: Context, findings: dict[str, ServiceDane], current_keys: dict[str, object]) -> KeyChoice:
    """The key the hostname certificate is ordered with.

    A rollover that is ready: its next key. Else a validated "3 1 x" record matching a service's current key:
    that key (a CSR from it). Else (no records, or only "2 x x"): a new key; the deploy guard still refuses a
    chain that no longer contains a matching CA."""
    for name, finding in findings.items():
        if finding.rollover.state == READY and (key := read_next_key(ctx, name)) is not None:
            return KeyChoice(key_pem(key), f"{name}: switching to the next key (its record has been validated since "
                                           f"{finding.rollover.seen_validated_since:%Y-%m-%d %H:%M:%S} UTC)", name)
    for name, finding in findings.items():
        key = current_keys.get(name)
        if key is None:
            continue
        if any(m.record.pins_key and m.matches_current and matches_key(m.record, key.public_key())
               for f in finding.names for m in f.usable):
            return KeyChoice(key_pem(key), f"{name}: keeping its key (a validated TLSA 3 1 x record pins it)")
    return KeyChoice()


def finish_rollover(ctx: Context, service: str, old_public_key, *, actor: str) -> None:
    """After the switch: the next key is the key in use; the old key's record may be removed."""
    state = _read_state(ctx, service)
    next_key = read_next_key(ctx, service)
    names = dane_names(ctx, ctx.service(service))
    roll = state.get("rollover") or {}
    state["rollover"] = {
        "state": DONE, "next_record": zone_line(names[0], record_for_key(next_key.public_key())) if next_key else
        roll.get("next_record"), "seen_validated_since": roll.get("seen_validated_since"), "ttl": roll.get("ttl"),
        "old_record": zone_line(names[0], record_for_key(old_public_key)) if old_public_key is not None else None,
        "switched_at": ctx.now().isoformat()}
    _write_state(ctx, service, state)
    next_key_path(ctx, service).unlink(missing_ok=True)
    ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="dane rollover done", service=service,
                                   detail=f"old record removable: {state['rollover']['old_record']}"))
    log.info("dane: %s switched to its next key; the old TLSA record may be removed", service)


# --------------------------------------------------------------------------- starting a rollover

@dataclass(frozen=True)
class RolloverStart:
    service: str
    records: tuple[str, ...]  # the "3 1 1" lines to add beside the current ones
    created: bool  # False: a rollover was already waiting; its key is kept


def start_rollover(ctx: Context, service_name: str, *, actor: str) -> RolloverStart:
    """Create the next key now (0600 in the state directory) and say which record to add beside the current one."""
    service = ctx.service(service_name)
    if not dane_setting(service):
        raise InputError(f"DANE is off for {service.name}: set dane = true in [services.{service.name}] first.",
                         field="service")
    names = dane_names(ctx, service)
    key = read_next_key(ctx, service.name)
    created = key is None
    if created:
        key = generate_private_key(ctx.settings.acme.key_type)
        _dir(ctx).mkdir(mode=0o700, parents=True, exist_ok=True)
        _dir(ctx).chmod(0o700)
        atomic_write(next_key_path(ctx, service.name), key_pem(key), mode=0o600)
        state = _read_state(ctx, service.name)
        state["rollover"] = {"state": WAITING, "seen_validated_since": None, "ttl": None,
                             "next_record": zone_line(names[0], record_for_key(key.public_key()))}
        _write_state(ctx, service.name, state)
        ctx.store.add_audit(AuditEntry(at=ctx.now(), actor=actor, action="dane rollover start", service=service.name,
                                       detail=f"next key {ctx.settings.acme.key_type}"))
        log.info("dane: next key created for %s (kept in %s)", service.name, next_key_path(ctx, service.name))
    records = tuple(zone_line(name, record_for_key(key.public_key())) for name in names)
    return RolloverStart(service.name, records, created)


__all__ = ["ABSENT", "DONE", "NONE", "READY", "UNCHECKED", "WAITING", "KeyChoice", "NameFinding", "RecordMatch",
           "Rollover", "RolloverStart", "ServiceDane", "check_dane", "dane_names", "dane_status", "known_dane", "with_dane", "dane_setting",
           "finish_rollover", "next_key_path", "read_next_key", "renewal_key", "require_dane_confirmation", "start_rollover", "would_break"]


def dane_status(ctx: Context, service_name: str | None = None, *, network: bool = True) -> list[ServiceDane]:
    """`svcssl dane status`: every service DANE is on for (or the one named), looked up now with ``network``."""
    from .inventory import read_installed  # (inventory reads the recorded findings through this module)

    if service_name:
        service = ctx.service(service_name)
        if not dane_setting(service):
            raise InputError(f"DANE is off for {service.name}: set dane = true in [services.{service.name}] to check "
                             f"its TLSA records.", field="service")
        services = [service]
    else:
        services = [s for s in ctx.settings.services.values() if s.enabled and dane_setting(s)]
    results = []
    for service in services:
        try:
            installed = read_installed(service)
            leaf, chain = installed.leaf, installed.chain
        except SvcsslError:
            leaf, chain = None, ()
        finding = check_dane(ctx, service, leaf, chain, network=network)
        if finding is not None:
            results.append(finding)
    return results


def recorded_dane(ctx: Context, service: ServiceSettings, installed) -> ServiceDane | None:
    """Details: what the recorded lookups say of the installed certificate (None when DANE is off)."""
    try:
        finding = check_dane(ctx, service, installed.leaf if installed else None,
                             installed.chain if installed else ())
    except SvcsslError as exc:
        log.warning("dane: %s: %s", service.name, exc.message)
        return None
    if finding is not None and service.dane is None and not any(f.lookup.records for f in finding.names):
        return None  # on by default (kind exim), and no TLSA records: nothing to show
    return finding
