"""Certificates already on this server: `svcssl browse`, `svcssl autofill`, `svcssl discovery`."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import click

from ..fsutil import read_bounded
from ..operations.context import Context
from .command import EXIT_FAILED, EXIT_OK, Command, Group, for_the_command_line, print_table, refresh_first, runs


def _certificate_json(c) -> dict[str, Any]:
    return {"id": c.id, "account": c.owner or None, "path": c.path, "fingerprint": c.fingerprint,
            "domains": list(c.domains), "issuer": c.issuer_label, "issuer.organizationName": c.issuer_org,
            "not_before": int(c.not_before.timestamp()), "not_after": int(c.not_after.timestamp()),
            "is_self_signed": int(c.is_self_signed), "key_algorithm": c.key_algorithm,
            "modulus_length": c.key_size if c.key_algorithm == "rsaEncryption" else None,
            "ecdsa_curve_name": c.ecdsa_curve_name, "signature_algorithm": c.signature_algorithm,
            "has_key": c.has_key, "reference": c.reference}


@click.group("browse", cls=Group, metavar="WHAT",
             help="certificates in the accounts' SSL storage and Apache's SSL virtual hosts")
def browse() -> None:
    pass


@browse.command("accounts", help="the accounts' SSL storage (certificates, keys, problems)")
@click.option("--user", metavar="USER", help="one account")
@click.option("--json", is_flag=True)
@runs
def cmd_browse_accounts(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.browse import account_certificates, list_accounts

    refresh_first(ctx)
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
        print_table(rows)
    else:
        print("No certificates in " + (f"the SSL storage of '{args.user}'." if args.user else "any account's SSL storage."))
    for listing in listings:
        for problem in listing.problems:
            print(f"problem: {problem.path}: {problem.message}", file=sys.stderr)
        for path in listing.keys_without_certificate:
            print(f"note: {path}: a key no certificate of '{listing.account}' matches", file=sys.stderr)
    return EXIT_OK


@browse.command("apache", help="Apache's SSL virtual hosts")
@click.option("--json", is_flag=True)
@runs
def cmd_browse_apache(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.browse import list_vhosts

    refresh_first(ctx)
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
        print_table(rows)
    else:
        print("No SSL virtual hosts.")
    for problem in listing.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_OK


@click.command("autofill", cls=Command, help="find a certificate's private key and CA bundle on this server")
@click.option("--cert", required=True, metavar="FILE", help="the certificate (PEM or DER)")
@click.option("--json", is_flag=True)
@click.option("--pem", is_flag=True, help="also print the CA bundle as PEM after the summary")
@runs
def cmd_autofill(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.autofill import autofill_certificate

    crt = read_bounded(args.cert, ctx.settings.limits.max_input_bytes, "crt")
    refresh_first(ctx)
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


@click.group("discovery", cls=Group, metavar="ACTION", help="the index of certificate and key files")
def discovery() -> None:
    pass


@discovery.command("refresh", help="refresh the index now (a stat per file; changed files are read)")
@click.option("--json", is_flag=True)
@runs
def cmd_discovery_refresh(ctx: Context, args: SimpleNamespace) -> int:
    from ..operations.browse import refresh_index

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


GROUPS = (browse, cmd_autofill, discovery)
