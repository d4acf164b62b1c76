"""The audit log (root only): every change, who, when, which service, old and new fingerprint, outcome."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from .auth import root_required
from .context import context

bp = Blueprint("audit", __name__, url_prefix="/scripts")


PAGE_SIZE = 100


@bp.route("/audit")
@root_required
def index():
    """Changes first: failed logins only on request, so a flood of them cannot hide a change."""
    page = request.args.get("page", "1")
    page = int(page) if page.isdigit() and 0 < int(page) < 100000 else 1
    logins = request.args.get("logins") == "1"
    entries = context().store.audit_entries(PAGE_SIZE + 1, (page - 1) * PAGE_SIZE,
                                            without_actions=() if logins else ("login",))
    return render_template("audit/index.html", entries=entries[:PAGE_SIZE], page=page, logins=logins,
                           more=len(entries) > PAGE_SIZE)
