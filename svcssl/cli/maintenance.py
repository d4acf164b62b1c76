"""The maintenance run: `svcssl maintenance run` and `svcssl maintenance status`."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import click

from ..operations.context import Context
from .command import EXIT_FAILED, EXIT_OK, Group, Integer, runs


@click.group("maintenance", cls=Group, metavar="ACTION", help="the maintenance run (renew, replace, notify)")
def maintenance() -> None:
    pass


@maintenance.command("run", help="assess every service and replace what needs replacing")
@click.option("--dry-run", is_flag=True, help="assess and plan only: no order, install or mail")
@click.option("--json", is_flag=True)
@runs
def cmd_maintenance_run(ctx: Context, args: SimpleNamespace) -> int:
    from ..maintenance.run import run_maintenance

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
            for attempt in report.order.get("attempts") or ():
                print(f"      CA {attempt['directory']}: {attempt['outcome']} — {attempt['reason']}")
            for note in report.order.get("notes") or ():
                print(f"      note: {note}")
        for s in report.services:
            print(f"  {s.service}: {s.verdict} — {s.reason}")
            print(f"      action: {s.action} [{s.outcome}]" + (f" ({s.detail})" if s.detail and s.outcome == "failed" else ""))
        for n in report.notifications:
            print(f"  mail: {n['subject']} — {n['result']}")
        for problem in report.disk:
            print(f"  disk: {problem['message']}")
        if report.not_saved:
            print(f"  This report could not be kept in the history: {report.not_saved}")
        print("Result: " + (report.summary or ("every service is fine" if report.ok else "needs attention")))
    return EXIT_OK if report.ok else EXIT_FAILED


@maintenance.command("status", help="touch files, schedule and the last runs")
@click.option("--json", is_flag=True)
@click.option("--limit", type=Integer(1, 1000), default=10, help="how many runs (1-1000)")
@runs
def cmd_maintenance_status(ctx: Context, args: SimpleNamespace) -> int:
    from ..maintenance.run import touch_file_state

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


@maintenance.command("next", help="when the maintenance run has work next, and why (UTC)")
@click.option("--json", is_flag=True)
@runs
def cmd_maintenance_next(ctx: Context, args: SimpleNamespace) -> int:
    from ..maintenance.wakeup import next_wakeup

    wake = next_wakeup(ctx)
    if args.json:
        print(json.dumps(wake.to_dict(), indent=2))
    else:
        print(f"Next run: {wake.at:%Y-%m-%d %H:%M} UTC — {wake.reason}")
    return EXIT_OK
