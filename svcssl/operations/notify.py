"""Mail the administrator once per certificate and threshold — never a flood."""

from __future__ import annotations

import logging

from ..mail import MailError, mail_configured, send_mail
from .context import Context

log = logging.getLogger(__name__)


def notify_once(ctx: Context, key: str, subject: str, body: str) -> str:
    """Send unless a mail with ``key`` was sent before. Returns "sent", "already sent", "not configured" or the error."""
    notify = ctx.settings.notify
    if ctx.store.notification_sent(key):
        return "already sent"
    if not mail_configured(notify):
        return "not configured"
    try:
        send_mail(notify, subject, body)
    except MailError as exc:
        log.warning("notification not sent: %s", exc.message)
        return f"failed: {exc.message}"
    ctx.store.record_notification(key, subject, ctx.now())
    return "sent"
