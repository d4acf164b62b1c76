"""The audit log (root only): every change, who, when, which service, old and new fingerprint, outcome."""

from __future__ import annotations

from flask import Blueprint, render_template

from .auth import root_required
from .context import context

bp = Blueprint("audit", __name__, url_prefix="/scripts")


@bp.route("/audit")
@root_required
def index():
    return render_template("audit/index.html", entries=context().store.audit_entries(500))
