"""`svcssl dane`: the TLSA records of the mail services (DANE), what they match, and the key rollover."""

from __future__ import annotations

import json
from types import SimpleNamespace

import click

from ..operations.context import Context
from ..operations.dane import ServiceDane, dane_status, start_rollover
from .command import CLI_ACTOR, EXIT_OK, Group, runs


@click.group("dane", cls=Group, metavar="ACTION", help="DANE: the TLSA records of the mail services and key rollover")
def dane() -> None:
    pass


def _print_finding(finding: ServiceDane) -> None:
    print(f"{finding.service}:")
    for name in finding.names:
        state = {"validated": "validated (AD)", "unvalidated": "NOT validated (no AD bit): not acted on",
                 "absent": "no TLSA records", "failed": "lookup failed: not acted on",
                 "unchecked": "not looked up yet"}.get(name.lookup.status, name.lookup.status)
        print(f"  {name.lookup.owner} {state}")
        if name.lookup.problem:
            print(f"    {name.lookup.problem}")
        for match in name.records:
            marks = [label for label, on in (("matches the current certificate", match.matches_current),
                                             ("matches the next key", match.matches_next)) if on]
            print(f"    TLSA {match.record.text}  {'; '.join(marks) or 'matches neither'}")
        print("    publish:")
        for line in name.publish:
            print(f"      {line}")
    roll = finding.rollover
    print(f"  rollover: {roll.state}" + (f" (next record {roll.next_record})" if roll.next_record else ""))
    if roll.seen_validated_since:
        print(f"    seen validated since {roll.seen_validated_since:%Y-%m-%d %H:%M:%S} UTC (TTL {roll.ttl} s)")
    if roll.old_record_removable and roll.old_record:
        print(f"    the old record may be removed now: {roll.old_record}")


@dane.command("status", help="the validated TLSA records per name, which match the certificate and the next key, "
                             "and the records to publish (looked up now)")
@click.argument("service", required=False, metavar="[SERVICE]")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@runs
def cmd_dane_status(ctx: Context, args: SimpleNamespace) -> int:
    findings = dane_status(ctx, args.service)
    if args.as_json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
        return EXIT_OK
    if not findings:
        print("DANE is on for no service (set dane = true in a [services.NAME] table).")
    for finding in findings:
        _print_finding(finding)
    return EXIT_OK


@dane.command("rollover", help="create the next key now and print the TLSA record to add beside the current one; "
                               "the maintenance run switches to it once the record is seen validated")
@click.argument("service", metavar="SERVICE")
@runs
def cmd_dane_rollover(ctx: Context, args: SimpleNamespace) -> int:
    started = start_rollover(ctx, args.service, actor=CLI_ACTOR)
    if started.created:
        print(f"Created the next key of {started.service} (kept 0600 in the state directory, never shown).")
    else:
        print(f"A rollover of {started.service} is already waiting; its next key is kept.")
    print("Add this record beside the current one (keep both until the switch):")
    for line in started.records:
        print(f"  {line}")
    print("The maintenance run switches to the next key at the next renewal once the record has been seen "
          "validated for twice its TTL; `svcssl dane status` shows where it stands.")
    return EXIT_OK
