"""`svcssl state`: check the state database, list its snapshots, restore one. These commands do not
open the database the usual way, so they work when it is damaged."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import click

from ..operations.recovery import check_state, restore_state, state_snapshots
from ..settings import Settings
from ..filesystem import size_words
from .command import CLI_ACTOR, EXIT_FAILED, EXIT_OK, Group, print_table, runs


without_store = partial(runs, opens_store=False)


@click.group("state", cls=Group, metavar="ACTION", help="the state database: integrity, snapshots, restore")
def state() -> None:
    pass


@state.command("check", help="SQLite's integrity check of the state database (exit 1 when damaged)")
@without_store
def cmd_state_check(settings: Settings, args: SimpleNamespace) -> int:
    report = check_state(settings)
    if not report.exists:
        print(f"{report.database}: no database yet (it is made on the first command)")
        return EXIT_OK
    if report.ok:
        print(f"{report.database}: ok")
        return EXIT_OK
    print(f"{report.database}: DAMAGED")
    for problem in report.problems[:20]:
        print(f"  {problem}")
    print("Run `svcssl state restore` to put back the latest snapshot (`svcssl state snapshots` lists them).")
    return EXIT_FAILED


@state.command("snapshots", help="the snapshots of the state database, newest first (times in UTC)")
@without_store
def cmd_state_snapshots(settings: Settings, args: SimpleNamespace) -> int:
    snapshots = state_snapshots(settings)
    if not snapshots:
        print("No snapshot yet: one is taken after each successful maintenance run and before each upgrade.")
        return EXIT_OK
    print_table([["NAME", "TAKEN (UTC)", "WHY", "SIZE"]] + [
        [s.name, f"{s.taken_at:%Y-%m-%d %H:%M:%S}", s.why, size_words(s.size)] for s in snapshots])
    return EXIT_OK


@state.command("restore", help="put a snapshot back (default: the latest); the current database is moved aside")
@click.argument("name", required=False, metavar="[NAME]")
@without_store
def cmd_state_restore(settings: Settings, args: SimpleNamespace) -> int:
    report = restore_state(settings, args.name, actor=CLI_ACTOR)
    snap = report.snapshot
    print(f"Restored the state database from {snap.name} (taken {snap.taken_at:%Y-%m-%d %H:%M:%S} UTC, {snap.why}).")
    if report.moved_aside:
        print(f"The previous database was moved aside to {report.moved_aside} (delete it once you no longer need it).")
    if report.adopted:
        print(f"Adopted the files installed now for: {', '.join(report.adopted)}.")
    if report.outside:
        print(f"Changed after the snapshot (shown as changed outside svcssl): {', '.join(report.outside)}.")
    return EXIT_OK
