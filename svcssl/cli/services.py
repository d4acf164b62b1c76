"""The service commands: list, check, details, install, reset, rollback."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import click

from .. import timewords
from ..deploy.preflight import MARGIN as STATE_MARGIN
from ..errors import InputError
from ..filesystem import write_problem
from ..fsutil import read_bounded
from ..operations.context import Context
from ..operations.install import KeyReference, install_certificate
from ..operations.inventory import ServiceStatus, list_services, service_details
from ..operations.livecheck import SERVED_CHAIN, LiveCheck, check_services, check_statuses
from ..operations.reset import reset_certificate
from ..operations.rollback import rollback_certificate
from ..whm import certificate_info
from .command import CLI_ACTOR, EXIT_FAILED, EXIT_OK, Command, Integer, print_table, refresh_first, report, runs


def _live_json(check: LiveCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {"state": check.state, "probe": check.probe, "served_fingerprint": check.served_fingerprint,
            "active_fingerprint": check.active_fingerprint, "detail": check.detail}


def _status_json(status: ServiceStatus, live: LiveCheck | None = None) -> dict[str, Any]:
    return {
        "service": status.service.name,
        "description": status.service.description,
        "kind": status.service.kind,
        "enabled": status.service.enabled,
        "deprecated": status.service.deprecated,
        "fingerprint": status.fingerprint,
        "active_fingerprint": status.active.fingerprint if status.active else None,
        "certificate_info": certificate_info(status.info),
        "flags": list(status.flags),
        "assessment": status.assessment.to_dict(),
        "drift": status.drift,
        "problem": status.problem,
        "profile": status.profile,
        "live": _live_json(live),
    }


@click.command("list", cls=Command, help="the services and their certificates")
@click.option("--json", is_flag=True)
@click.option("--all", is_flag=True, help="include disabled services")
@click.option("--no-probe", is_flag=True, help="do not probe what each port serves")
@runs
def cmd_list(ctx: Context, args: SimpleNamespace) -> int:
    statuses = list_services(ctx, include_disabled=args.all, network=True)
    live = {} if args.no_probe else {c.service: c for c in check_statuses(ctx, statuses)}
    if any(c.state == SERVED_CHAIN for c in live.values()):  # the probe's finding is part of the assessment
        statuses = list_services(ctx, include_disabled=args.all, network=True)
    if args.json:
        print(json.dumps([_status_json(s, live.get(s.service.name)) for s in statuses], indent=2))
        return EXIT_OK
    now = ctx.now()
    rows = [["SERVICE", "DOMAINS", "EXPIRES", "KEY", "ISSUER", "LIVE", "VERDICT", "FLAGS"]]
    for status in statuses:
        info = status.info
        check = live.get(status.service.name)
        live_text = check.state if check else "-"
        if info is None:
            rows.append([status.service.name, "-", "-", "-", "-", live_text, status.assessment.verdict,
                         status.problem or ""])
            continue
        flags = list(status.flags)
        if check is not None and check.served_fingerprint and check.served_fingerprint != status.fingerprint:
            flags.append("served certificate differs from installed")
        rows.append([
            status.service.name + (" (deprecated)" if status.service.deprecated else ""),
            ", ".join(info.domains),
            f"{timewords.day(info.not_after)} ({timewords.expiry(info.not_after, now)})",
            info.key_label,
            info.issuer_label,
            live_text,
            status.assessment.verdict,
            ", ".join(flags) or "ok",
        ])
    print_table(rows)
    for status in statuses:
        if not status.assessment.ok:
            print(f"{status.service.name}: {status.assessment.summary}")
    problem = write_problem(ctx.settings.server.state_dir, STATE_MARGIN)
    if problem is not None:
        print(f"Changes are impossible now: {problem.message}", file=sys.stderr)
    return EXIT_OK


@click.command("check", cls=Command, help="probe each service: does its port serve the installed certificate?")
@click.argument("service", nargs=-1)
@click.option("--json", is_flag=True)
@click.option("--nagios", is_flag=True, help="one line in the Monitoring Plugins format (Nagios, Icinga); exit 0 OK, "
              "1 WARNING, 2 CRITICAL, 3 UNKNOWN")
@click.option("--warning", type=Integer(0, 3650), metavar="DAYS",
              help="with --nagios: WARNING under this many days left (default: [notify] expiry_days)")
@click.option("--critical", type=Integer(0, 3650), metavar="DAYS",
              help="with --nagios: CRITICAL under this many days left (default: [maintenance] other_renew_days)")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), metavar="SECONDS",
              help="with --nagios: the whole check's time limit (default 10); past it, UNKNOWN")
@runs
def cmd_check(ctx: Context, args: SimpleNamespace) -> int:
    if args.warning is not None or args.critical is not None or args.timeout is not None:  # --nagios runs apart
        raise InputError("--warning, --critical and --timeout go with --nagios.", field="nagios")
    checks = check_services(ctx, args.service)
    if args.json:
        print(json.dumps([{"service": c.service, "installed_fingerprint": c.installed_fingerprint,
                           **_live_json(c)} for c in checks], indent=2))
    else:
        rows = [["SERVICE", "PROBE", "SVCSSL", "FILES", "SERVED", "STATE"]]
        for c in checks:
            rows.append([c.service, c.probe or "-", (c.active_fingerprint or "-")[:16], (c.installed_fingerprint or "-")[:16],
                         (c.served_fingerprint or "-")[:16],
                         c.state if c.state not in ("unreachable", "drift", SERVED_CHAIN) else f"{c.state} ({c.detail})"])
        print_table(rows)
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


@click.command("details", cls=Command, help="one service's certificate, chain and history")
@click.argument("service")
@click.option("--json", is_flag=True)
@runs
def cmd_details(ctx: Context, args: SimpleNamespace) -> int:
    details = service_details(ctx, ctx.service(args.service))
    status = details.status
    if args.json:
        out = _status_json(status)
        out["chain"] = [{"fingerprint": c.fingerprint, "certificate_info": certificate_info(c)} for c in details.chain]
        out["history"] = [
            {"fingerprint": h.fingerprint, "action": h.action, "actor": h.actor,
             "installed_at": int(h.installed_at.timestamp()), "domains": list(h.domains),
             "not_after": int(h.not_after.timestamp()),
             "rolled_back_at": int(h.rolled_back_at.timestamp()) if h.rolled_back_at else None,
             "active": status.active is not None and h.id == status.active.id}
            for h in details.history
        ]
        print(json.dumps(out, indent=2))
        return EXIT_OK
    service = status.service
    print(f"Service:      {service.name} — {service.description}")
    if service.deprecated:
        print(f"              {service.deprecation}")
    info = status.info
    if info is None:
        print(f"Certificate:  none usable ({status.problem})")
        print(f"Assessment:   {status.assessment.label} ({status.assessment.verdict}): {status.assessment.summary}")
    else:
        print(f"Domains:      {', '.join(info.domains)}")
        print(f"Issuer:       {info.issuer_label}" + ("  (self-signed: clients will not trust it)" if info.is_self_signed else ""))
        print(f"Key:          {info.key_label}")
        print(f"Valid:        {info.not_before:%Y-%m-%d %H:%M} – {info.not_after:%Y-%m-%d %H:%M} UTC "
              f"({timewords.expiry(info.not_after, ctx.now())})")
        print(f"Signature:    {info.signature_algorithm}")
        print(f"Fingerprint:  {info.fingerprint}")
        print(f"Flags:        {', '.join(status.flags) or 'none'}")
        print(f"Assessment:   {status.assessment.label} ({status.assessment.verdict}): {status.assessment.summary}")
        for link in details.chain:
            print(f"Chain:        {link.subject_cn or '?'} (issued by {link.issuer_label}, until {link.not_after:%Y-%m-%d})")
    print("History:")
    for entry in details.history:
        mark = "*" if status.active is not None and entry.id == status.active.id else " "
        rolled = f", rolled back {entry.rolled_back_at:%Y-%m-%d %H:%M}" if entry.rolled_back_at else ""
        print(f" {mark} {entry.installed_at:%Y-%m-%d %H:%M}  {entry.action:<9} {entry.fingerprint[:16]}…  "
              f"{', '.join(entry.domains)} (until {entry.not_after:%Y-%m-%d}) by {entry.actor}{rolled}")
    return EXIT_OK


@click.command("install", cls=Command, help="install a certificate on one or more services")
@click.argument("service", nargs=-1, required=True)
@click.option("--cert", required=True, metavar="FILE", help="PEM, DER or PKCS#12; may also hold the key and chain")
@click.option("--key", metavar="FILE", help="private key (PEM or DER); without it, the key is looked for on "
              "this server (e.g. the one `svcssl csr create` kept)")
@click.option("--cabundle", metavar="FILE", help="CA bundle (intermediates), any order")
@click.option("--password-file", metavar="FILE", help="PKCS#12 password or key passphrase")
@click.option("--allow-untrusted", is_flag=True, help="install it even though clients will not trust it (no path "
              "to a root of [trust]); the next maintenance run replaces it")
@click.option("--allow-dane-mismatch", is_flag=True, help="install it even though its key matches none of the "
              "service's validated TLSA records (DANE senders would refuse mail)")
@runs
def cmd_install(ctx: Context, args: SimpleNamespace) -> int:
    limit = ctx.settings.limits.max_input_bytes
    crt = read_bounded(args.cert, limit, "crt")
    key = read_bounded(args.key, limit, "key") if args.key else None
    cabundle = read_bounded(args.cabundle, limit, "cabundle") if args.cabundle else None
    password = read_bounded(args.password_file, 4096, "password", "a password").rstrip(b"\r\n") if args.password_file else None
    key_ref = None
    if key is None:
        key_ref, cabundle = _key_found_for(ctx, crt, cabundle, password)
    prepared, outcomes = install_certificate(ctx, args.service, crt, key, cabundle, password, actor=CLI_ACTOR,
                                             key_ref=key_ref, allow_untrusted=args.allow_untrusted,
                                             confirm_with="run again with --allow-untrusted",
                                             allow_dane_mismatch=args.allow_dane_mismatch,
                                             confirm_dane_with="run again with --allow-dane-mismatch")
    for note in prepared.notes:
        print(note, file=sys.stderr)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return report(outcomes)


def _key_found_for(ctx: Context, crt: bytes, cabundle: bytes | None,
                   password: bytes | None) -> tuple[KeyReference | None, bytes | None]:
    """No --key: unless the certificate file holds its key, find it on this server (Autofill), e.g. the key
    `svcssl csr create` kept; the CA bundle too when none was given."""
    from ..operations.autofill import autofill_certificate
    from ..x509.parse import read_certificate_input

    if password is not None or read_certificate_input(crt, validate_keys=False).keys:
        return None, cabundle  # PKCS#12 or a combined PEM: the key travels with the certificate
    refresh_first(ctx)
    choice = autofill_certificate(ctx, None, crt)
    if choice.key is None:
        raise InputError("No private key was given and none on this server matches the certificate: "
                         "give --key FILE.", field="key")
    print(f"Private key: {choice.key.origin}", file=sys.stderr)
    if cabundle is None and choice.cabundle_pem:
        cabundle = choice.cabundle_pem.encode()
    return KeyReference(found=choice.key.reference), cabundle


@click.command("reset", cls=Command, help="install a new self-signed certificate for the hostname")
@click.argument("service", nargs=-1, required=True)
@runs
def cmd_reset(ctx: Context, args: SimpleNamespace) -> int:
    return report([reset_certificate(ctx, service, actor=CLI_ACTOR) for service in ctx.services(args.service)])


@click.command("rollback", cls=Command, help="go back to the previous certificate in the service's history")
@click.argument("service")
@runs
def cmd_rollback(ctx: Context, args: SimpleNamespace) -> int:
    return report([rollback_certificate(ctx, ctx.service(args.service), actor=CLI_ACTOR)])


COMMANDS = (cmd_list, cmd_check, cmd_details, cmd_install, cmd_reset, cmd_rollback)
