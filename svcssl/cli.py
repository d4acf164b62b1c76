"""The `svcssl` command.

Exit codes: 0 done; 2 input refused (nothing changed on disk); 1 deployment failed
(and was rolled back) or another operational failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from . import __version__
from .errors import ConfigError, InputError, SvcsslError
from .fsutil import read_bounded
from .logformat import LEVELS, configure_logging, error_prefix
from .operations.context import Context, open_context
from .operations.firstrun import ensure_certificates
from .operations.install import InstallOutcome, install_certificate
from .operations.inventory import ServiceStatus, list_services, service_details
from .operations.livecheck import LiveCheck, check_services, check_statuses
from .operations.reset import reset_certificate
from .operations.rollback import rollback_certificate
from .operations.users import (create_user, delete_user, ensure_root, list_users, set_password,
                               set_service_ssl_privilege)
from .deploy.layout import installed_certificate_path, installed_key_path
from .settings import KEY_TYPES, load_settings
from .whm import certificate_info

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
CLI_ACTOR = "root (command line)"


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
        "live": _live_json(live),
    }


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    statuses = list_services(ctx, include_disabled=args.all)
    live = {} if args.no_probe else {c.service: c for c in check_statuses(ctx, statuses)}
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
        days = info.days_left(now)
        flags = list(status.flags)
        if check is not None and check.served_fingerprint and check.served_fingerprint != status.fingerprint:
            flags.append("served certificate differs from installed")
        rows.append([
            status.service.name + (" (deprecated)" if status.service.deprecated else ""),
            ", ".join(info.domains),
            f"{info.not_after:%Y-%m-%d} ({days} days)",
            info.key_label,
            info.issuer_label,
            live_text,
            status.assessment.verdict,
            ", ".join(flags) or "ok",
        ])
    _print_table(rows)
    for status in statuses:
        if not status.assessment.ok:
            print(f"{status.service.name}: {status.assessment.summary}")
    return EXIT_OK


def cmd_check(ctx: Context, args: argparse.Namespace) -> int:
    checks = check_services(ctx, args.service)
    if args.json:
        print(json.dumps([{"service": c.service, "installed_fingerprint": c.installed_fingerprint,
                           **_live_json(c)} for c in checks], indent=2))
    else:
        rows = [["SERVICE", "PROBE", "SVCSSL", "FILES", "SERVED", "STATE"]]
        for c in checks:
            rows.append([c.service, c.probe or "-", (c.active_fingerprint or "-")[:16], (c.installed_fingerprint or "-")[:16],
                         (c.served_fingerprint or "-")[:16],
                         c.state if c.state not in ("unreachable", "drift") else f"{c.state} ({c.detail})"])
        _print_table(rows)
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


def cmd_details(ctx: Context, args: argparse.Namespace) -> int:
    details = service_details(ctx, args.service)
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
        print("              Deprecated: Apple ended the legacy APNs interface in November 2020.")
    info = status.info
    if info is None:
        print(f"Certificate:  none usable ({status.problem})")
        print(f"Assessment:   {status.assessment.verdict}: {status.assessment.summary}")
    else:
        print(f"Domains:      {', '.join(info.domains)}")
        print(f"Issuer:       {info.issuer_label}" + ("  (self-signed: clients will not trust it)" if info.is_self_signed else ""))
        print(f"Key:          {info.key_label}")
        print(f"Valid:        {info.not_before:%Y-%m-%d %H:%M} – {info.not_after:%Y-%m-%d %H:%M} UTC "
              f"({info.days_left(ctx.now())} days left)")
        print(f"Signature:    {info.signature_algorithm}")
        print(f"Fingerprint:  {info.fingerprint}")
        print(f"Flags:        {', '.join(status.flags) or 'none'}")
        print(f"Assessment:   {status.assessment.verdict}: {status.assessment.summary}")
        for link in details.chain:
            print(f"Chain:        {link.subject_cn or '?'} (issued by {link.issuer_label}, until {link.not_after:%Y-%m-%d})")
    print("History:")
    for entry in details.history:
        mark = "*" if status.active is not None and entry.id == status.active.id else " "
        rolled = f", rolled back {entry.rolled_back_at:%Y-%m-%d %H:%M}" if entry.rolled_back_at else ""
        print(f" {mark} {entry.installed_at:%Y-%m-%d %H:%M}  {entry.action:<9} {entry.fingerprint[:16]}…  "
              f"{', '.join(entry.domains)} (until {entry.not_after:%Y-%m-%d}) by {entry.actor}{rolled}")
    return EXIT_OK


_CLI_WORDS = (
    ("paste the private key of this certificate", "give --key FILE"),
    ("paste its private key", "give its private key with --key FILE"),
    ("paste the key in the private key field", "give the key with --key FILE"),
    ("paste it in the private key field", "give it with --key FILE"),
    ("browse again or paste the private key", "give --key FILE"),
    ("paste the private key", "give --key FILE"),
    ("paste the CA bundle your CA gave you", "give the CA bundle your CA gave you with --cabundle FILE"),
)


def for_the_command_line(message: str) -> str:
    """A message written for the form, said for the command line ("give --key FILE", not "paste the key")."""
    for form_words, cli_words in _CLI_WORDS:
        message = message.replace(form_words, cli_words)
    return message


def _report(outcomes: list[InstallOutcome]) -> int:
    code = EXIT_OK
    for outcome in outcomes:
        if outcome.ok:
            print(outcome.message)
        else:
            code = EXIT_FAILED
            print(f"{outcome.service}: FAILED at {outcome.stage}: {outcome.message}", file=sys.stderr)
            if outcome.output:
                print(outcome.output, file=sys.stderr)
    return code


def cmd_install(ctx: Context, args: argparse.Namespace) -> int:
    limit = ctx.settings.limits.max_input_bytes
    crt = read_bounded(args.cert, limit, "crt")
    key = read_bounded(args.key, limit, "key") if args.key else None
    cabundle = read_bounded(args.cabundle, limit, "cabundle") if args.cabundle else None
    password = read_bounded(args.password_file, 4096, "password", "a password").rstrip(b"\r\n") if args.password_file else None
    if key is None:
        key, cabundle = _key_found_for(ctx, crt, cabundle, password)
    prepared, outcomes = install_certificate(ctx, args.service, crt, key, cabundle, password, actor=CLI_ACTOR)
    for warning in prepared.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return _report(outcomes)


def _key_found_for(ctx: Context, crt: bytes, cabundle: bytes | None,
                   password: bytes | None) -> tuple[bytes | None, bytes | None]:
    """No --key: unless the certificate file holds its key, find it on this server (Autofill), e.g. the key
    `svcssl csr create` kept; the CA bundle too when none was given."""
    from .operations.autofill import autofill_certificate, load_key
    from .x509.encode import key_pem
    from .x509.parse import read_certificate_input

    if password is not None or read_certificate_input(crt, validate_keys=False).keys:
        return None, cabundle  # PKCS#12 or a combined PEM: the key travels with the certificate
    _refresh_first(ctx)
    choice = autofill_certificate(ctx, None, crt)
    if choice.key is None:
        raise InputError("No private key was given and none on this server matches the certificate: "
                         "give --key FILE.", field="key")
    print(f"Private key: {choice.key.origin}", file=sys.stderr)
    if cabundle is None and choice.cabundle_pem:
        cabundle = choice.cabundle_pem.encode()
    return key_pem(load_key(ctx, None, choice.key.reference)), cabundle


def cmd_csr_create(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.csr import create_csr

    result = create_csr(ctx, args.domains, args.key_type, actor=CLI_ACTOR)
    print(f"Key {result.key_label} kept in {result.key_path} (0600, never shown). When the CA's certificate comes "
          f"back: svcssl install SERVICE --cert FILE", file=sys.stderr)
    print(result.csr_pem, end="")
    return EXIT_OK


def cmd_reset(ctx: Context, args: argparse.Namespace) -> int:
    return _report([reset_certificate(ctx, name, actor=CLI_ACTOR) for name in args.service])


def cmd_rollback(ctx: Context, args: argparse.Namespace) -> int:
    return _report([rollback_certificate(ctx, args.service, actor=CLI_ACTOR)])


def _read_password(path: str) -> str:
    data = read_bounded(path, 4096, "password", "a password").rstrip(b"\r\n")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("The password file is not UTF-8 text.", field="password") from None


def cmd_user_add(ctx: Context, args: argparse.Namespace) -> int:
    user = create_user(ctx, args.name, args.role, _read_password(args.password_file), actor=CLI_ACTOR)
    print(f"Added {user.role} '{user.name}'.")
    return EXIT_OK


def cmd_user_passwd(ctx: Context, args: argparse.Namespace) -> int:
    set_password(ctx, args.name, _read_password(args.password_file), actor=CLI_ACTOR)
    print(f"Password of '{args.name}' changed; its open sessions end.")
    return EXIT_OK


def cmd_user_list(ctx: Context, args: argparse.Namespace) -> int:
    users = list_users(ctx)
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role, "service_ssl": u.may_manage_service_ssl} for u in users],
                         indent=2))
        return EXIT_OK
    rows = [["USER", "ROLE", "SERVICE SSL"]]
    rows += [[u.name, u.role, "yes" if u.may_manage_service_ssl else "no"] for u in users]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return EXIT_OK


def cmd_user_delete(ctx: Context, args: argparse.Namespace) -> int:
    delete_user(ctx, args.name, actor=CLI_ACTOR)
    print(f"Deleted user '{args.name}': its API tokens are revoked and its sessions ended.")
    return EXIT_OK


def cmd_reseller(ctx: Context, args: argparse.Namespace) -> int:
    user = set_service_ssl_privilege(ctx, args.name, args.action == "grant", actor=CLI_ACTOR)
    state = "may now" if user.service_ssl else "may no longer"
    print(f"Reseller '{user.name}' {state} manage service SSL certificates.")
    return EXIT_OK


def cmd_reseller_accounts(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.accounts import assign_accounts, split_account_names, unassign_accounts

    names = split_account_names(" ".join(args.accounts))
    if args.action == "assign":
        result = assign_accounts(ctx, args.name, names, actor=CLI_ACTOR)
        for account, previous in result.moved_from:
            print(f"Account '{account}' moved from reseller '{previous}'.")
        print(f"Reseller '{result.reseller}' now owns: {', '.join(result.changed + result.unchanged)}.")
    else:
        result = unassign_accounts(ctx, args.name, names, actor=CLI_ACTOR)
        print(f"Reseller '{result.reseller}' no longer owns: {', '.join(result.changed)}.")
    return EXIT_OK


def _certificate_json(c) -> dict[str, Any]:
    return {"id": c.id, "account": c.owner or None, "path": c.path, "fingerprint": c.fingerprint,
            "domains": list(c.domains), "issuer": c.issuer_label, "issuer.organizationName": c.issuer_org,
            "not_before": int(c.not_before.timestamp()), "not_after": int(c.not_after.timestamp()),
            "is_self_signed": int(c.is_self_signed), "key_algorithm": c.key_algorithm,
            "modulus_length": c.key_size if c.key_algorithm == "rsaEncryption" else None,
            "ecdsa_curve_name": c.ecdsa_curve_name, "signature_algorithm": c.signature_algorithm,
            "has_key": c.has_key, "reference": c.reference}


def _refresh_first(ctx: Context) -> None:
    from .operations.browse import MIN_INTERVAL, refresh_index

    refresh_index(ctx, if_older_than=MIN_INTERVAL)


def cmd_browse_accounts(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.browse import account_certificates, list_accounts

    _refresh_first(ctx)
    names = [args.user] if args.user else [a.name for a in list_accounts(ctx, None, limit=1_000_000).accounts]
    listings = [account_certificates(ctx, None, name) for name in names]
    if args.json:
        print(json.dumps({"accounts": [{
            "account": listing.account, "owner": listing.owner,
            "certificates": [_certificate_json(c) for c in listing.certificates],
            "problems": [{"path": p.path, "problem": p.message} for p in listing.problems],
            "keys_without_certificate": list(listing.keys_without_certificate)} for listing in listings]}, indent=2))
        return EXIT_OK
    now = ctx.now()
    rows = [["ACCOUNT", "ID", "DOMAINS", "ISSUER", "EXPIRES", "KEY", "FLAGS"]]
    for listing in listings:
        for c in listing.certificates:
            rows.append([listing.account, c.id, ", ".join(c.domains), c.issuer_label,
                         f"{c.not_after:%Y-%m-%d} ({c.days_left(now)} days)", "yes" if c.has_key else "missing",
                         "self-signed" if c.is_self_signed else ""])
    if len(rows) > 1:
        _print_table(rows)
    else:
        print("No certificates in " + (f"the SSL storage of '{args.user}'." if args.user else "any account's SSL storage."))
    for listing in listings:
        for problem in listing.problems:
            print(f"problem: {problem.path}: {problem.message}", file=sys.stderr)
        for path in listing.keys_without_certificate:
            print(f"note: {path}: a key no certificate of '{listing.account}' matches", file=sys.stderr)
    return EXIT_OK


def cmd_browse_apache(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.browse import list_vhosts

    _refresh_first(ctx)
    listing = list_vhosts(ctx, None)
    if args.json:
        print(json.dumps({"config_file": listing.config_file, "vhosts": [{
            "servername": v.servername, "domains": list(v.domains), "addresses": list(v.addresses), "ip": v.ip,
            "port": v.port, "docroot": v.docroot, "user": v.user, "config_file": v.config_file, "line": v.line,
            "certificate_file": v.cert_path, "key_file": v.key_path, "chain_file": v.chain_path,
            "certificate": _certificate_json(v.certificate) if v.certificate else None, "problem": v.problem}
            for v in listing.vhosts], "problems": list(listing.problems)}, indent=2))
        return EXIT_OK
    print(f"Apache configuration: {listing.config_file or 'none found'}")
    now = ctx.now()
    rows = [["SERVERNAME", "ADDRESS", "DOMAINS", "EXPIRES", "ISSUER", "KEY", "CERTIFICATE FILE"]]
    for v in listing.vhosts:
        c = v.certificate
        rows.append([v.servername or "-", " ".join(v.addresses), ", ".join(v.domains) or "-",
                     f"{c.not_after:%Y-%m-%d} ({c.days_left(now)} days)" if c else f"unusable: {v.problem}",
                     (c.issuer_label + (" (self-signed)" if c.is_self_signed else "")) if c else "-",
                     ("yes" if c.has_key else "missing") if c else "-", v.cert_path])
    if len(rows) > 1:
        _print_table(rows)
    else:
        print("No SSL virtual hosts.")
    for problem in listing.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_OK


def cmd_autofill(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.autofill import autofill_certificate

    crt = read_bounded(args.cert, ctx.settings.limits.max_input_bytes, "crt")
    _refresh_first(ctx)
    choice = autofill_certificate(ctx, None, crt)
    info = choice.info
    if args.json:
        print(json.dumps({
            "fingerprint": info.fingerprint, "domains": list(info.domains),
            "key_origin": choice.key.path if choice.key else None,
            "key_store": choice.key.store if choice.key else None,
            "key_account": (choice.key.owner or None) if choice.key else None,
            "key_source": choice.key.reference if choice.key else None,
            "cabundle": choice.cabundle_pem, "chain": [c.subject_cn for c in choice.chain],
            "chain_complete": choice.chain_complete, "missing": list(choice.missing), "notes": list(choice.notes),
        }, indent=2))
    else:
        print(f"Certificate:  {', '.join(info.domains)} (until {info.not_after:%Y-%m-%d}), {info.fingerprint}")
        print(f"Private key:  {choice.key.origin}" if choice.key else "Private key:  not found")
        labels = ", ".join(c.subject_cn or c.fingerprint[:16] for c in choice.chain)
        print(f"CA bundle:    {len(choice.chain)} certificate{'s' if len(choice.chain) != 1 else ''}"
              + (f" ({labels})" if labels else ""))
        for message in choice.missing:
            print(f"Missing:      {for_the_command_line(message)}")
        for note in choice.notes:
            print(f"Note:         {note}")
        if args.pem and choice.cabundle_pem:
            print(choice.cabundle_pem, end="")
        elif choice.cabundle_pem:
            print("(add --pem to print the CA bundle as PEM)")
    return EXIT_OK if not choice.missing else EXIT_FAILED


def cmd_discovery_refresh(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.browse import refresh_index

    report = refresh_index(ctx)
    if report is None:
        print("Another refresh of the index is running.", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"Index refreshed in {report.seconds:.2f} s: {report.files} files, {report.parsed} read, "
              f"{report.unchanged} unchanged, {report.removed} removed, {report.problems} with problems.")
    return EXIT_OK


def cmd_maintenance_run(ctx: Context, args: argparse.Namespace) -> int:
    from .maintenance.run import run_maintenance

    progress = None if args.json else (lambda text: print(f"… {text}", file=sys.stderr))
    report = run_maintenance(ctx, dry_run=args.dry_run, progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        touch = [name for name, present in report.touch_files.items() if present]
        print(f"Maintenance run {'(dry run) ' if report.dry_run else ''}for {report.hostname.get('name')}"
              f"{': touch files present: ' + ', '.join(touch) if touch else ''}")
        if report.hostname.get("blocker"):
            print(f"  No hostname certificate can be ordered: {report.hostname['blocker']}")
        if report.order:
            print(f"  Order: {report.order.get('message') or 'planned'}")
        for s in report.services:
            print(f"  {s.service}: {s.verdict} — {s.reason}")
            print(f"      action: {s.action} [{s.outcome}]" + (f" ({s.detail})" if s.detail and s.outcome == "failed" else ""))
        for n in report.notifications:
            print(f"  mail: {n['subject']} — {n['result']}")
        print("Result: " + (report.summary or ("every service is fine" if report.ok else "needs attention")))
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_maintenance_status(ctx: Context, args: argparse.Namespace) -> int:
    from .maintenance.run import touch_file_state

    runs = ctx.store.runs(args.limit)
    data = {"touch_files": touch_file_state(ctx), "schedule": ctx.settings.maintenance.schedule,
            "runs": [{"id": r.id, "started_at": r.started_at.isoformat(), "trigger": r.trigger, "dry_run": r.dry_run,
                      "ok": r.ok} for r in runs]}
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print(f"Schedule: {data['schedule']} (UTC)")
    for name, present in data["touch_files"].items():
        print(f"{name}: {'present' if present else 'absent'}")
    for r in runs:
        print(f"{r.started_at:%Y-%m-%d %H:%M}  {r.trigger:<8} {'dry run ' if r.dry_run else ''}{'ok' if r.ok else 'needs attention'}")
    return EXIT_OK


def cmd_token_create(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.tokens import create_token

    info, secret = create_token(ctx, args.user, args.name, args.expires_days, actor=CLI_ACTOR)
    expiry = f", expires {info.expires_at:%Y-%m-%d}" if info.expires_at else ""
    print(f"API token “{info.name}” for {info.user}{expiry}. It is shown only now:")
    print(secret)
    return EXIT_OK


def cmd_token_list(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.tokens import list_tokens

    tokens = list_tokens(ctx)
    now = ctx.now()
    if args.json:
        print(json.dumps([{"name": t.name, "user": t.user, "created_at": int(t.created_at.timestamp()),
                           "expires_at": int(t.expires_at.timestamp()) if t.expires_at else None,
                           "last_used_at": int(t.last_used_at.timestamp()) if t.last_used_at else None,
                           "state": t.state(now)} for t in tokens], indent=2))
        return EXIT_OK
    rows = [["NAME", "USER", "CREATED", "EXPIRES", "STATE"]]
    rows += [[t.name, t.user, f"{t.created_at:%Y-%m-%d}", f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
              t.state(now)] for t in tokens]
    _print_table(rows)
    return EXIT_OK


def cmd_token_revoke(ctx: Context, args: argparse.Namespace) -> int:
    from .operations.tokens import revoke_token

    info = revoke_token(ctx, args.name, actor=CLI_ACTOR)
    print(f"API token “{info.name}” of {info.user} is revoked.")
    return EXIT_OK


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    from .app import create_app
    from .maintenance.scheduler import start_scheduler
    from .web.server import PanelCertificate, PanelServer, bind_address

    panel = next((s for s in ctx.settings.enabled_services() if s.kind == "panel"), None)
    if panel is None:
        raise ConfigError("`svcssl serve` needs an enabled service of kind \"panel\" (the panel's own certificate).")
    listen = args.listen or ctx.settings.server.listen
    host, port = bind_address(listen)
    password = ensure_root(ctx)
    certificate = PanelCertificate(installed_certificate_path(panel), installed_key_path(panel))
    server = PanelServer(listen, certificate)
    app = create_app(ctx.settings, panel_control=server)
    shown = ctx.settings.server.hostname if host in ("0.0.0.0", "::") else host
    print(f"svcssl panel: https://{shown}:{port}/  (state: {ctx.settings.server.state_dir})", flush=True)
    if host in ("0.0.0.0", "::"):
        print(f"              https://127.0.0.1:{port}/ from this machine", flush=True)
    if password:
        print(f"First start: log in as root with the password {password}  (shown only once; change it with "
              f"`svcssl user passwd root --password-file FILE`)", flush=True)
    scheduler = start_scheduler(ctx.settings)
    try:
        server.run(app)
    finally:
        scheduler.shutdown(wait=False)
    return EXIT_OK


def _run_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("between 1 and 1000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svcssl", description="Keep the TLS certificates of this server's services valid.")
    parser.add_argument("--config", help="TOML configuration file (default: $SVCSSL_CONFIG, else the embedded default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each action to stderr (--log-level info)")
    parser.add_argument("--log-level", choices=LEVELS, type=str.lower,
                        help="log records at this level and above to stderr (default: warning, info with -v); "
                             "under systemd they go to the journal with their priority")
    parser.add_argument("--version", action="version", version=f"svcssl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="the services and their certificates")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include disabled services")
    p.add_argument("--no-probe", action="store_true", help="do not probe what each port serves")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="probe each service: does its port serve the installed certificate?")
    p.add_argument("service", nargs="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("details", help="one service's certificate, chain and history")
    p.add_argument("service")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_details)

    p = sub.add_parser("install", help="install a certificate on one or more services")
    p.add_argument("service", nargs="+")
    p.add_argument("--cert", required=True, metavar="FILE", help="PEM, DER or PKCS#12; may also hold the key and chain")
    p.add_argument("--key", metavar="FILE", help="private key (PEM or DER); without it, the key is looked for on "
                   "this server (e.g. the one `svcssl csr create` kept)")
    p.add_argument("--cabundle", metavar="FILE", help="CA bundle (intermediates), any order")
    p.add_argument("--password-file", metavar="FILE", help="PKCS#12 password or key passphrase")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("csr", help="a new private key (kept on this server) and a certificate signing request")
    csr_sub = p.add_subparsers(dest="csr_command", required=True, metavar="ACTION")
    q = csr_sub.add_parser("create", help="print a PEM CSR for the names; the key stays in svcssl's key store")
    q.add_argument("--domains", nargs="+", required=True, metavar="NAME", help="the first is the Common Name")
    q.add_argument("--key-type", choices=KEY_TYPES, help="default: [certificates] key_type")
    q.set_defaults(func=cmd_csr_create)

    p = sub.add_parser("reset", help="install a new self-signed certificate for the hostname")
    p.add_argument("service", nargs="+")
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("rollback", help="go back to the previous certificate in the service's history")
    p.add_argument("service")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("serve", help="run the web panel over HTTPS on the panel service's certificate")
    p.add_argument("--listen", metavar="HOST:PORT", help="default: [server] listen")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("maintenance", help="the maintenance run (renew, replace, notify)")
    maintenance_sub = p.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    q = maintenance_sub.add_parser("run", help="assess every service and replace what needs replacing")
    q.add_argument("--dry-run", action="store_true", help="assess and plan only: no order, install or mail")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_maintenance_run)
    q = maintenance_sub.add_parser("status", help="touch files, schedule and the last runs")
    q.add_argument("--json", action="store_true")
    q.add_argument("--limit", type=_run_count, default=10, help="how many runs (1-1000)")
    q.set_defaults(func=cmd_maintenance_status)

    p = sub.add_parser("token", help="API tokens for the WHM-compatible JSON API")
    token_sub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    q = token_sub.add_parser("create", help="create a token (printed once, alone on the last line)")
    q.add_argument("user")
    q.add_argument("--name")
    q.add_argument("--expires-days", type=int)
    q.set_defaults(func=cmd_token_create)
    q = token_sub.add_parser("list", help="list tokens")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_token_list)
    q = token_sub.add_parser("revoke", help="revoke a token")
    q.add_argument("name")
    q.set_defaults(func=cmd_token_revoke)

    p = sub.add_parser("user", help="panel users (root and resellers)")
    user_sub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    q = user_sub.add_parser("add", help="add a user")
    q.add_argument("name")
    q.add_argument("--role", choices=("reseller", "root"), default="reseller")
    q.add_argument("--password-file", required=True, metavar="FILE")
    q.set_defaults(func=cmd_user_add)
    q = user_sub.add_parser("passwd", help="set a user's password")
    q.add_argument("name")
    q.add_argument("--password-file", required=True, metavar="FILE")
    q.set_defaults(func=cmd_user_passwd)
    q = user_sub.add_parser("list", help="list the users")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_user_list)
    q = user_sub.add_parser("delete", help="delete a reseller (revokes its API tokens, ends its sessions)")
    q.add_argument("name")
    q.set_defaults(func=cmd_user_delete)

    p = sub.add_parser("reseller", help="grant or revoke a reseller's service-SSL privilege")
    reseller_sub = p.add_subparsers(dest="reseller_command", required=True, metavar="ACTION")
    for action in ("grant", "revoke"):
        q = reseller_sub.add_parser(action, help=f"{action} the service-SSL privilege")
        q.add_argument("name")
        q.set_defaults(func=cmd_reseller, action=action)
    for action, text in (("assign", "give hosting accounts to a reseller (it browses only its own)"),
                         ("unassign", "take hosting accounts back from a reseller")):
        q = reseller_sub.add_parser(action, help=text)
        q.add_argument("name")
        q.add_argument("accounts", nargs="+", metavar="USER")
        q.set_defaults(func=cmd_reseller_accounts, action=action)

    p = sub.add_parser("browse", help="certificates in the accounts' SSL storage and Apache's SSL virtual hosts")
    browse_sub = p.add_subparsers(dest="browse_command", required=True, metavar="WHAT")
    q = browse_sub.add_parser("accounts", help="the accounts' SSL storage (certificates, keys, problems)")
    q.add_argument("--user", metavar="USER", help="one account")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_browse_accounts)
    q = browse_sub.add_parser("apache", help="Apache's SSL virtual hosts")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_browse_apache)

    p = sub.add_parser("autofill", help="find a certificate's private key and CA bundle on this server")
    p.add_argument("--cert", required=True, metavar="FILE", help="the certificate (PEM or DER)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--pem", action="store_true", help="also print the CA bundle as PEM after the summary")
    p.set_defaults(func=cmd_autofill)

    p = sub.add_parser("discovery", help="the index of certificate and key files")
    discovery_sub = p.add_subparsers(dest="discovery_command", required=True, metavar="ACTION")
    q = discovery_sub.add_parser("refresh", help="refresh the index now (a stat per file; changed files are read)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_discovery_refresh)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level or ("info" if args.verbose else "warning"), sys.stderr)
    try:
        settings = load_settings(args.config)
        ctx = open_context(settings)
        ensure_certificates(ctx)
        return args.func(ctx, args)
    except ConfigError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_INPUT
    except InputError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: {for_the_command_line(exc.message)}", file=sys.stderr)
        return EXIT_INPUT
    except SvcsslError as exc:
        print(f"{error_prefix(sys.stderr)}svcssl: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("svcssl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `svcssl list | head`: the reader is gone, nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
