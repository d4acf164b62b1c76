"""Maintenance (root only): the last runs with their reports, Run now with live progress, the touch files."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for

from ..maintenance.run import run_maintenance, touch_file_state
from ..operations.context import Context
from .auth import root_required
from .background import BackgroundJob, background_job
from .context import context
from .forms import ConfirmForm

bp = Blueprint("maintenance", __name__, url_prefix="/scripts2")


def _run(ctx: Context, say) -> None:
    run_maintenance(ctx, trigger="panel", progress=say)


def progress() -> BackgroundJob:
    return background_job("maintenance run")


@bp.route("/maintenance")
@root_required
def index():
    ctx = context()
    runs = ctx.store.runs(10)
    last = next((run for run in runs if not run.dry_run), None)
    mail_failures = [n for n in (last.report.get("notifications") or []) if str(n.get("result", "")).startswith("failed")
                     ] if last else []
    return render_template("maintenance/index.html", runs=runs, touch=touch_file_state(ctx), mail_failures=mail_failures,
                           progress=progress(), schedule=ctx.settings.maintenance.schedule, form=ConfirmForm(),
                           state_dir=ctx.settings.server.state_dir)


@bp.route("/maintenance/run", methods=["POST"])
@root_required
def run_now():
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if not progress().start(context(), _run):
        flash("A maintenance run started from this panel is still in progress.", "error")
    return redirect(url_for(".index"))
