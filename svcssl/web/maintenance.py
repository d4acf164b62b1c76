"""Maintenance (root only): the last runs with their reports, Run now with live progress, the touch files."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for

from ..errors import LockTimeoutError
from ..maintenance.run import run_maintenance, touch_file_state
from ..operations.context import Context, open_context
from .auth import root_required
from .context import context
from .forms import ConfirmForm

bp = Blueprint("maintenance", __name__, url_prefix="/scripts2")
log = logging.getLogger(__name__)


@dataclass
class RunProgress:
    """The run started from this panel, if any: its progress lines as they come."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: bool = False
    lines: list[str] = field(default_factory=list)
    error: str | None = None

    def start(self, ctx: Context) -> bool:
        with self.lock:
            if self.running:
                return False
            self.running, self.lines, self.error = True, [], None
        thread = threading.Thread(target=self._run, args=(ctx,), name="svcssl-maintenance", daemon=True)
        thread.start()
        return True

    def _run(self, ctx: Context) -> None:
        own = open_context(ctx.settings, ctx.clock)  # a store of this thread's own
        try:
            run_maintenance(own, trigger="panel", progress=self.lines.append)
        except LockTimeoutError as exc:
            self.error = exc.message
        except Exception as exc:  # reported on the page and in the log, never a crash
            log.exception("maintenance run from the panel failed")
            self.error = f"The run failed unexpectedly: {exc}"
        finally:
            own.store.close()
            with self.lock:
                self.running = False


def progress() -> RunProgress:
    return current_app.extensions["svcssl"].extra.setdefault("maintenance_progress", RunProgress())


@bp.route("/maintenance")
@root_required
def index():
    ctx = context()
    return render_template("maintenance/index.html", runs=ctx.store.runs(10), touch=touch_file_state(ctx),
                           progress=progress(), schedule=ctx.settings.maintenance.schedule, form=ConfirmForm(),
                           state_dir=ctx.settings.server.state_dir)


@bp.route("/maintenance/run", methods=["POST"])
@root_required
def run_now():
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was not sent from this page. Try again.")
    if not progress().start(context()):
        flash("A maintenance run started from this panel is still in progress.", "error")
    return redirect(url_for(".index"))
