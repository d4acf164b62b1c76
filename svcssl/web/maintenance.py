"""Maintenance (root only): the last runs with their reports, Dry run, Run now (confirmed) with live progress,
and the touch files, switched on and off from the page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..errors import InputError
from ..maintenance.run import (TOUCH_FILE_MEANING, TOUCH_FILE_SWITCH, TOUCH_FILES, run_maintenance, set_touch_file,
                               touch_file_state)
from ..timewords import cron_words
from ..maintenance.scheduler import replan_after_run
from ..maintenance.wakeup import next_wakeup
from ..operations.context import Context
from .auth import current_user, root_required
from .background import BackgroundJob, background_job
from .context import context
from .forms import ConfirmForm

bp = Blueprint("maintenance", __name__, url_prefix="/scripts2")


def _run(ctx: Context, say) -> None:
    try:
        run_maintenance(ctx, trigger="panel", progress=say)
    finally:
        replan_after_run(ctx.settings)  # under `svcssl serve`: the next wake-up follows what this run changed


def _dry_run(ctx: Context, say) -> None:
    run_maintenance(ctx, trigger="panel", dry_run=True, progress=say)


def progress() -> BackgroundJob:
    return background_job("maintenance run")


def latest_dry_run(ctx: Context):
    return next((r for r in ctx.store.runs(10) if r.dry_run), None)


def _actor() -> str:
    return f"{current_user().name} (web, {request.remote_addr or '-'})"


@bp.route("/maintenance")
@root_required
def index():
    ctx = context()
    runs = ctx.store.runs(10)
    last = next((run for run in runs if not run.dry_run), None)
    mail_failures = [n for n in (last.report.get("notifications") or []) if str(n.get("result", "")).startswith("failed")
                     ] if last else []
    return render_template("maintenance/index.html", runs=runs, touch=touch_file_state(ctx), mail_failures=mail_failures,
                           meaning=TOUCH_FILE_MEANING, switches=TOUCH_FILE_SWITCH, progress=progress(),
                           schedule=ctx.settings.maintenance.schedule,
                           schedule_words=cron_words(ctx.settings.maintenance.schedule),
                           form=ConfirmForm(), state_dir=ctx.settings.server.state_dir, wake=next_wakeup(ctx))


@bp.route("/maintenance/run", methods=["GET", "POST"])
@root_required
def run_now():
    ctx = context()
    if request.method in ("GET", "HEAD"):  # the confirmation: what a run will change
        return render_template("maintenance/confirm.html", form=ConfirmForm(), touch=touch_file_state(ctx),
                               meaning=TOUCH_FILE_MEANING, dry=latest_dry_run(ctx), settings=ctx.settings)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if not progress().start(ctx, _run):
        flash("A maintenance run started from this panel is still in progress.", "error")
    return redirect(url_for(".index"), code=303)


@bp.route("/maintenance/dry-run", methods=["POST"])
@root_required
def dry_run():
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if not progress().start(context(), _dry_run):
        flash("A maintenance run started from this panel is still in progress.", "error")
    return redirect(url_for(".index"), code=303)


@bp.route("/maintenance/touch/<name>", methods=["POST"])
@root_required
def touch(name: str):
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if name not in TOUCH_FILES:
        abort(404, "There is no such touch file.")
    wanted = request.form.get("present")
    if wanted not in ("0", "1"):
        abort(400, "Say whether the touch file should be present (1) or absent (0).")
    try:
        changed = set_touch_file(context(), name, wanted == "1", actor=_actor())
    except InputError as exc:
        abort(400, exc.message)
    label, does = TOUCH_FILE_SWITCH[name]
    switch = "off" if wanted == "1" else "on"
    said = (f"{label} is now {switch}: {TOUCH_FILE_MEANING[name] if wanted == '1' else does}"
            f" (the touch file {name} is {'present' if wanted == '1' else 'absent'}).")
    flash(said if changed else f"{label} was already {switch}; nothing changed.", "ok")
    return redirect(url_for(".index"), code=303)
